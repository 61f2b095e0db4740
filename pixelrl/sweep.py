"""Sweeps on Ray Tune: a grid of agents x games x seeds, each trial one ordinary run of our own Trainer
(pixelrl/training.py, not RLlib) in its own run directory, which train.py --resume, watch.py and
evaluate.py use as any other.

- Trials report every statistics and evaluation row to Tune, with the mean of the last 20 games, and hand
  Tune each latest checkpoint (the checkpoint files, config.json and metrics.jsonl). A failed trial is
  restarted by Tune (twice at most) and, like a trial of a continued sweep, goes on from its run
  directory, or, where that is missing or older (another node), from the checkpoint Tune kept.
- The sweep's state lives in <out>/tune. Run the same command again after a stop (Ctrl-C, a lost node, a
  session's end): finished trials are kept as they are, the others continue from their last checkpoint.
- At the end the runs are evaluated by the evaluate command's code (pixelrl/compare.py), which writes one
  table and plot with the aggregates over seeds and games (IQM and bootstrap intervals) to <out>/report.

Ray is an optional extra (`pip install .[ray]`): this module imports it only when a sweep starts (as
agents/actors.py does when an actor agent trains), and nothing else imports it.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
import shutil
import tempfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

import agents
import envs
from agents.common import check_config
from pixelrl.checkpoint import read_meta
from pixelrl.compare import EvaluateOptions, evaluate
from pixelrl.training import RunConfig, holds_budget, train_to_budget

EXPERIMENT = "grid"  # the Tune experiment's folder under <out>/tune
# What a trial hands Tune at each checkpoint: enough to continue the run anywhere.
RESUME_FILES = ("config.json", "metrics.jsonl", "checkpoints/latest.safetensors", "checkpoints/replay.npz",
                "wandb_id.txt")  # fmt: skip
FAILURE_RETRIES = 2  # Tune restarts a failed trial (a lost node, say) from its last checkpoint this often


@dataclass(frozen=True)
class SweepOptions:
    """Options of `scripts/sweep.py`."""

    agents: str = "ppo,dqn"
    """Comma-separated agents (`train.py --help` lists them)."""
    games: str = "Pong,Breakout"
    """Comma-separated games, as train.py's --env takes them."""
    seeds: int = 3
    """Seeds 0 .. N-1 of every agent and game."""
    frames: int | None = None
    """Training budget of every trial (default: each agent's preset for the game)."""
    preset: str | None = None
    """The agents' preset (default: each game family's)."""
    out: Path = Path("runs/sweep")
    """Folder of the sweep: runs/<agent>-<game>-s<seed>, tune/ (Tune's state) and report/."""
    address: str | None = None
    """Ray cluster to run on (default: RAY_ADDRESS when set, else a local Ray on this machine)."""
    num_cpus: int | None = None
    """A local Ray's CPUs (default: all of this machine's)."""
    cpus_per_trial: float = 1.0
    """CPUs Tune reserves for each trial; its torch threads follow (at least 1)."""
    gpus_per_trial: float = 0.0
    """GPUs Tune reserves for each trial: fractions share one GPU between trials."""
    device: str = "auto"
    """Each trial's device: cpu, cuda or auto (cuda where Tune gave the trial a GPU, else cpu)."""
    wandb: Literal["auto", "online", "offline", "off"] = "off"
    """Each trial's Weights & Biases mode (auto, online, offline, off)."""
    eval_episodes: int = 10
    """Games per evaluation during training (each run's train.py default)."""
    episodes: int = 10
    """Games per run in the final report."""
    checkpoint_minutes: float = 5.0
    """Minutes between checkpoints of each trial: the most a stop loses."""
    save_replay: bool = False
    """Save replay buffers with the checkpoints (train.py --save-replay): a continued DQN-family trial then
    does not refill its replay. Large: about 0.7 GB per Atari run at the default 100k transitions."""

    def __post_init__(self) -> None:
        check_config(self, positive=("seeds", "frames", "num_cpus", "cpus_per_trial", "eval_episodes",
                                     "episodes", "checkpoint_minutes"),
                     non_negative=("gpus_per_trial",))  # fmt: skip


@dataclass(frozen=True)
class Trial:
    """One run of the grid; `param` is what Tune passes the trial (plain JSON)."""

    agent: str
    game: str
    seed: int
    preset: str
    frames: int

    @property
    def name(self) -> str:
        """The run's name: ppo-Pong-s0 (an alias that changes the game, such as CartPole-NoVel, keeps its
        own name)."""
        game = self.game if envs.alias_options(self.game) else envs.resolve(self.game).name
        return f"{self.agent}-{game}-s{self.seed}"


def grid(opts: SweepOptions) -> list[Trial]:
    """Every agent x game x seed, checked before Ray starts: names, presets and game families."""
    names = [a.strip() for a in opts.agents.split(",") if a.strip()]
    games = [g.strip() for g in opts.games.split(",") if g.strip()]
    if not names or not games:
        raise ValueError("name at least one agent (--agents) and one game (--games)")
    trials = []
    for name, game, seed in itertools.product(names, games, range(opts.seeds)):
        spec = agents.get_agent(name)
        kind = envs.resolve(game).kind
        preset = agents.choose_preset(spec, opts.preset, kind, game)
        frames = opts.frames or spec.presets[preset].frames
        trials.append(Trial(spec.name, game, seed, preset, frames))
    seen: dict[str, str] = {}
    for trial in trials:
        if seen.setdefault(trial.name, trial.game) != trial.game or trials.count(trial) > 1:
            raise ValueError(f"--games lists one game twice ({seen[trial.name]} and {trial.game} are both "
                             f"{trial.name}); list each game once")  # fmt: skip
    return trials


def sweep_config(opts: SweepOptions, trials: list[Trial]) -> dict[str, Any]:
    """What fixes the sweep's results: a rerun with other values would not continue the same sweep."""
    keep = (
        "frames",
        "preset",
        "eval_episodes",
        "device",
        "wandb",
        "cpus_per_trial",
        "gpus_per_trial",
        "checkpoint_minutes",
        "save_replay",
    )  # what Tune keeps from the first run of the sweep
    return {"trials": [dataclasses.asdict(t) for t in trials], **{k: getattr(opts, k) for k in keep}}


def check_same_sweep(out: Path, config: dict[str, Any]) -> None:
    """Record the sweep in <out>/sweep.json; a different sweep already there is refused in one line."""
    path = out / "sweep.json"
    if path.exists():
        if json.loads(path.read_text()) != config:
            raise ValueError(f"{out} holds another sweep (its sweep.json): rerun with its options to "
                             "continue it, or give another --out")  # fmt: skip
        return
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2) + "\n")


# ---------------------------------------------------------------------------------------- one trial


class TuneReporter:
    """The Trainer's observer in a trial: statistics and evaluation rows go to Tune as they are logged, and
    each latest checkpoint goes with the last of them."""

    def __init__(self, tune: Any) -> None:
        self.tune = tune
        self.recent: deque[float] = deque(maxlen=20)
        self.last: dict[str, float] = {}

    def logged(self, row: dict[str, Any]) -> None:
        if "episode_return" in row:
            self.recent.append(row["episode_return"])
            return
        numbers = {k: v for k, v in row.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        if self.recent:
            numbers["episode_return_mean"] = float(np.mean(self.recent))
        self.last = {**self.last, **numbers}
        self.tune.report(self.last)

    def saved(self, run_dir: Path) -> None:
        with tempfile.TemporaryDirectory() as folder:
            copy_resume_files(run_dir, Path(folder))
            self.tune.report(self.last, checkpoint=self.tune.Checkpoint.from_directory(folder))


def restore_run_dir(run_dir: Path, kept: Path | None) -> None:
    """Put the checkpoint Tune kept (a folder of RESUME_FILES) into `run_dir`, unless the run directory
    already holds that step or a later one."""
    if kept is None or not (kept / "checkpoints" / "latest.safetensors").exists():
        return
    latest = run_dir / "checkpoints" / "latest.safetensors"
    if latest.exists() and read_meta(latest)["step"] >= read_meta(kept / RESUME_FILES[2])["step"]:
        return
    copy_resume_files(kept, run_dir)


def copy_resume_files(source: Path, target: Path) -> None:
    """Copy those of RESUME_FILES that `source` holds into `target`, at the same relative paths."""
    for name in RESUME_FILES:
        if (source / name).exists():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, target / name)


def trial_name(tune_trial: Any) -> str:
    """Tune's name and folder for a trial: its run's name (ppo-Pong-s0)."""
    return Trial(**tune_trial.config["trial"]).name


def finished(runs: Path, trial: Trial) -> bool:
    latest = runs / trial.name / RESUME_FILES[2]
    return latest.exists() and holds_budget(latest, trial.frames)


def trial_resources(param: dict[str, Any]) -> Any:
    """What Tune reserves for a trial: its own bundle of CPUs and GPUs, and for the agents whose envs run on
    Ray actors (appo, apex) one bundle per actor, since the actors a trial starts run inside its
    placement group."""
    from ray import tune

    trial = Trial(**param["trial"])
    cfg = agents.get_agent(trial.agent).presets[trial.preset]
    own = {
        "CPU": param["cpus_per_trial"],
        **({"GPU": param["gpus_per_trial"]} if param["gpus_per_trial"] else {}),
    }
    actors = [{"CPU": cfg.cpus_per_actor}] * cfg.actors if hasattr(cfg, "actors") else []
    return tune.PlacementGroupFactory([own, *actors])


def run_trial(param: dict[str, Any]) -> None:
    """A Tune trial: train (or continue) one run of the grid in its own run directory."""
    import ray
    from ray import tune

    trial = Trial(**param["trial"])
    run_dir = Path(param["runs"]) / trial.name
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as kept:
            restore_run_dir(run_dir, Path(kept))
    torch.set_num_threads(max(1, int(param["cpus_per_trial"])))
    spec = agents.get_agent(trial.agent)
    cfg = dataclasses.replace(spec.presets[trial.preset], frames=trial.frames)
    # Ray no longer hides the GPUs from a task that reserved none: auto means a GPU only where Tune gave one.
    device = "cpu" if param["device"] == "auto" and not ray.get_gpu_ids() else param["device"]
    run = RunConfig(env=trial.game, seed=trial.seed, run_dir=run_dir, wandb=param["wandb"], device=device,
                    eval_episodes=param["eval_episodes"], checkpoint_minutes=param["checkpoint_minutes"],
                    save_replay=param["save_replay"], progress=False)  # fmt: skip
    reporter = TuneReporter(tune)
    if not train_to_budget(spec, run, cfg, observer=reporter):  # already done: say so to Tune
        reporter.logged({"frames": read_meta(run_dir / RESUME_FILES[2])["frames"]})


# ---------------------------------------------------------------------------------------- the sweep


def last_line(error: BaseException) -> str:
    """The last line of a trial's error, which Ray wraps in the remote traceback: the exception itself."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(error).splitlines()]
    return next((line for line in reversed(lines) if line), type(error).__name__)


def run_sweep(opts: SweepOptions, progress: Any = print) -> dict[str, Any]:
    """Run (or continue) the sweep, then evaluate its runs into one report; the report's result."""
    trials = grid(opts)
    out = opts.out.resolve()
    check_same_sweep(out, sweep_config(opts, trials))
    try:
        import ray
        from ray import tune
    except ImportError:
        raise ValueError("sweeps need Ray: pip install '.[ray]' (or make test-ray)") from None

    address = opts.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address)
    else:
        ray.init(num_cpus=opts.num_cpus, include_dashboard=False)
    try:
        param = {"runs": str(out / "runs"), "cpus_per_trial": opts.cpus_per_trial,
                 "gpus_per_trial": opts.gpus_per_trial, "device": opts.device, "wandb": opts.wandb,
                 "eval_episodes": opts.eval_episodes, "checkpoint_minutes": opts.checkpoint_minutes,
                 "save_replay": opts.save_replay}  # fmt: skip
        trainable = tune.with_resources(run_trial, trial_resources)
        path = out / "tune" / EXPERIMENT
        if tune.Tuner.can_restore(path):
            progress(f"continuing the sweep in {path}: finished trials are kept")
            tuner = tune.Tuner.restore(str(path), trainable=trainable, resume_errored=True)
        else:
            space = {**param, "trial": tune.grid_search([dataclasses.asdict(t) for t in trials])}
            tuner = tune.Tuner(
                trainable,
                param_space=space,
                tune_config=tune.TuneConfig(trial_name_creator=trial_name, trial_dirname_creator=trial_name),
                run_config=tune.RunConfig(
                    name=EXPERIMENT, storage_path=str(out / "tune"), verbose=1,
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                    failure_config=tune.FailureConfig(max_failures=FAILURE_RETRIES),
                ),
            )  # fmt: skip
        results = tuner.fit()
        failed = [r for r in results if r.error is not None]
        if failed:
            raise ValueError(f"{len(failed)} of {len(trials)} trials failed (after {FAILURE_RETRIES} "
                             f"restarts), the first with {last_line(failed[0].error)} (the whole error: "
                             f"{failed[0].path}/error.txt); fix it and run the same command again to "
                             "continue the sweep")  # fmt: skip
    finally:
        ray.shutdown()
    unfinished = [t.name for t in trials if not finished(out / "runs", t)]
    if unfinished:  # stopped (Ctrl-C): Tune saved its state
        raise ValueError(f"the sweep stopped before {len(unfinished)} of {len(trials)} runs reached their "
                         f"budget ({', '.join(unfinished)}); run the same command again to continue "
                         "it")  # fmt: skip
    run_dirs = tuple(out / "runs" / t.name for t in trials)
    report = evaluate(EvaluateOptions(targets=run_dirs, episodes=opts.episodes, checkpoint="latest",
                                      device=opts.device, out=out / "report"))  # fmt: skip
    progress(f"wrote {out / 'report'}/{{eval.md,eval.json,eval.png}}")
    return report
