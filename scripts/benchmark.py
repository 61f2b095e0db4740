"""Throughput and learning benchmarks, one subcommand each.

    python scripts/benchmark.py envs [--game Pong] [--backends sync,async,envpool] [--num-envs 1,2,4,8]
                                     [--seconds 4] [--out docs]

`envs` measures agent steps/s (random actions, the full training protocol) for each vector backend and
number of envs, prints a table and writes <out>/benchmark_envs.json and <out>/benchmark_envs.png. Its
default run takes about one minute on 2 cores. `envs.choose_backend` (backend="auto") follows its result.
New subcommands: write `cmd_<name>(args)` and register it in `build_parser`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import envs  # noqa: E402


def measure_env_sps(game: str, backend: str, num_envs: int, seconds: float, seed: int = 0) -> float:
    """Agent steps per second (summed over the envs) of uniformly random actions, after a short warm-up."""
    venv = envs.make(game, num_envs, seed=seed, backend=backend)
    try:
        venv.reset()
        rng = np.random.default_rng(seed)
        n_actions = int(venv.single_action_space.n)
        for _ in range(20):
            venv.step(rng.integers(0, n_actions, num_envs))
        steps, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            for _ in range(50):
                venv.step(rng.integers(0, n_actions, num_envs))
            steps += 50 * num_envs
        return steps / elapsed
    finally:
        venv.close()


def plot_env_sps(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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


def cmd_envs(args: argparse.Namespace) -> None:
    backends = [b for b in args.backends.split(",") if b != "envpool" or envs.envpool_available()]
    results = []
    print(f"{'backend':>8} {'num_envs':>8} {'steps/s':>9}")
    for backend in backends:
        for n in (int(x) for x in args.num_envs.split(",")):
            sps = measure_env_sps(args.game, backend, n, args.seconds)
            results.append({"game": args.game, "backend": backend, "num_envs": n, "sps": round(sps, 1)})
            print(f"{backend:>8} {n:>8} {sps:>9.0f}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg_1min_after": os.getloadavg()[0],  # other processes on the machine skew the numbers
    }
    best = max(results, key=lambda r: r["sps"])
    report = {
        "command": "python scripts/benchmark.py " + " ".join(sys.argv[1:]),
        **meta,
        "seconds_per_point": args.seconds,
        "fastest": best,
        "results": results,
    }
    (out / "benchmark_envs.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_env_sps(results, out / "benchmark_envs.png")
    print(f"fastest: {best['backend']} with {best['num_envs']} envs; wrote {out}/benchmark_envs.{{json,png}}")


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("envs", help="agent steps/s of each vector-env backend")
    p.add_argument("--game", default="Pong")
    p.add_argument("--backends", default="sync,async,envpool")
    p.add_argument("--num-envs", default="1,2,4,8")
    p.add_argument("--seconds", type=float, default=4.0, help="timed seconds per (backend, num_envs)")
    p.add_argument("--out", default="docs")
    p.set_defaults(func=cmd_envs)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
