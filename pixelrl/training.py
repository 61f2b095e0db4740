"""Training a run: an agent's loop (agents/) wrapped in logging, evaluation, checkpoints, videos and the
curve. Three phases, one screen each: `restore` builds or resumes everything, `loop` drives the agent's
training loop, `finish` evaluates at the budget and writes the curve and summary.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

import agents
import envs
import nets
from agents.common import check_config
from pixelrl.checkpoint import (
    RESUMABLE,
    RUN_FIELDS,
    CheckpointError,
    check_agent_fits,
    checkpoint_agent,
    find_checkpoint,
    load_arrays,
    load_checkpoint,
    load_loop_state,
    read_meta,
    save_arrays,
    save_checkpoint,
    write_export,
)
from pixelrl.evaluation import play_games, summarise
from pixelrl.logger import RunFilesError, RunLogger, read_jsonl
from pixelrl.plots import plot_learning_curve
from pixelrl.resume import capture, restore, untouched_streams


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
    backend: envs.Backend = "auto"
    """Vector env backend; auto picks the fastest measured on this machine (`benchmark.py envs`)."""
    sticky: float | None = None
    """Atari sticky-action probability for training and evaluation (default: the protocol's, Machado et al.
    2018, see envs.AtariOptions; 0.0 is the NoFrameskip-v4 setting behind most published PPO/DQN curves)."""
    flicker: float | None = None
    """Atari: blank each observed frame with this probability, in training and evaluation alike (flickering
    Pong, the partially observed game of Hausknecht & Stone 2015: p = 0.5). Runs on the gymnasium backends."""
    eval_every: int | None = None
    """Frames between evaluations (default: 10 evaluations per run)."""
    eval_episodes: int = 5
    """Whole games per evaluation, played on the evaluation protocol."""
    checkpoint_minutes: float = 5.0
    """Wall-clock minutes between checkpoints: a crash loses at most this much training."""
    video_every: int | None = None
    """Record one training game of env 0 in every N (Atari; default: the env protocol's period, see
    envs.AtariOptions.video_every; 0 = no training videos)."""
    log_every: int = 2_000
    """Agent steps between training-statistics lines."""
    save_replay: bool = False
    """Save the replay buffer with each checkpoint (large: ~0.7 GB per 100k Atari transitions), so a
    resumed run does not refill it."""
    resume: Path | None = None
    """Continue the run in this directory from its latest checkpoint with its saved config: what is learned
    stays, only the budget, the logging, the device and the agent's speed settings may change."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        check_config(self, positive=("eval_episodes", "eval_every", "checkpoint_minutes", "log_every"),
                     non_negative=("seed", "video_every"), unit=("sticky", "flicker"))  # fmt: skip


class Interrupted(Exception):  # noqa: N818 (a stop, not an error)
    """Ctrl-C or a kill stopped training; the latest checkpoint was written first."""


@dataclass
class Session:
    """What `restore` builds and `loop` and `finish` use."""

    env: Any  # gymnasium.vector.VectorEnv
    agent: agents.Agent
    logger: RunLogger
    start_step: int
    seed: int
    replay: Any = None  # the agent's replay buffer when it is saved with checkpoints
    step: int = 0
    trained_step: int = 0  # the step of the last completed update: what a checkpoint records
    saved_step: int = 0  # the step the latest checkpoint holds
    # On-policy runs: the loop's state at trained_step (pixelrl/resume.py), captured at each update's yield;
    # off-policy runs capture it when they save.
    loop_state: dict[str, Any] | None = None
    started: float = dataclasses.field(default_factory=time.perf_counter)
    last_eval: dict[str, Any] = dataclasses.field(default_factory=dict)


class Observer(Protocol):
    """Something outside a run that follows it, such as a Ray Tune trial (pixelrl/sweep.py)."""

    def logged(self, row: dict[str, Any]) -> None:
        """Called with every row the run writes to metrics.jsonl (games, statistics, evaluations)."""

    def saved(self, run_dir: Path) -> None:
        """Called after each write of the latest checkpoint (and the replay, where the run saves it)."""


class Trainer:
    """Builds, checks and runs one training run. The constructor checks everything a run needs that takes
    no time (ValueError with one line otherwise); `main` trains. An `observer` hears of every logged row
    and every checkpoint."""

    def __init__(
        self, spec: agents.AgentSpec, run: RunConfig, cfg: Any, observer: Observer | None = None
    ) -> None:
        self.spec, self.run, self.observer = spec, run, observer
        self.game = envs.resolve(run.env)
        device = nets.resolve_device(run.device)  # a device that is not here: refused now, not after envs
        # The precision is chosen once, here, and recorded: config.json and checkpoints hold what ran.
        self.cfg = cfg = agents.resolve_precision(cfg, device)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.run_dir = Path(run.run_dir or f"runs/{spec.name}-{self.game.name}-s{run.seed}-{stamp}")
        # The game's id and these options rebuild its env: an alias's options (CartPole-NoVel's hidden
        # velocities) are recorded too.
        self.env_options = envs.alias_options(run.env) | spec.env_options(cfg, self.game.kind)
        # Protocol options, recorded with the run so that evaluate.py and watch.py play the same game.
        self.env_options |= envs.atari_only_options(run.env, self.game.kind, sticky=run.sticky,
                                                    flicker=run.flicker)  # fmt: skip
        if run.backend == "ale" and self.game.kind == "atari" and run.video_every != 0:
            raise ValueError("--backend ale cannot record training videos (ale-py's vector env has no "
                             "screen); add --video-every 0, or use --backend auto")  # fmt: skip
        self.frames_per_step = envs.frames_per_step(run.env, **self.env_options)
        self.total_steps = cfg.frames // self.frames_per_step
        self.eval_every_frames = run.eval_every or max(cfg.frames // 10, 1)
        self.best_eval = -float("inf")
        _check_writable(self.run_dir)
        if run.resume is None and (self.run_dir / "checkpoints").exists():
            raise ValueError(f"{self.run_dir} already holds a run; continue it with --resume {self.run_dir}, "
                             "or pick another --run-dir")  # fmt: skip

    def main(self) -> dict[str, Any]:
        session = self.restore()
        self.loop(session)
        return self.finish(session)

    # ------------------------------------------------------------------ restore
    def restore(self) -> Session:
        """A fresh run, or the latest checkpoint's agent, metrics (cut back to it) and replay."""
        run, cfg = self.run, self.cfg
        nets.keep_freed_memory()  # training steps reuse mapped pages instead of faulting in fresh ones
        start_step, state, loop_state = 0, None, None
        if run.resume is not None:
            path = find_checkpoint(self.run_dir, "latest")
            check_agent_fits(
                path, self.spec, cfg
            )  # network sizes against the file's tensors, before building
            state, meta = load_checkpoint(path, required=RUN_FIELDS)
            start_step, self.best_eval = meta["step"], meta.get("best_eval", -float("inf"))
            loop_state = load_loop_state(path)
        # A resume restores every random stream below; where the envs' states cannot be restored, new games
        # start from this seed, not the first games again.
        seed = run.seed + start_step
        nets.seed_everything(seed)
        env = self._make_env(seed)
        agent = self.spec.make_agent(cfg, env, run.device, seed)
        if not isinstance(agent, agents.Agent):
            raise TypeError(f"agent {self.spec.name!r} does not implement agents.Agent")
        if state is not None:
            agent.load_state_dict(state)
            rows = read_jsonl(self.run_dir / "metrics.jsonl")  # drop lines logged after the checkpoint
            (self.run_dir / "metrics.jsonl").write_text(
                "".join(json.dumps(r) + "\n" for r in rows if r.get("global_step", 0) <= start_step)
            )
        replay = None
        if run.save_replay and self.spec.make_replay is not None:
            replay = self.spec.make_replay(cfg, env, seed)
            saved = self.run_dir / "checkpoints" / "replay.npz"
            if state is not None and saved.exists():
                replay.load_state_dict(load_arrays(saved))
        try:  # the loop state is data from the file: whatever in it does not fit is the file's fault
            with_envs = loop_state is None or restore(loop_state, agent, env, replay)
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError, AttributeError) as err:
            _close_quietly(env)
            why = f"{type(err).__name__}: {err}"
            raise CheckpointError(path, f"its loop state cannot be restored ({why})") from None
        if not with_envs:
            print("note: the envs start new games here; only the sync backend saves and restores the games "
                  "in progress (see docs/reliability.md)", file=sys.stderr)  # fmt: skip
        config = {"agent": self.spec.name, "game": self.game.env_id, "frames_per_step": self.frames_per_step,
                  "agent_config": dataclasses.asdict(cfg), **self._run_config()}  # fmt: skip
        if state is not None:  # where and when the run went on: the wall-clock time before is no training
            config["resumes"] = [*saved_resumes(self.run_dir), {"step": start_step, "time": time.time()}]
        logger = RunLogger(self.run_dir, config, wandb_mode=run.wandb, resume=state is not None,
                           on_log=self.observer.logged if self.observer else None)  # fmt: skip
        precision = config["agent_config"].get("precision")  # the agents that have one
        device = f"device {agent.device}" + (f", precision {precision}" if precision else "")
        print(f"{self.spec.name} on {self.game.env_id}: {cfg.frames:,} frames, {cfg.num_envs} envs on "
              f"{envs.backend_of(env)}, "
              f"{device}, run directory {self.run_dir}", file=sys.stderr)  # fmt: skip
        return Session(
            env,
            agent,
            logger,
            start_step,
            seed,
            replay,
            step=start_step,
            trained_step=start_step,
            saved_step=start_step,
            loop_state=loop_state,
        )

    def _make_env(self, seed: int) -> Any:
        """The training envs, in the agent's env groups where EnvPool can step them (see
        `agents.rollout.RolloutCollector`), else all at once with a note saying why."""
        run, cfg, options = self.run, self.cfg, dict(self.env_options)
        if self.game.kind == "atari" and run.video_every != 0:
            video_every = {} if run.video_every is None else {"video_every": run.video_every}
            options |= {"video_dir": str(self.run_dir / "videos"), **video_every}
        if self.spec.make_env is not None:  # an agent that steps envs through another library's vector env
            return self.spec.make_env(run.env, cfg.num_envs, seed=seed, backend=run.backend, **options)
        groups, why = cfg.env_groups, None
        if cfg.num_envs % groups:
            why, groups = f"--num-envs {cfg.num_envs} is not a multiple of --env-groups {groups}", 1
        env = envs.make(run.env, cfg.num_envs, seed=seed, mode="train", backend=run.backend, groups=groups,
                        **options)  # fmt: skip
        if groups > 1 and envs.num_groups(env) == 1:  # the gymnasium backends have no groups
            why = "only the pool backends (envpool, ale) step envs in groups"
        if why:
            print(f"note: the {cfg.num_envs} envs step all at once, not in groups: {why}", file=sys.stderr)
        return env

    # ------------------------------------------------------------------ loop
    def loop(self, s: Session) -> None:
        """Drive the agent's loop: log its rows, evaluate and checkpoint on schedule. Ctrl-C or SIGTERM
        writes the latest checkpoint, then raises Interrupted."""
        run, fps = self.run, self.frames_per_step
        replay = {"replay": s.replay} if s.replay is not None else {}
        steps = self.spec.train(
            self.cfg,
            s.env,
            s.agent,
            total_steps=self.total_steps,
            start_step=s.start_step,
            seed=s.seed,
            log_every=run.log_every,
            **replay,
        )
        bar = tqdm(total=self.cfg.frames, initial=s.start_step * fps, unit="frame", unit_scale=True,
                   disable=not run.progress, dynamic_ncols=True)  # fmt: skip
        recent, sps, t_log, step_log = deque(maxlen=20), 0.0, time.perf_counter(), s.start_step
        t_ckpt, next_eval = time.monotonic(), s.start_step * fps // self.eval_every_frames + 1
        videos_seen = set(self.run_dir.glob("videos/*.mp4"))
        # Closing the agent's loop however this one ends lets it clean up now (Ray actors, env workers).
        with _deferred_stop() as stop, contextlib.closing(steps):
            for s.step, rows in steps:
                # On-policy loops yield while collecting: those steps count once the update has used them,
                # and a checkpoint holds the loop's state at that update.
                if any(agents.UPDATED in r for r in rows):
                    s.trained_step, s.loop_state = s.step, capture(s.agent, s.env, s.replay)
                    rows = [
                        r for r in ({k: v for k, v in r.items() if k != agents.UPDATED} for r in rows) if r
                    ]
                elif not self.spec.on_policy:
                    s.trained_step = s.step
                for row in rows:
                    if "episode_return" in row:
                        recent.append(row["episode_return"])
                        self._new_videos(s.logger, videos_seen, s.step)
                    else:
                        self._check_finite(s, row)
                        now = time.perf_counter()
                        sps = (s.step - step_log) / max(now - t_log, 1e-9)
                        row["sps"] = row["perf/sps"] = sps
                        t_log, step_log = now, s.step
                    s.logger.log({"global_step": s.step, "frames": s.step * fps, "time": time.time(), **row})
                bar.update(s.step * fps - bar.n)
                if rows:
                    bar.set_postfix(
                        score=f"{np.mean(recent):.1f}" if recent else "-", sps=f"{sps:.0f}", refresh=False
                    )
                if stop.signum is not None:  # Ctrl-C or a kill arrived: stop here, between updates
                    bar.close()
                    self.save(s, "latest", {"best_eval": self.best_eval})
                    s.logger.close()
                    _close_quietly(s.env)
                    why = "killed" if stop.signum == signal.SIGTERM else "interrupted"
                    frames = s.trained_step * fps
                    raise Interrupted(f"{why} at frame {frames:,}; the last completed update is saved")
                if s.step * fps >= next_eval * self.eval_every_frames:
                    next_eval = s.step * fps // self.eval_every_frames + 1
                    s.last_eval = self._evaluate_and_save(s)
                    t_ckpt = time.monotonic()
                elif time.monotonic() - t_ckpt > run.checkpoint_minutes * 60:
                    self.save(s, "latest", {"best_eval": self.best_eval})
                    t_ckpt = time.monotonic()
        bar.close()

    def _diverged(self, s: Session, what: str) -> None:
        s.logger.close()
        _close_quietly(s.env)
        latest = self.run_dir / "checkpoints" / "latest.safetensors"
        kept = (f"the last good checkpoint (step {read_meta(latest)['step']:,}) is kept in {latest.parent}"
                if latest.exists() else "nothing was saved")  # fmt: skip
        raise Diverged(f"training diverged {what}; {kept}. Lower --lr (or clip gradients harder) and start a "
                       "new run")  # fmt: skip

    def _check_finite(self, s: Session, row: dict[str, Any]) -> None:
        """A non-finite loss stops the run before anything is saved: the last good checkpoint stays."""
        bad = sorted(k for k, v in row.items() if isinstance(v, float) and not np.isfinite(v))
        if bad:
            s.logger.log({"global_step": s.step, "frames": s.step * self.frames_per_step, "time": time.time(),
                          **{k: str(row[k]) for k in bad}})  # fmt: skip
            self._diverged(s, f"at step {s.step:,}: " + ", ".join(f"{k} = {row[k]}" for k in bad))

    # ------------------------------------------------------------------ finish
    def finish(self, s: Session) -> dict[str, Any]:
        """Evaluate at the budget (unless the loop just did), write the curve; the run's summary. A Ctrl-C
        now lets these last steps finish instead of cutting a checkpoint or the summary short."""
        s.env.close()
        with _deferred_stop():
            if not s.last_eval or s.last_eval["_step"] * self.frames_per_step < self.cfg.frames:
                s.last_eval = self._evaluate_and_save(s)
            elif s.saved_step < s.trained_step:  # an update after the last evaluation: keep it too
                self.save(s, "latest", {"eval": s.last_eval, "best_eval": self.best_eval})
            curve = self._plot_curve()
            s.logger.log_image(curve, s.step, "charts/curve")
            s.logger.close()
        wall = time.perf_counter() - s.started
        return {
            "agent": self.spec.name,
            "game": self.game.env_id,
            "frames": s.step * self.frames_per_step,
            "global_step": s.step,
            "wall_seconds": round(wall, 1),
            "sps": round((s.step - s.start_step) / max(wall, 1e-9), 1),
            "final_eval_mean": s.last_eval["eval/mean_return"],
            "best_eval_mean": self.best_eval,
            "run_dir": str(self.run_dir),
        }

    # ------------------------------------------------------------------ pieces
    def _run_config(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self.run).items()}

    def save(self, s: Session, which: str, metrics: dict[str, Any]) -> None:
        state = s.agent.state_dict()
        bad = _non_finite(state)
        if bad:  # never overwrite a good checkpoint with a diverged network
            self._diverged(s, f"by step {s.step:,}: the agent's {bad} holds non-finite values")
        meta = {"agent": self.spec.name, "game": self.game.env_id, "step": s.trained_step,
                "frames": s.trained_step * self.frames_per_step, "agent_config": dataclasses.asdict(self.cfg),
                "env_options": self.env_options, "run_config": self._run_config(), **metrics}  # fmt: skip
        folder = self.run_dir / "checkpoints"
        if self.spec.export is not None:  # e.g. SB3's zip, signed so that only this user's runs load it
            folder.mkdir(parents=True, exist_ok=True)
            meta["export"] = write_export(
                folder / f"{which}.sb3.zip", lambda buf: self.spec.export(s.agent, buf)
            )
        # Off-policy loops are between updates at every yield: their state is taken now.
        loop = s.loop_state if self.spec.on_policy else capture(s.agent, s.env, s.replay)
        try:
            save_checkpoint(folder / which, state, meta, loop)
        except OSError as err:  # the previous file stays whole: only its temp file was being written
            (folder / f"{which}.safetensors.tmp").unlink(missing_ok=True)
            s.logger.close()
            _close_quietly(s.env)
            kept = f"the previous one (step {s.saved_step:,})" if which == "latest" else "latest"
            raise RunFilesError(f"could not write the {which} checkpoint in {folder}: {err.strerror or err}; "
                                f"{kept} is kept. Free space or fix the folder's permissions, then continue "
                                "with --resume") from None  # fmt: skip
        if which == "latest":
            s.saved_step = s.trained_step
        if which == "latest" and s.replay is not None:
            save_arrays(self.run_dir / "checkpoints" / "replay.npz", s.replay.state_dict())
        if which == "latest" and self.observer is not None:
            self.observer.saved(self.run_dir)

    def evaluate(self, agent: agents.Agent) -> dict[str, float]:
        games = play_games(agent, self.game.env_id, self.run.eval_episodes, seed=self.run.seed,
                           **self.env_options)  # fmt: skip
        stats = summarise([g["score"] for g in games], self.game.env_id, self.run.seed)
        return {f"eval/{k}_return": stats[k] for k in ("mean", "median", "std")} | {
            "eval/episodes": len(games)
        }

    def _evaluate_and_save(self, s: Session) -> dict[str, Any]:
        with untouched_streams(agent=s.agent, replay=s.replay):  # training goes on as if it had not evaluated
            result = self.evaluate(s.agent)
        s.logger.log(
            {"global_step": s.step, "frames": s.step * self.frames_per_step, "time": time.time(), **result}
        )
        best = result["eval/mean_return"] > self.best_eval
        self.best_eval = max(self.best_eval, result["eval/mean_return"])
        # latest first: a run that has any checkpoint has a latest one to resume from
        self.save(s, "latest", {"eval": result, "best_eval": self.best_eval})
        if best:
            self.save(s, "best", {"eval": result, "best_eval": self.best_eval})
        self._plot_curve()
        return {**result, "_step": s.step}

    def _plot_curve(self) -> Path:
        rows = read_jsonl(self.run_dir / "metrics.jsonl")
        return plot_learning_curve(
            rows, self.run_dir / "curve.png", title=f"{self.spec.name} on {self.game.env_id}"
        )

    def _new_videos(self, logger: RunLogger, seen: set[Path], step: int) -> None:
        for path in sorted(set(self.run_dir.glob("videos/*.mp4")) - seen):
            seen.add(path)
            logger.log_video(path, step, "media/train_video")


def holds_budget(checkpoint: Path, frames: int) -> bool:
    """Whether a run's checkpoint has trained its budget of `frames`: the loop stops at the last whole agent
    step, frames // frames-per-step, so a budget that is not a multiple of it ends a few frames short."""
    meta = read_meta(checkpoint)
    frames_per_step = meta["frames"] // meta["step"] if meta["step"] else 1
    return meta["step"] > 0 and meta["step"] >= frames // frames_per_step


def train_to_budget(
    spec: agents.AgentSpec, run: RunConfig, cfg: Any, observer: Observer | None = None
) -> bool:
    """Bring the run in `run.run_dir` to `cfg.frames`: a new run there, or the one there continued from its
    latest checkpoint. False when that checkpoint already holds the budget (nothing to train)."""
    if run.run_dir is None:
        raise ValueError("train_to_budget needs a run directory")
    latest = Path(run.run_dir) / "checkpoints" / "latest.safetensors"
    if latest.exists() and holds_budget(latest, cfg.frames):
        return False
    resume = run.run_dir if latest.exists() else None
    if resume is not None:
        check_unchanged(spec, latest, cfg)
    Trainer(spec, dataclasses.replace(run, resume=resume), cfg, observer).main()
    return True


def changed_fields(spec: agents.AgentSpec, saved: Any, cfg: Any) -> list[str]:
    """Config fields where `cfg` differs from a run's `saved` config and a resume may not change them."""
    allowed = {*spec.resumable, *RESUMABLE}
    return [f.name for f in dataclasses.fields(cfg)
            if f.name not in allowed and getattr(cfg, f.name) != getattr(saved, f.name)]  # fmt: skip


def check_unchanged(spec: agents.AgentSpec, checkpoint: Path, cfg: Any) -> None:
    """Refuse to continue the run of `checkpoint` with other settings than it was trained with (a preset
    edited since it started, say), before anything is built: the run would mix two configurations."""
    saved = checkpoint_agent(read_meta(checkpoint, RUN_FIELDS), checkpoint)[1]
    changed = changed_fields(spec, saved, cfg)
    if changed:
        was = ", ".join(f"{name}={getattr(saved, name)!r}" for name in changed)
        now = ", ".join(f"{name}={getattr(cfg, name)!r}" for name in changed)
        raise ValueError(
            f"{checkpoint.parent.parent} was trained with {was}, and this call asks for {now}; a resume "
            f"may change only {', '.join(sorted({*spec.resumable, *RESUMABLE}))}: put the settings back, "
            "or train a new run in another directory"
        )


MIN_FREE_BYTES = 200 * 2**20  # checkpoints, videos and metrics of a run: refuse less before training


def saved_resumes(run_dir: Path) -> list[dict[str, Any]]:
    """The resumes config.json records so far ([] for a config without them or none readable)."""
    try:
        resumes = json.loads((run_dir / "config.json").read_text()).get("resumes", [])
    except (OSError, ValueError, AttributeError):
        return []
    return resumes if isinstance(resumes, list) else []


def _check_writable(run_dir: Path) -> None:
    """A run directory that cannot be written, or a nearly full disk, is refused before any training."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_bytes(b"0" * 4096)
        probe.unlink()
    except OSError as err:
        raise ValueError(f"cannot write the run directory {run_dir}: {err.strerror or err}; pick another "
                         "--run-dir or fix its permissions") from None  # fmt: skip
    free = shutil.disk_usage(run_dir).free
    if free < MIN_FREE_BYTES:
        raise ValueError(f"only {free / 2**20:.0f} MB free for {run_dir}; a run needs at least "
                         f"{MIN_FREE_BYTES // 2**20} MB for its checkpoints, videos and metrics: free space "
                         "or pick another --run-dir")  # fmt: skip


class Diverged(Exception):  # noqa: N818 (a stop, not a bug)
    """A loss or parameter became non-finite; nothing was saved after the last good checkpoint."""


def _non_finite(state: Any, prefix: str = "") -> str | None:
    """The first floating tensor in a (nested) state dict holding NaN or inf, by name; None if none."""
    if isinstance(state, torch.Tensor):
        return prefix if state.is_floating_point() and not torch.isfinite(state).all() else None
    if isinstance(state, dict):
        items = list(state.items())
    elif isinstance(state, list | tuple):
        items = list(enumerate(state))
    else:
        return None
    for key, value in items:
        found = _non_finite(value, f"{prefix}/{key}" if prefix else str(key))
        if found:
            return found
    return None


def _close_quietly(env: Any) -> None:
    """Close the envs on the way out of an interrupted run: the checkpoint is already written, so a worker
    that the terminal's signal also reached must not turn the exit into a traceback."""
    try:
        env.close()
    except (Exception, KeyboardInterrupt) as err:  # noqa: BLE001
        print(f"note: closing the envs after the stop: {type(err).__name__}: {err}", file=sys.stderr)


class _deferred_stop:  # noqa: N801 (used as a context manager)
    """Ctrl-C (SIGINT) and kills (SIGTERM) inside the block only record the signal: the loop stops at its
    next yield, between updates, so the checkpoint holds the last completed update and never half of one.
    More signals while it stops are noted, not obeyed. Both handlers are restored after the block."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if self.signum is None:
            print("\nstopping after the current step; saving a checkpoint ...", file=sys.stderr)
        self.signum = self.signum or signum

    def __enter__(self) -> _deferred_stop:
        # Only a main thread can take signals: a run in another thread (a Ray Tune trial) is stopped by
        # whoever runs it, and its checkpoints on schedule bound what a stop loses.
        self._main = threading.current_thread() is threading.main_thread()
        if self._main:
            self._previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._main:
            signal.signal(signal.SIGTERM, self._previous[0])
            signal.signal(signal.SIGINT, self._previous[1])
