"""pixelrl.stats against hand-computed arrays, the reference tables against their sources' contracts, and
the statistics plots."""

import tomllib
from pathlib import Path

import numpy as np
import pytest

import envs
from pixelrl import stats
from pixelrl.stats_plots import plot_performance_profiles, plot_score_bars

ROOT = Path(__file__).resolve().parents[2]


# ---- reference tables


def test_the_nature_table_has_the_49_games_of_mnih_2015_and_the_later_set_57():
    nature, later = stats.load_reference("nature2015"), stats.load_reference("human57")
    assert len(nature["games"]) == 49 and nature["columns"] == ["random", "human", "dqn"]
    assert len(later["games"]) == 57 and later["columns"] == ["random", "human"]
    assert set(nature["games"]) < set(later["games"])
    assert "Mnih" in nature["source"] and "Extended Data Table 2" in nature["source"]
    assert "dqn_zoo/atari_data.py" in later["source"]
    for table in (nature, later):
        assert all(len(row) == len(table["columns"]) for row in table["games"].values())


@pytest.mark.parametrize("table", ["nature2015", "human57"])
def test_every_table_game_is_named_as_ale_names_it(table):
    for name in stats.load_reference(table)["games"]:
        assert envs.resolve(name).name == name


# Mnih et al. 2015, Extended Data Table 2, as design §3 quotes it (random / human / DQN).
DESIGN_ROWS = {
    "Pong": (-20.7, 9.3, 18.9),
    "Breakout": (1.7, 31.8, 401.2),
    "SpaceInvaders": (148.0, 1652.0, 1976.0),
    "Seaquest": (68.4, 20182.0, 5286.0),
    "BeamRider": (363.9, 5775.0, 6846.0),
    "Enduro": (0.0, 309.6, 301.8),
    "Qbert": (163.9, 13455.0, 10596.0),
    "Asterix": (210.0, 8503.0, 6012.0),
}


@pytest.mark.parametrize("game", sorted(DESIGN_ROWS))
def test_the_nature_table_agrees_with_the_design_rows(game):
    random, human, dqn = DESIGN_ROWS[game]
    row = stats.reference_scores(game, "nature2015")
    assert row["random"] == random
    # The file keeps the one decimal its sources give (Seaquest 20181.8); the design the rounded 20182.
    assert row["human"] == pytest.approx(human, abs=0.5)
    assert row["dqn"] == pytest.approx(dqn, abs=0.5)
    assert stats.reference_scores(game, "human57")["random"] == random  # the sources share these


def test_human_normalised_maps_random_to_zero_and_human_to_one_in_its_own_table():
    assert stats.human_normalised(9.3, "Pong") == pytest.approx(1.0)
    assert stats.human_normalised(-20.7, "Pong") == pytest.approx(0.0)
    assert stats.human_normalised(14.6, "Pong", table="human57") == pytest.approx(1.0)
    assert stats.human_normalised(401.2, "ALE/Breakout-v5") == pytest.approx((401.2 - 1.7) / (31.8 - 1.7))
    runs = stats.human_normalised(np.array([-20.7, 9.3, 39.3]), "pong")
    np.testing.assert_allclose(runs, [0.0, 1.0, 2.0])


def test_a_missing_game_or_table_is_a_clear_error():
    with pytest.raises(ValueError, match=r"'Surround'.*'nature2015'"):
        stats.human_normalised(1.0, "Surround")  # only in the 57-game set
    assert stats.human_normalised(6.5, "Surround", table="human57") == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown reference table 'atari100k'"):
        stats.load_reference("atari100k")


def test_the_tables_ship_with_the_package():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "data/*.json" in config["tool"]["setuptools"]["package-data"]["pixelrl"]
    for file in stats.TABLES.values():
        assert (ROOT / "pixelrl" / "data" / file).is_file()


def test_load_reference_returns_a_copy():
    stats.load_reference()["games"]["Pong"][1] = 0.0
    assert stats.reference_scores("Pong")["human"] == 9.3


# ---- aggregate metrics


def test_iqm_is_the_mean_of_the_middle_half():
    assert stats.iqm(np.arange(1, 9)) == 4.5  # mean(3, 4, 5, 6)
    assert stats.iqm(np.array([[4.0], [1.0], [3.0], [2.0]])) == 2.5  # 4 runs x 1 game: mean(2, 3)
    assert stats.iqm([1, 2, 3, 4, 100]) == 3.0  # int(5 / 4) = 1 cut from each end: mean(2, 3, 4)
    assert stats.iqm([[1, 100], [2, 3]]) == 2.5  # all runs of all games pooled
    assert stats.iqm([7.0]) == 7.0
    with pytest.raises(ValueError):
        stats.iqm([])


def test_iqm_matches_scipys_trimmed_mean():
    trim_mean = pytest.importorskip("scipy.stats").trim_mean
    rng = np.random.default_rng(0)
    for n in range(1, 23):
        x = rng.normal(size=(n, 3))
        assert stats.iqm(x) == pytest.approx(trim_mean(x, 0.25, axis=None))


def test_optimality_gap_counts_only_the_shortfall_below_gamma():
    assert stats.optimality_gap([0.5, 1.5, 0.0, 1.0]) == pytest.approx(0.375)  # (0.5 + 0 + 1 + 0) / 4
    assert stats.optimality_gap([[0.5, 1.5], [0.0, 1.0]], gamma=2.0) == pytest.approx(1.25)
    assert stats.optimality_gap([3.0, 5.0]) == 0.0


def test_median_of_means_averages_runs_before_the_median_over_games():
    assert stats.median_of_means([[1, 10, 5], [3, 20, 7]]) == 6.0  # game means 2, 15, 6


# ---- probability of improvement


def test_probability_of_improvement_counts_ties_as_half():
    x, y = np.array([[1.0], [2.0]]), np.array([[2.0], [0.0]])
    # pairs (1,2) lose, (1,0) win, (2,2) tie, (2,0) win: (2 + 0.5) / 4
    assert stats.probability_of_improvement(x, y) == 0.625
    assert stats.probability_of_improvement(y, x) == 0.375
    # a second game where every pair ties (1/2) is averaged in with equal weight
    x2, y2 = np.hstack([x, [[5.0], [5.0]]]), np.hstack([y, [[5.0], [5.0]]])
    assert stats.probability_of_improvement(x2, y2) == pytest.approx((0.625 + 0.5) / 2)
    # unequal numbers of runs: 3 runs against 1, two wins and one tie
    assert stats.probability_of_improvement([[3.0], [1.0], [2.0]], [[1.0]]) == pytest.approx(2.5 / 3)


def test_probability_of_improvement_is_mann_whitney_u_over_pairs():
    mannwhitneyu = pytest.importorskip("scipy.stats").mannwhitneyu
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 4, size=(5, 3)), rng.integers(0, 4, size=(7, 3))  # small integers: many ties
    expected = np.mean([mannwhitneyu(x[:, g], y[:, g]).statistic / 35 for g in range(3)])
    assert stats.probability_of_improvement(x, y) == pytest.approx(expected)
    assert stats.probability_of_improvement(x, y) + stats.probability_of_improvement(y, x) == pytest.approx(1)


def test_probability_of_improvement_needs_the_same_games():
    with pytest.raises(ValueError, match="same games"):
        stats.probability_of_improvement(np.zeros((3, 2)), np.zeros((3, 3)))


def test_probability_of_improvement_interval():
    rng = np.random.default_rng(2)
    better, worse = rng.normal(1.0, 1.0, size=(10, 5)), rng.normal(0.0, 1.0, size=(10, 5))
    point, low, high = stats.probability_of_improvement_ci(better, worse, reps=500)
    assert 0.5 < low <= point <= high <= 1.0
    assert stats.probability_of_improvement_ci(np.ones((4, 2)), np.zeros((4, 2)), reps=50) == (1.0, 1.0, 1.0)


# ---- stratified bootstrap


def test_the_bootstrap_resamples_runs_within_each_game():
    scores = np.column_stack([np.zeros(6), np.full(6, 10.0)])  # game 0 all 0, game 1 all 10
    # Drawing runs across games would mix 0s and 10s in a column and move the mean; within games it cannot.
    assert stats.stratified_bootstrap_ci(scores, np.mean, reps=200) == (5.0, 5.0, 5.0)
    scores = np.column_stack([[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]])
    own = lambda s: float(set(s[:, 0]) <= {1, 2, 3} and set(s[:, 1]) <= {10, 20, 30})  # noqa: E731
    assert stats.stratified_bootstrap_ci(scores, own, reps=200) == (1.0, 1.0, 1.0)


def test_the_bootstrap_interval_holds_the_point_and_narrows_with_more_runs():
    rng = np.random.default_rng(3)
    population = rng.normal(1.0, 0.5, size=(200, 4))
    widths = []
    for runs in (5, 50, 200):
        point, low, high = stats.stratified_bootstrap_ci(population[:runs], stats.iqm, reps=500, seed=4)
        assert low <= point <= high
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2] > 0


def test_the_bootstrap_is_seeded_and_its_confidence_sets_the_width():
    scores = np.random.default_rng(5).normal(size=(8, 3))
    assert stats.stratified_bootstrap_ci(scores, np.mean, seed=1) == stats.stratified_bootstrap_ci(
        scores, np.mean, seed=1
    )
    _, low50, high50 = stats.stratified_bootstrap_ci(scores, np.mean, confidence=0.5)
    _, low95, high95 = stats.stratified_bootstrap_ci(scores, np.mean, confidence=0.95)
    assert low95 < low50 < high50 < high95
    with pytest.raises(ValueError, match="confidence"):
        stats.stratified_bootstrap_ci(scores, np.mean, confidence=95)


# ---- performance profiles


def test_performance_profile_is_the_fraction_of_runs_strictly_above_tau():
    scores = np.array([[0.2, 1.5], [0.8, 3.0]])
    taus = [0.0, 0.5, 1.0, 1.5, 2.0, 5.0]
    np.testing.assert_allclose(stats.performance_profile(scores, taus), [1.0, 0.75, 0.5, 0.25, 0.25, 0.0])


def test_performance_profile_band_holds_the_curve():
    rng = np.random.default_rng(6)
    scores, taus = rng.normal(1.0, 0.5, size=(10, 6)), np.linspace(0.0, 2.0, 21)
    curve, low, high = stats.performance_profile_ci(scores, taus, reps=300)
    np.testing.assert_allclose(curve, stats.performance_profile(scores, taus))
    assert np.all(low <= curve) and np.all(curve <= high) and np.any(high > low)
    assert np.all(np.diff(curve) <= 0)  # a survival function never rises
    constant = np.column_stack([np.zeros(5), np.full(5, 2.0)])
    curve, low, high = stats.performance_profile_ci(constant, [1.0], reps=50)
    assert curve.tolist() == low.tolist() == high.tolist() == [0.5]


# ---- plots


def _is_png(path: Path) -> bool:
    return path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_performance_profiles_writes_a_png(tmp_path):
    rng = np.random.default_rng(7)
    taus = np.linspace(0.0, 2.0, 41)
    profiles = {
        name: (taus, *stats.performance_profile_ci(rng.normal(mu, 0.4, size=(5, 8)), taus, reps=100))
        for name, mu in (("ppo", 1.0), ("dqn", 0.7))
    }
    path = plot_performance_profiles(profiles, tmp_path / "profiles.png", "5 runs x 8 games")
    assert path == tmp_path / "profiles.png" and _is_png(path)


def test_plot_score_bars_writes_a_png(tmp_path):
    rows = [
        {"game": "Pong", "label": "ppo", "mean": 20.1, "ci95": [19.5, 20.6], "source": "played"},
        {"game": "Pong", "label": "random (played here)", "mean": -20.3, "ci95": [-20.6, -20.0]},
        {"game": "Pong", "label": "human (Mnih et al. 2015)", "mean": 9.3, "source": "published"},
        {"game": "Breakout", "label": "ppo", "mean": 350.0, "ci95": [300.0, 390.0], "source": "played"},
        {"game": "Breakout", "label": "DQN (Mnih et al. 2015)", "mean": 401.2, "source": "published"},
        {"game": "Seaquest", "label": "ppo", "mean": 1800.0, "ci95": [1500.0, 2100.0]},
        {"game": "Qbert", "label": "ppo", "mean": 9000.0, "ci95": [8000.0, 9900.0]},
    ]
    path = plot_score_bars(rows, tmp_path / "bars.png", "mean score, 95% CI")
    assert path == tmp_path / "bars.png" and _is_png(path)
