"""Stable-Baselines3 baselines through our command line: our env stack, our run layer, resume, and the
exported SB3 zip that loads only when this user's run wrote it."""

import json
import shutil

import numpy as np
import pytest
import stable_baselines3 as sb3

import envs
from agents.sb3 import make_vec_env
from envs.video import read_mp4
from pixelrl.checkpoint import load_checkpoint, read_meta
from pixelrl.evaluation import load_agent


def rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_sb3_steps_our_wrapper_stack_with_our_seeds():
    ours = envs.make("Breakout", 2, seed=3, backend="sync")
    theirs = make_vec_env("Breakout", 2, seed=3, backend="sync")
    obs, _ = ours.reset()
    assert np.array_equal(theirs.reset(), obs)  # (2, 4, 84, 84) uint8: same pixels, same seeds
    rng = np.random.default_rng(0)
    for _ in range(40):
        actions = rng.integers(0, 4, 2)
        obs, reward, terminated, truncated, _ = ours.step(actions)
        their_obs, their_reward, their_done, _ = theirs.step(actions)
        if (terminated | truncated).any():
            break  # past an episode end each library autoresets in its own way
        assert np.array_equal(their_obs, obs) and np.array_equal(their_reward, reward)
    ours.close(), theirs.close()


def test_sb3_refuses_the_pool_backends_in_one_line(script):
    with pytest.raises(ValueError, match="Stable-Baselines3 steps envs with its own vector env"):
        make_vec_env("Pong", 2, backend="envpool")
    with pytest.raises(SystemExit, match="^error: Stable-Baselines3 steps envs .* use --backend sync"):
        script("train")(["sb3-ppo", "--env", "Pong", "--backend", "envpool", "--wandb", "off"])


def test_sb3_ppo_learns_cartpole_and_resumes_where_it_stopped(tmp_path, script):
    run_dir = tmp_path / "sb3-ppo"
    common = ["--wandb", "off", "--no-progress", "--eval-episodes", "3"]
    script("train")(
        ["sb3-ppo", "--env", "CartPole-v1", "--frames", "10240", "--run-dir", str(run_dir), *common]
    )
    before = rows(run_dir)
    summary = script("train")(["sb3-ppo", "--resume", str(run_dir), "--frames", "20480", *common])
    after = rows(run_dir)[len(before) :]
    assert min(r["global_step"] for r in after) > 10240 and summary["global_step"] == 20480
    # The zoo's linear schedule continues over the new budget: lr = 1e-3 x (1 - step / 20480).
    lrs = [(r["global_step"], r["charts/learning_rate"]) for r in after if "charts/learning_rate" in r]
    assert lrs and all(lr == pytest.approx(1e-3 * (1 - step / 20480), abs=1e-9) for step, lr in lrs)
    # Adam's step count went on from the first run's: 80 rollouts x 20 epochs x 1 minibatch.
    state, meta = load_checkpoint(run_dir / "checkpoints" / "latest")
    assert meta["step"] == 20480
    assert all(int(s["step"]) == 80 * 20 for s in state["optimizer"]["state"].values())
    assert summary["best_eval_mean"] >= 150  # random play scores about 20


@pytest.fixture(scope="module")
def dqn_breakout(tmp_path_factory, script):
    run_dir = tmp_path_factory.mktemp("sb3") / "sb3-dqn-breakout"
    script("train")(["sb3-dqn", "--env", "Breakout", "--run-dir", str(run_dir), "--frames", "1600",
                     "--buffer-size", "500", "--learning-starts", "100", "--eval-episodes", "1",
                     "--eval-every", "800", "--video-every", "1", "--log-every", "50", "--backend", "sync",
                     "--wandb", "offline", "--no-progress"])  # fmt: skip
    return run_dir


def test_an_sb3_run_writes_the_run_directory_contract(dqn_breakout):
    run_dir = dqn_breakout
    config = json.loads((run_dir / "config.json").read_text())
    assert config["agent"] == "sb3-dqn" and config["agent_config"]["buffer_size"] == 500
    lines = rows(run_dir)
    games = [r for r in lines if "episode_return" in r]
    assert games and all(r["episode_length"] > 0 and r["episode_return"] >= 0 for r in games)
    assert any("losses/td_loss" in r for r in lines) and any("charts/epsilon" in r for r in lines)
    assert [r["frames"] for r in lines if "eval/mean_return" in r] == [800, 1600]
    assert read_meta(run_dir / "checkpoints" / "latest")["step"] == 400
    assert sorted((run_dir / "videos").glob("*.mp4")) and (run_dir / "curve.png").exists()
    assert list((run_dir / "wandb").glob("offline-run-*"))


def test_the_exported_zip_acts_as_the_checkpoint_does(dqn_breakout):
    obs = envs.make("Breakout", 3, seed=5, mode="eval", backend="sync").reset()[0]
    from_safetensors, _ = load_agent(dqn_breakout, "latest", "cpu")
    from_zip, meta = load_agent(dqn_breakout / "checkpoints" / "latest.sb3.zip", "latest", "cpu")
    assert meta["agent"] == "sb3-dqn"
    greedy = [a.model.policy.predict(obs, deterministic=True)[0] for a in (from_safetensors, from_zip)]
    assert np.array_equal(*greedy)


def test_a_changed_or_foreign_zip_is_refused_before_anything_is_unpickled(dqn_breakout, tmp_path, monkeypatch,
                                                                          script):  # fmt: skip
    def never(*args, **kwargs):
        raise AssertionError("an unverified zip reached SB3's load")

    monkeypatch.setattr(sb3.DQN, "load", never)
    copy = tmp_path / "copy"
    shutil.copytree(dqn_breakout, copy)
    zip_path = copy / "checkpoints" / "latest.sb3.zip"
    with zip_path.open("ab") as f:
        f.write(b"\0")  # one byte more: a zip that is no longer the one the run wrote
    with pytest.raises(ValueError, match="refusing to load .* signature does not match"):
        load_agent(zip_path, "latest", "cpu")
    with pytest.raises(SystemExit, match="^error: refusing to load"):
        script("evaluate")([str(zip_path), "--episodes", "1"])
    alone = tmp_path / "alone" / "model.zip"
    alone.parent.mkdir()
    shutil.copy(dqn_breakout / "checkpoints" / "latest.sb3.zip", alone)
    with pytest.raises(ValueError, match="no pixelrl checkpoint beside it"):
        load_agent(alone, "latest", "cpu")
    # The same run directory read by another user (another key) is not theirs to unpickle.
    monkeypatch.setenv("PIXELRL_KEY_FILE", str(tmp_path / "another-users-key"))
    with pytest.raises(ValueError, match="signature does not match"):
        load_agent(dqn_breakout / "checkpoints" / "latest.sb3.zip", "latest", "cpu")


def test_sb3_a2c_trains_and_logs_its_losses(tmp_path, script):
    run_dir = tmp_path / "sb3-a2c"
    argv = ["sb3-a2c", "--env", "CartPole-v1", "--frames", "2000", "--run-dir", str(run_dir),
            "--wandb", "off", "--no-progress", "--eval-episodes", "1", "--log-every", "40"]  # fmt: skip
    summary = script("train")(argv)
    assert summary["global_step"] >= 2000
    assert any("losses/value" in r and "losses/policy" in r for r in rows(run_dir))


def test_watch_films_an_sb3_run_as_it_films_ours(dqn_breakout, tmp_path, script):
    paths = script("watch")([str(dqn_breakout), "--episodes", "1", "--out", str(tmp_path), "--live", "False"])
    assert len(paths) == 1 and "score" in paths[0].name
    frames = read_mp4(paths[0])
    assert frames.shape[1:] == (210, 160, 3) and frames.std() > 10  # the game's colour screen, not a blank


def test_the_zip_bytes_that_were_checked_are_the_ones_loaded(dqn_breakout, tmp_path, monkeypatch):
    import pixelrl.evaluation as evaluation

    copy = tmp_path / "copy"
    shutil.copytree(dqn_breakout, copy)
    zip_path = copy / "checkpoints" / "latest.sb3.zip"
    verify = evaluation.verified_export

    def verify_then_swap(path):  # an attacker replacing the file right after the check
        checked = verify(path)
        zip_path.write_bytes(b"not the zip that was checked")
        return checked

    monkeypatch.setattr(evaluation, "verified_export", verify_then_swap)
    agent, _ = load_agent(zip_path, "latest", "cpu")  # loads the checked bytes, not the swapped file
    assert agent.num_actions == 4


def test_a_signing_key_others_can_read_or_of_the_wrong_size_is_refused(tmp_path, monkeypatch):
    from pixelrl.checkpoint import write_export

    key = tmp_path / "key"
    monkeypatch.setenv("PIXELRL_KEY_FILE", str(key))
    write_export(tmp_path / "a.zip", lambda buf: buf.write(b"zip"))  # makes the key: 32 bytes, mode 0600
    assert key.stat().st_size == 32 and key.stat().st_mode & 0o777 == 0o600
    key.chmod(0o644)
    with pytest.raises(ValueError, match="must be 32 bytes, yours, and readable by you only"):
        write_export(tmp_path / "b.zip", lambda buf: buf.write(b"zip"))
    key.chmod(0o600)
    key.write_bytes(b"short")
    with pytest.raises(ValueError, match="must be 32 bytes"):
        write_export(tmp_path / "c.zip", lambda buf: buf.write(b"zip"))
