"""train -> watch -> evaluate end to end on a tiny budget, resume, kill, and bad input."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import envs
from envs.video import read_mp4
from pixelrl import compare, evaluation, training
from pixelrl.checkpoint import load_arrays, load_checkpoint, read_meta, save_checkpoint

ROOT = Path(__file__).resolve().parents[2]
# One env: its 400 steps hold at least one whole Breakout game (random play lasts 140-250 steps).
TINY = ["--frames", "1600", "--learning-starts", "100", "--buffer-size", "1000", "--num-envs", "1",
        "--eval-episodes", "1", "--eval-every", "800", "--video-every", "1", "--log-every", "50",
        "--no-progress"]  # fmt: skip


def rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, script):
    run_dir = tmp_path_factory.mktemp("run") / "breakout"
    summary = script("train")(
        ["dqn", "--env", "Breakout", "--run-dir", str(run_dir), "--wandb", "offline", *TINY]
    )
    return run_dir, summary


def test_train_writes_the_run_directory_contract(trained):
    run_dir, summary = trained
    assert summary["frames"] == 1600 and summary["global_step"] == 400
    config = json.loads((run_dir / "config.json").read_text())
    assert config["agent"] == "dqn" and config["game"] == "ALE/Breakout-v5"
    assert config["agent_config"]["buffer_size"] == 1000
    lines = rows(run_dir)
    assert all("global_step" in r and "frames" in r for r in lines)
    games = [r for r in lines if "episode_return" in r]
    assert games and all(r["episode_return"] >= 0 and r["episode_length"] > 0 for r in games)
    training = [r for r in lines if "sps" in r]
    assert training and any("losses/td_loss" in r for r in training)
    assert [r["frames"] for r in lines if "eval/mean_return" in r] == [800, 1600]
    for which in ("latest", "best"):
        assert (run_dir / "checkpoints" / f"{which}.safetensors").exists()
        assert read_meta(run_dir / "checkpoints" / which)["agent"] == "dqn"
    assert read_meta(run_dir / "checkpoints" / "latest")["step"] == 400
    videos = sorted((run_dir / "videos").glob("episode-*-score-*.mp4"))
    assert videos and read_mp4(videos[0]).shape[1:] == (210, 160, 3)
    assert (run_dir / "curve.png").read_bytes()[:4] == b"\x89PNG"
    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert offline, "an offline W&B run that `wandb sync` can upload"


def test_watch_rebuilds_the_agent_from_the_checkpoint_and_records_games(trained, tmp_path, script):
    run_dir, _ = trained
    paths = script("watch")([str(run_dir), "--episodes", "2", "--out", str(tmp_path), "--live", "False"])
    assert len(paths) == 2
    for path in paths:
        assert "score" in path.name
        frames = read_mp4(path)
        assert frames.shape[1:] == (210, 160, 3) and len(frames) > 10
        assert frames.std() > 10  # real gameplay pixels, not a blank screen


def test_evaluate_writes_statistics_against_the_reference(trained, script):
    run_dir, _ = trained
    result = script("evaluate")([str(run_dir), "--episodes", "3", "--num-envs", "3"])
    saved = json.loads((run_dir / "eval.json").read_text())
    assert saved["episodes"] == 3 and len(saved["games"]) == 3
    assert saved["mean"] == pytest.approx(sum(g["score"] for g in saved["games"]) / 3)
    low, high = saved["ci95"]
    assert low <= saved["mean"] <= high
    assert saved["human_normalised"] == pytest.approx((saved["mean"] - 1.7) / (31.8 - 1.7))
    report = (run_dir / "eval.md").read_text()
    assert "human-normalised" in report and "random (played here)" in report
    baselines = saved["baselines"]["ALE/Breakout-v5"]
    random = baselines["random (played here)"]
    assert random["episodes"] == 3 and random["source"] == "played"
    assert baselines["human (Mnih et al. 2015)"]["mean"] == 31.8
    assert result["game"] == "ALE/Breakout-v5"


def test_evaluate_and_watch_take_the_run_directory_as_a_positional_argument(tmp_path, script):
    from pixelrl import cli

    args = cli.parse(compare.EvaluateOptions, [str(tmp_path), str(tmp_path / "b"), "--episodes", "2"],
                     prog="", description="")  # fmt: skip
    assert args.targets == (tmp_path, tmp_path / "b") and args.episodes == 2
    assert cli.parse(evaluation.WatchOptions, [str(tmp_path)], prog="", description="").target == tmp_path
    with pytest.raises(SystemExit, match="error: unknown baseline"):
        script("evaluate")([str(tmp_path), "--baselines", "random,sb4"])
    with pytest.raises(SystemExit, match="error: --baselines dqn2015 comes with the nature2015 table"):
        script("evaluate")([str(tmp_path), "--table", "human57", "--baselines", "random,dqn2015"])


def test_resume_continues_from_the_latest_checkpoint_with_the_same_global_step(trained, tmp_path, script):
    import shutil

    run_dir = tmp_path / "copy"
    shutil.copytree(trained[0], run_dir)
    before = len(rows(run_dir))
    summary = script("train")(["dqn", "--resume", str(run_dir), "--frames", "2400", "--save-replay"])
    new = rows(run_dir)[before:]
    steps = [r["global_step"] for r in new]
    assert min(steps) > 400 and summary["global_step"] == 600
    assert read_meta(run_dir / "checkpoints" / "latest")["step"] == 600
    saved = load_arrays(run_dir / "checkpoints" / "replay.npz")
    assert saved["added"] > 0 and saved["valid"].sum() > 0  # the buffer the loop filled, not an empty one
    with pytest.raises(SystemExit, match="--lr cannot change when resuming"):
        script("train")(["dqn", "--resume", str(run_dir), "--lr", "0.5"])


def test_a_new_run_refuses_to_overwrite_an_existing_one(trained, script):
    with pytest.raises(SystemExit, match="already holds a run; continue it with --resume"):
        script("train")(["dqn", "--env", "Breakout", "--run-dir", str(trained[0]), *TINY])


def test_sigterm_saves_a_checkpoint_and_says_how_to_resume(tmp_path):
    run_dir = tmp_path / "killed"
    cmd = [sys.executable, "scripts/train.py", "dqn", "--env", "CartPole-v1", "--run-dir", str(run_dir),
           "--wandb", "off", "--frames", "1000000", "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not any("episode_return" in r for r in _safe_rows(run_dir)):
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert f"--resume {run_dir}" in err
    assert read_meta(run_dir / "checkpoints" / "latest")["step"] > 0


def test_a_second_kill_during_the_final_checkpoint_does_not_cut_it_short(tmp_path, monkeypatch, script):
    kills = []

    def kill_self() -> None:  # the handler runs in this (main) thread as soon as os.kill returns
        kills.append(signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(training.Trainer, "_new_videos", lambda self, *args: None if kills else kill_self())
    save = training.Trainer.save

    def save_while_killed_again(self, *args, **kwargs):
        if kills:  # e.g. `timeout` forwarding the SIGTERM that `pkill` also sent
            kill_self()
        return save(self, *args, **kwargs)

    monkeypatch.setattr(training.Trainer, "save", save_while_killed_again)
    run_dir = tmp_path / "killed-twice"
    sigint_before = signal.getsignal(signal.SIGINT)  # SIG_IGN, not Python's handler, under `nohup ... &`
    with pytest.raises(SystemExit) as err:
        script("train")(["dqn", "--env", "CartPole-v1", "--run-dir", str(run_dir), "--wandb", "off",
                         "--frames", "100000", "--no-progress"])  # fmt: skip
    assert err.value.code == 130 and len(kills) == 2
    assert read_meta(run_dir / "checkpoints" / "latest")["step"] > 0
    assert signal.getsignal(signal.SIGINT) is sigint_before  # handlers given back


def _safe_rows(run_dir):
    try:
        return rows(run_dir)
    except (FileNotFoundError, json.JSONDecodeError):
        return []


@pytest.mark.parametrize(
    "argv, message",
    [
        (["dqnn", "--env", "Pong"], "unknown agent 'dqnn' (did you mean dqn, drqn, sb3-dqn?)"),
        (["dqn", "--env", "Pongg"], "closest valid names: Pong"),
        (["dqn", "--env", "Pong", "--frames", "0"], "--frames must be positive"),
        (["dqn", "--env", "Pong", "--lr", "0"], "--lr must be positive"),
        (
            ["dqn", "--env", "Pong", "--buffer-size", "16", "--learning-starts", "0"],
            "smaller than --batch-size",
        ),
        ([], "name an agent first"),
        (["ppo", "--env", "Pong", "--sticky", "1.5"], "--sticky must be in [0, 1], got 1.5"),
        (["ppo", "--env", "CartPole-v1", "--sticky", "0"], "--sticky applies to Atari games"),
        (["ppo", "--env", "CartPole-v1", "--flicker", "0.5"], "--flicker applies to Atari games"),
        (["ppo", "--env", "Pong", "--flicker", "2"], "--flicker must be in [0, 1], got 2"),
        (["ppo", "--env", "Pong", "--backend", "ale"], "--backend ale cannot record training videos"),
        (["ppo", "--env", "Pong", "--preset", "big"], "--preset big: ppo has presets atari, classic, "),
    ],
)
def test_bad_input_is_one_line_before_training(argv, message, script):
    start = time.time()
    with pytest.raises(SystemExit) as err:
        script("train")(argv)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert time.time() - start < 10  # nothing was trained


def test_resuming_with_another_game_or_agent_is_refused(trained, tmp_path, script):
    run_dir, _ = trained
    with pytest.raises(SystemExit, match="was trained on ALE/Breakout-v5, not Pong"):
        script("train")(["dqn", "--resume", str(run_dir), "--env", "Pong"])
    state, meta = load_checkpoint(run_dir / "checkpoints" / "latest")
    other = tmp_path / "other"
    save_checkpoint(other / "checkpoints" / "latest", state, {**meta, "agent": "ppo"})
    with pytest.raises(SystemExit, match="holds a ppo checkpoint, not dqn"):
        script("train")(["dqn", "--resume", str(other)])


def test_watch_and_evaluate_name_a_missing_checkpoint(tmp_path, script):
    for name in ("evaluate", "watch"):
        with pytest.raises(SystemExit, match=f"error: no checkpoint at {tmp_path}") as err:
            script(name)([str(tmp_path)])
        assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "agent, sizes",
    [("a2c", ["--num-envs", "2", "--num-steps", "16"]),
     ("ppo", ["--num-envs", "2", "--num-steps", "32", "--minibatches", "2", "--epochs", "1"])],
)  # fmt: skip
def test_policy_gradient_agents_train_checkpoint_and_resume_on_pong(agent, sizes, tmp_path, script):
    run_dir = tmp_path / agent
    common = [
        "--eval-episodes",
        "1",
        "--video-every",
        "0",
        "--log-every",
        "32",
        "--wandb",
        "off",
        "--no-progress",
        "--sticky",
        "0",
    ]
    first = script("train")(
        [
            agent,
            "--env",
            "Pong",
            "--frames",
            "512",
            "--eval-every",
            "512",
            *sizes,
            *common,
            "--run-dir",
            str(run_dir),
        ]
    )
    assert first["global_step"] == 128 and np.isfinite(first["final_eval_mean"])
    assert any("losses/policy" in r for r in rows(run_dir))
    meta = read_meta(run_dir / "checkpoints" / "latest")
    assert meta["step"] == 128
    assert meta["env_options"] == {"sticky": 0.0}  # evaluate.py and watch.py replay the training protocol
    loaded, _ = evaluation.load_agent(run_dir, "latest", "cpu")  # rebuilt from the checkpoint alone
    saved, _ = load_checkpoint(run_dir / "checkpoints" / "latest")
    for name, tensor in loaded.state_dict()["net"].items():
        np.testing.assert_array_equal(tensor.numpy(), saved["net"][name].numpy())
    probe = np.random.default_rng(0).integers(0, 256, (8, 4, 84, 84), dtype=np.uint8)
    assert set(loaded.eval_act(probe)) <= set(range(6))
    resumed = script("train")([agent, "--resume", str(run_dir), "--frames", "1024"])
    assert resumed["global_step"] == 256
    assert read_meta(run_dir / "checkpoints" / "latest")["env_options"] == {"sticky": 0.0}  # kept on resume
    assert max(r["global_step"] for r in rows(run_dir) if "losses/policy" in r) > 128  # it trained on


@pytest.mark.parametrize(
    "agent, sizes",
    [("ppo-lstm", ["--num-envs", "2", "--num-steps", "32", "--minibatches", "2", "--epochs", "1"]),
     ("drqn", ["--num-envs", "2", "--learning-starts", "64", "--buffer-size", "1000", "--batch-size", "4",
               "--burn-in", "4", "--seq-len", "8", "--seq-stride", "4", "--train-every", "16"])],
)  # fmt: skip
def test_agents_with_memory_train_evaluate_watch_and_resume_on_pong(agent, sizes, tmp_path, script):
    run_dir = tmp_path / agent
    common = ["--eval-episodes", "1", "--video-every", "0", "--wandb", "off", "--no-progress", "--sticky",
              "0", "--flicker", "0.5"]  # fmt: skip
    first = script("train")([agent, "--env", "Pong", "--frames", "512", "--eval-every", "512", *sizes,
                             *common, "--run-dir", str(run_dir)])  # fmt: skip
    assert first["global_step"] == 128 and np.isfinite(first["final_eval_mean"])
    meta = read_meta(run_dir / "checkpoints" / "latest")  # single frames, flickering: replayed by evaluate
    assert meta["env_options"] == {"frame_stack": 1, "sticky": 0.0, "flicker": 0.5}
    result = script("evaluate")([str(run_dir), "--episodes", "2", "--num-envs", "2"])
    assert result["episodes"] == 2 and -21 <= result["mean"] <= 21
    paths = script("watch")([str(run_dir), "--episodes", "1", "--out", str(tmp_path), "--live", "False"])
    assert len(paths) == 1 and read_mp4(paths[0]).shape[1:] == (210, 160, 3)
    resumed = script("train")([agent, "--resume", str(run_dir), "--frames", "1024"])
    assert resumed["global_step"] == 256


@pytest.mark.parametrize(
    "argv, groups, note",
    [
        (["ppo", "--video-every", "0"], 2, None),
        (["ppo", "--video-every", "0", "--num-envs", "6", "--env-groups", "4"], 1, "not a multiple of"),
        (["ppo"], 2, None),  # training videos come from EnvPool too
        (["ppo", "--video-every", "0", "--backend", "async", "--num-envs", "4"], 1, "only the pool backends"),
        (["a2c", "--video-every", "0"], 1, None),  # A2C's default: 1 group (no gain measured)
        (["ppo", "--video-every", "0", "--backend", "ale"], 2, None),  # ale-py's vector env has groups too
    ],
)
def test_env_groups_apply_where_envpool_steps_the_envs_and_a_note_says_why_not(argv, groups, note, tmp_path,
                                                                                 capsys):  # fmt: skip
    from pixelrl import cli

    spec, run, cfg = cli.parse_train([argv[0], "--env", "Pong", "--run-dir", str(tmp_path), *argv[1:]], "")
    trainer = training.Trainer(spec, run, cfg)
    env = trainer._make_env(0)
    env.close()
    assert envs.num_groups(env) == groups
    if groups > 1 and run.video_every != 0:  # EnvPool films env 0 itself
        assert env.unwrapped.video is not None
    err = capsys.readouterr().err
    assert (note in err) if note else "note:" not in err
