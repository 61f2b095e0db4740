"""The evaluation protocol: rebuild a saved agent, play whole games on the evaluation column of design §1
with seeds disjoint from training, and report them with statistics against reference scores.

Used by training (periodic evaluations), and by the evaluate and watch commands.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

import envs
import nets
from agents.common import check_config
from pixelrl import stats
from pixelrl.checkpoint import (
    RESUMABLE,
    RUN_FIELDS,
    CheckpointError,
    check_agent_fits,
    check_same_run,
    checkpoint_agent,
    find_checkpoint,
    load_checkpoint,
    probe_env,
    read_meta,
    verified_export,
)

EVAL_SEED_OFFSET = 1_000_000  # evaluation seeds never overlap the training envs' seed + i
EVAL_NUM_ENVS = 5  # games played in parallel by default; each env plays an equal share of them
Checkpoint = Literal["best", "latest"]  # which checkpoint of a run directory (best falls back to latest)


class RandomAgent:
    """Uniform random actions: the 'random' baseline, played on exactly the agent's protocol."""

    def __init__(self, num_actions: int, seed: int = 0) -> None:
        self.num_actions, self.rng = num_actions, np.random.default_rng(seed)

    def eval_act(self, obs: np.ndarray, first: np.ndarray | None = None) -> np.ndarray:
        return self.rng.integers(0, self.num_actions, len(obs))


def load_agent(
    target: str | Path, which: Checkpoint, device: str, eval_epsilon: float | None = None
) -> tuple[Any, dict[str, Any]]:
    """Rebuild an agent from a checkpoint alone (its metadata holds the agent name, game and config), or
    from a file that a run exported in another library's format (SB3's zip), once it is verified to be one
    that this user's runs wrote (`verified_export`). A file that is not a checkpoint of an agent this
    pixelrl has, or whose config would build networks other than its tensors, is refused (CheckpointError)
    before any network is allocated. `eval_epsilon` replaces the saved config's exploration rate of
    evaluation games (epsilon-greedy agents only; ValueError for the others)."""
    if Path(target).suffix == ".zip":
        meta, data = verified_export(target)  # the checked bytes are what gets loaded
        spec, cfg = checkpoint_agent(meta, target)
        cfg, meta = with_eval_epsilon(cfg, meta, eval_epsilon)
        if spec.load_export is None:
            raise ValueError(f"{meta['agent']} runs export no zip; pass the run directory")
        return spec.load_export(data, cfg, device), {**meta, "checkpoint": str(target)}
    path = find_checkpoint(target, which)
    meta = read_meta(path, RUN_FIELDS)
    spec, cfg = checkpoint_agent(meta, path)
    if path.parent.name == "checkpoints":  # in a run directory: it must be that run's checkpoint
        fix = (
            "put the run's own checkpoint back, or evaluate the run directory that this checkpoint came from"
        )
        check_same_run(path.parent.parent, path, meta, keep={*spec.resumable, *RESUMABLE}, fix=fix)
    cfg, meta = with_eval_epsilon(cfg, meta, eval_epsilon)
    probe = probe_env(meta, path)
    try:
        check_agent_fits(path, spec, cfg, probe)  # sizes from the file's tensors, before any allocation
        state, loaded = load_checkpoint(path, required=RUN_FIELDS)
        agent = spec.make_agent(cfg, probe, device, 0)
    finally:
        probe.close()
    try:
        agent.load_state_dict(state)
    except (KeyError, ValueError, TypeError, IndexError, RuntimeError) as err:
        raise CheckpointError(path, f"its state does not load into a {spec.name} agent: {err}") from None
    return agent, {**loaded, "agent_config": meta["agent_config"], "checkpoint": str(path)}


def with_eval_epsilon(cfg: Any, meta: dict[str, Any], epsilon: float | None) -> tuple[Any, dict[str, Any]]:
    """The config and metadata with `epsilon` as the exploration rate of evaluation games (None: as saved).
    Epsilon-greedy agents (the DQN family, SB3's DQN) have an `eval_epsilon`; the others are refused."""
    if epsilon is None:
        return cfg, meta
    if not 0 <= epsilon <= 1:
        raise ValueError(f"--epsilon must be in [0, 1], got {epsilon}")
    if not hasattr(cfg, "eval_epsilon"):
        raise ValueError(
            f"--epsilon applies to agents that act epsilon-greedily (dqn, drqn, apex, sb3-dqn); "
            f"{meta['agent']} plays its own policy, so drop --epsilon"
        )
    meta = {**meta, "agent_config": {**meta["agent_config"], "eval_epsilon": epsilon}}
    return dataclasses.replace(cfg, eval_epsilon=epsilon), meta


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


def summarise(
    scores: list[float], game: str, seed: int = 0, table: str = "nature2015", resamples: int = 10_000
) -> dict[str, Any]:
    """Mean, median, std, bootstrap 95% CI of the mean, and the human-normalised score where `table` (see
    pixelrl/stats.py) knows the game."""
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
    if stats.has_reference(game, table):
        out["human_normalised"] = float(stats.human_normalised(out["mean"], game, table))
        # Normalisation is affine, so the raw score's interval maps onto the normalised one.
        out["human_normalised_ci95"] = [float(stats.human_normalised(c, game, table)) for c in out["ci95"]]
    return out


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
