"""Summarise a run directory for the docs: the figures a reader asks first, read from metrics.jsonl.

`summarise_run` reads frames, agent steps, wall time, training speed, the first and last 20 training games
(raw score) and every evaluation; `markdown` makes the table. Wall time runs from the first to the last
logged line (a resumed run's pause counts too).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import envs
from pixelrl.logger import read_jsonl
from pixelrl.plots import moving_average, plot_learning_curve, plot_runs


def summarise_run(run_dir: Path, window: int = 20) -> dict[str, Any]:
    """Figures of one run from its config.json and metrics.jsonl."""
    rows = read_jsonl(run_dir / "metrics.jsonl")
    if not rows:
        raise ValueError(f"{run_dir} has no metrics.jsonl lines; is it a run directory?")
    config = _config(run_dir)
    games = [r["episode_return"] for r in rows if "episode_return" in r]
    sps = [r["sps"] for r in rows if "sps" in r]
    times = [r["time"] for r in rows if "time" in r]
    last = max(rows, key=lambda r: r["global_step"])
    return {
        "agent": config["agent"],
        "game": config["game"],
        "frames": last["frames"],
        "agent_steps": last["global_step"],
        "wall_minutes": round((max(times) - min(times)) / 60, 1) if times else None,
        "median_sps": round(statistics.median(sps), 1) if sps else None,
        "games": len(games),
        f"first_{window}_games_mean": round(statistics.mean(games[:window]), 2) if games else None,
        f"last_{window}_games_mean": round(statistics.mean(games[-window:]), 2) if games else None,
        "best_moving_mean": round(max(moving_average(games, window)[window - 1 :]), 2)
        if len(games) >= window
        else None,
        "evaluations": [
            {"frames": r["frames"], "mean": r["eval/mean_return"]} for r in rows if "eval/mean_return" in r
        ],
        "agent_config": config.get("agent_config", {}),
    }


def run_label(run_dir: Path) -> str:
    """The run's name and what tells runs of one agent apart: its budget (which sets the length of any
    annealing schedule) and, on Atari, the sticky-action probability."""
    config = _config(run_dir)
    details = []
    if config.get("frames_per_step", 1) > 1:  # Atari; runs made before --sticky existed used the default
        sticky = config.get("sticky")
        details.append(f"sticky {envs.AtariOptions().sticky if sticky is None else sticky}")
    frames = config.get("agent_config", {}).get("frames")
    if frames:
        details.append(f"budget {frames / 1e6:g}M frames")
    return f"{run_dir.name} ({', '.join(details)})" if details else run_dir.name


def _config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "config.json"
    if not path.exists():
        raise ValueError(f"{run_dir} has no config.json; is it a run directory?")
    return json.loads(path.read_text())


def _games(run_dir: Path) -> list[tuple[int, float]]:
    return [(r["frames"], r["episode_return"]) for r in read_jsonl(run_dir / "metrics.jsonl")
            if "episode_return" in r]  # fmt: skip


def markdown(summary: dict[str, Any], window: int = 20) -> str:
    evals = (
        ", ".join(f"{e['mean']:+.1f} @ {e['frames'] / 1e6:.1f}M" for e in summary["evaluations"]) or "none"
    )
    lines = [
        "| what | figure |",
        "|---|---|",
        f"| run | {summary['agent']} on {summary['game']} |",
        f"| frames / agent steps | {summary['frames']:,} / {summary['agent_steps']:,} |",
        f"| wall time | {summary['wall_minutes']} min |",
        f"| training speed | median {summary['median_sps']} agent steps/s |",
        f"| training games | {summary['games']} |",
        f"| first {window} training games | mean raw score {summary[f'first_{window}_games_mean']} |",
        f"| last {window} training games | mean raw score {summary[f'last_{window}_games_mean']} |",
        f"| best {window}-game moving mean | {summary['best_moving_mean']} |",
        f"| evaluations (frames) | {evals} |",
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ReportOptions:
    """Options of `scripts/report.py`."""

    run_dir: Path
    """The run directory to summarise."""
    out: Path | None = None
    """Prefix for <out>_summary.json and <out>_curve.png (e.g. docs/ppo_pong)."""
    compare: tuple[Path, ...] = ()
    """Other runs to plot beside it in <out>_runs.png."""


def report(opts: ReportOptions) -> tuple[dict[str, Any], list[Path]]:
    """The run's summary, and the files written under `opts.out` (summary JSON, curve, runs compared)."""
    if opts.compare and opts.out is None:
        raise ValueError("--compare writes <out>_runs.png; give --out too")
    summary = summarise_run(opts.run_dir)
    written: list[Path] = []
    if opts.out is not None:
        opts.out.parent.mkdir(parents=True, exist_ok=True)
        path = Path(f"{opts.out}_summary.json")
        path.write_text(json.dumps(summary, indent=1) + "\n")
        title = f"{summary['agent']} on {summary['game']}"
        rows = read_jsonl(opts.run_dir / "metrics.jsonl")
        written += [path, plot_learning_curve(rows, f"{opts.out}_curve.png", title=title)]
    if opts.compare:
        runs = [{"label": run_label(d), "games": _games(d)} for d in [opts.run_dir, *opts.compare]]
        written.append(
            plot_runs(runs, f"{opts.out}_runs.png", title=f"{summary['agent']} on {summary['game']}")
        )
    return summary, written
