"""The evaluate command: saved policies against baselines, with statistics over runs and games.

Every run is played on the evaluation protocol (`evaluation.play_games`) and gets its own eval.json and
eval.md. Runs that share agent, game and protocol (env options such as sticky actions) are the seeds of
one group. Baselines, per game and protocol:
- random: a uniform random policy played here on the same protocol; cached beside the runs, once per
  (game, protocol, episodes, seed), since it needs no training;
- human, dqn2015: published scores from one reference table (`--table`; the two human sets are never
  mixed in one report);
- sb3: Stable-Baselines3 runs (`train.py sb3-ppo ...`) among the given runs or in the same folder, on the
  same game and protocol, evaluated exactly like ours.
Aggregates over seeds and games follow Agarwal et al. 2021 (pixelrl/stats.py): interquartile mean and
optimality gap of human-normalised scores with stratified bootstrap intervals, the probability of
improvement between agents, and performance profiles.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

import envs
from agents.common import check_config
from pixelrl import stats
from pixelrl.checkpoint import RUN_FIELDS, CheckpointError, read_meta
from pixelrl.evaluation import (
    EVAL_NUM_ENVS,
    EVAL_SEED_OFFSET,
    Checkpoint,
    RandomAgent,
    load_agent,
    play_games,
    run_dir_of,
    summarise,
)
from pixelrl.logger import write_json_atomic
from pixelrl.stats_plots import plot_performance_profiles, plot_score_bars

BASELINES = ("random", "human", "dqn2015", "sb3")
Table = Literal["nature2015", "human57"]
TABLE_NAMES = {"nature2015": "Mnih et al. 2015", "human57": "the later human set (Wang et al. 2016, DQN Zoo)"}
CACHE_DIR = ".baseline-cache"  # beside the runs: played baselines, one JSON file per key


@dataclass(frozen=True)
class EvaluateOptions:
    """Options of `scripts/evaluate.py`."""

    targets: tuple[Path, ...]
    """Run directories (each uses checkpoints/best, else latest), .safetensors checkpoints, or the SB3 zips
    that runs exported (checkpoints/*.sb3.zip; only ones your own runs wrote are loaded)."""
    episodes: int = 10
    """Whole games per run (and for the random baseline)."""
    seed: int = 0
    """Evaluation seed (offset so it never equals a training env's seed)."""
    num_envs: int = EVAL_NUM_ENVS
    """Games played in parallel; each env plays an equal share, so short games are not favoured."""
    device: str = "auto"
    """cpu, cuda or auto."""
    checkpoint: Checkpoint = "best"
    """Which checkpoint of a run directory: best or latest."""
    epsilon: float | None = None
    """Exploration rate of epsilon-greedy agents (the DQN family) in the games: default, each run's own
    eval_epsilon (the Atari preset's 0.05 as Mnih et al. 2015; the fast preset's 0.001 as Rainbow)."""
    baselines: str | None = None
    """Comma-separated: random (played here on the same protocol, cached), human and dqn2015 (published),
    sb3 (Stable-Baselines3 runs of the same game and protocol, given or in the same folder). Default:
    random, human, and dqn2015 where the table has it."""
    table: Table = "nature2015"
    """Reference scores for human normalisation and the published baselines: nature2015 (Mnih et al. 2015,
    49 games, random/human/DQN) or human57 (the later human set of 57 games; no DQN column)."""
    out: Path | None = None
    """Folder of the combined eval.json, eval.md and plots (default: the run directory for one run, else the
    runs' common folder)."""

    def __post_init__(self) -> None:
        check_config(self, positive=("episodes", "num_envs"), non_negative=("seed",), unit=("epsilon",))
        if not self.targets:
            raise ValueError("name at least one run directory or checkpoint to evaluate")
        if self.out is not None and self.out.exists() and not self.out.is_dir():
            raise ValueError(f"--out {self.out} is a file; give a folder for the reports")


@dataclass
class Run:
    """One evaluated run."""

    target: Path
    run_dir: Path
    meta: dict[str, Any]
    agent: Any = None
    games: list[dict[str, float]] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, str]:  # (agent, game, protocol): runs with one key are seeds
        return self.meta["agent"], self.meta["game"], protocol_key(self.meta)


def protocol_key(meta: dict[str, Any]) -> str:
    """The env options a run trained and is evaluated with, as a stable string (sticky, flicker, ...), with
    options equal to the protocol's defaults left out: `--sticky 0.25` given or not is the same protocol."""
    options = dict(meta.get("env_options", {}))
    if envs.resolve(meta["game"]).kind == "atari":
        default = dataclasses.asdict(envs.AtariOptions.from_kwargs("eval", {}))
        chosen = dataclasses.asdict(envs.AtariOptions.from_kwargs("eval", options))
        options = {k: v for k, v in chosen.items() if v != default[k]}
    return json.dumps(options, sort_keys=True)


def parse_baselines(text: str | None, table: str) -> list[str]:
    if text is None:
        return ["random", "human", "dqn2015"] if table == "nature2015" else ["random", "human"]
    names = [b.strip() for b in text.split(",") if b.strip()]
    unknown = [b for b in names if b not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; choose from {', '.join(BASELINES)}")
    if "dqn2015" in names and table != "nature2015":
        raise ValueError(
            f"--baselines dqn2015 comes with the nature2015 table, not {table}; drop dqn2015 "
            "or use --table nature2015"
        )
    return names


def find_sb3_runs(runs: list[Run]) -> list[Path]:
    """SB3 run directories beside the given runs with the game and protocol of one of ours."""
    wanted = {(r.meta["game"], protocol_key(r.meta)) for r in runs if not r.meta["agent"].startswith("sb3-")}
    given = {r.run_dir.resolve() for r in runs}
    found = []
    for folder in dict.fromkeys(r.run_dir.resolve().parent for r in runs):
        for candidate in sorted(folder.iterdir()):
            checkpoint = candidate / "checkpoints" / "latest.safetensors"
            if candidate.resolve() in given or not checkpoint.exists():
                continue
            try:
                meta = read_meta(checkpoint, RUN_FIELDS)
            except CheckpointError:  # a broken neighbour is not a baseline; it does not stop the report
                continue
            if meta["agent"].startswith("sb3-") and (meta["game"], protocol_key(meta)) in wanted:
                found.append(candidate)
    return found


def random_baseline(
    game: str, env_options: dict[str, Any], num_actions: int, opts: EvaluateOptions, cache: Path
) -> list[dict[str, float]]:
    """The random policy's games on this protocol: read from the cache, else played and cached."""
    key = {
        "baseline": "random",
        "game": game,
        # the resolved protocol, as runs are grouped: --sticky 0.25 given or not plays the same games
        "protocol": protocol_key({"game": game, "env_options": env_options}),
        "episodes": opts.episodes,
        "seed": opts.seed,
        "num_envs": opts.num_envs,
        "eval_seed_offset": EVAL_SEED_OFFSET,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = cache / f"random-{game.replace('/', '_')}-{digest}.json"
    if path.exists():
        saved = json.loads(path.read_text())
        if saved.get("key") == key:
            return saved["games"]
    agent = RandomAgent(num_actions, opts.seed)
    games = play_games(agent, game, opts.episodes, seed=opts.seed, num_envs=opts.num_envs, **env_options)
    cache.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"key": key, "games": games})
    return games


def group_summary(seed_scores: list[list[float]], game: str, table: str, seed: int = 0) -> dict[str, Any]:
    """Statistics of one group's games (one list per run). With several runs the 95% CI resamples runs, then
    games within each run, so that it carries the spread between seeds, not only between games."""
    pooled = [s for scores in seed_scores for s in scores]
    out = summarise(pooled, game, seed, table)
    out["runs"], out["run_means"] = len(seed_scores), [float(np.mean(s)) for s in seed_scores]
    if len(seed_scores) > 1:
        rng = np.random.default_rng(seed)
        means = []
        for _ in range(2_000):
            picks = rng.integers(0, len(seed_scores), len(seed_scores))
            means.append(np.mean([rng.choice(seed_scores[i], len(seed_scores[i])).mean() for i in picks]))
        out["ci95"] = [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]
        if "human_normalised" in out:
            out["human_normalised_ci95"] = [float(stats.human_normalised(c, game, table))
                                            for c in out["ci95"]]  # fmt: skip
    return out


def aggregates(groups: dict[tuple, dict], table: str, seed: int = 0) -> dict[str, Any]:
    """Per agent, over its runs and games (human-normalised): IQM, median, mean and optimality gap with
    stratified bootstrap 95% CIs; the probability of improvement between agents on the same games; and
    performance profiles. Needs the same number of runs on every game of an agent."""
    # An agent on another protocol (sticky 0 vs the default) is another entry, compared only with its own.
    by_name: dict[str, tuple[str, dict[str, list[float]]]] = {}
    for (agent, game, protocol), g in groups.items():
        if stats.has_reference(game, table):
            norm = stats.human_normalised(np.array(g["summary"]["run_means"]), game, table)
            per_game = by_name.setdefault(_label(agent, protocol), (protocol, {}))[1]
            per_game[game] = list(np.atleast_1d(norm))
    matrices, notes = {}, []
    for name, (protocol, per_game) in by_name.items():
        counts = {len(v) for v in per_game.values()}
        if len(counts) != 1:
            notes.append(f"{name}: runs per game differ ({sorted(counts)}); no aggregate")
            continue
        matrices[name] = (sorted(per_game), np.array([per_game[g] for g in sorted(per_game)]).T, protocol)
        if counts == {1}:
            notes.append(f"{name}: one run per game, so its intervals show no variation between seeds")
    out: dict[str, Any] = {"table": table, "agents": {}, "improvement": [], "notes": notes}
    for agent, (games, x, _) in matrices.items():
        row: dict[str, Any] = {"games": games, "runs": x.shape[0]}
        for name, fn in (
            ("iqm", stats.iqm),
            ("median", stats.median_of_means),  # Agarwal et al.: the median over games of mean scores
            ("mean", np.mean),
            ("optimality_gap", stats.optimality_gap),
        ):
            point, low, high = stats.stratified_bootstrap_ci(x, lambda s, fn=fn: float(fn(s)), seed=seed)
            row[name] = {"value": point, "ci95": [low, high]}
        out["agents"][agent] = row
    for a, b in itertools.permutations(matrices, 2):
        if matrices[a][0] == matrices[b][0] and matrices[a][2] == matrices[b][2]:  # same games and protocol
            point, low, high = stats.probability_of_improvement_ci(matrices[a][1], matrices[b][1], seed=seed)
            out["improvement"].append({"x": a, "y": b, "p": point, "ci95": [low, high]})
    out["_matrices"] = matrices
    return out


def evaluate(opts: EvaluateOptions) -> dict[str, Any]:
    """Evaluate every target and the baselines; write the per-run and the combined reports. Everything that
    can be refused (a missing run, a baseline that cannot be found) is refused before any game is played."""
    names = parse_baselines(opts.baselines, opts.table)
    runs: list[Run] = []
    for target in opts.targets:
        agent, meta = load_agent(target, opts.checkpoint, opts.device, opts.epsilon)
        run = Run(Path(target), run_dir_of(target, meta), meta, agent)
        if any(r.run_dir.resolve() == run.run_dir.resolve() for r in runs):
            raise ValueError(f"{target} is a run already named ({run.run_dir}); a run counts once as a seed")
        runs.append(run)
    named = len(runs)  # per-run files are written for these; SB3 runs found beside them keep theirs
    if "sb3" in names:
        for path in find_sb3_runs(runs):
            agent, meta = load_agent(path, opts.checkpoint, opts.device, opts.epsilon)
            runs.append(Run(path, path, meta, agent))
        have = {(r.meta["game"], protocol_key(r.meta)) for r in runs if r.meta["agent"].startswith("sb3-")}
        missing = sorted({r.meta["game"] for r in runs if (r.meta["game"], protocol_key(r.meta)) not in have})
        if missing:
            game = missing[0].split("/")[-1].removesuffix("-v5")
            raise ValueError(
                f"--baselines sb3: no Stable-Baselines3 run of {', '.join(missing)} on the same "
                f"protocol among the runs or beside them; train one with `python scripts/train.py "
                f"sb3-ppo --env {game}` (same --frames and --sticky) or drop sb3"
            )
    out = opts.out or (runs[0].run_dir if len(runs) == 1 else common_folder([r.run_dir for r in runs]))
    cache = common_folder([r.run_dir for r in runs]) / CACHE_DIR
    out.mkdir(parents=True, exist_ok=True)  # a folder that cannot be made fails now, not after the games

    for run in runs:  # ours and SB3's alike
        options = run.meta.get("env_options", {})
        run.games = play_games(
            run.agent, run.meta["game"], opts.episodes, seed=opts.seed, num_envs=opts.num_envs, **options
        )

    groups: dict[tuple, dict[str, Any]] = {}
    for run in runs:
        groups.setdefault(run.key, {"runs": []})["runs"].append(run)
    for (_, game, _), g in groups.items():
        g["summary"] = group_summary(
            [[x["score"] for x in r.games] for r in g["runs"]], game, opts.table, opts.seed
        )

    baselines: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for (_, game, protocol), g in groups.items():
        if (game, protocol) in baselines:
            continue
        rows: dict[str, dict[str, Any]] = {}
        if "random" in names:
            first = g["runs"][0]
            games = random_baseline(
                game, first.meta.get("env_options", {}), first.agent.num_actions, opts, cache
            )
            rows["random (played here)"] = {
                **group_summary([[x["score"] for x in games]], game, opts.table, opts.seed),
                "source": "played",
            }
        rows |= published_rows(names, game, opts.table)
        baselines[(game, protocol)] = rows

    agg = aggregates(groups, opts.table, opts.seed)
    result = report(runs, groups, baselines, agg, opts)
    for run in runs[
        :named
    ]:  # each run's own file, as a one-run call writes it; the combined one where that is it
        if run.run_dir.resolve() == out.resolve():
            continue
        entry = run_entry(run, opts.table, opts.seed)
        own = {k: v for k, v in result.items() if k != "markdown"} | {"runs": [entry]}
        own |= {k: v for k, v in entry.items() if k != "target"}
        write_json_atomic(run.run_dir / "eval.json", own)
        (run.run_dir / "eval.md").write_text(run_markdown(run, opts))
    write_json_atomic(out / "eval.json", {k: v for k, v in result.items() if k != "markdown"})
    (out / "eval.md").write_text(result["markdown"])
    plot_score_bars(result["bars"], out / "eval.png", title=f"Evaluation: {opts.episodes} games per run")
    if agg["_matrices"]:
        taus = np.linspace(
            min(-0.1, min(x.min() for _, x, _ in agg["_matrices"].values())),
            max(1.1, max(x.max() for _, x, _ in agg["_matrices"].values())),
            101,
        )
        profiles = {
            a: (taus, *stats.performance_profile_ci(x, taus, seed=opts.seed))
            for a, (_, x, _) in agg["_matrices"].items()
        }
        plot_performance_profiles(
            profiles, out / "eval_profiles.png", title=f"Performance profiles ({opts.table})"
        )
    return {**result, "out": str(out)}


def common_folder(paths: list[Path]) -> Path:
    parents = [p.resolve().parent for p in paths]
    common = parents[0]
    while not all(p == common or common in p.parents for p in parents):
        common = common.parent
    return common


def published_rows(names: list[str], game: str, table: str) -> dict[str, dict[str, Any]]:
    if not stats.has_reference(game, table):
        return {}
    ref, source = stats.reference_scores(game, table), TABLE_NAMES[table]
    rows = {}
    for name, column, label in (
        ("random", "random", "random"),
        ("human", "human", "human"),
        ("dqn2015", "dqn", "DQN"),
    ):
        if name in names and column in ref:
            rows[f"{label} ({source})"] = {
                "mean": ref[column],
                "source": "published",
                "human_normalised": stats.human_normalised(ref[column], game, table),
            }
    return rows


def run_entry(run: Run, table: str, seed: int = 0) -> dict[str, Any]:
    return {
        "target": str(run.target),
        "agent": run.meta["agent"],
        "game": run.meta["game"],
        "checkpoint": run.meta["checkpoint"],
        "step": run.meta["step"],
        "frames": run.meta.get("frames"),
        "env_options": run.meta.get("env_options", {}),
        "eval_epsilon": run.meta["agent_config"].get("eval_epsilon"),  # None: the agent's own policy
        "games": run.games,
        **summarise([g["score"] for g in run.games], run.meta["game"], seed, table),
    }


def _label(game: str, protocol: str) -> str:
    """A game with its protocol options where they are not the defaults: 'ALE/Pong-v5 {"sticky": 0.0}'."""
    return game if protocol == "{}" else f"{game} {protocol}"


def _fmt(x: Any, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _row(label: str, s: dict[str, Any], source: str) -> str:
    ci = f"[{s['ci95'][0]:.1f}, {s['ci95'][1]:.1f}]" if "ci95" in s else "-"
    norm = _fmt(s.get("human_normalised"), 2)
    if "human_normalised_ci95" in s:
        norm += " [{:.2f}, {:.2f}]".format(*s["human_normalised_ci95"])
    return (
        f"| {label} | {s.get('runs', '-')} | {s.get('episodes', '-')} | {s['mean']:.1f} | "
        f"{_fmt(s.get('median'))} | {_fmt(s.get('std'))} | {ci} | {norm} | {source} |"
    )


def report(
    runs: list[Run], groups: dict, baselines: dict, agg: dict, opts: EvaluateOptions
) -> dict[str, Any]:
    """The combined result (JSON-ready) and its markdown."""
    lines = [
        "# Evaluation",
        "",
        f"{opts.episodes} whole games per run on the evaluation protocol (raw game scores, no life-loss "
        f"episodes, each run's own sticky-action and observation settings), seeds disjoint from "
        f"training. Human-normalised = (score - random) / (human - random) with the {opts.table} table: "
        f"{TABLE_NAMES[opts.table]}.",
        "",
    ]
    configs = [r.meta["agent_config"] for r in runs]
    epsilons = sorted({c["eval_epsilon"] for c in configs if "eval_epsilon" in c})
    if epsilons:
        given = "given by --epsilon" if opts.epsilon is not None else "each run's eval_epsilon"
        listed = ", ".join(f"{e:g}" for e in epsilons)
        lines += [f"Epsilon-greedy agents act at random with probability {listed} ({given}).", ""]
    bars, per_game = [], []
    for (game, protocol), rows in baselines.items():
        lines += [
            f"## {_label(game, protocol)}",
            "",
            "| agent | runs | games | mean | median | std | 95% CI | human-normalised [95% CI] | source |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for (agent, g_game, g_protocol), g in groups.items():
            if (g_game, g_protocol) == (game, protocol):
                source = "Stable-Baselines3, played" if agent.startswith("sb3-") else "played"
                lines.append(_row(agent, g["summary"], source))
                bars.append(
                    {
                        "game": game,
                        "label": agent,
                        "mean": g["summary"]["mean"],
                        "ci95": g["summary"]["ci95"],
                        "source": "played",
                    }
                )
                per_game.append({"game": game, "protocol": protocol, "agent": agent, **g["summary"]})
        for label, s in rows.items():
            lines.append(_row(label, s, s["source"]))
            bars.append(
                {
                    "game": game,
                    "label": label,
                    "mean": s["mean"],
                    "ci95": s.get("ci95"),
                    "source": s["source"],
                }
            )
        lines.append("")
    if agg["agents"]:
        lines += [
            "## Aggregates over runs and games (human-normalised; Agarwal et al. 2021)",
            "",
            "Stratified bootstrap 95% CIs (runs resampled within each game).",
            "",
            "| agent | runs x games | IQM | median | mean | optimality gap |",
            "|---|---|---|---|---|---|",
        ]
        for agent, row in agg["agents"].items():
            cells = [
                f"{row[k]['value']:.2f} [{row[k]['ci95'][0]:.2f}, {row[k]['ci95'][1]:.2f}]"
                for k in ("iqm", "median", "mean", "optimality_gap")
            ]
            lines.append(f"| {agent} | {row['runs']} x {len(row['games'])} | {' | '.join(cells)} |")
        lines.append("")
    if agg["improvement"]:
        lines += [
            "Probability of improvement: how likely a run of X scores above a run of Y on a game.",
            "",
            "| X | Y | P(X > Y) [95% CI] |",
            "|---|---|---|",
        ]
        lines += [
            f"| {r['x']} | {r['y']} | {r['p']:.2f} [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}] |"
            for r in agg["improvement"]
        ]
        lines.append("")
    lines += [f"- {n}" for n in agg["notes"]] + ([""] if agg["notes"] else [])
    lines += ["## Runs", "", "| run | agent | game | step | frames | mean |", "|---|---|---|---|---|---|"]
    for run in runs:
        lines.append(
            f"| `{run.target}` | {run.meta['agent']} | {run.meta['game']} | {run.meta['step']:,} | "
            f"{run.meta.get('frames', 0):,} | {np.mean([g['score'] for g in run.games]):.1f} |"
        )
    agg_json = {k: v for k, v in agg.items() if k != "_matrices"}
    result = {
        "episodes": opts.episodes,
        "table": opts.table,
        "groups": per_game,
        "bars": bars,
        "baselines": {_label(g, p): rows for (g, p), rows in baselines.items()},
        "aggregates": agg_json,
        "runs": [run_entry(r, opts.table, opts.seed) for r in runs],
    }
    if len(runs) == 1:  # the single-run fields of design §2 at the top level
        result |= {k: v for k, v in result["runs"][0].items() if k not in ("target",)}
    return {**result, "markdown": "\n".join(lines) + "\n"}


def run_markdown(run: Run, opts: EvaluateOptions) -> str:
    s = summarise([g["score"] for g in run.games], run.meta["game"], opts.seed, opts.table)
    ci = f"[{s['ci95'][0]:.1f}, {s['ci95'][1]:.1f}]"
    return "\n".join([
        f"# Evaluation: {run.meta['agent']} on {run.meta['game']}", "",
        f"Checkpoint `{run.meta['checkpoint']}` (step {run.meta['step']:,}); {s['episodes']} games.",
        "", "| mean | median | std | 95% CI (bootstrap) | min | max |", "|---|---|---|---|---|---|",
        f"| {s['mean']:.1f} | {s['median']:.1f} | {s['std']:.1f} | {ci} | {s['min']:.0f} | {s['max']:.0f} |",
        "",
        "The baselines are in the combined report of the same evaluate.py call.", "",
    ])  # fmt: skip


def summary_line(result: dict[str, Any]) -> str:
    """The one JSON line the evaluate command prints last: each group's mean and CI."""
    return json.dumps(
        {
            "out": result["out"],
            "groups": [
                {k: g[k] for k in ("game", "agent", "runs", "episodes", "mean", "ci95")}
                for g in result["groups"]
            ],
        }
    )
