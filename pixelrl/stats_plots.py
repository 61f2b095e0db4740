"""Plots of the statistics in pixelrl/stats.py (matplotlib, no display needed): performance profiles with
their bootstrap bands, and per-game score bars with 95% intervals against the baselines."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from pixelrl.plots import save_figure  # noqa: E402

Profile = tuple[Sequence[float], Sequence[float], Sequence[float], Sequence[float]]
"""(taus, curve, low, high), as stats.performance_profile_ci returns them with their taus in front."""


def plot_performance_profiles(profiles: dict[str, Profile], path: str | Path, title: str = "") -> Path:
    """One line per agent: the fraction of runs scoring above each human-normalised score tau, with its
    confidence band shaded. A curve that lies above another everywhere dominates it (Agarwal et al. 2021)."""
    path = Path(path)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    spans = []
    for name, (taus, curve, low, high) in profiles.items():
        (line,) = ax.plot(taus, curve, lw=2, label=name)
        ax.fill_between(taus, low, high, color=line.get_color(), alpha=0.2, lw=0)
        spans += [min(taus), max(taus)]
    if spans and min(spans) <= 1.0 <= max(spans):
        ax.axvline(1.0, color="grey", ls="--", lw=1, label="human level")
    ax.set(xlabel="human-normalised score τ", ylabel="fraction of runs with score > τ", title=title)
    ax.set_ylim(0.0, 1.02)
    return save_figure(fig, ax, path)


def plot_score_bars(rows: list[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Mean raw game score per agent or baseline, one subplot per game. A row is {"game": str,
    "label": str, "mean": float, "ci95": [low, high] (optional), "source": "played" | "published"
    (optional)}, the shape of evaluation.summarise and baseline_rows. Played rows get their 95% interval
    as an error bar; published numbers have none to show, so their bars are hatched instead."""
    path = Path(path)
    games = list(dict.fromkeys(r["game"] for r in rows))
    labels = list(dict.fromkeys(r["label"] for r in rows))
    colours = dict(zip(labels, plt.get_cmap("tab10").colors * (len(labels) // 10 + 1), strict=False))
    ncols = min(3, len(games)) or 1
    nrows = max(1, math.ceil(len(games) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.5 * ncols, 3.8 * nrows), squeeze=False)
    for ax, game in zip(axes.flat, games, strict=False):
        mine = [r for r in rows if r["game"] == game]
        x = np.arange(len(mine))
        published = [r.get("source") == "published" for r in mine]
        bars = ax.bar(x, [r["mean"] for r in mine], color=[colours[r["label"]] for r in mine],
                      edgecolor="black", lw=0.5)  # fmt: skip
        for bar, is_published in zip(bars, published, strict=True):
            bar.set_hatch("//" if is_published else "")
        for i, r in enumerate(mine):
            if r.get("ci95") is not None:
                low, high = r["ci95"]
                ax.errorbar(i, r["mean"], yerr=[[r["mean"] - low], [high - r["mean"]]], fmt="none",
                            ecolor="black", capsize=4)  # fmt: skip
        ax.set_xticks(x, [r["label"] for r in mine], rotation=30, ha="right", fontsize=8)
        ax.axhline(0.0, color="black", lw=0.5)
        ax.set(title=game, ylabel="mean game score")
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(games) :]:
        ax.set_visible(False)
    handles = [Patch(facecolor="white", edgecolor="black", label="bar: mean, whisker: 95% CI (played)")]
    if any(r.get("source") == "published" for r in rows):
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="//", label="published (no CI)"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
