"""The evaluate command over many runs (pixelrl/compare.py): seeds grouped, an SB3 run evaluated beside ours,
the sb3 baseline found in the runs' folder or refused, the random baseline cached, and the aggregates and
human normalisation on hand-made numbers."""

import json
import shutil

import numpy as np
import pytest

from pixelrl import compare, stats
from pixelrl.checkpoint import load_checkpoint, save_checkpoint
from pixelrl.evaluation import RandomAgent, load_agent

TINY = ["--env", "CartPole-v1", "--frames", "2048", "--wandb", "off", "--no-progress", "--eval-episodes", "1"]
# sb3-ppo's classic preset (the zoo's CartPole entry): 8 envs x 32 steps = 256 per rollout, 8 rollouts.


@pytest.fixture(scope="module")
def runs(tmp_path_factory, script):
    """Two seeds of our ppo and one sb3-ppo run on CartPole, side by side in one folder."""
    folder = tmp_path_factory.mktemp("compare").resolve()
    dirs = {}
    for name, agent, seed in (("ppo0", "ppo", 0), ("ppo1", "ppo", 1), ("sb3", "sb3-ppo", 0)):
        dirs[name] = folder / f"{agent}-s{seed}"
        script("train")([agent, *TINY, "--seed", str(seed), "--run-dir", str(dirs[name])])
    return folder, dirs


@pytest.fixture(scope="module")
def evaluated(runs, script):
    folder, d = runs
    args = [str(d["ppo0"]), str(d["ppo1"]), str(d["sb3"]), "--episodes", "3", "--baselines", "random,sb3"]
    return script("evaluate")(args)


def scores(games):
    return [g["score"] for g in games]


def copy_run(src, dst):
    """A run directory without the reports of earlier evaluate calls."""
    return shutil.copytree(src, dst, ignore=shutil.ignore_patterns("eval.*"))


def count_plays(monkeypatch):
    """Calls of compare.play_games from here on: True for each random-baseline game set, False for a run's."""
    calls, real = [], compare.play_games

    def counting(agent, *args, **kwargs):
        calls.append(isinstance(agent, RandomAgent))
        return real(agent, *args, **kwargs)

    monkeypatch.setattr(compare, "play_games", counting)
    return calls


# ---- many runs in one call


def test_seeds_of_one_agent_form_one_group_and_each_run_gets_its_own_report(runs, evaluated):
    folder, d = runs
    assert len(evaluated["runs"]) == 3  # the SB3 run given and also beside the runs is evaluated once
    groups = {g["agent"]: g for g in evaluated["groups"]}
    assert set(groups) == {"ppo", "sb3-ppo"}
    assert groups["ppo"]["runs"] == 2 and groups["ppo"]["episodes"] == 6
    assert groups["sb3-ppo"]["runs"] == 1 and groups["sb3-ppo"]["episodes"] == 3

    own = {name: json.loads((d[name] / "eval.json").read_text()) for name in ("ppo0", "ppo1", "sb3")}
    for name, saved in own.items():
        assert (d[name] / "eval.md").read_text().startswith("# Evaluation: ")
        # the same single-run fields at the top level as a one-run call writes (design §2)
        assert len(saved["games"]) == 3 and saved["episodes"] == 3
        assert saved["mean"] == pytest.approx(np.mean(scores(saved["games"])))
        assert [r["target"] for r in saved["runs"]] == [str(d[name])]
        assert saved["runs"][0]["games"] == saved["games"]
    assert own["sb3"]["agent"] == "sb3-ppo" and own["ppo1"]["agent"] == "ppo"
    pooled = scores(own["ppo0"]["games"]) + scores(own["ppo1"]["games"])
    assert len(pooled) == 6 and groups["ppo"]["mean"] == pytest.approx(np.mean(pooled))
    assert groups["ppo"]["run_means"] == pytest.approx([own["ppo0"]["mean"], own["ppo1"]["mean"]])
    low, high = groups["ppo"]["ci95"]
    assert min(pooled) <= low <= groups["ppo"]["mean"] <= high <= max(pooled)

    assert evaluated["out"] == str(folder)
    combined = json.loads((folder / "eval.json").read_text())
    assert [r["target"] for r in combined["runs"]] == [str(d["ppo0"]), str(d["ppo1"]), str(d["sb3"])]
    assert combined["groups"] == json.loads(json.dumps(evaluated["groups"]))
    assert (folder / "eval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (folder / "eval.md").read_text()
    assert md == evaluated["markdown"]
    rows = {line.split("|")[1].strip(): line for line in md.splitlines() if line.startswith("| ")}
    assert rows["ppo"].startswith("| ppo | 2 | 6 |") and rows["ppo"].endswith("| played |")
    assert rows["sb3-ppo"].startswith("| sb3-ppo | 1 | 3 |")
    assert rows["sb3-ppo"].endswith("| Stable-Baselines3, played |")
    assert rows["random (played here)"].startswith("| random (played here) | 1 | 3 |")
    random = evaluated["baselines"]["CartPole-v1"]["random (played here)"]
    assert random["source"] == "played" and random["episodes"] == 3
    assert not evaluated["aggregates"]["agents"]  # CartPole has no human score: nothing to aggregate


def test_a_tiny_sb3_run_and_a_tiny_run_of_ours_evaluated_by_the_same_call(runs, evaluated):
    _, d = runs
    entries = {r["target"]: r for r in evaluated["runs"]}
    assert entries[str(d["sb3"])]["agent"] == "sb3-ppo" and entries[str(d["ppo0"])]["agent"] == "ppo"
    for target in (d["sb3"], d["ppo0"]):
        entry = entries[str(target)]
        assert entry["game"] == "CartPole-v1" and len(entry["games"]) == 3
        assert all(g["score"] == g["length"] > 0 for g in entry["games"])  # CartPole: +1 a step
        assert entry["checkpoint"] == str(target / "checkpoints" / "best.safetensors")


def test_one_run_evaluated_into_another_folder_still_gets_its_own_report(runs, tmp_path, script):
    _, d = runs
    run = copy_run(d["ppo0"], tmp_path / "ppo-s0")
    result = script("evaluate")(
        [str(run), "--baselines", "random", "--episodes", "2", "--out", str(tmp_path / "out")]
    )
    own = json.loads((run / "eval.json").read_text())
    assert len(own["games"]) == 2 and own["games"] == result["games"] and own["mean"] == result["mean"]
    assert (run / "eval.md").exists() and (tmp_path / "out" / "eval.json").exists()
    assert json.loads((tmp_path / "out" / "eval.json").read_text())["games"] == own["games"]


# ---- the sb3 baseline


def test_the_sb3_baseline_is_found_beside_the_runs(runs, script):
    folder, d = runs
    result = script("evaluate")([str(d["ppo0"]), "--baselines", "sb3", "--episodes", "2"])
    assert [(r["target"], r["agent"]) for r in result["runs"]] == [(str(d["ppo0"]), "ppo"),
                                                                  (str(d["sb3"]), "sb3-ppo")]  # fmt: skip
    assert all(len(r["games"]) == 2 for r in result["runs"])  # not ppo-s1: only SB3 runs are picked up
    assert {g["agent"]: g["runs"] for g in result["groups"]} == {"ppo": 1, "sb3-ppo": 1}
    assert "random (played here)" not in result["baselines"]["CartPole-v1"]
    assert result["out"] == str(folder)


def test_the_sb3_baseline_is_refused_before_any_game_without_an_sb3_run_of_the_game_and_protocol(
    runs, tmp_path, script, monkeypatch
):
    _, d = runs
    alone = copy_run(d["ppo0"], tmp_path / "ppo-s0")
    # An SB3 run of the same game on another protocol (sticky actions) does not count either.
    other = copy_run(d["sb3"], tmp_path / "sb3-ppo-sticky")
    for which in ("best", "latest"):
        state, meta = load_checkpoint(other / "checkpoints" / f"{which}.safetensors")
        save_checkpoint(other / "checkpoints" / f"{which}.safetensors", state,
                        {**meta, "env_options": {"sticky": 0.0}})  # fmt: skip
    calls = count_plays(monkeypatch)
    with pytest.raises(
        SystemExit, match=r"^error: --baselines sb3: no Stable-Baselines3 run of CartPole-v1 "
    ) as err:
        script("evaluate")([str(alone), "--baselines", "random,sb3", "--episodes", "2"])
    assert "\n" not in str(err.value.code) and "train.py sb3-ppo --env CartPole-v1" in str(err.value.code)
    assert calls == []
    assert not list(tmp_path.rglob("eval.*")) and not (tmp_path / compare.CACHE_DIR).exists()


# ---- the random baseline's cache


def test_the_random_baseline_is_played_once_and_then_read_from_the_cache(runs, tmp_path, script, monkeypatch):
    _, d = runs
    run = copy_run(d["ppo0"], tmp_path / "ppo-s0")
    cache = tmp_path / compare.CACHE_DIR
    calls = count_plays(monkeypatch)
    args = [str(run), "--baselines", "random", "--episodes", "2"]

    first = script("evaluate")(args)
    files = sorted(cache.iterdir())
    assert calls == [False, True] and len(files) == 1
    saved = json.loads(files[0].read_text())
    assert saved["key"]["game"] == "CartPole-v1" and saved["key"]["episodes"] == 2
    random = first["baselines"]["CartPole-v1"]["random (played here)"]
    assert random["episodes"] == 2 and random["mean"] == pytest.approx(np.mean(scores(saved["games"])))

    calls.clear()
    second = script("evaluate")(args)
    assert calls == [False]  # the run is played again, the random policy is not
    assert second["baselines"]["CartPole-v1"]["random (played here)"] == random
    assert sorted(cache.iterdir()) == files

    # What the cache holds is what is reported.
    files[0].write_text(json.dumps(saved | {"games": [{"env": 0, "score": 500.0, "length": 500}] * 2}))
    assert script("evaluate")(args)["baselines"]["CartPole-v1"]["random (played here)"]["mean"] == 500.0

    calls.clear()
    third = script("evaluate")([str(run), "--baselines", "random", "--episodes", "3"])
    assert calls == [False, True] and len(list(cache.iterdir())) == 2
    assert third["baselines"]["CartPole-v1"]["random (played here)"]["episodes"] == 3


# ---- aggregates and tables on fixed numbers (no training)

PONG, BREAKOUT = "ALE/Pong-v5", "ALE/Breakout-v5"
# Human-normalised values chosen by hand; raw score = random + n * (human - random) with the Nature table:
# Pong -20.7 + 30.0 n, Breakout 1.7 + 30.1 n.
NORM = {
    "A": {PONG: [0.5, 1.0, 1.5], BREAKOUT: [0.2, 0.4, 0.9]},
    "B": {PONG: [0.0, 0.1, 0.2], BREAKOUT: [-0.1, 0.05, 0.1]},
}
RAW = {
    "A": {PONG: [-5.7, 9.3, 24.3], BREAKOUT: [7.72, 13.74, 28.79]},
    "B": {PONG: [-20.7, -17.7, -14.7], BREAKOUT: [-1.31, 3.205, 4.71]},
}


def group(run_means):
    return {"summary": {"run_means": run_means}}


def test_aggregates_match_hand_computed_values_of_the_human_normalised_scores():
    groups = {(agent, game, "{}"): group(RAW[agent][game]) for agent in RAW for game in RAW[agent]}
    groups[("A", "CartPole-v1", "{}")] = group([500.0, 500.0, 500.0])  # no human score: left out
    groups[("C", PONG, "{}")] = group([0.0, 1.0, 2.0])
    groups[("C", BREAKOUT, "{}")] = group([5.0, 6.0])
    for agent, per_game in NORM.items():  # the hand-made raw scores are the normalised values above
        for game, norm in per_game.items():
            assert stats.human_normalised(np.array(RAW[agent][game]), game) == pytest.approx(norm)

    agg = compare.aggregates(groups, "nature2015")
    assert set(agg["agents"]) == {"A", "B"}
    assert agg["notes"] == ["C: runs per game differ ([2, 3]); no aggregate"]
    # A's six values sorted: 0.2 0.4 0.5 0.9 1.0 1.5; B's: -0.1 0.0 0.05 0.1 0.1 0.2. IQM drops int(6/4) = 1
    # value at each end; the median is over games of each game's mean (A: Pong 1.0, Breakout 0.5); the
    # optimality gap averages max(1 - x, 0).
    expected = {
        "A": {"iqm": (0.4 + 0.5 + 0.9 + 1.0) / 4, "median": (1.0 + 0.5) / 2, "mean": 4.5 / 6,
              "optimality_gap": (0.8 + 0.6 + 0.5 + 0.1) / 6},
        "B": {"iqm": (0.0 + 0.05 + 0.1 + 0.1) / 4, "median": (0.1 + 0.05 / 3) / 2, "mean": 0.35 / 6,
              "optimality_gap": (1.1 + 1.0 + 0.95 + 0.9 + 0.9 + 0.8) / 6},
    }  # fmt: skip
    for agent, values in expected.items():
        row = agg["agents"][agent]
        assert row["games"] == [BREAKOUT, PONG] and row["runs"] == 3
        for name, value in values.items():
            assert row[name]["value"] == pytest.approx(value, abs=1e-9), (agent, name)
            low, high = row[name]["ci95"]
            assert low <= row[name]["value"] <= high and low < high
    improvement = {(r["x"], r["y"]): r for r in agg["improvement"]}
    assert set(improvement) == {("A", "B"), ("B", "A")}  # not C: it has no aggregate
    assert improvement[("A", "B")]["p"] == 1.0 and improvement[("A", "B")]["ci95"] == [1.0, 1.0]
    assert improvement[("B", "A")]["p"] == 0.0
    assert agg["_matrices"]["A"][1] == pytest.approx(np.array([NORM["A"][BREAKOUT], NORM["A"][PONG]]).T)


def test_an_agent_on_another_protocol_is_its_own_entry_compared_only_on_its_protocol():
    sticky0 = '{"sticky": 0.0}'
    games = (PONG, BREAKOUT)
    groups = {(agent, game, "{}"): group(RAW[agent][game]) for agent in ("A", "B") for game in games}
    groups |= {("A", game, sticky0): group(RAW["A"][game]) for game in (PONG, BREAKOUT)}
    agg = compare.aggregates(groups, "nature2015")
    assert set(agg["agents"]) == {"A", "B", f"A {sticky0}"}
    assert agg["agents"][f"A {sticky0}"]["iqm"]["value"] == pytest.approx(agg["agents"]["A"]["iqm"]["value"])
    # Sticky-0 A is not pitted against B, which played the default protocol.
    assert {(r["x"], r["y"]) for r in agg["improvement"]} == {("A", "B"), ("B", "A")}


def test_the_human57_table_changes_the_human_normalisation():
    later = compare.group_summary([[14.6] * 3], "Pong", "human57")
    nature = compare.group_summary([[14.6] * 3], "Pong", "nature2015")
    assert later["mean"] == nature["mean"] == pytest.approx(14.6)
    assert later["human_normalised"] == pytest.approx(1.0)
    assert nature["human_normalised"] == pytest.approx((14.6 + 20.7) / 30.0)
    # The published rows come from the same table, never mixed: the later set has no DQN column.
    rows = compare.published_rows(["random", "human", "dqn2015"], "Pong", "human57")
    assert {k: v["mean"] for k, v in rows.items()} == {
        f"random ({compare.TABLE_NAMES['human57']})": -20.7,
        f"human ({compare.TABLE_NAMES['human57']})": 14.6,
    }
    assert compare.published_rows(["human"], "Pong", "nature2015")["human (Mnih et al. 2015)"]["mean"] == 9.3


def test_a_protocol_option_given_at_its_default_is_the_same_protocol():
    pong = "ALE/Pong-v5"
    default = compare.protocol_key({"game": pong, "env_options": {}})
    assert compare.protocol_key({"game": pong, "env_options": {"sticky": 0.25}}) == default == "{}"
    assert compare.protocol_key({"game": pong, "env_options": {"sticky": 0.0}}) == '{"sticky": 0.0}'
    assert compare.protocol_key({"game": "CartPole-v1", "env_options": {"hide_velocity": True}}) == (
        '{"hide_velocity": true}'
    )


# ---- the exploration rate of epsilon-greedy agents


@pytest.fixture(scope="module")
def dqn_run(tmp_path_factory, script):
    run = tmp_path_factory.mktemp("epsilon").resolve() / "dqn-s0"
    script("train")(["dqn", *TINY, "--run-dir", str(run)])
    return run


def test_epsilon_replaces_the_saved_exploration_rate_of_the_games(dqn_run):
    obs = np.zeros((2000, 4), dtype=np.float32)  # one observation, 2000 times
    saved, meta = load_agent(dqn_run, "latest", "cpu")
    assert meta["agent_config"]["eval_epsilon"] == 0.0  # the classic preset's
    assert len(set(saved.eval_act(obs))) == 1  # greedy: one action for one observation
    random, meta = load_agent(dqn_run, "latest", "cpu", eval_epsilon=1.0)
    assert meta["agent_config"]["eval_epsilon"] == 1.0
    counts = np.bincount(random.eval_act(obs), minlength=2)
    assert counts.min() > 850  # uniform over CartPole's 2 actions (1000 expected)


def test_the_report_says_which_epsilon_the_games_were_played_with(dqn_run, tmp_path, script):
    run = copy_run(dqn_run, tmp_path / "dqn-s0")
    result = script("evaluate")([str(run), "--epsilon", "0.001", "--episodes", "2", "--baselines", "human"])
    assert [r["eval_epsilon"] for r in result["runs"]] == [0.001]
    assert "act at random with probability 0.001 (given by --epsilon)" in (run / "eval.md").read_text()
    assert json.loads((run / "eval.json").read_text())["eval_epsilon"] == 0.001


def test_epsilon_is_refused_for_an_agent_that_plays_its_own_policy(runs, tmp_path, script, monkeypatch):
    _, d = runs
    run = copy_run(d["ppo0"], tmp_path / "ppo-s0")
    calls = count_plays(monkeypatch)
    with pytest.raises(
        SystemExit, match=r"^error: --epsilon applies to agents that act epsilon-greedily"
    ) as err:
        script("evaluate")([str(run), "--epsilon", "0.001", "--episodes", "2"])
    assert "ppo plays its own policy, so drop --epsilon" in str(err.value.code) and calls == []
    assert not list(tmp_path.rglob("eval.*"))


def test_an_epsilon_outside_zero_to_one_is_refused(dqn_run, script):
    with pytest.raises(SystemExit, match=r"epsilon.*\[0, 1\]"):
        script("evaluate")([str(dqn_run), "--epsilon", "1.5"])
