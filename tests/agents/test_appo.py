"""APPO (agents/appo.py): PPO's update on rollouts from Ray actors. The tests marked `ray` start a local Ray
(`make test-ray`); the others need no Ray."""

import importlib.util
import json
from importlib.util import find_spec

import pytest

from agents import appo, ppo
from agents.common import ConfigError


def test_appo_takes_ppos_presets_and_adds_its_actors():
    for name, cfg in ppo.PRESETS.items():
        own = {k: v for k, v in appo.PRESETS[name].__dict__.items() if k not in ("actors", "cpus_per_actor")}
        assert own == cfg.__dict__
    with pytest.raises(ConfigError, match="actors"):
        appo.Config(actors=0)


def test_only_the_first_actor_films_and_the_spaces_come_from_the_game(tmp_path, monkeypatch):
    # Building the description needs no Ray, only its presence: pretend it is installed where it is not.
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: name if name == "ray" else find_spec(name))
    env = appo.SPEC.make_env("CartPole-v1", 4, seed=0, video_dir=str(tmp_path), video_every=1)
    assert env.single_observation_space.shape == (4,) and env.single_action_space.n == 2
    assert env.actor_options(0) == {"video_dir": str(tmp_path), "video_every": 1}
    assert env.actor_options(1) == {}


@pytest.mark.ray
def test_appo_with_two_actors_learns_cartpole_and_resumes(tmp_path, script):
    pytest.importorskip("ray")
    run_dir = tmp_path / "appo"
    common = ["appo", "--env", "CartPole-v1", "--actors", "2", "--eval-episodes", "5", "--wandb", "off",
              "--no-progress"]  # fmt: skip
    summary = script("train")([*common, "--frames", "30000", "--run-dir", str(run_dir)])
    assert summary["best_eval_mean"] >= 200  # random play scores about 22
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    lags = [r["charts/policy_lag"] for r in rows if "charts/policy_lag" in r]
    assert lags and min(lags) >= 0 and max(lags) >= 1  # two actors: some rollouts acted with older weights
    resumed = script("train")(["appo", "--resume", str(run_dir), "--frames", "40000", "--no-progress"])
    assert resumed["global_step"] >= 40000
    steps = [json.loads(line)["global_step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()
             if "losses/policy" in line]  # fmt: skip
    assert steps == sorted(set(steps)) and steps[-1] >= 40000


def test_without_ray_the_actor_agents_say_how_to_get_it_in_one_line(monkeypatch, script, tmp_path):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "ray" else find_spec(name))
    for agent in ("appo", "apex"):
        with pytest.raises(
            SystemExit, match=r"error: this agent runs its envs on Ray actors: install the extra"
        ):
            script("train")(
                [agent, "--env", "CartPole-v1", "--run-dir", str(tmp_path / agent), "--wandb", "off"]
            )
