"""Train an agent from the command line into a run directory.

    python scripts/train.py AGENT --env GAME [--frames N] [--seed S] [--run-dir DIR] [--wandb MODE]
    python scripts/train.py AGENT --resume RUN_DIR

Every field of the agent's Config is an option (see `--help`); its defaults come from the agent's preset
for the game's family (Atari or classic control). Writes config.json, metrics.jsonl, checkpoints/ (latest
and best), videos/ and curve.png. Ctrl-C or a kill saves a checkpoint; --resume continues from it.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import tyro
from tqdm.auto import tqdm

import agents
import envs
import nets
from scripts.checkpoint import (
    find_checkpoint,
    load_arrays,
    load_checkpoint,
    read_meta,
    save_arrays,
    save_checkpoint,
)
from scripts.evaluate import play_games, summarise
from scripts.logger import RunLogger, read_jsonl
from scripts.plots import plot_learning_curve


@dataclass(frozen=True)
class RunConfig:
    """What a run does around the agent: env, seeds, files, evaluation and logging."""

    env: str = "Pong"
    """Game: a short Atari name (Pong, Breakout), a full id (ALE/Pong-v5) or a classic id (CartPole-v1)."""
    seed: int = 0
    """Seed of torch, numpy and env i (seed + i)."""
    run_dir: Path | None = None
    """Output folder (default runs/<agent>-<game>-s<seed>-<time>)."""
    wandb: Literal["auto", "online", "offline", "off"] = "auto"
    """Weights & Biases: auto = online when logged in, else offline (upload later with wandb sync)."""
    device: str = "auto"
    """cpu, cuda, cuda:N or auto (cuda when available)."""
    backend: Literal["auto", "sync", "async", "envpool"] = "auto"
    """Vector env backend; auto picks the fastest measured on this kind of machine."""
    sticky: float | None = None
    """Atari sticky-action probability for training and evaluation (default: the protocol's 0.25, Machado
    et al. 2018; 0.0 is the NoFrameskip-v4 setting behind most published PPO/DQN curves)."""
    eval_every: int | None = None
    """Frames between evaluations (default: 10 evaluations per run)."""
    eval_episodes: int = 5
    """Whole games per evaluation, played on the evaluation protocol."""
    checkpoint_minutes: float = 5.0
    """Wall-clock minutes between checkpoints: a crash loses at most this much training."""
    video_every: int = 100
    """Record one training game of env 0 in every N (Atari; 0 = no training videos)."""
    log_every: int = 2_000
    """Agent steps between training-statistics lines."""
    save_replay: bool = False
    """Save the replay buffer with each checkpoint (large: ~0.7 GB per 100k Atari transitions), so a
    resumed run does not refill it."""
    resume: Path | None = None
    """Continue the run in this directory from its latest checkpoint with its saved config (only --frames
    may change, to train for longer)."""
    progress: bool = True
    """Show a progress bar."""


def frames_per_step(game: str) -> int:
    return envs.AtariOptions().frame_skip if envs.resolve(game).kind == "atari" else 1


def parse(argv: list[str]) -> tuple[str, RunConfig, Any]:
    """AGENT, then flat options for the run and the agent's config (preset chosen by the game family)."""
    names = ", ".join(agents.AGENTS)
    if not argv or argv[0].startswith("-"):
        if argv and argv[0] in ("-h", "--help"):
            print(__doc__)
            print(f"Agents: {names}. `train.py AGENT --help` lists the agent's options.")
            raise SystemExit(0)
        raise SystemExit(f"error: name an agent first, e.g. `train.py dqn --env Pong`; agents: {names}")
    try:
        module = agents.get_agent(argv[0])
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    rest = argv[1:]
    resume = _option(rest, "--resume")
    if resume is not None:
        return _parse_resume(argv[0], module, Path(resume), rest)
    game = _option(rest, "--env") or RunConfig.env
    try:
        kind = envs.resolve(game).kind
    except ValueError as err:
        raise SystemExit(f"error: --env: {err}") from None

    default_cfg = module.PRESETS["atari" if kind == "atari" else "classic"]
    run, cfg = _cli(argv[0], module, rest, RunConfig(), default_cfg)
    return argv[0], run, cfg


def _cli(agent_name: str, module: Any, rest: list[str], run: RunConfig, cfg: Any) -> tuple[RunConfig, Any]:
    """Parse flat options over the given defaults, then validate the agent config."""
    # Built at run time so the agent's own Config supplies the options (tyro reads the field docstrings).
    Args = dataclasses.make_dataclass("Args", [("run", RunConfig), ("agent", module.Config)], frozen=True)
    args = tyro.cli(
        Args,
        args=rest,
        default=Args(run, cfg),
        prog=f"train.py {agent_name}",
        config=(tyro.conf.OmitArgPrefixes,),
        description=module.__doc__,
    )
    try:
        args.agent.validate()
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    return args.run, args.agent


def _option(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _parse_resume(agent_name: str, module: Any, run_dir: Path, rest: list[str]) -> tuple[str, RunConfig, Any]:
    try:
        meta = read_meta(find_checkpoint(run_dir, "latest"))
    except FileNotFoundError as err:
        raise SystemExit(f"error: --resume: {err}") from None
    if meta["agent"] != agent_name:
        raise SystemExit(
            f"error: {run_dir} holds a {meta['agent']} checkpoint, not {agent_name}; "
            f"run `train.py {meta['agent']} --resume {run_dir}`"
        )
    game = _option(rest, "--env")
    if game is not None and envs.resolve(game).name != envs.resolve(meta["game"]).name:
        raise SystemExit(
            f"error: {run_dir} was trained on {meta['game']}, not {game}; drop --env to resume it"
        )
    saved_run = agents.config_from_dict(
        RunConfig, {**meta["run_config"], "resume": run_dir, "run_dir": run_dir}
    )
    saved_run = dataclasses.replace(saved_run, run_dir=Path(run_dir), resume=Path(run_dir))
    saved_cfg = agents.config_from_dict(module.Config, meta["agent_config"])
    run, cfg = _cli(agent_name, module, rest, saved_run, saved_cfg)
    changed = [f.name for f in dataclasses.fields(cfg) if getattr(cfg, f.name) != getattr(saved_cfg, f.name)]
    changed += [f.name for f in dataclasses.fields(run)
                if f.name != "env" and getattr(run, f.name) != getattr(saved_run, f.name)]  # fmt: skip
    refused = [name for name in changed if name not in RESUMABLE]
    if refused:
        flags = ", ".join("--" + n.replace("_", "-") for n in refused)
        allowed = ", ".join("--" + n.replace("_", "-") for n in RESUMABLE)
        raise SystemExit(f"error: {flags} cannot change when resuming {run_dir} (its saved config is used); "
                         f"a resume may change only {allowed}")  # fmt: skip
    return agent_name, dataclasses.replace(run, env=saved_run.env), cfg


# What a resume may change: how long to train and how to log, never what is learned.
RESUMABLE = ("frames", "wandb", "device", "progress", "checkpoint_minutes", "save_replay", "log_every",
             "env_groups")  # fmt: skip


class Trainer:
    """Drives an agent's training loop: logging, evaluation, checkpoints, videos and the curve."""

    def __init__(self, agent_name: str, run: RunConfig, cfg: Any) -> None:
        self.agent_name, self.run, self.cfg = agent_name, run, cfg
        self.module = agents.get_agent(agent_name)
        self.game = envs.resolve(run.env)
        self.fps = frames_per_step(run.env)
        self.total_steps = cfg.frames // self.fps
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.run_dir = Path(run.run_dir or f"runs/{agent_name}-{self.game.name}-s{run.seed}-{stamp}")
        self.eval_every_frames = run.eval_every or max(cfg.frames // 10, 1)
        self.best_eval = -float("inf")
        self.replay = None
        self.env_options = agents.env_options(self.module, cfg, self.game.kind)
        if run.sticky is not None:  # recorded with the run, so evaluate.py and watch.py play the same game
            if self.game.kind != "atari":
                raise SystemExit(f"error: --sticky applies to Atari games, not {run.env}; drop it")
            try:
                envs.AtariOptions(sticky=run.sticky)  # validates
            except ValueError as err:
                raise SystemExit(f"error: --sticky: {err}") from None
            self.env_options = self.env_options | {"sticky": run.sticky}

    def _meta(self, step: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        run_config = {
            k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self.run).items()
        }
        return {
            "agent": self.agent_name,
            "game": self.game.env_id,
            "step": step,
            "frames": step * self.fps,
            "agent_config": dataclasses.asdict(self.cfg),
            "env_options": self.env_options,
            "run_config": run_config,
            **(extra or {}),
        }

    def save(self, agent: Any, step: int, which: str = "latest", metrics: dict | None = None) -> None:
        save_checkpoint(self.run_dir / "checkpoints" / which, agent.state_dict(), self._meta(step, metrics))
        if which == "latest" and self.replay is not None:
            save_arrays(self.run_dir / "checkpoints" / "replay.npz", self.replay.state_dict())

    def evaluate(self, agent: Any) -> dict[str, float]:
        games = play_games(
            agent, self.game.env_id, self.run.eval_episodes, seed=self.run.seed, **self.env_options
        )
        stats = summarise([g["score"] for g in games], self.game.env_id, self.run.seed)
        return {f"eval/{k}_return": stats[k] for k in ("mean", "median", "std")} | {
            "eval/episodes": len(games)
        }

    def _make_env(self, seed: int, options: dict[str, Any]) -> Any:
        """The training envs, in the agent's env groups where EnvPool can step them (see
        `agents.rollout.RolloutCollector`), else all at once with a note saying why."""
        run, cfg = self.run, self.cfg
        groups = getattr(cfg, "env_groups", 1)  # only the policy-gradient agents have groups
        why = None
        if cfg.num_envs % groups:
            why, groups = f"--num-envs {cfg.num_envs} is not a multiple of --env-groups {groups}", 1
        env = envs.make(run.env, cfg.num_envs, seed=seed, mode="train", backend=run.backend, groups=groups,
                        **options)  # fmt: skip
        if groups > 1 and getattr(env, "num_groups", 1) == 1:  # the gymnasium backends have no groups
            why = "only the EnvPool backend steps envs in groups"
        if why:
            print(f"note: the {cfg.num_envs} envs step all at once, not in groups: {why}", file=sys.stderr)
        return env

    def main(self) -> dict[str, Any]:
        run, cfg = self.run, self.cfg
        resuming = run.resume is not None
        nets.keep_freed_memory()  # training steps reuse mapped pages instead of faulting in fresh ones
        start_step, state = 0, None
        if resuming:
            state, meta = load_checkpoint(find_checkpoint(self.run_dir, "latest"))
            start_step = meta["step"]
            self.best_eval = meta.get("best_eval", -float("inf"))
        elif (self.run_dir / "checkpoints").exists():
            raise SystemExit(f"error: {self.run_dir} already holds a run; continue it with --resume "
                             f"{self.run_dir}, or pick another --run-dir")  # fmt: skip
        # A resumed run draws new games and exploration noise instead of replaying its first ones.
        seed = run.seed + start_step
        nets.seed_everything(seed)
        options = dict(self.env_options)
        if self.game.kind == "atari" and run.video_every > 0:
            options |= {"video_dir": str(self.run_dir / "videos"), "video_every": run.video_every}
        env = self._make_env(seed, options)
        agent = self.module.make_agent(cfg, env, run.device, seed=seed)
        if state is not None:
            agent.load_state_dict(state)
            rows = read_jsonl(self.run_dir / "metrics.jsonl")  # drop lines logged after the checkpoint
            (self.run_dir / "metrics.jsonl").write_text(
                "".join(json.dumps(r) + "\n" for r in rows if r.get("global_step", 0) <= start_step)
            )
        loop_options: dict[str, Any] = {}
        if run.save_replay and hasattr(self.module, "make_replay"):
            self.replay = loop_options["replay"] = self.module.make_replay(cfg, env, seed)
            saved = self.run_dir / "checkpoints" / "replay.npz"
            if resuming and saved.exists():
                self.replay.load_state_dict(load_arrays(saved))
        config = {
            "agent": self.agent_name,
            "game": self.game.env_id,
            "frames_per_step": self.fps,
            "agent_config": dataclasses.asdict(cfg),
            **self._meta(0)["run_config"],
        }
        logger = RunLogger(self.run_dir, config, wandb_mode=run.wandb, resume=resuming)
        print(
            f"{self.agent_name} on {self.game.env_id}: {cfg.frames:,} frames, {cfg.num_envs} envs, "
            f"device {agent.device}, run directory {self.run_dir}",
            file=sys.stderr,
        )

        stop = {"signal": None}

        def on_signal(signum: int, _frame: Any) -> None:  # SIGTERM behaves like Ctrl-C: checkpoint, then exit
            stop["signal"] = signum
            raise KeyboardInterrupt

        previous, previous_sigint = signal.signal(signal.SIGTERM, on_signal), signal.getsignal(signal.SIGINT)
        bar = tqdm(
            total=cfg.frames,
            initial=start_step * self.fps,
            unit="frame",
            unit_scale=True,
            disable=not run.progress,
            dynamic_ncols=True,
        )
        recent, last_sps = deque(maxlen=20), 0.0
        step, t_log, step_log = start_step, time.perf_counter(), start_step
        t_ckpt, next_eval = time.monotonic(), (start_step * self.fps // self.eval_every_frames + 1)
        videos_seen = set(self.run_dir.glob("videos/*.mp4"))
        start_time, last_eval = time.perf_counter(), {}
        loop = self.module.train(
            cfg,
            env,
            agent,
            total_steps=self.total_steps,
            start_step=start_step,
            seed=seed,
            log_every=run.log_every,
            **loop_options,
        )
        try:
            for step, rows in loop:
                frames = step * self.fps
                for row in rows:
                    if "episode_return" in row:
                        recent.append(row["episode_return"])
                        self._new_videos(logger, videos_seen, step)
                    else:
                        now = time.perf_counter()
                        last_sps = (step - step_log) / max(now - t_log, 1e-9)
                        row["sps"] = row["perf/sps"] = last_sps
                        t_log, step_log = now, step
                    logger.log({"global_step": step, "frames": frames, "time": time.time(), **row})
                bar.update(frames - bar.n)
                if rows:
                    score = f"{np.mean(recent):.1f}" if recent else "-"
                    bar.set_postfix(score=score, sps=f"{last_sps:.0f}", refresh=False)
                if frames >= next_eval * self.eval_every_frames:
                    next_eval = frames // self.eval_every_frames + 1
                    last_eval = self._evaluate_and_save(agent, logger, step)
                    t_ckpt = time.monotonic()
                elif time.monotonic() - t_ckpt > run.checkpoint_minutes * 60:
                    self.save(agent, step, "latest", {"best_eval": self.best_eval})
                    t_ckpt = time.monotonic()
        except KeyboardInterrupt:
            # A second Ctrl-C or kill must not cut the final checkpoint short (`timeout` forwards the
            # SIGTERM that `pkill` also sent, so two arrive); the handlers are restored below.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            bar.close()
            self.save(agent, step, "latest", {"best_eval": self.best_eval})
            logger.close()
            env.close()
            why = "killed" if stop["signal"] else "interrupted"
            print(
                f"\n{why} at frame {step * self.fps:,}; checkpoint saved. Continue with:\n"
                f"  python scripts/train.py {self.agent_name} --resume {self.run_dir}",
                file=sys.stderr,
            )
            raise SystemExit(130) from None
        finally:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, previous_sigint)
        bar.close()
        env.close()
        if not last_eval or last_eval["_step"] * self.fps < cfg.frames:  # not yet evaluated at the budget
            last_eval = self._evaluate_and_save(agent, logger, step)
        wall = time.perf_counter() - start_time
        curve = plot_learning_curve(
            read_jsonl(self.run_dir / "metrics.jsonl"),
            self.run_dir / "curve.png",
            title=f"{self.agent_name} on {self.game.env_id}",
        )
        logger.log_image(curve, step, "charts/curve")
        logger.close()
        summary = {
            "agent": self.agent_name,
            "game": self.game.env_id,
            "frames": step * self.fps,
            "global_step": step,
            "wall_seconds": round(wall, 1),
            "sps": round((step - start_step) / max(wall, 1e-9), 1),
            "final_eval_mean": last_eval["eval/mean_return"],
            "best_eval_mean": self.best_eval,
            "run_dir": str(self.run_dir),
        }
        print(json.dumps(summary))
        return summary

    def _evaluate_and_save(self, agent: Any, logger: RunLogger, step: int) -> dict[str, Any]:
        result = self.evaluate(agent)
        logger.log({"global_step": step, "frames": step * self.fps, "time": time.time(), **result})
        if result["eval/mean_return"] > self.best_eval:
            self.best_eval = result["eval/mean_return"]
            self.save(agent, step, "best", {"eval": result, "best_eval": self.best_eval})
        self.save(agent, step, "latest", {"eval": result, "best_eval": self.best_eval})
        plot_learning_curve(
            read_jsonl(self.run_dir / "metrics.jsonl"),
            self.run_dir / "curve.png",
            title=f"{self.agent_name} on {self.game.env_id}",
        )
        return {**result, "_step": step}

    def _new_videos(self, logger: RunLogger, seen: set[Path], step: int) -> None:
        for path in sorted(set(self.run_dir.glob("videos/*.mp4")) - seen):
            seen.add(path)
            logger.log_video(path, step, "media/train_video")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    agent_name, run, cfg = parse(sys.argv[1:] if argv is None else argv)
    return Trainer(agent_name, run, cfg).main()


if __name__ == "__main__":
    main()
