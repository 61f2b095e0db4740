"""scripts/sweep.py: a grid of our own runs as Ray Tune trials. The tests marked `ray` start a local Ray with
2 CPUs (`make test-ray`, which installs the extra); the others need no Ray."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents import ppo
from pixelrl import sweep, training
from pixelrl.checkpoint import read_meta
from pixelrl.training import RunConfig, holds_budget, train_to_budget

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"agents": "pp"}, "unknown agent 'pp'"),
        ({"games": "Pongg"}, "unknown game 'Pongg'"),
        ({"games": "CartPole-v1", "preset": "fast"}, "--preset fast is for atari games, not CartPole-v1"),
        ({"agents": " , "}, "name at least one agent"),
    ],
)
def test_a_bad_grid_is_refused_in_one_line_before_ray_starts(options, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        sweep.run_sweep(sweep.SweepOptions(out=tmp_path, **options))
    assert "ray" not in sys.modules or not sys.modules["ray"].is_initialized()


def test_the_grid_is_agents_by_games_by_seeds_with_each_presets_budget():
    trials = sweep.grid(sweep.SweepOptions(agents="ppo,dqn", games="Pong,CartPole-v1", seeds=2))
    names = [f"{a}-{g}-s{s}" for a in ("ppo", "dqn") for g in ("Pong", "CartPole-v1") for s in (0, 1)]
    assert [t.name for t in trials] == names
    assert {(t.agent, t.preset, t.frames) for t in trials if t.game == "CartPole-v1"} == {
        ("ppo", "classic", ppo.PRESETS["classic"].frames), ("dqn", "classic", 50_000)}  # fmt: skip
    assert {t.frames for t in sweep.grid(sweep.SweepOptions(frames=1234))} == {1234}


def test_a_folder_holding_another_sweep_is_refused(tmp_path):
    first = sweep.sweep_config(sweep.SweepOptions(), sweep.grid(sweep.SweepOptions()))
    sweep.check_same_sweep(tmp_path, first)
    sweep.check_same_sweep(tmp_path, first)  # the same sweep continues
    other = sweep.sweep_config(sweep.SweepOptions(seeds=2), sweep.grid(sweep.SweepOptions(seeds=2)))
    with pytest.raises(ValueError, match="holds another sweep"):
        sweep.check_same_sweep(tmp_path, other)


class FakeTune:
    """What a trial uses of ray.tune: `report` (recorded) and `Checkpoint.from_directory` (a snapshot of the
    folder's files, since the trial deletes the folder after reporting)."""

    def __init__(self):
        self.reports = []
        outer = self

        class Checkpoint:
            @staticmethod
            def from_directory(folder):
                files = sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*") if p.is_file())
                outer.snapshot = {name: (Path(folder) / name).read_bytes() for name in files}
                return files

        self.Checkpoint = Checkpoint

    def report(self, metrics, checkpoint=None):
        self.reports.append((dict(metrics), checkpoint))


def cartpole_run(run_dir, frames=4096):
    cfg = dataclasses.replace(ppo.PRESETS["classic"], frames=frames)
    run = RunConfig(env="CartPole-v1", run_dir=run_dir, wandb="off", eval_episodes=2, progress=False,
                    eval_every=2048)  # fmt: skip
    return cfg, run


def test_a_trial_reports_its_rows_and_hands_tune_each_latest_checkpoint(tmp_path):
    tune = FakeTune()
    cfg, run = cartpole_run(tmp_path / "run")
    assert train_to_budget(ppo.SPEC, run, cfg, observer=sweep.TuneReporter(tune))
    metrics = [m for m, _ in tune.reports]
    assert any("losses/policy" in m and "episode_return_mean" in m for m in metrics)
    assert any("eval/mean_return" in m for m in metrics)
    handed = [c for _, c in tune.reports if c is not None]
    assert len(handed) >= 2  # at least an evaluation's checkpoint every 2048 frames
    assert all(c == ["checkpoints/latest.safetensors", "config.json", "metrics.jsonl"] for c in handed)
    latest = (run.run_dir / sweep.RESUME_FILES[2]).read_bytes()
    assert tune.snapshot["checkpoints/latest.safetensors"] == latest  # the last one handed is the last saved
    assert not train_to_budget(ppo.SPEC, run, cfg)  # the budget is reached: nothing more to train


def test_a_restarted_trial_takes_tunes_checkpoint_only_where_its_run_directory_is_missing_or_older(tmp_path):
    cfg, run = cartpole_run(tmp_path / "kept", frames=2048)
    train_to_budget(ppo.SPEC, run, cfg)
    kept = tmp_path / "kept"
    # another node: no run directory yet
    elsewhere = tmp_path / "elsewhere"
    sweep.restore_run_dir(elsewhere, kept)
    assert read_meta(elsewhere / sweep.RESUME_FILES[2])["step"] == 2048
    assert (elsewhere / "metrics.jsonl").read_text() == (kept / "metrics.jsonl").read_text()
    continued = dataclasses.replace(run, run_dir=elsewhere)
    assert train_to_budget(ppo.SPEC, continued, dataclasses.replace(cfg, frames=4096))
    assert json.loads((elsewhere / "config.json").read_text())["resumes"][0]["step"] == 2048
    # the run directory is ahead of what Tune kept: it stays as it is
    sweep.restore_run_dir(elsewhere, kept)
    assert read_meta(elsewhere / sweep.RESUME_FILES[2])["step"] == 4096
    sweep.restore_run_dir(elsewhere, None)  # no checkpoint yet: nothing to do


def test_nothing_but_the_sweep_imports_ray():
    code = ("import sys, runpy\n"
            "import agents, envs, nets, pixelrl.training, pixelrl.compare, pixelrl.sweep, pixelrl.cli\n"
            "assert 'ray' not in sys.modules, 'ray was imported'\n")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# ------------------------------------------------------------------------------------------ with Ray


def sweep_command(out):
    return [sys.executable, str(ROOT / "scripts" / "sweep.py"), "--agents", "ppo", "--games", "CartPole-v1",
            "--seeds", "3", "--frames", "4096", "--out", str(out), "--num-cpus", "2", "--cpus-per-trial", "2",
            "--eval-episodes", "2", "--episodes", "4", "--checkpoint-minutes", "0.05"]  # fmt: skip


@pytest.mark.ray
def test_a_sweep_stopped_with_ctrl_c_continues_without_rerunning_finished_trials(tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "sweep"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_DEDUP_LOGS": "0"}
    # Two CPUs and two per trial: one trial at a time. Stop once the second has started.
    first = subprocess.Popen(sweep_command(out), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, start_new_session=True)  # fmt: skip
    second_run = out / "runs" / "ppo-CartPole-v1-s1" / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while not second_run.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert first.poll() is None, first.stdout.read()
    first.send_signal(signal.SIGINT)
    output = first.communicate(timeout=120)[0]
    assert first.returncode == 1 and "run the same command again to continue it" in output, output
    finished = out / "runs" / "ppo-CartPole-v1-s0"
    assert read_meta(finished / sweep.RESUME_FILES[2])["frames"] >= 4096
    before = (finished / "metrics.jsonl").read_text()

    again = subprocess.run(sweep_command(out), env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "continuing the sweep" in again.stdout + again.stderr
    assert (finished / "metrics.jsonl").read_text() == before  # not rerun
    for seed in range(3):
        run_dir = out / "runs" / f"ppo-CartPole-v1-s{seed}"
        assert read_meta(run_dir / sweep.RESUME_FILES[2])["frames"] >= 4096
        steps = [json.loads(r)["global_step"] for r in (run_dir / "metrics.jsonl").read_text().splitlines()
                 if "losses/policy" in r]  # fmt: skip
        assert steps == sorted(set(steps))  # continued, not restarted: no step logged twice
    # every trial handed Tune its checkpoint, and the report covers the three runs
    kept = sorted((out / "tune" / sweep.EXPERIMENT).glob("ppo-CartPole-v1-s*/checkpoint_*/checkpoints"))
    assert len(kept) == 3
    report = json.loads((out / "report" / "eval.json").read_text())
    assert len(report["runs"]) == 3
    assert (out / "report" / "eval.md").stat().st_size > 0


def test_one_game_listed_twice_is_refused_and_aliases_keep_their_names():
    with pytest.raises(ValueError, match="lists one game twice"):
        sweep.grid(sweep.SweepOptions(games="Pong,pong"))
    with pytest.raises(ValueError, match="lists one game twice"):
        sweep.grid(sweep.SweepOptions(games="Pong,Pong"))
    names = {t.name for t in sweep.grid(sweep.SweepOptions(agents="ppo", games="CartPole-v1,CartPole-NoVel",
                                                           seeds=1))}  # fmt: skip
    assert names == {"ppo-CartPole-v1-s0", "ppo-CartPole-NoVel-s0"}


@pytest.mark.ray
def test_a_trial_of_an_actor_agent_reserves_a_bundle_for_each_of_its_actors():
    pytest.importorskip("ray")
    param = {"cpus_per_trial": 2, "gpus_per_trial": 0.5}
    for agent, bundles in (("ppo", [{"CPU": 2, "GPU": 0.5}]),
                           ("appo", [{"CPU": 2, "GPU": 0.5}, {"CPU": 1.0}, {"CPU": 1.0}])):  # fmt: skip
        trial = sweep.grid(sweep.SweepOptions(agents=agent, games="Pong", seeds=1))[0]
        factory = sweep.trial_resources({**param, "trial": dataclasses.asdict(trial)})
        assert factory.bundles == bundles


def test_a_budget_that_is_not_a_whole_number_of_steps_counts_as_reached(monkeypatch):
    """Atari runs take 4 frames a step: a budget of 1,000,002 frames ends at step 250,000 (1,000,000)."""
    monkeypatch.setattr(training, "read_meta", lambda path: {"step": 250_000, "frames": 1_000_000})
    assert holds_budget(Path("latest.safetensors"), 1_000_002)
    assert not holds_budget(Path("latest.safetensors"), 1_000_004)
