"""`benchmark.py learning`: one benchmark row end to end, continued where an earlier call stopped."""

import json

import pytest

from pixelrl import learning
from pixelrl.learning import time_to, training_time
from pixelrl.training import Interrupted


def test_training_time_skips_the_stop_before_each_resume():
    rows = [{"time": 0.0}, {"time": 10.0}, {"time": 20.0}, {"time": 900.0}, {"time": 910.0}, {}]
    assert training_time(rows, []) == 910.0
    assert training_time(rows, [895.0]) == 30.0  # stopped after 20 s, resumed at 895 s


def test_time_to_is_the_first_evaluation_at_the_target():
    rows = [{"time": 0.0, "frames": 0}, {"time": 60.0, "frames": 100, "eval/mean_return": 5.0},
            {"time": 120.0, "frames": 200, "eval/mean_return": 20.0},
            {"time": 180.0, "frames": 300, "eval/mean_return": 21.0}]  # fmt: skip
    assert time_to(rows, 20.0, []) == {"frames": 200, "minutes": 2.0, "eval_mean": 20.0}
    assert time_to(rows, 20.0, [90.0]) == {"frames": 200, "minutes": 1.0, "eval_mean": 20.0}
    assert time_to(rows, 22.0, []) is None


def test_a_learning_row_trains_continues_and_evaluates(tmp_path, script):
    benchmark = script("benchmark")
    where = ["--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "docs")]
    common = ["learning", "--game", "CartPole-v1", "--agent", "ppo", "--episodes", "4", "--target", "60",
              "--eval-episodes", "2", *where]  # fmt: skip
    first = benchmark([*common, "--frames", "4096"])
    second = benchmark([*common, "--frames", "8192"])  # the same run, continued to the larger budget
    assert first["run_dir"] == second["run_dir"] and second["frames"] == 8192 > first["frames"]
    out = tmp_path / "docs" / "ppo-classic-CartPole-v1-s0"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 8192 and summary["resumes"] == 1 and summary["cpu_model"]
    assert summary["eval"]["episodes"] == 4 and len(summary["eval"]["ci95"]) == 2
    assert summary["eval"]["mean"] > summary["random_mean"]  # PPO's CartPole preset learns in 8k steps
    reached = summary["time_to_target"]
    assert reached is None or reached["frames"] <= 8192 and reached["eval_mean"] >= 60
    for name in ("eval.md", "eval.json", "eval.png", "curve.png"):
        assert (out / name).stat().st_size > 0
    rows = (tmp_path / "runs" / "ppo-classic-CartPole-v1-s0" / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(r)["global_step"] for r in rows if "losses/policy" in r]
    assert steps == sorted(set(steps))  # continued: no step logged twice


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--preset", "nope"], "--preset nope: ppo has presets"),
        (["--preset", "fast"], "--preset fast is for atari games, not CartPole-v1"),
        (["--sticky", "0"], "--sticky applies to Atari games"),
    ],
)
def test_bad_learning_options_are_one_line(args, message, tmp_path, script):
    with pytest.raises(SystemExit, match=message):
        script("benchmark")(["learning", "--game", "CartPole-v1", "--runs", str(tmp_path), *args])


def test_a_stopped_learning_row_says_how_to_continue_it(tmp_path, script, monkeypatch, capsys):
    def stopped(*args, **kwargs):
        raise Interrupted("killed at frame 4,096; the last completed update is saved")

    monkeypatch.setattr(learning, "train_to_budget", stopped)
    argv = ["learning", "--game", "CartPole-v1", "--runs", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_:
        script("benchmark")(argv)
    assert exit_.value.code == 130
    err = capsys.readouterr().err
    assert "killed at frame 4,096" in err and "python scripts/benchmark.py " + " ".join(argv) in err
