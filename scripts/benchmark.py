"""Throughput and learning benchmarks, one subcommand each.

    python scripts/benchmark.py envs [--game Pong] [--backends sync,async,envpool] [--num-envs 1,2,4,8]
                                     [--seconds 4] [--out docs]

    python scripts/benchmark.py throughput [--ppo-steps 4096] [--dqn-steps 2000] [--repeats 3]
                                           [--device auto] [--out docs]
    python scripts/benchmark.py levers [--device auto] [--out docs]
    python scripts/benchmark.py precision AGENT [--env CartPole-v1] [--frames 100000] [--seeds 3]

`envs` measures agent steps/s (random actions, the full training protocol) for each vector backend and
number of envs, prints a table and writes <out>/benchmark_envs.json and <out>/benchmark_envs.png. Its
default run takes about one minute on 2 cores. `envs.choose_backend` (backend="auto") follows its result.
`levers` times the PPO network alone (training step and acting) under float32 / bfloat16, eager /
torch.compile and 1 / 2 threads, and writes <out>/benchmark_levers.{json,md}.
`precision AGENT` trains AGENT with bfloat16 autocast on and off on the same seeds (CartPole by default)
and writes the learning curves to <out>/precision_<agent>_<env>.{json,png}.
`throughput` times our PPO and DQN against Stable-Baselines3's with identical settings (scripts/throughput.py
says which), interleaved, next to the env-only and compute-only ceilings measured in the same run; it writes
<out>/benchmark_throughput.{json,md,png} and prints one JSON summary as its last line. About 5 minutes here.
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
    meta = _machine()
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


def cpu_model() -> str:
    """The CPU's model name, so that figures from different machines are not read as alike."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _machine() -> dict:
    return {
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch_version(),
        "loadavg_1min_after": os.getloadavg()[0],  # other processes on the machine skew the numbers
    }


def torch_version() -> str:
    import torch  # imported here so that `envs` runs without loading torch

    return torch.__version__


def throughput_markdown(report: dict) -> str:
    lines = [
        f"# Training throughput on Pong: pixelrl vs Stable-Baselines3 ({report['device']}, "
        f"{report['cpu_count']} CPU cores, torch {report['torch']}, {report['torch_threads']} threads)",
        "",
        f"CPU: {report.get('cpu_model', 'not recorded')}.",
        "",
        f"`{report['command']}`: agent steps/s over {report['rows'][0]['repeats']} interleaved repeats "
        "after a warm-up; identical hyperparameters, network and env protocol (scripts/throughput.py).",
        "",
        "| algo | who | precision | steps/s median | min | max | vs SB3 | ceiling | of ceiling "
        "| bytes/transition |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        memory = f"{r['bytes_per_transition']:,.0f}" if "bytes_per_transition" in r else ""
        ceiling = f"{r['ceiling_sps']:.0f} | {r['of_ceiling']:.0%}" if r["ceiling_sps"] else "– | –"
        lines.append(
            f"| {r['algo'].upper()} | {r['who']} | {r['precision']} | {r['sps_median']:.0f} "
            f"| {r['sps_min']:.0f} | {r['sps_max']:.0f} | {r['vs_sb3']:.2f}x | {ceiling} | {memory} |"
        )
    lines += [
        "",
        "Ceilings, timed in every repeat beside the contenders: medians (min–max over the repeats).",
        "",
        "| ceiling | precision | env only | compute only | serial ceiling |",
        "|---|---|---:|---:|---:|",
    ]

    def spread(c: dict, part: str) -> str:
        values = c.get(f"{part}_sps_all") or [c[f"{part}_sps"]]
        return f"{c[f'{part}_sps']:.0f} ({min(values):.0f}–{max(values):.0f})"

    for c in report["ceilings"]:
        lines.append(
            f"| {c['algo'].upper()} | {c['precision']} | {spread(c, 'env')} | {spread(c, 'compute')} "
            f"| {c['ceiling_sps']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def plot_throughput(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
                style = "-" if c["precision"] == "bf16" else "--"
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


def cmd_throughput(args: argparse.Namespace) -> None:
    from scripts import throughput

    result = throughput.run(
        ppo_steps=args.ppo_steps, dqn_steps=args.dqn_steps, repeats=args.repeats, device=args.device,
        env_seconds=args.env_seconds, dqn_learning_starts=args.dqn_learning_starts,
    )  # fmt: skip
    report = {"command": "python scripts/benchmark.py " + " ".join(sys.argv[1:]), **_machine(), **result}
    text = throughput_markdown(report)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmark_throughput.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "benchmark_throughput.md").write_text(text)
    plot_throughput(report, out / "benchmark_throughput.png")
    print(f"wrote {out}/benchmark_throughput.{{json,md,png}}")
    rows = {(r["algo"], r["who"]): r for r in report["rows"]}
    summary = {
        "ppo_vs_sb3": round(rows[("ppo", "pixelrl")]["vs_sb3"], 3),
        "dqn_vs_sb3": round(rows[("dqn", "pixelrl")]["vs_sb3"], 3),
        "ppo_fp32_vs_sb3": round(rows[("ppo", "pixelrl fp32")]["vs_sb3"], 3),
        "dqn_fp32_vs_sb3": round(rows[("dqn", "pixelrl fp32")]["vs_sb3"], 3),
        "ppo_of_ceiling": round(rows[("ppo", "pixelrl")]["of_ceiling"], 3),
        "dqn_of_ceiling": round(rows[("dqn", "pixelrl")]["of_ceiling"], 3),
        "ppo_sps": round(rows[("ppo", "pixelrl")]["sps_median"], 1),
        "ppo_1_env_group_sps": round(rows[("ppo", "pixelrl 1 env group")]["sps_median"], 1),
        "dqn_sps": round(rows[("dqn", "pixelrl")]["sps_median"], 1),
        "bytes_per_transition": round(rows[("dqn", "pixelrl")]["bytes_per_transition"], 1),
        "sb3_bytes_per_transition": round(rows[("dqn", "sb3")]["bytes_per_transition"], 1),
    }
    print(json.dumps(summary))


def cmd_levers(args: argparse.Namespace) -> None:
    from scripts import throughput

    rows = throughput.levers(args.device)
    lines = [
        "# Levers on the compute ceiling: the PPO network on 84x84x4 pixels",
        "",
        f"`python scripts/benchmark.py {' '.join(sys.argv[1:])}` ({os.cpu_count()} CPU cores, torch "
        f"{torch_version()}): samples/s of one training step (forward, backward, Adam; minibatch 256) and of "
        "acting (forward, batch 8), median of 10. Acting reads weights cast to bf16 once "
        "(nets.InferenceCopy); the last column re-casts them in every call, as plain autocast does.",
        "",
        "| threads | torch.compile | precision | train samples/s | act samples/s | act, re-cast per call |",
        "|---:|---|---|---:|---:|---:|",
    ]
    for r in rows:
        recast = f"{r['act_samples_per_s_recast']:.0f}" if "act_samples_per_s_recast" in r else "–"
        cells = (
            f"{r['train_samples_per_s']:.0f} | {r['act_samples_per_s']:.0f} | {recast}"
            if "error" not in r
            else r["error"]
        )
        lines.append(f"| {r['threads']} | {'yes' if r['compile'] else 'no'} | {r['precision']} | {cells} |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmark_levers.json").write_text(json.dumps({**_machine(), "rows": rows}, indent=2) + "\n")
    (out / "benchmark_levers.md").write_text(text)


def cmd_precision(args: argparse.Namespace) -> None:
    """Learning curves of one agent with bfloat16 autocast on and off, same seeds, same budget."""
    import nets
    from scripts import train
    from scripts.logger import read_jsonl

    if not nets.bf16_supported(nets.resolve_device(args.device)):
        raise SystemExit(
            "error: bfloat16 autocast is not native on this device, so there is nothing to compare"
        )
    out = Path(args.out)
    runs_root = Path(args.runs) / f"precision-{args.agent}-{args.env.replace('/', '_')}"
    results = []
    for seed in range(args.seeds):
        for flag in ("--bf16", "--no-bf16"):
            run_dir = runs_root / f"{flag.strip('-')}-s{seed}"
            options = ["--seed", str(seed), "--frames", str(args.frames), "--eval-episodes", "10"]
            quiet = ["--wandb", "off", "--no-progress", "--video-every", "0"]
            device = ["--device", args.device]
            summary = train.main(
                [args.agent, "--env", args.env, *options, *quiet, *device, flag, "--run-dir", str(run_dir)]
            )
            rows = read_jsonl(run_dir / "metrics.jsonl")
            results.append({
                "seed": seed, "precision": "bf16" if flag == "--bf16" else "fp32",
                "final_eval_mean": summary["final_eval_mean"], "sps": summary["sps"],
                "games": [(r["frames"], r["episode_return"]) for r in rows if "episode_return" in r],
                "evals": [(r["frames"], r["eval/mean_return"]) for r in rows if "eval/mean_return" in r],
            })  # fmt: skip
    name = f"precision_{args.agent}_{args.env.replace('/', '_').lower()}"
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "command": "python scripts/benchmark.py " + " ".join(sys.argv[1:]),
        **_machine(),
        "runs": results,
    }
    (out / f"{name}.json").write_text(json.dumps(report) + "\n")
    plot_precision(results, out / f"{name}.png", f"{args.agent} on {args.env}: bf16 autocast vs float32")
    for precision in ("bf16", "fp32"):
        finals = [r["final_eval_mean"] for r in results if r["precision"] == precision]
        speeds = [r["sps"] for r in results if r["precision"] == precision]
        print(f"{precision}: final evaluation per seed {finals}, mean steps/s {np.mean(speeds):.0f}")
    print(f"wrote {out}/{name}.{{json,png}}")


def plot_precision(results: list[dict], path: Path, title: str) -> None:
    from scripts.plots import plot_runs

    colours = {"bf16": "tab:blue", "fp32": "tab:orange"}
    runs = [{"label": r["precision"] if r["seed"] == 0 else None, "games": r["games"],
             "color": colours[r["precision"]]} for r in results]  # fmt: skip
    plot_runs(runs, path, title, window=None)


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
    p = sub.add_parser("throughput", help="training steps/s of our PPO and DQN vs Stable-Baselines3")
    p.add_argument(
        "--ppo-steps", type=int, default=4096, help="timed agent steps per repeat (whole rollouts)"
    )
    p.add_argument(
        "--dqn-steps", type=int, default=2000, help="timed agent steps per repeat (training phase)"
    )
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--env-seconds", type=float, default=5.0, help="seconds to time the env-only ceiling, per repeat"
    )
    p.add_argument(
        "--dqn-learning-starts", type=int, default=None, help="override the replay warm-up (tests)"
    )
    p.add_argument("--out", default="docs")
    p.set_defaults(func=cmd_throughput)
    p = sub.add_parser("levers", help="bf16, torch.compile and thread count on the network's own speed")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="docs")
    p.set_defaults(func=cmd_levers)
    p = sub.add_parser("precision", help="learning curves with bf16 autocast on and off (same seeds)")
    p.add_argument("agent", choices=["dqn", "a2c", "ppo"])
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--frames", type=int, default=100_000)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--runs", default="runs", help="where the run directories go")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="docs")
    p.set_defaults(func=cmd_precision)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
