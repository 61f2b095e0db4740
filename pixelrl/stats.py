"""Honest statistics over runs and games: the aggregate metrics and interval estimates of Agarwal et al.
2021, "Deep Reinforcement Learning at the Edge of the Statistical Precipice" (NeurIPS), on numpy alone.

Why not the mean or median of a few runs: with 3-10 runs per game, point estimates swing from one set of
seeds to the next, so the paper reports the interquartile mean (robust like the median, but uses half of
the data instead of one value), the optimality gap, performance profiles (the whole distribution of run
scores), the probability of improvement, and percentile intervals from a *stratified* bootstrap: runs are
resampled within each game, so that every resample still has each game in it.

Scores arrive as arrays of shape (runs, games), usually human-normalised with `human_normalised` and the
reference tables in pixelrl/data (design §3: never mix the Nature 2015 human set with the later 57-game
one in one table).
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable
from importlib import resources
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

TABLES = {"nature2015": "atari_nature2015.json", "human57": "atari_human57.json"}
"""Reference tables: Mnih et al. 2015 (49 games: random, human, DQN) and the later 57-game human set."""


@functools.cache
def _table(table: str) -> dict[str, Any]:
    if table not in TABLES:
        raise ValueError(f"unknown reference table {table!r}; choose from {', '.join(TABLES)}")
    return json.loads((resources.files("pixelrl") / "data" / TABLES[table]).read_text())


def load_reference(table: str = "nature2015") -> dict[str, Any]:
    """The reference table as stored: "source" (citation and where the numbers were read from), "columns",
    "notes" and "games" ({ALE short name: [value per column]}). A copy, so callers may change it."""
    return copy.deepcopy(_table(table))


def _game_key(game: str) -> str:
    """ "ALE/Pong-v5", "PongNoFrameskip-v4", "pong" and "Pong" all name the same table row."""
    name = game.split("/")[-1].split("-v")[0].removesuffix("NoFrameskip").removesuffix("Deterministic")
    return name.replace("_", "").lower()


def reference_scores(game: str, table: str = "nature2015") -> dict[str, float]:
    """One game's row as {column: value}, e.g. {"random": -20.7, "human": 9.3, "dqn": 18.9} for Pong."""
    data = _table(table)
    rows = {_game_key(name): row for name, row in data["games"].items()}
    row = rows.get(_game_key(game))
    if row is None:
        raise ValueError(
            f"game {game!r} is not in the {table!r} reference table ({len(rows)} games, "
            f"{TABLES[table]}); tables: {', '.join(TABLES)}"
        )
    return dict(zip(data["columns"], row, strict=True))


def has_reference(game: str, table: str = "nature2015") -> bool:
    """Whether `table` holds `game` (classic control and games outside the table have no human score)."""
    try:
        reference_scores(game, table)
    except ValueError:
        return False
    return True


def human_normalised(score: ArrayLike, game: str, table: str = "nature2015") -> float | np.ndarray:
    """(score - random) / (human - random): 0 plays like the random policy, 1 like the human tester.
    A scalar gives a float, an array (e.g. one game's runs) an array of the same shape."""
    ref = reference_scores(game, table)
    out = (np.asarray(score, dtype=np.float64) - ref["random"]) / (ref["human"] - ref["random"])
    return float(out) if out.ndim == 0 else out


def _runs_by_games(scores: ArrayLike) -> np.ndarray:
    """Scores as a float (runs, games) array; a 1-D array is one game's runs."""
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.size == 0:
        raise ValueError(f"scores must be a non-empty (runs, games) array, got shape {x.shape}")
    return x


def iqm(x: ArrayLike) -> float:
    """Interquartile mean of all values (every run of every game pooled): the mean of the middle 50%.
    The same cut as scipy.stats.trim_mean(x, 0.25, axis=None), which the paper uses: int(n / 4) values go
    from each end, so for n not divisible by 4 slightly more than half the values stay."""
    values = np.sort(np.asarray(x, dtype=np.float64).ravel())
    if values.size == 0:
        raise ValueError("iqm of an empty array")
    cut = int(0.25 * values.size)
    return float(values[cut : values.size - cut].mean())


def optimality_gap(x: ArrayLike, gamma: float = 1.0) -> float:
    """Mean shortfall below the target `gamma` (1.0: human level), max(gamma - x, 0) averaged over all
    values: scores above the target earn nothing, so one superhuman game cannot hide the others."""
    values = np.asarray(x, dtype=np.float64)
    if values.size == 0:
        raise ValueError("optimality gap of an empty array")
    return float(np.maximum(gamma - values, 0.0).mean())


def median_of_means(scores: ArrayLike) -> float:
    """The median across games of each game's mean over runs: the statistic most Atari papers report,
    here for comparison (it ignores all but one or two games' values)."""
    return float(np.median(_runs_by_games(scores).mean(axis=0)))


def _resample(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One stratified resample: each game's column draws its own runs with replacement, never another's."""
    picks = rng.integers(0, scores.shape[0], size=scores.shape)
    return np.take_along_axis(scores, picks, axis=0)


def _interval(samples: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    tail = 100.0 * (1.0 - confidence) / 2.0
    return np.percentile(samples, tail, axis=0), np.percentile(samples, 100.0 - tail, axis=0)


def stratified_bootstrap_ci(
    scores: ArrayLike,
    statistic: Callable[[np.ndarray], float],
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(point, low, high): `statistic` of the (runs, games) scores, and its percentile interval over `reps`
    stratified bootstrap resamples (runs resampled with replacement within each game)."""
    x = _runs_by_games(scores)
    rng = np.random.default_rng(seed)
    samples = np.array([statistic(_resample(x, rng)) for _ in range(reps)], dtype=np.float64)
    low, high = _interval(samples, confidence)
    return float(statistic(x)), float(low), float(high)


def _check_same_games(x: np.ndarray, y: np.ndarray) -> None:
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must hold the same games (columns): {x.shape[1]} != {y.shape[1]}")


def _improvement(x: np.ndarray, y: np.ndarray) -> float:
    wins = (x[:, None, :] > y[None, :, :]).sum(axis=(0, 1))  # (games,)
    ties = (x[:, None, :] == y[None, :, :]).sum(axis=(0, 1))
    per_game = (wins + 0.5 * ties) / (x.shape[0] * y.shape[0])  # Mann-Whitney U / (n_x n_y)
    return float(per_game.mean())


def probability_of_improvement(x: ArrayLike, y: ArrayLike) -> float:
    """P(X > Y): for each game, the chance that a random run of algorithm X scores above a random run of
    Y (ties count 1/2, the Mann-Whitney U statistic divided by runs_x * runs_y), averaged over games.
    x is (runs_x, games), y is (runs_y, games); raw or normalised scores give the same answer per game."""
    a, b = _runs_by_games(x), _runs_by_games(y)
    _check_same_games(a, b)
    return _improvement(a, b)


def probability_of_improvement_ci(
    x: ArrayLike, y: ArrayLike, reps: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """(point, low, high) of `probability_of_improvement`; each resample redraws X's and Y's runs
    independently within each game. An interval above 0.5 says X improves on Y with that confidence."""
    a, b = _runs_by_games(x), _runs_by_games(y)
    _check_same_games(a, b)
    rng = np.random.default_rng(seed)
    samples = np.array([_improvement(_resample(a, rng), _resample(b, rng)) for _ in range(reps)])
    low, high = _interval(samples, confidence)
    return _improvement(a, b), float(low), float(high)


def performance_profile(scores: ArrayLike, taus: ArrayLike) -> np.ndarray:
    """Run-score distribution: for each tau, the fraction of runs (of all games pooled) scoring above tau.
    With the same number of runs per game this is the paper's mean over games of each game's fraction."""
    x = _runs_by_games(scores).ravel()
    t = np.asarray(taus, dtype=np.float64)
    return (x[None, :] > t.ravel()[:, None]).mean(axis=1).reshape(t.shape)


def performance_profile_ci(
    scores: ArrayLike, taus: ArrayLike, reps: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(curve, low, high) over `taus`: the performance profile and its pointwise stratified-bootstrap band,
    ready for stats_plots.plot_performance_profiles."""
    x = _runs_by_games(scores)
    rng = np.random.default_rng(seed)
    samples = np.stack([performance_profile(_resample(x, rng), taus) for _ in range(reps)])
    low, high = _interval(samples, confidence)
    return performance_profile(x, taus), low, high
