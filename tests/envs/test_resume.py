"""Saved env states: a restored env plays on exactly as the one it was saved from."""

from __future__ import annotations

import numpy as np
import pytest

import envs
from pixelrl.checkpoint import load_loop_state, save_checkpoint


def _play(env, actions):
    out = []
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        first = envs.first_of_episode(info).copy()
        out.append((obs.copy(), reward.copy(), terminated.copy(), truncated.copy(), first,
                    envs.finished_episodes(info)))  # fmt: skip
    return out


def _same(a, b):
    for x, y in zip(a, b, strict=True):
        for u, v in zip(x[:5], y[:5], strict=True):
            np.testing.assert_array_equal(u, v)
        assert x[5] == y[5]


@pytest.mark.parametrize(
    ("game", "options", "warmup", "after"),
    [("CartPole-v1", {}, 60, 600), ("CartPole-NoVel", {}, 30, 300), ("Pong", {"sticky": 0.0}, 40, 120)],
)
def test_a_restored_env_plays_on_as_the_saved_one(tmp_path, game, options, warmup, after):
    """Save mid-game (through a checkpoint file: tensors and JSON only), restore into an env made with
    another seed, and both give the same observations, rewards, episode ends and whole-game scores; with
    CartPole's short games the comparison crosses several episode ends and NEXT_STEP resets. Atari without
    sticky actions: ale-py's saved state lacks the previous action that a sticky action repeats."""
    rng = np.random.default_rng(0)
    original = envs.make(game, 2, seed=3, backend="sync", **options)
    actions = rng.integers(0, original.single_action_space.n, (warmup + after, 2))
    original.reset()
    _play(original, actions[:warmup])
    state = envs.env_state(original)
    assert state is not None
    save_checkpoint(tmp_path / "c", {}, {"agent": "x"}, loop={"env": state})
    state = load_loop_state(tmp_path / "c")["env"]
    resumed = envs.make(game, 2, seed=99, backend="sync", **options)
    envs.set_env_state(resumed, state)
    obs, info = resumed.reset(seed=5)
    assert envs.restored(info)
    np.testing.assert_array_equal(obs, original._obs)
    expected = _play(original, actions[warmup:])
    _same(_play(resumed, actions[warmup:]), expected)
    if game.startswith("CartPole"):  # the comparison did cross episode ends
        assert sum(len(step[5]) for step in expected) >= 2
    original.close()
    resumed.close()


def test_backends_that_cannot_save_say_so():
    env = envs.make("CartPole-v1", 2, backend="async")
    env.reset()
    assert envs.env_state(env) is None
    with pytest.raises(ValueError, match="cannot restore a saved state; use the sync backend"):
        envs.set_env_state(env, {})
    env.close()
