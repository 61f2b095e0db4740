"""The envs benchmark: prints and saves its figures, and records them for backend="auto" on this machine."""

import json

import pytest

import envs


def test_envs_benchmark_records_this_machines_speeds_for_auto(tmp_path, monkeypatch, capsys, script):
    monkeypatch.setenv("PIXELRL_ENV_SPEEDS", str(tmp_path / "speeds.json"))
    report = script("benchmark")(["envs", "--backends", "sync,async", "--num-envs", "1,2", "--seconds", "0.3",
                                  "--out", str(tmp_path / "out")])  # fmt: skip
    saved = json.loads((tmp_path / "out" / "benchmark_envs.json").read_text())
    assert (tmp_path / "out" / "benchmark_envs.png").stat().st_size > 0
    assert saved["machine_key"] == envs.machine_key() and len(saved["results"]) == 4 == len(report["results"])
    measured = envs.measured_speeds()
    assert set(measured) == {"sync", "async"} and set(measured["sync"]) == {1, 2}
    assert all(sps > 100 for by_n in measured.values() for sps in by_n.values())  # Pong steps, not zeros
    assert measured["sync"][2] == next(r["sps"] for r in saved["results"] if r["backend"] == "sync"
                                      and r["num_envs"] == 2)  # fmt: skip
    assert "recorded for backend='auto' on this machine" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--backends", "sync,gpu"], "--backends: unknown ['gpu']; choose from sync, async, envpool, ale."),
        (["--num-envs", "1,abc"], "--num-envs '1,abc': give positive integers like 1,2,4,8, or auto."),
        (["--seconds", "0"], "--seconds must be positive"),
    ],
)
def test_envs_benchmark_bad_input_is_one_line(argv, message, script):
    with pytest.raises(SystemExit) as err:
        script("benchmark")(["envs", *argv])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_memory_benchmark_trains_each_agent_and_writes_its_table(tmp_path, script):
    argv = ["memory", "--agents", "ppo-lstm,ppo", "--seeds", "1", "--frames", "512", "--runs",
            str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--speed-steps", "1024",
            "--speed-repeats", "1", "--no-sb3", "--rerun-episodes", "2"]  # fmt: skip
    report = script("benchmark")(argv)
    table = report["table"]
    assert set(table) == {"ppo-lstm", "ppo"} and all(row["frames"] == 512 for row in table.values())
    assert all(len(row["finals"]) == 1 and row["finals"][0] > 0 for row in table.values())
    assert all(len(row["best_reruns"]) == 1 and row["best_reruns"][0] > 0 for row in table.values())
    for suffix in ("json", "md", "png"):
        assert (tmp_path / "out" / f"memory_cartpole-novel.{suffix}").stat().st_size > 0
    text = (tmp_path / "out" / "memory_cartpole-novel.md").read_text()
    assert "| ppo-lstm | 512 |" in text and "| ppo | 512 |" in text and "best checkpoint" in text
    saved = json.loads((tmp_path / "out" / "memory_cartpole-novel.json").read_text())
    assert saved["runs"][0]["evals"] and saved["cpu_model"]
    speed = {row["who"]: row for row in saved["speed"]}  # Pong steps/s, ours only here
    assert set(speed) == {"pixelrl ppo", "pixelrl ppo-lstm"} and speed["pixelrl ppo"]["vs_ppo"] == 1.0
    assert all(row["sps_median"] > 10 for row in speed.values()) and "| pixelrl ppo-lstm |" in text


def test_memory_benchmark_refuses_an_atari_game_in_one_line(script):
    with pytest.raises(SystemExit, match="--env Pong: the memory benchmark runs classic-control games"):
        script("benchmark")(["memory", "--env", "Pong"])


@pytest.mark.benchmark
def test_rss_benchmark_samples_a_training_process_past_a_full_replay(tmp_path, script):
    argv = ["rss", "--env", "CartPole-v1", "--buffer-size", "1000", "--minutes", "0.5",
            "--sample-seconds", "1", "--out", str(tmp_path / "docs"), "--runs", str(tmp_path)]  # fmt: skip
    report = script("benchmark")(argv)
    assert report["rss_when_full_mb"] > 50 and report["steps"] > 1000
    assert abs(report["growth_after_full_mb_per_min"]) < 50  # a 1,000-transition CartPole replay: flat
    assert (tmp_path / "docs" / "rss_dqn_cartpole-v1.png").read_bytes()[:4] == b"\x89PNG"


def test_rss_benchmark_bad_input_is_one_line(script):
    with pytest.raises(SystemExit, match="^error: --minutes must be positive"):
        script("benchmark")(["rss", "--minutes", "0"])
