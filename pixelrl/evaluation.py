"""The evaluation protocol: rebuild a saved agent, play whole games on the evaluation column of design §1
with seeds disjoint from training, and report them with statistics against reference scores.

Used by training (periodic evaluations), and by the evaluate and watch commands.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

import agents
import envs
import nets
from agents.common import check_config
from pixelrl.checkpoint import find_checkpoint, load_checkpoint
from pixelrl.logger import write_json_atomic

# Mnih et al. 2015 (Nature), Extended Data Table 2: random, human, DQN. One human set only (design §3).
REFERENCE = {
    "Pong": (-20.7, 9.3, 18.9),
    "Breakout": (1.7, 31.8, 401.2),
    "SpaceInvaders": (148.0, 1652.0, 1976.0),
    "Seaquest": (68.4, 20182.0, 5286.0),
    "BeamRider": (363.9, 5775.0, 6846.0),
    "Enduro": (0.0, 309.6, 301.8),
    "Qbert": (163.9, 13455.0, 10596.0),
    "Asterix": (210.0, 8503.0, 6012.0),
}
EVAL_SEED_OFFSET = 1_000_000  # evaluation seeds never overlap the training envs' seed + i
EVAL_NUM_ENVS = 5  # games played in parallel by default; each env plays an equal share of them
Checkpoint = Literal["best", "latest"]  # which checkpoint of a run directory (best falls back to latest)
BASELINES = ("random", "human", "dqn2015")


class RandomAgent:
    """Uniform random actions: the 'random' baseline, played on exactly the agent's protocol."""

    def __init__(self, num_actions: int, seed: int = 0) -> None:
        self.num_actions, self.rng = num_actions, np.random.default_rng(seed)

    def eval_act(self, obs: np.ndarray, first: np.ndarray | None = None) -> np.ndarray:
        return self.rng.integers(0, self.num_actions, len(obs))


def load_agent(target: str | Path, which: Checkpoint, device: str) -> tuple[Any, dict[str, Any]]:
    """Rebuild an agent from a checkpoint alone (its metadata holds the agent name, game and config)."""
    path = find_checkpoint(target, which)
    state, meta = load_checkpoint(path)
    spec = agents.get_agent(meta["agent"])
    cfg = agents.config_from_dict(spec.Config, meta["agent_config"])
    probe = envs.make(meta["game"], 1, mode="eval", backend="sync", **meta.get("env_options", {}))
    agent = spec.make_agent(cfg, probe, device, 0)
    probe.close()
    agent.load_state_dict(state)
    return agent, {**meta, "checkpoint": str(path)}


def run_dir_of(target: str | Path, meta: dict[str, Any]) -> Path:
    """The run directory of a target given as a run directory or as one of its checkpoint files."""
    return Path(target) if Path(target).is_dir() else Path(meta["checkpoint"]).parent.parent


def play_games(
    agent: Any,
    game: str,
    episodes: int,
    *,
    seed: int = 0,
    num_envs: int = EVAL_NUM_ENVS,
    video_dir: Path | None = None,
    **env_options: Any,
) -> list[dict[str, float]]:
    """Play `episodes` whole games in eval mode; env i plays its share of them in order. `env_options`
    are the agent's observation options (from its checkpoint), so it sees what it was trained on."""
    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    num_envs = min(num_envs, episodes)
    quota = np.full(num_envs, episodes // num_envs)
    quota[: episodes % num_envs] += 1
    options = dict(env_options)
    if video_dir is not None:
        options |= {"video_dir": str(video_dir), "video_every": 1}
    env = envs.make(game, num_envs, seed=seed + EVAL_SEED_OFFSET, mode="eval", **options)  # env 0 films
    obs, info = env.reset()
    games: list[dict[str, float]] = []
    done_count = np.zeros(num_envs, dtype=int)
    with nets.num_threads(1):
        while (done_count < quota).any():
            # The first-of-episode flags let agents with memory start each game from a fresh state.
            obs, _, _, _, info = env.step(agent.eval_act(obs, envs.first_of_episode(info)))
            for i, score, length in envs.finished_episodes(info):
                if done_count[i] < quota[i]:
                    games.append({"env": i, "score": score, "length": length})
                    done_count[i] += 1
    env.close()
    return games


def summarise(scores: list[float], game: str, seed: int = 0, resamples: int = 10_000) -> dict[str, Any]:
    """Mean, median, std, bootstrap 95% CI of the mean, and the human-normalised score where known."""
    x = np.asarray(scores, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = rng.choice(x, size=(resamples, len(x)), replace=True).mean(axis=1)
    out: dict[str, Any] = {
        "episodes": len(x),
        "mean": float(x.mean()),
        "median": float(np.median(x)),
        "std": float(x.std(ddof=1)) if len(x) > 1 else 0.0,
        "min": float(x.min()),
        "max": float(x.max()),
        "ci95": [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))],
    }
    name = envs.resolve(game).name
    if name in REFERENCE:
        random, human, dqn = REFERENCE[name]
        out["human_normalised"] = (out["mean"] - random) / (human - random)
        out["reference"] = {"random": random, "human": human, "dqn2015": dqn, "source": "Mnih et al. 2015"}
    return out


def parse_baselines(text: str) -> list[str]:
    names = [b.strip() for b in text.split(",") if b.strip()]
    unknown = [b for b in names if b not in BASELINES]
    if "sb3" in unknown:
        raise ValueError("--baselines sb3 is not available yet; use random, human, dqn2015")
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; choose from {', '.join(BASELINES)}")
    return names


def baseline_rows(
    names: list[str], game: str, episodes: int, *, seed: int, num_envs: int, num_actions: int
) -> dict[str, dict[str, Any]]:
    """Each requested baseline's mean score (and, for random, its full statistics from play here)."""
    rows: dict[str, dict[str, Any]] = {}
    reference = REFERENCE.get(envs.resolve(game).name)
    if "random" in names:
        games = play_games(RandomAgent(num_actions, seed), game, episodes, seed=seed, num_envs=num_envs)
        rows["random (played here)"] = {
            **summarise([g["score"] for g in games], game, seed),
            "source": "played",
        }
    for name, column, label in (("random", 0, "random"), ("human", 1, "human"), ("dqn2015", 2, "DQN")):
        if name in names and reference is not None:
            rows[f"{label} (Mnih et al. 2015)"] = {"mean": reference[column], "source": "published"}
    return rows


def markdown(summary: dict[str, Any], meta: dict[str, Any], baselines: dict[str, dict] | None = None) -> str:
    lines = [
        f"# Evaluation: {meta['agent']} on {meta['game']}",
        "",
        f"Checkpoint `{meta['checkpoint']}` (step {meta['step']:,}, frames {meta.get('frames', 0):,}); "
        f"{summary['episodes']} games, eval protocol.",
        "",
        "| mean | median | std | 95% CI (bootstrap) | min | max | human-normalised |",
        "|---|---|---|---|---|---|---|",
        f"| {summary['mean']:.1f} | {summary['median']:.1f} | {summary['std']:.1f} | "
        f"[{summary['ci95'][0]:.1f}, {summary['ci95'][1]:.1f}] | "
        f"{summary['min']:.0f} | {summary['max']:.0f} | "
        f"{summary.get('human_normalised', float('nan')):.2f} |",
    ]
    if baselines:
        lines += ["", "| baseline | mean | median | 95% CI | source |", "|---|---|---|---|---|"]
        for name, row in baselines.items():
            ci = f"[{row['ci95'][0]:.1f}, {row['ci95'][1]:.1f}]" if "ci95" in row else "-"
            median = f"{row['median']:.1f}" if "median" in row else "-"
            lines.append(f"| {name} | {row['mean']:.1f} | {median} | {ci} | {row['source']} |")
    if "reference" in summary:
        ref = summary["reference"]
        lines += [
            "",
            f"Reference ({ref['source']}): random {ref['random']}, human {ref['human']}, "
            f"DQN {ref['dqn2015']}.",
        ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class EvaluateOptions:
    """Options of `scripts/evaluate.py`."""

    target: Path
    """A run directory (uses checkpoints/best, else latest) or a .safetensors checkpoint."""
    episodes: int = 10
    """Whole games to play."""
    seed: int = 0
    """Evaluation seed (offset so it never equals a training env's seed)."""
    num_envs: int = EVAL_NUM_ENVS
    """Games played in parallel; each env plays an equal share, so short games are not favoured."""
    device: str = "auto"
    """cpu, cuda or auto."""
    checkpoint: Checkpoint = "best"
    """Which checkpoint of a run directory: best or latest."""
    baselines: str = "random,human,dqn2015"
    """Comma-separated: random (a uniform random policy played here on the same protocol), human and
    dqn2015 (published, Mnih et al. 2015)."""

    def __post_init__(self) -> None:
        check_config(self, positive=("episodes", "num_envs"), non_negative=("seed",))


def evaluate(opts: EvaluateOptions) -> dict[str, Any]:
    """Play the saved policy and the baselines; write eval.json and eval.md beside the run and return the
    result (its "markdown" is the report)."""
    names = parse_baselines(opts.baselines)
    agent, meta = load_agent(opts.target, opts.checkpoint, opts.device)
    options = meta.get("env_options", {})
    games = play_games(agent, meta["game"], opts.episodes, seed=opts.seed, num_envs=opts.num_envs, **options)
    summary = summarise([g["score"] for g in games], meta["game"], opts.seed)
    baselines = baseline_rows(names, meta["game"], opts.episodes, seed=opts.seed, num_envs=opts.num_envs,
                              num_actions=agent.num_actions)  # fmt: skip
    result = {"agent": meta["agent"], "game": meta["game"], "checkpoint": meta["checkpoint"],
              "step": meta["step"], "games": games, **summary, "baselines": baselines}  # fmt: skip
    run_dir = run_dir_of(opts.target, meta)
    write_json_atomic(run_dir / "eval.json", result)
    report = markdown(summary, meta, baselines)
    (run_dir / "eval.md").write_text(report)
    return {**result, "markdown": report}


@dataclass(frozen=True)
class WatchOptions:
    """Options of `scripts/watch.py`."""

    target: Path
    """A run directory (uses checkpoints/best, else latest) or a .safetensors checkpoint."""
    episodes: int = 3
    """Games to record."""
    seed: int = 0
    """Seed of the games (offset from training seeds)."""
    checkpoint: Checkpoint = "best"
    """Which checkpoint of a run directory: best or latest."""
    out: Path | None = None
    """Folder for the mp4 files (default RUN_DIR/videos/watch-<time>)."""
    live: bool | None = None
    """Show the games in a window after recording (default: when a display exists)."""
    device: str = "auto"
    """cpu, cuda or auto."""

    def __post_init__(self) -> None:
        check_config(self, positive=("episodes",), non_negative=("seed",))


def record_games(opts: WatchOptions, stamp: str) -> tuple[list[dict[str, float]], list[Path]]:
    """Play `opts.episodes` games with the saved policy, filming each to mp4; returns the games and files."""
    agent, meta = load_agent(opts.target, opts.checkpoint, opts.device)
    out = opts.out or run_dir_of(opts.target, meta) / "videos" / f"watch-{stamp}"
    options = meta.get("env_options", {})
    games = play_games(agent, meta["game"], opts.episodes, seed=opts.seed, num_envs=1, video_dir=out,
                       **options)  # fmt: skip
    return games, sorted(out.glob("*.mp4"))


def summary_line(result: dict[str, Any]) -> str:
    """The one JSON line the evaluate command prints last."""
    return json.dumps({k: result[k] for k in ("game", "episodes", "mean", "median", "std", "ci95")})
