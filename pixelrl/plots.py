"""Plots written into run directories (matplotlib, no display needed)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from nets.fit import History  # noqa: E402


def plot_supervised(history: History, path: str | Path, title: str = "") -> Path:
    """Loss (train and validation) and validation accuracy per epoch, best epoch marked."""
    path = Path(path)
    epochs = range(1, history.epochs + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, history.train_loss, label="train")
    if history.val_loss:
        ax_loss.plot(epochs, history.val_loss, label="validation")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", yscale="log", title="loss")
    for name, values in history.val_metrics.items():
        ax_acc.plot(epochs, values, label=f"validation {name}")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="validation accuracy")
    for ax in (ax_loss, ax_acc):
        ax.axvline(history.best_epoch + 1, color="grey", ls="--", lw=1, label="best (restored)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def moving_average(values: Sequence[float], window: int) -> list[float]:
    """Trailing mean over `window` values (over fewer at the start)."""
    out = []
    for i in range(len(values)):
        recent = values[max(0, i - window + 1) : i + 1]
        out.append(sum(recent) / len(recent))
    return out


def plot_learning_curve(
    rows: list[dict], path: str | Path, title: str = "", baseline: tuple[str, float] | None = None
) -> Path:
    """Raw game score against frames: each training game, their moving average, and evaluations; a
    baseline (name, score) is drawn as a horizontal line."""
    path = Path(path)
    games = [(r["frames"], r["episode_return"]) for r in rows if r.get("episode_return") is not None]
    evals = [
        (r["frames"], r["eval/mean_return"], r.get("eval/std_return", 0.0))
        for r in rows
        if r.get("eval/mean_return") is not None
    ]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    if games:
        frames, scores = zip(*games, strict=True)
        ax.scatter(frames, scores, s=6, alpha=0.3, label="training game (raw score)")
        window = max(1, min(20, len(scores) // 5))
        ax.plot(frames, moving_average(scores, window), lw=2, label=f"moving average ({window} games)")
    if evals:
        frames, means, stds = zip(*evals, strict=True)
        ax.errorbar(frames, means, yerr=stds, fmt="o-", capsize=3, label="evaluation (mean ± std)")
    if baseline is not None:
        ax.axhline(baseline[1], color="gray", ls="--", label=f"{baseline[0]} ({baseline[1]:.1f})")
    ax.set(xlabel="frames", ylabel="game score", title=title)
    return save_figure(fig, ax, path)


def save_figure(fig: plt.Figure, ax: plt.Axes, path: Path, legend: str = "best") -> Path:
    """The house style's last steps: a light grid, the legend, a tight layout, 100 dpi, the figure closed."""
    ax.grid(alpha=0.3)
    ax.legend(loc=legend)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_runs(runs: list[dict], path: str | Path, title: str = "", window: int | None = 20) -> Path:
    """Several runs side by side: each run's training-game scores as a `window`-game moving average
    against frames (window None: a fifth of each run's games, at most 20). A run is
    {"label": str | None, "games": [(frames, score), ...], "color": optional}."""
    path = Path(path)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for run in runs:
        if run["games"]:
            frames, scores = zip(*run["games"], strict=True)
            w = window or max(1, min(20, len(scores) // 5))
            ax.plot(
                frames, moving_average(scores, w), color=run.get("color"), alpha=0.85, label=run.get("label")
            )
    smoothing = f"{window}-game" if window else "up to 20-game"
    ax.set(xlabel="frames", ylabel=f"training game score ({smoothing} moving average)", title=title)
    return save_figure(fig, ax, path)


def plot_env_sps(results: list[dict], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for backend in dict.fromkeys(r["backend"] for r in results):
        rows = [r for r in results if r["backend"] == backend]
        ax.plot([r["num_envs"] for r in rows], [r["sps"] for r in rows], marker="o", label=backend)
    ax.set_xscale("log", base=2)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("num_envs")
    ax.set_ylabel("agent steps / s")
    ax.set_title(f"{results[0]['game']}: vector-env throughput, {os.cpu_count()} CPU cores")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_distributed(rows: list[dict], path: Path, title: str) -> None:
    """Agent steps/s per contender: bars at the median, whiskers from the slowest to the fastest repeat."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    medians = [r["sps"] for r in rows]
    errors = [[m - min(r["sps_all"]) for m, r in zip(medians, rows, strict=True)],
              [max(r["sps_all"]) - m for m, r in zip(medians, rows, strict=True)]]  # fmt: skip
    colours = ["tab:gray" if r["actors"] is None else "tab:blue" for r in rows]
    ax.bar([r["who"] for r in rows], medians, yerr=errors, color=colours, capsize=4)
    ax.set_ylabel("agent steps / s")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_throughput(report: dict, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    for ax, algo in zip(axes, ("ppo", "dqn"), strict=True):
        rows = [r for r in report["rows"] if r["algo"] == algo]
        names = [r["who"].replace("pixelrl ", "pixelrl\n") for r in rows]  # two-line labels fit
        medians = [r["sps_median"] for r in rows]
        errors = [[m - r["sps_min"] for m, r in zip(medians, rows, strict=True)],
                  [r["sps_max"] - m for m, r in zip(medians, rows, strict=True)]]  # fmt: skip
        palette = iter(["tab:blue", "tab:cyan", "tab:green"])
        colors = ["tab:gray" if r["who"] == "sb3" else next(palette) for r in rows]
        ax.bar(names, medians, yerr=errors, color=colors)
        ax.tick_params(axis="x", labelsize=8)
        for c in report["ceilings"]:
            if c["algo"] == algo:
                style = "--" if c["precision"] == "fp32" else "-"  # dashed: the fp32 variant's ceiling
                ax.axhline(
                    c["ceiling_sps"], color="tab:red", ls=style, lw=1, label=f"ceiling {c['precision']}"
                )
        ax.set_title(f"{algo.upper()} on Pong")
        ax.set_ylabel("agent steps / s")
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_precision(results: list[dict], path: Path, title: str) -> None:
    colours = {"bf16": "tab:blue", "fp32": "tab:orange"}
    runs = [{"label": r["precision"] if r["seed"] == 0 else None, "games": r["games"],
             "color": colours[r["precision"]]} for r in results]  # fmt: skip
    plot_runs(runs, path, title, window=None)


def plot_memory(results: list[dict], path: Path, title: str) -> None:
    """Training games of each agent's runs, one colour per agent (recurrent solid, feed-forward dashed)."""
    names = list(dict.fromkeys(r["agent"] for r in results))
    colours = dict(zip(names, plt.get_cmap("tab10").colors, strict=False))
    runs = [{"label": r["agent"] if r["seed"] == 0 else None, "games": r["games"],
             "color": colours[r["agent"]]} for r in results]  # fmt: skip
    plot_runs(runs, path, title, window=20)


def plot_rss(samples: list[dict], buffer_size: int, path: Path, title: str) -> None:
    """Resident memory over time, with the moment the replay became full marked."""
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot([s["seconds"] / 60 for s in samples], [s["rss_mb"] for s in samples], lw=1.5)
    full = [s["seconds"] / 60 for s in samples if s["global_step"] >= buffer_size]
    if full:
        ax.axvline(full[0], color="grey", ls="--", lw=1, label=f"replay full ({buffer_size:,})")
    ax.set(xlabel="minutes", ylabel="resident memory (MB)", title=title)
    save_figure(fig, ax, path, legend="lower right")
