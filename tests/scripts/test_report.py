import json

import pytest

from pixelrl.report import run_label


def test_summary_reads_games_speed_and_evaluations_from_the_run(tmp_path, capsys, script):
    (tmp_path / "config.json").write_text(json.dumps({"agent": "ppo", "game": "ALE/Pong-v5"}))
    rows = [{"global_step": 10 * i, "frames": 40 * i, "time": 1000.0 + 6 * i, "episode_return": float(i)}
            for i in range(1, 31)]  # fmt: skip
    rows += [{"global_step": 300, "frames": 1200, "time": 1180.0, "sps": v} for v in (100.0, 300.0, 200.0)]
    rows.append({"global_step": 300, "frames": 1200, "time": 1180.0, "eval/mean_return": 7.5})
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = script("report")([str(tmp_path), "--out", str(tmp_path / "docs" / "ppo_pong")])
    assert summary["frames"] == 1200 and summary["agent_steps"] == 300 and summary["games"] == 30
    assert summary["first_20_games_mean"] == 10.5 and summary["last_20_games_mean"] == 20.5  # 1..20, 11..30
    assert summary["best_moving_mean"] == 20.5  # games 11..30, the best full 20-game window
    assert summary["median_sps"] == 200.0 and summary["wall_minutes"] == 2.9  # 1006 s to 1180 s
    assert summary["evaluations"] == [{"frames": 1200, "mean": 7.5}]
    assert "| last 20 training games | mean raw score 20.5 |" in capsys.readouterr().out
    assert (tmp_path / "docs" / "ppo_pong_curve.png").stat().st_size > 0


def test_a_directory_without_metrics_is_named(tmp_path, script):
    with pytest.raises(SystemExit, match="has no metrics.jsonl lines"):
        script("report")([str(tmp_path)])


def _run(path, sticky, frames):
    path.mkdir()
    config = {"agent": "ppo", "game": "ALE/Pong-v5", "frames_per_step": 4, "agent_config": {"frames": frames}}
    (path / "config.json").write_text(json.dumps(config | ({"sticky": sticky} if sticky is not None else {})))
    rows = [
        {"global_step": i, "frames": 4 * i, "time": float(i), "episode_return": float(i)} for i in range(30)
    ]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_compare_plots_runs_side_by_side_labelled_by_protocol_and_budget(tmp_path, script):
    new, old = _run(tmp_path / "new", 0.0, 40_000_000), _run(tmp_path / "old", None, 16_000_000)
    assert run_label(new) == "new (sticky 0.0, budget 40M frames)"
    assert run_label(old) == "old (sticky 0.25, budget 16M frames)"  # made before --sticky: 0.25
    classic = _run(tmp_path / "cartpole", None, 100_000)
    (classic / "config.json").write_text(
        json.dumps({"frames_per_step": 1, "agent_config": {"frames": 100_000}})
    )
    assert run_label(classic) == "cartpole (budget 0.1M frames)"  # no sticky actions outside Atari
    script("report")([str(new), "--out", str(tmp_path / "ppo"), "--compare", str(old)])
    assert (tmp_path / "ppo_runs.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SystemExit, match="give --out too"):
        script("report")([str(new), "--compare", str(old)])
    with pytest.raises(SystemExit, match="has no config.json; is it a run directory"):
        script("report")([str(new), "--out", str(tmp_path / "ppo"), "--compare", str(tmp_path)])
