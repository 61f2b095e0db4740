"""The benchmarks behind `scripts/benchmark.py`: each is an options dataclass (its subcommand) and a
function that measures, writes JSON (+ markdown, + a plot) under `out`, and returns the report.

`envs.choose_backend` (backend="auto") reads the speeds that the `envs` benchmark records per machine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

import agents
import envs
import nets
from agents.common import ConfigError, check_config
from pixelrl import throughput
from pixelrl.evaluation import load_agent, play_games
from pixelrl.logger import read_jsonl
from pixelrl.measure import machine, measure_env_sps, torch_version
from pixelrl.plots import (
    plot_distributed,
    plot_env_sps,
    plot_memory,
    plot_precision,
    plot_rss,
    plot_throughput,
)
from pixelrl.training import RunConfig, Trainer


@dataclass(frozen=True)
class Envs:
    """Agent steps/s of each vector-env backend (random actions, the full training protocol); records them
    for this machine, where make(backend="auto") reads them (`envs.speeds_file()`), and writes
    <out>/benchmark_envs.{json,png}. About one minute on 2 cores."""

    game: str = "Pong"
    backends: str = "sync,async,envpool,ale"
    """Comma-separated backends (those not installed here are skipped)."""
    num_envs: str = "auto"
    """Comma-separated numbers of envs; auto: powers of two from 1 to max(8, 4 x the CPU cores)."""
    seconds: float = 4.0
    """Timed seconds per (backend, num_envs)."""
    out: Path = Path("docs")

    def __post_init__(self) -> None:
        check_config(self, positive=("seconds",))
        concrete = [b for b in envs.BACKENDS if b not in ("auto", "gymnasium")]  # what can be timed
        unknown = sorted(set(self.backends.split(",")) - set(concrete))
        if unknown:
            raise ConfigError(f"--backends: unknown {unknown}; choose from {', '.join(concrete)}.")
        counts = self.num_envs.split(",")
        if self.num_envs != "auto" and not all(x.strip().isdigit() and int(x) > 0 for x in counts):
            raise ConfigError(f"--num-envs {self.num_envs!r}: give positive integers like 1,2,4,8, or auto.")

    @property
    def env_counts(self) -> list[int]:
        if self.num_envs != "auto":
            return [int(x) for x in self.num_envs.split(",")]
        top = max(8, 4 * (os.cpu_count() or 1))
        return [2**k for k in range(top.bit_length()) if 2**k <= top]


def bench_envs(opts: Envs, command: str, progress: Callable[[str], None] = print) -> dict:
    installed = envs.backends.candidates("atari", gym_only=False, video=False)
    backends = [b for b in opts.backends.split(",") if b in installed]
    if not backends:
        there = ", ".join(installed)
        raise ConfigError(f"--backends {opts.backends}: none is installed here; use some of {there}")
    results = []
    progress(f"{'backend':>8} {'num_envs':>8} {'steps/s':>9}")
    for backend in backends:
        for n in opts.env_counts:
            sps = measure_env_sps(opts.game, backend, n, opts.seconds)
            results.append({"game": opts.game, "backend": backend, "num_envs": n, "sps": round(sps, 1)})
            progress(f"{backend:>8} {n:>8} {sps:>9.0f}")
    opts.out.mkdir(parents=True, exist_ok=True)
    best = max(results, key=lambda r: r["sps"])
    report = {"command": command, **machine(), "machine_key": envs.machine_key(),
              "seconds_per_point": opts.seconds, "fastest": best, "results": results}  # fmt: skip
    (opts.out / "benchmark_envs.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_env_sps(results, opts.out / "benchmark_envs.png")
    progress(f"fastest: {best['backend']} with {best['num_envs']} envs; wrote {opts.out}/benchmark_envs.*")
    try:
        recorded = envs.record_speeds(results, time.strftime("%Y-%m-%d %H:%M:%S"))
        progress(f"recorded for backend='auto' on this machine ({envs.machine_key()}) in {recorded}")
    except OSError as err:  # the figures above still stand; only auto goes without them
        progress(f"warning: could not record the speeds for backend='auto' ({err}); set PIXELRL_ENV_SPEEDS "
                 "to a writable file and run again")  # fmt: skip
    return report


def throughput_markdown(report: dict) -> str:
    lines = [
        f"# Training throughput on Pong: pixelrl vs Stable-Baselines3 ({report['device']}, "
        f"{report['cpu_count']} CPU cores, torch {report['torch']}, {report['torch_threads']} threads)",
        "",
        f"CPU: {report.get('cpu_model', 'not recorded')}.",
        "",
        f"`{report['command']}`: agent steps/s over {report['rows'][0]['repeats']} interleaved repeats "
        "after a warm-up; identical hyperparameters, network and env protocol (pixelrl/throughput.py).",
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


@dataclass(frozen=True)
class Throughput:
    """Training steps/s of our PPO and DQN against Stable-Baselines3's on identical settings
    (pixelrl/throughput.py says which), interleaved, beside the env-only and compute-only ceilings measured
    in the same run; writes <out>/benchmark_throughput.{json,md,png}; the last line printed is one JSON
    summary. About 5 minutes on 2 cores."""

    ppo_steps: int = 4096
    """Timed agent steps per repeat (whole rollouts)."""
    dqn_steps: int = 2000
    """Timed agent steps per repeat (training phase)."""
    repeats: int = 3
    device: str = "auto"
    env_seconds: float = 5.0
    """Seconds to time the env-only ceiling, per repeat."""
    dqn_learning_starts: int | None = None
    """Override the replay warm-up (tests)."""
    out: Path = Path("docs")

    def __post_init__(self) -> None:
        check_config(
            self,
            positive=("ppo_steps", "dqn_steps", "repeats", "env_seconds"),
            non_negative=("dqn_learning_starts",),
        )


def bench_throughput(opts: Throughput, command: str, progress: Callable[[str], None] = print) -> dict:
    result = throughput.run(
        ppo_steps=opts.ppo_steps, dqn_steps=opts.dqn_steps, repeats=opts.repeats, device=opts.device,
        env_seconds=opts.env_seconds, dqn_learning_starts=opts.dqn_learning_starts, progress=progress,
    )  # fmt: skip
    report = {"command": command, **machine(), **result}
    text = throughput_markdown(report)
    progress(text)
    opts.out.mkdir(parents=True, exist_ok=True)
    (opts.out / "benchmark_throughput.json").write_text(json.dumps(report, indent=2) + "\n")
    (opts.out / "benchmark_throughput.md").write_text(text)
    plot_throughput(report, opts.out / "benchmark_throughput.png")
    progress(f"wrote {opts.out}/benchmark_throughput.{{json,md,png}}")
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
    return summary


@dataclass(frozen=True)
class Levers:
    """The PPO network alone (training step and acting) under float32 / TF32 (GPUs that have it) / bfloat16
    (where native), eager / torch.compile and 1 / 2 threads; writes <out>/benchmark_levers.{json,md}."""

    device: str = "auto"
    out: Path = Path("docs")


def bench_levers(opts: Levers, command: str, progress: Callable[[str], None] = print) -> dict:
    rows = throughput.levers(opts.device, progress)
    lines = [
        "# Levers on the compute ceiling: the PPO network on 84x84x4 pixels",
        "",
        f"`{command}` ({os.cpu_count()} CPU cores, torch "
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
    progress(text)
    opts.out.mkdir(parents=True, exist_ok=True)
    report = {**machine(), "rows": rows}
    (opts.out / "benchmark_levers.json").write_text(json.dumps(report, indent=2) + "\n")
    (opts.out / "benchmark_levers.md").write_text(text)
    return report


@dataclass(frozen=True)
class Precision:
    """Learning curves of one agent with bf16 autocast and in fp32 (`--precision bf16` vs `fp32`), same seeds
    and budget (CartPole by default); writes <out>/precision_<agent>_<env>.{json,png}."""

    agent: Literal["dqn", "a2c", "ppo"] = "ppo"
    env: str = "CartPole-v1"
    frames: int = 100_000
    seeds: int = 3
    runs: Path = Path("runs")
    """Where the run directories go."""
    device: str = "auto"
    out: Path = Path("docs")

    def __post_init__(self) -> None:
        check_config(self, positive=("frames", "seeds"))


def bench_precision(opts: Precision, command: str, progress: Callable[[str], None] = print) -> dict:
    """Train `opts.agent` in bf16 and in fp32 on the same seeds, through the run layer's Trainer."""
    if not nets.bf16_supported(nets.resolve_device(opts.device)):
        raise ValueError("bfloat16 autocast is not native on this device, so there is nothing to compare")
    spec = agents.get_agent(opts.agent)
    kind = "atari" if envs.resolve(opts.env).kind == "atari" else "classic"
    runs_root = opts.runs / f"precision-{opts.agent}-{opts.env.replace('/', '_')}"
    results = []
    for seed in range(opts.seeds):
        for precision in ("bf16", "fp32"):
            cfg = dataclasses.replace(spec.presets[kind], frames=opts.frames, precision=precision)
            run = _train(spec, cfg, opts.env, seed, runs_root / f"{precision}-s{seed}", opts.device)
            results.append({"seed": seed, "precision": precision, **run})
    name = f"precision_{opts.agent}_{opts.env.replace('/', '_').lower()}"
    opts.out.mkdir(parents=True, exist_ok=True)
    report = {"command": command, **machine(), "runs": results}
    (opts.out / f"{name}.json").write_text(json.dumps(report) + "\n")
    plot_precision(results, opts.out / f"{name}.png", f"{opts.agent} on {opts.env}: bf16 autocast vs float32")
    for precision in ("bf16", "fp32"):
        finals = [r["final_eval_mean"] for r in results if r["precision"] == precision]
        speeds = [r["sps"] for r in results if r["precision"] == precision]
        progress(f"{precision}: final evaluation per seed {finals}, mean steps/s {np.mean(speeds):.0f}")
    progress(f"wrote {opts.out}/{name}.{{json,png}}")
    return report


def _train(spec: agents.AgentSpec, cfg: object, env: str, seed: int, run_dir: Path, device: str) -> dict:
    """One run through the run layer's Trainer (10 evaluation games, no videos, no W&B): its final
    evaluation, steps/s and curves (training games and evaluations, by frames)."""
    run = RunConfig(env=env, seed=seed, run_dir=run_dir, wandb="off", device=device, eval_episodes=10,
                    video_every=0, progress=False)  # fmt: skip
    summary = Trainer(spec, run, cfg).main()
    rows = read_jsonl(run_dir / "metrics.jsonl")
    return {
        "final_eval_mean": summary["final_eval_mean"], "sps": summary["sps"],
        "wall_seconds": summary["wall_seconds"], "frames": summary["frames"],
        "games": [(r["frames"], r["episode_return"]) for r in rows if "episode_return" in r],
        "evals": [(r["frames"], r["eval/mean_return"]) for r in rows if "eval/mean_return" in r],
    }  # fmt: skip


@dataclass(frozen=True)
class Memory:
    """Agents with memory against their feed-forward twins on a partially observed game (CartPole with
    its velocities hidden by default): recurrent PPO vs PPO and DRQN vs DQN, each pair at the recurrent
    agent's classic budget, on the same seeds; writes <out>/memory_<env>.{json,md,png}. About 15 minutes
    on 2 cores."""

    env: str = "CartPole-NoVel"
    agents: str = "ppo-lstm,ppo,drqn,dqn"
    """Comma-separated agents; a feed-forward agent gets the budget of its recurrent twin when both run."""
    seeds: int = 3
    frames: int | None = None
    """Budget of every run (default: each recurrent agent's classic preset, for it and its twin)."""
    target: float = 450.0
    """The return that counts as solved (CartPole's maximum is 500)."""
    rerun_episodes: int = 20
    """New games on which each run's best checkpoint is played again."""
    speed_steps: int = 4096
    """Agent steps per timing of the speed comparison on Pong (recurrent PPO vs PPO, and SB3-contrib's
    RecurrentPPO vs SB3's PPO where installed; pixelrl/throughput.py); 0 skips it."""
    speed_repeats: int = 3
    """Interleaved timings per contender."""
    sb3: bool = True
    """Time SB3's PPO and SB3-contrib's RecurrentPPO beside ours."""
    runs: Path = Path("runs")
    """Where the run directories go."""
    device: str = "auto"
    out: Path = Path("docs")

    def __post_init__(self) -> None:
        check_config(self, positive=("seeds", "frames", "speed_repeats", "rerun_episodes"),
                     non_negative=("speed_steps",))  # fmt: skip
        for name in self.agents.split(","):
            agents.get_agent(name)  # an unknown name: one line listing the valid ones
        if envs.resolve(self.env).kind != "classic":
            raise ConfigError(f"--env {self.env}: the memory benchmark runs classic-control games")


TWINS = {"ppo": "ppo-lstm", "dqn": "drqn"}  # feed-forward agent -> its recurrent version
RERUN_SEED_OFFSET = 10_000  # re-played games: evaluation seeds apart from those of training's evaluations


def bench_memory(opts: Memory, command: str, progress: Callable[[str], None] = print) -> dict:
    """Train each agent on `opts.seeds` seeds at its budget; report finals side by side."""
    names = opts.agents.split(",")
    budgets = {name: agents.get_agent(name).presets["classic"].frames for name in names}
    for plain, recurrent in TWINS.items():
        if plain in budgets and recurrent in budgets:
            budgets[plain] = budgets[recurrent]
    if opts.frames is not None:
        budgets = dict.fromkeys(names, opts.frames)
    results = []
    for name in names:
        spec = agents.get_agent(name)
        cfg = dataclasses.replace(spec.presets["classic"], frames=budgets[name])
        for seed in range(opts.seeds):
            run_dir = opts.runs / f"memory-{opts.env}" / f"{name}-s{seed}"
            with nets.num_threads(1):  # small MLPs gain nothing from a second thread, the env does
                run = _train(spec, cfg, opts.env, seed, run_dir, opts.device)
            # The best checkpoint, played again on games no evaluation during training saw: an unbiased
            # figure for "reached the target within the budget" (the best of 10 evaluations is not).
            agent, meta = load_agent(run_dir, "best", opts.device)
            games = play_games(agent, meta["game"], opts.rerun_episodes, seed=seed + RERUN_SEED_OFFSET,
                               **meta["env_options"])  # fmt: skip
            run["best_rerun_mean"] = float(np.mean([g["score"] for g in games]))
            results.append({"agent": name, "seed": seed, **run})
            progress(f"{name} seed {seed}: final evaluation {run['final_eval_mean']:.1f}, best checkpoint "
                     f"{run['best_rerun_mean']:.1f} on {opts.rerun_episodes} new games, after "
                     f"{run['frames']:,} steps, {run['wall_seconds']:.0f} s")  # fmt: skip
    cpu = machine()["cpu_model"]
    lines = [f"# Memory on {opts.env}", "", f"`{command}` on {cpu}, {os.cpu_count()} cores. Per seed: the "
             f"final evaluation (mean of 10 greedy games at the budget) and the best checkpoint (the one "
             f"with the highest evaluation during training) played again on {opts.rerun_episodes} new games; "
             f"how many seeds reach {opts.target:g} by each; training steps/s.", "",
             "| agent | steps | final evaluation per seed | seeds >= target | best checkpoint, new games | "
             "seeds >= target | steps/s (median) |", "|---|---:|---|---:|---|---:|---:|"]  # fmt: skip
    table = {}
    for name in names:
        mine = [r for r in results if r["agent"] == name]
        finals, bests = [r["final_eval_mean"] for r in mine], [r["best_rerun_mean"] for r in mine]
        solved, solved_best = sum(f >= opts.target for f in finals), sum(b >= opts.target for b in bests)
        sps = float(np.median([r["sps"] for r in mine]))
        table[name] = {"frames": budgets[name], "finals": finals, "mean": float(np.mean(finals)),
                       "solved": solved, "best_reruns": bests, "solved_best": solved_best,
                       "sps_median": sps}  # fmt: skip
        cells, best_cells = ", ".join(f"{f:.1f}" for f in finals), ", ".join(f"{b:.1f}" for b in bests)
        lines.append(f"| {name} | {budgets[name]:,} | {cells} | {solved}/{len(finals)} | {best_cells} | "
                     f"{solved_best}/{len(bests)} | {sps:.0f} |")  # fmt: skip
    speed = []
    if opts.speed_steps:
        speed = throughput.memory_speed(steps=opts.speed_steps, repeats=opts.speed_repeats,
                                        device=opts.device, sb3=opts.sb3, progress=progress)  # fmt: skip
        lines += _speed_table(speed, opts)
    text = "\n".join(lines) + "\n"
    progress(text)
    name = f"memory_{opts.env.lower()}"
    opts.out.mkdir(parents=True, exist_ok=True)
    report = {"command": command, **machine(), "target": opts.target, "table": table, "runs": results,
              "speed": speed}  # fmt: skip
    (opts.out / f"{name}.json").write_text(json.dumps(report) + "\n")
    (opts.out / f"{name}.md").write_text(text)
    plot_memory(results, opts.out / f"{name}.png", f"Memory on {opts.env}: training games by agent")
    progress(f"wrote {opts.out}/{name}.{{json,md,png}}")
    return report


def _speed_table(speed: list[dict], opts: Memory) -> list[str]:
    """Markdown lines for the memory benchmark's speed rows; adds each row's ratio to its library's PPO."""
    lines = ["", f"Speed on {throughput.GAME}: agent steps/s of training (acting and updates), "
             f"{opts.speed_steps:,} steps per timing, {opts.speed_repeats} timings interleaved; PPO on 4 "
             "stacked frames, the recurrent agents on single frames, otherwise the same settings.", "",
             "| contender | steps/s median (min-max) | vs its library's PPO |",
             "|---|---:|---:|"]  # fmt: skip
    medians = {row["who"]: row["sps_median"] for row in speed}
    for row in speed:
        base = medians.get("pixelrl ppo" if row["who"].startswith("pixelrl") else "sb3 PPO")
        row["vs_ppo"] = row["sps_median"] / base if base else None
        ratio = f"{row['vs_ppo']:.2f}x" if base else "–"
        spread = f"{row['sps_min']:.0f}-{row['sps_max']:.0f}"
        lines.append(f"| {row['who']} | {row['sps_median']:.0f} ({spread}) | {ratio} |")
    return lines


@dataclass(frozen=True)
class Rss:
    """Memory of a long DQN run: the resident set size of a training process, sampled while it fills a
    small replay and keeps training after it is full, where it must stay flat. Writes
    <out>/rss_<agent>_<env>.{json,png}."""

    agent: Literal["dqn", "drqn"] = "dqn"
    env: str = "Pong"
    buffer_size: int = 20_000
    """Replay capacity: small, so that it fills within minutes."""
    minutes: float = 10.0
    """How long the run trains before it is stopped (SIGTERM, as a job scheduler would)."""
    sample_seconds: float = 5.0
    runs: Path = Path("runs")
    out: Path = Path("docs")

    def __post_init__(self) -> None:
        check_config(self, positive=("buffer_size", "minutes", "sample_seconds"))


def _rss_mb(pid: int) -> float:
    """Resident memory of a process (its emulator threads included), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _train_child(spec_name: str, cfg: object, run: RunConfig) -> None:
    from pixelrl.training import Interrupted

    with contextlib.suppress(Interrupted):  # stopped by the benchmark: the checkpoint is written
        Trainer(agents.get_agent(spec_name), run, cfg).main()


def bench_rss(opts: Rss, command: str, progress: Callable[[str], None] = print) -> dict:
    """Train in a child process for `minutes`, sampling its RSS; report the growth after the replay filled."""
    import multiprocessing
    import signal

    if not Path("/proc/self/status").exists():
        raise ValueError("the rss benchmark reads /proc: it runs on Linux")
    spec = agents.get_agent(opts.agent)
    kind = "atari" if envs.resolve(opts.env).kind == "atari" else "classic"
    preset = spec.presets[kind]
    starts = min(preset.learning_starts, opts.buffer_size // 2)
    cfg = dataclasses.replace(preset, buffer_size=opts.buffer_size, frames=10**10, learning_starts=starts)
    run_dir = opts.runs / f"rss-{opts.agent}-{opts.env.replace('/', '_')}-{time.strftime('%Y%m%d-%H%M%S')}"
    run = RunConfig(
        env=opts.env, run_dir=run_dir, wandb="off", video_every=0, progress=False, eval_every=10**12
    )
    child = multiprocessing.get_context("spawn").Process(target=_train_child, args=(opts.agent, cfg, run))
    child.start()
    samples: list[dict] = []
    start = time.monotonic()
    while time.monotonic() - start < opts.minutes * 60 and child.is_alive():
        time.sleep(opts.sample_seconds)
        rows = read_jsonl(run_dir / "metrics.jsonl") if (run_dir / "metrics.jsonl").exists() else []
        replay = [r["charts/replay_size"] for r in rows if "charts/replay_size" in r]
        step = rows[-1]["global_step"] if rows else 0
        samples.append(
            {
                "seconds": time.monotonic() - start,
                "rss_mb": _rss_mb(child.pid),
                "global_step": step,
                "replay_size": replay[-1] if replay else 0,
            }
        )
    if child.is_alive():
        os.kill(child.pid, signal.SIGTERM)
    child.join(timeout=120)
    full = [s for s in samples if s["global_step"] >= opts.buffer_size]  # transitions added: a full ring
    if len(full) < 3:
        raise ValueError(
            f"the replay ({opts.buffer_size:,}) did not fill within {opts.minutes} min; give "
            "more --minutes or a smaller --buffer-size"
        )
    t = np.array([s["seconds"] for s in full]) / 60
    rss = np.array([s["rss_mb"] for s in full])
    slope = float(np.polyfit(t, rss, 1)[0]) if len(full) > 1 else 0.0
    summary = {
        "rss_when_full_mb": float(rss[0]),
        "rss_at_end_mb": float(rss[-1]),
        "max_rss_mb": float(rss.max()),
        "growth_after_full_mb_per_min": slope,
        "minutes_after_full": float(t[-1] - t[0]),
        "steps": samples[-1]["global_step"],
    }
    name = f"rss_{opts.agent}_{opts.env.replace('/', '_').lower()}"
    opts.out.mkdir(parents=True, exist_ok=True)
    report = {
        "command": command,
        **machine(),
        "options": {k: str(v) for k, v in dataclasses.asdict(opts).items()},
        **summary,
        "samples": samples,
    }
    (opts.out / f"{name}.json").write_text(json.dumps(report) + "\n")
    plot_rss(
        samples, opts.buffer_size, opts.out / f"{name}.png", f"{opts.agent} on {opts.env}: resident memory"
    )
    progress(
        f"RSS when the replay was full {rss[0]:.0f} MB, at the end {rss[-1]:.0f} MB "
        f"(max {rss.max():.0f}); growth after full {slope:+.2f} MB/min over {t[-1] - t[0]:.1f} min"
    )
    progress(f"wrote {opts.out}/{name}.{{json,png}}")
    return report


@dataclass(frozen=True)
class Distributed:
    """Training steps/s of the agents whose envs run on Ray actors (appo, apex) with 1 and 2 actors, beside
    their single-process twins (ppo, dqn), on Pong at each agent's Atari settings: every contender trains
    `frames` frames `repeats` times, interleaved; the median of its logged steps/s after the first fifth
    (and after DQN's replay warm-up, 5,000 transitions here).
    Writes <out>/benchmark_distributed.{json,md,png}. Needs the ray extra (pip install '.[ray]')."""

    pairs: str = "ppo:appo,dqn:apex"
    """single-process:distributed agent pairs."""
    actors: str = "1,2"
    """Actor counts to time for each distributed agent."""
    frames: int = 60_000
    """Frames each contender trains per repeat."""
    repeats: int = 3
    game: str = "Pong"
    device: str = "auto"
    runs: Path = Path("runs/distributed")
    out: Path = Path("docs")

    def __post_init__(self) -> None:
        check_config(self, positive=("frames", "repeats"))


def bench_distributed(opts: Distributed, command: str, progress: Callable[[str], None] = print) -> dict:
    counts = [int(n) for n in opts.actors.split(",")]
    contenders: list[tuple[str, str, dict, str]] = []  # (label, agent, config changes, its one-process twin)
    for pair in opts.pairs.split(","):
        single, distributed = pair.split(":")
        contenders.append((single, single, {}, single))
        contenders += [(f"{distributed} x{n}", distributed, {"actors": n}, single) for n in counts]
    for _, name, _, _ in contenders:
        agents.get_agent(name)  # an unknown name fails now, not after the first runs
    sps: dict[str, list[float]] = {label: [] for label, *_ in contenders}
    for r in range(opts.repeats):
        for label, name, changes, _ in contenders:
            spec = agents.get_agent(name)
            cfg = dataclasses.replace(spec.presets["atari"], frames=opts.frames, **changes)
            if hasattr(cfg, "learning_starts"):  # DQN's family: time the updates, not a long warm-up
                cfg = dataclasses.replace(cfg, learning_starts=5_000)
            run_dir = opts.runs / f"{label.replace(' ', '')}-r{r}"
            if run_dir.exists():
                shutil.rmtree(run_dir)
            run = RunConfig(env=opts.game, run_dir=run_dir, wandb="off", device=opts.device,
                            eval_episodes=1, eval_every=10 * opts.frames, video_every=0, progress=False,
                            log_every=1024)  # fmt: skip
            Trainer(spec, run, cfg).main()
            rows = [row for row in read_jsonl(run_dir / "metrics.jsonl") if "sps" in row]
            # The steady state: after the first fifth of the run, and after DQN's replay warm-up.
            warm = max(rows[-1]["global_step"] // 5, getattr(cfg, "learning_starts", 0) + run.log_every)
            steady = [row["sps"] for row in rows if row["global_step"] > warm]
            if not steady:
                raise ValueError(f"--frames {opts.frames} ends {label}'s run before its steady state (after "
                                 f"step {warm:,}); give more frames")  # fmt: skip
            sps[label].append(float(np.median(steady)))
            progress(f"repeat {r + 1}/{opts.repeats}: {label} {sps[label][-1]:.0f} agent steps/s")
    median = {label: float(np.median(values)) for label, values in sps.items()}
    rows = [{"who": label, "agent": name, "actors": changes.get("actors"), "sps_all": sps[label],
             "sps": median[label], "vs_single": median[label] / median[twin]}
            for label, name, changes, twin in contenders]  # fmt: skip
    cpu = machine()["cpu_model"]
    lines = [
        f"# Agents on Ray actors vs in one process ({opts.game})",
        "",
        f"`{command}` on {cpu}, {os.cpu_count()} cores: agent steps/s, median over {opts.repeats} "
        "interleaved repeats (each the median of the logged steps/s after the first fifth of the run "
        "and DQN's replay warm-up).",
        "",
        "| who | actors | steps/s median | min | max | vs one process |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {r['who']} | {r['actors'] or '-'} | {r['sps']:.0f} | {min(r['sps_all']):.0f} | "
              f"{max(r['sps_all']):.0f} | {r['vs_single']:.2f}x |" for r in rows]  # fmt: skip
    text = "\n".join(lines) + "\n"
    progress(text)
    opts.out.mkdir(parents=True, exist_ok=True)
    report = {"command": command, **machine(), "rows": rows}
    (opts.out / "benchmark_distributed.json").write_text(json.dumps(report) + "\n")
    (opts.out / "benchmark_distributed.md").write_text(text)
    plot_distributed(
        rows, opts.out / "benchmark_distributed.png", f"Agents on Ray actors, {opts.game}, {cpu}"
    )
    progress(f"wrote {opts.out}/benchmark_distributed.{{json,md,png}}")
    return report
