"""Stops that must not lose work: Ctrl-C or a kill to the whole process group on every backend, a second
signal while stopping, and a diverging run that must not overwrite its last good checkpoint."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import pixelrl.training as training
from envs import envpool_available
from pixelrl.checkpoint import load_checkpoint, read_meta

ROOT = Path(__file__).resolve().parents[2]
# As a terminal runs it: Python's own Ctrl-C handler, even where the test runner ignores SIGINT.
LAUNCH = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
          "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")  # fmt: skip


def start(run_dir: Path | None, *args: str) -> subprocess.Popen:
    """train.py with `args` in its own process group; run_dir None: the args say where (--resume)."""
    where = [] if run_dir is None else ["--run-dir", str(run_dir)]
    cmd = [sys.executable, "-c", LAUNCH, "scripts/train.py", *args, *where, "--wandb", "off", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)


def wait_for_updates(run_dir: Path, updates: int, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        path = run_dir / "metrics.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        if sum('"losses/' in line for line in lines) >= updates:
            return
        time.sleep(0.2)
    raise AssertionError(f"no {updates} updates within {timeout} s")


@pytest.mark.parametrize("backend", ["sync", "async", "envpool", "ale"])
def test_ctrl_c_to_the_process_group_saves_the_last_update_on_every_backend(backend, tmp_path):
    if backend == "envpool" and not envpool_available():
        pytest.skip("EnvPool is not installed")
    run_dir = tmp_path / backend
    # PPO's CartPole preset: 8 envs x 32 steps per update. Async workers get the signal too. The ale
    # backend runs Atari only: Pong with 8 envs x 32 steps as well, and its emulator threads.
    game = (
        ["--env", "Pong", "--num-steps", "32", "--video-every", "0"]
        if backend == "ale"
        else ["--env", "CartPole-v1"]
    )
    proc = start(run_dir, "ppo", *game, "--backend", backend, "--frames", "10000000")
    wait_for_updates(run_dir, 1 if backend == "ale" else 3)
    time.sleep(0.3)  # land anywhere: inside a rollout or an update
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Error" not in err, err
    assert f"--resume {run_dir}" in err and err.count("Continue with") == 1
    step = read_meta(run_dir / "checkpoints" / "latest")["step"]
    assert step > 0 and step % (8 * 32) == 0  # the last completed update, never part of a rollout


def test_a_second_signal_while_stopping_changes_nothing(tmp_path):
    run_dir = tmp_path / "twice"
    proc = start(run_dir, "dqn", "--env", "CartPole-v1", "--frames", "10000000", "--learning-starts", "200")
    wait_for_updates(run_dir, 1)
    os.killpg(proc.pid, signal.SIGINT)
    os.killpg(proc.pid, signal.SIGTERM)  # e.g. `timeout` following a Ctrl-C
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert err.count("Continue with") == 1
    assert read_meta(run_dir / "checkpoints" / "latest")["step"] > 0


def test_a_diverging_run_stops_with_one_line_and_keeps_its_last_good_checkpoint(
    tmp_path, monkeypatch, script
):
    run_dir = tmp_path / "diverged"
    first = ["dqn", "--env", "CartPole-v1", "--run-dir", str(run_dir), "--wandb", "off", "--no-progress",
             "--frames", "2000", "--learning-starts", "500", "--eval-episodes", "1"]  # fmt: skip
    script("train")(first)
    good, _ = load_checkpoint(run_dir / "checkpoints" / "latest")
    loop = training.Trainer.loop

    def loop_with_a_huge_lr(self, s):  # a resume keeps the saved lr, so set it on the optimiser
        for group in s.agent.optimizer.param_groups:
            group["lr"] = 1e6
        return loop(self, s)

    monkeypatch.setattr(training.Trainer, "loop", loop_with_a_huge_lr)
    message = (
        r"^error: training diverged at step [\d,]+: .*nan.*; the last good checkpoint \(step 2,000\) is kept"
    )
    with pytest.raises(SystemExit, match=message):
        script("train")(["dqn", "--resume", str(run_dir), "--frames", "200000", "--no-progress"])
    after, meta = load_checkpoint(run_dir / "checkpoints" / "latest")
    assert meta["step"] == 2000  # not overwritten by the diverged network
    for key, tensor in after["q_net"].items():
        assert np.isfinite(tensor.numpy()).all() and (tensor == good["q_net"][key]).all()


def test_sigkill_loses_at_most_the_last_checkpoint_interval(tmp_path, script):
    run_dir = tmp_path / "killed-9"
    proc = start(run_dir, "dqn", "--env", "CartPole-v1", "--frames", "10000000", "--learning-starts", "200",
                 "--checkpoint-minutes", "0.01")  # fmt: skip
    latest = run_dir / "checkpoints" / "latest.safetensors"
    deadline = time.time() + 90
    while time.time() < deadline and not latest.exists():
        time.sleep(0.2)
    time.sleep(2)  # a few more checkpoints: the kill may land in the middle of writing one
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    step = read_meta(latest)["step"]  # whole: written to a temp file, then renamed
    summary = script("train")(
        ["dqn", "--resume", str(run_dir), "--frames", str(step * 1 + 400), "--no-progress"]
    )
    assert summary["global_step"] >= step + 400


def flat_tensors(state: object, prefix: str = "") -> dict[str, torch.Tensor]:
    if isinstance(state, torch.Tensor):
        return {prefix: state}
    items = state.items() if isinstance(state, dict) else enumerate(state) if isinstance(state, list) else ()
    return {k: v for key, value in items for k, v in flat_tensors(value, f"{prefix}/{key}").items()}


def learned(run_dir: Path) -> tuple[list[dict], dict]:
    """What a run learned and played: its metrics rows less the wall-clock fields, and its final tensors."""
    clock = {"time", "sps", "perf/sps"}
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    rows = [{k: v for k, v in json.loads(line).items() if k not in clock} for line in lines]
    return rows, flat_tensors(load_checkpoint(run_dir / "checkpoints" / "latest")[0])


@pytest.mark.parametrize(
    ("agent", "options"),
    [
        ("ppo", ["--env", "CartPole-v1", "--frames", "8000"]),  # stops inside rollouts: the last update's
        ("dqn", ["--env", "CartPole-v1", "--frames", "4000", "--learning-starts", "500", "--save-replay"]),
        # and the LSTM's memory: 20 s more, so with the opt-in checks (-m benchmark): make test stays short
        pytest.param(
            "ppo-lstm", ["--env", "CartPole-NoVel", "--frames", "6000"], marks=pytest.mark.benchmark
        ),
    ],
)
def test_a_run_killed_at_random_points_and_resumed_is_bit_identical_to_one_never_stopped(
    agent, options, tmp_path
):
    """Classic control: the env states, every random stream and the agent's memory are saved with each
    checkpoint, so a run stopped by SIGKILL and then by Ctrl-C at random moments, and resumed after each,
    logs the same games and losses and ends with the same weights as a run never stopped."""
    args = [agent, *options, "--eval-episodes", "2", "--checkpoint-minutes", "0.002"]
    straight = tmp_path / "straight"
    never_stopped = start(straight, *args)  # beside the stopped one: one thread each, the same results
    cut, rng = tmp_path / "cut", random.Random(agent)
    latest = cut / "checkpoints" / "latest.safetensors"
    proc = start(cut, *args)
    for signum, code in ((signal.SIGKILL, -signal.SIGKILL), (signal.SIGINT, 130)):
        before = latest.stat().st_mtime_ns if latest.exists() else 0
        deadline = time.time() + 90
        while time.time() < deadline and (latest.stat().st_mtime_ns if latest.exists() else 0) == before:
            time.sleep(0.02)  # until this process has trained and saved: the stop lands in training
        time.sleep(rng.uniform(0.0, 0.5))
        os.killpg(proc.pid, signum)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == code, err  # stopped, not finished
        proc = start(None, agent, "--resume", str(cut))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and "Traceback" not in err, err
    _, err = never_stopped.communicate(timeout=300)
    assert never_stopped.returncode == 0, err
    (rows, tensors), (rows_cut, tensors_cut) = learned(straight), learned(cut)
    assert sum("episode_return" in r for r in rows) > 20 and any("losses/" in k for r in rows for k in r)
    assert rows_cut == rows
    assert tensors_cut.keys() == tensors.keys()
    for name, tensor in tensors.items():
        assert torch.equal(tensors_cut[name], tensor), name
