"""watch.py films every kind of game the suite trains on: CartPole as well as Atari (tests/scripts/
test_workflow.py watches a Breakout run)."""

import json

import numpy as np

from envs.video import read_mp4


def test_watch_films_a_cartpole_run_one_mp4_per_episode_with_its_score(tmp_path, script, capsys):
    run_dir = tmp_path / "cartpole"
    script("train")(["dqn", "--env", "CartPole-v1", "--run-dir", str(run_dir), "--frames", "2000",
                     "--eval-episodes", "1", "--wandb", "off", "--no-progress"])  # fmt: skip
    capsys.readouterr()
    out = tmp_path / "watch"
    paths = script("watch")([str(run_dir), "--episodes", "2", "--out", str(out), "--live", "False"])
    printed = capsys.readouterr().out.splitlines()
    scores = json.loads(printed[-1])["scores"]
    assert [p.name for p in paths] == [f"episode-{i:06d}-score-{s:g}.mp4" for i, s in enumerate(scores)]
    assert sorted(out.glob("*.mp4")) == paths
    for path, score, line in zip(paths, scores, printed, strict=False):
        assert line.startswith(f"score {score:>7g}") and line.endswith(str(path))
        frames = read_mp4(path)
        assert frames.shape == (int(score) + 1, 400, 600, 3)  # CartPole scores 1 a step; the reset screen
        pixels = frames.reshape(len(frames), -1, 3)  # (T, H*W, 3)
        assert (pixels != pixels[:, :1]).any(axis=(1, 2)).all()  # a drawing: not one colour in any frame
        assert (frames[..., 0].astype(np.int16) - frames[..., 2] > 50).any()  # the pole's colour
    assert len(paths) == 2 and np.isfinite(scores).all()
