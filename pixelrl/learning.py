"""`scripts/benchmark.py learning`: one row of docs/benchmarks.md end to end. Train an agent with a named
preset on a game (continuing its run where an earlier call stopped), evaluate the final policy over 30 games
on the evaluation protocol against random and the published references, and write the curve, eval.md and a
JSON summary with frames and wall-clock time to the target score.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import agents
import envs
from agents.common import check_config
from envs.factory import GameSpec
from pixelrl.checkpoint import read_meta
from pixelrl.compare import EvaluateOptions, evaluate
from pixelrl.logger import read_jsonl, write_json_atomic
from pixelrl.measure import machine
from pixelrl.plots import plot_learning_curve
from pixelrl.training import RunConfig, saved_resumes, train_to_budget


@dataclass(frozen=True)
class Learning:
    """Train AGENT with PRESET on GAME and evaluate it: writes <out>/<run>/ (summary.json, eval.md, eval.json,
    eval.png, curve.png). The run lives in <runs>/<run>; calling again with the same options continues it
    from its latest checkpoint (a session that ends mid-run loses at most --checkpoint-minutes), and a
    finished run is only evaluated again."""

    game: str = "Pong"
    agent: str = "ppo"
    preset: str | None = None
    """The agent's named preset (`train.py AGENT --help` lists them); default: the game family's."""
    sticky: float | None = None
    """Atari sticky-action probability (default: the protocol's 0.25; 0 is the NoFrameskip-v4 setting)."""
    seed: int = 0
    frames: int | None = None
    """Training budget (default: the preset's)."""
    target: float | None = None
    """Score to reach: the summary gives frames and minutes at the first evaluation whose mean reached it."""
    episodes: int = 30
    """Games of the final evaluation, on the evaluation protocol with seeds disjoint from training."""
    eval_episodes: int = 5
    """Games of each evaluation during training (10 per run)."""
    checkpoint_minutes: float = 5.0
    device: str = "auto"
    runs: Path = Path("runs/learning")
    out: Path = Path("docs/learning")

    def __post_init__(self) -> None:
        check_config(self, positive=("frames", "episodes", "eval_episodes", "checkpoint_minutes"),
                     non_negative=("seed",), unit=("sticky",))  # fmt: skip


def run_name(opts: Learning, preset: str, game: GameSpec) -> str:
    protocol = "" if game.kind != "atari" else f"-sticky{_sticky(opts):g}"
    return f"{opts.agent}-{preset}-{game.name}{protocol}-s{opts.seed}"


def _sticky(opts: Learning) -> float:
    return envs.AtariOptions().sticky if opts.sticky is None else opts.sticky


def training_time(rows: list[dict[str, Any]], resumed_at: list[float]) -> float:
    """Seconds of training from the rows' wall-clock stamps: the time between two rows counts unless the
    run was resumed in between (config.json's "resumes"), when it was stopped."""
    stamps = [r["time"] for r in rows if "time" in r]
    gaps = zip(stamps[:-1], stamps[1:], strict=True)
    return float(sum(b - a for a, b in gaps if not any(a < t <= b for t in resumed_at)))


def time_to(rows: list[dict[str, Any]], target: float, resumed_at: list[float]) -> dict[str, Any] | None:
    """Frames and training minutes at the first evaluation whose mean reached `target`; None if none did."""
    for i, row in enumerate(rows):
        if row.get("eval/mean_return", -np.inf) >= target:
            return {"frames": row["frames"], "minutes": training_time(rows[: i + 1], resumed_at) / 60,
                    "eval_mean": row["eval/mean_return"]}  # fmt: skip
    return None


def bench_learning(opts: Learning, command: str, progress: Callable[[str], None] = print) -> dict:
    spec = agents.get_agent(opts.agent)
    game = envs.resolve(opts.game)
    preset = agents.choose_preset(spec, opts.preset, game.kind, opts.game)
    envs.atari_only_options(opts.game, game.kind, sticky=opts.sticky)  # before any training
    cfg = spec.presets[preset]
    if opts.frames is not None:
        cfg = dataclasses.replace(cfg, frames=opts.frames)
    name = run_name(opts, preset, game)
    run_dir, out = opts.runs / name, opts.out / name
    latest = run_dir / "checkpoints" / "latest.safetensors"
    run = RunConfig(env=opts.game, seed=opts.seed, run_dir=run_dir, wandb="off", device=opts.device,
                    sticky=opts.sticky, eval_episodes=opts.eval_episodes,
                    checkpoint_minutes=opts.checkpoint_minutes, video_every=0, progress=False,
                    save_replay=spec.make_replay is not None)  # a continued DQN keeps its replay  # fmt: skip
    if not train_to_budget(spec, run, cfg):
        progress(f"{run_dir} already holds {cfg.frames:,} frames: evaluating it")
    rows = read_jsonl(run_dir / "metrics.jsonl")
    baselines = "random,human,dqn2015" if game.kind == "atari" else "random"
    result = evaluate(EvaluateOptions(targets=(run_dir,), episodes=opts.episodes, checkpoint="latest",
                                      baselines=baselines, device=opts.device, out=out))  # fmt: skip
    resumes = saved_resumes(run_dir)
    resumed_at = [r["time"] for r in resumes]
    seconds = training_time(rows, resumed_at)
    random_row = next(iter(result["baselines"].values()))["random (played here)"]
    sps = [r["sps"] for r in rows if "sps" in r]
    summary = {
        "command": command,
        **machine(),
        "agent": spec.name,
        "preset": preset,
        "preset_config": dataclasses.asdict(cfg),
        "game": game.env_id,
        "sticky": _sticky(opts) if game.kind == "atari" else None,
        "seed": opts.seed,
        "frames": read_meta(latest)["frames"],
        "training_minutes": seconds / 60,
        "resumes": len(resumes),
        "median_sps": float(np.median(sps)) if sps else None,
        "eval": {k: result[k] for k in ("episodes", "mean", "median", "std", "ci95") if k in result}
        | {k: result[k] for k in ("human_normalised", "human_normalised_ci95") if k in result},
        "random_mean": random_row["mean"],
        "target": opts.target,
        "time_to_target": None if opts.target is None else time_to(rows, opts.target, resumed_at),
        "run_dir": str(run_dir),
    }
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "summary.json", summary)
    plot_learning_curve(rows, out / "curve.png", title=f"{spec.name} ({preset}) on {game.env_id}",
                        baseline=("random", random_row["mean"]))  # fmt: skip
    reached = summary["time_to_target"]
    progress(json.dumps({k: summary[k] for k in ("agent", "preset", "game", "frames", "training_minutes",
                                                  "eval", "random_mean", "time_to_target")}))  # fmt: skip
    if opts.target is not None:
        when = "not reached" if reached is None else f"reached at {reached['frames']:,} frames"
        progress(f"target {opts.target:+g}: {when}" + ("" if reached is None else
                 f", {reached['minutes']:.0f} min of training"))  # fmt: skip
    progress(f"wrote {out}/{{summary.json,eval.md,eval.json,eval.png,curve.png}}")
    return summary
