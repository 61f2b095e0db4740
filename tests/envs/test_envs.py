"""Contracts of envs/: the wrapper stack on real and hand-made frames, make()'s names and options, the
backends' agreement, whole-game statistics and video."""

from __future__ import annotations

import json
import sys
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs.ale_backend import rom_id
from envs.atari import AtariOptions, MaxAndSkip, karpathy_frame
from envs.backends import ale_vector_available
from envs.envpool_backend import atari_kwargs

needs_envpool = pytest.mark.skipif(not envs.envpool_available(), reason="envpool not installed")
needs_ale_vector = pytest.mark.skipif(not ale_vector_available(), reason="ale-py has no vector env (< 0.11)")
POOLS = [pytest.param("envpool", marks=needs_envpool), pytest.param("ale", marks=needs_ale_vector)]
DETERMINISTIC = dict(sticky=0.0, noop_max=0)  # the same start and dynamics for every backend


def rollout(venv: gym.vector.VectorEnv, steps: int, seed: int = 0, reset_seed: int | None = None) -> list:
    """reset() then (obs, reward, terminated, truncated, info) of `steps` random actions from a fixed rng."""
    rng = np.random.default_rng(seed)
    out = [venv.reset(seed=reset_seed)]
    n = int(venv.single_action_space.n)
    for _ in range(steps):
        out.append(venv.step(rng.integers(0, n, venv.num_envs)))
    return out


# ------------------------------------------------------------------------------------------- wrappers


class FakeFrames(gym.Env):
    """Frame t is a 2x2 image whose pixel (t % 4) is 10 * t (others 0); reward t; ends after `length`."""

    observation_space = gym.spaces.Box(0, 255, (2, 2), np.uint8)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, length: int = 100) -> None:
        self.t, self.length = 0, length

    def frame(self) -> np.ndarray:
        f = np.zeros(4, np.uint8)
        f[self.t % 4] = 10 * self.t
        return f.reshape(2, 2)

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        return self.frame(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        return self.frame(), float(self.t), self.t >= self.length, False, {}


def test_max_and_skip_pools_the_last_two_frames_and_sums_rewards() -> None:
    env = MaxAndSkip(FakeFrames(), skip=4)
    env.reset()
    obs, reward, terminated, _, _ = env.step(0)  # frames 1..4: the max of frames 3 and 4
    np.testing.assert_array_equal(obs, [[40, 0], [0, 30]])
    assert reward == 1 + 2 + 3 + 4 and not terminated
    obs, reward, _, _, _ = env.step(0)  # frames 5..8: 7 at pixel 3, 8 at pixel 0
    np.testing.assert_array_equal(obs, [[80, 0], [0, 70]])
    assert reward == 5 + 6 + 7 + 8


def test_max_and_skip_stops_at_game_over() -> None:
    env = MaxAndSkip(FakeFrames(length=6), skip=4)
    env.reset()
    env.step(0)
    obs, reward, terminated, _, _ = env.step(0)  # frames 5, 6 then the game is over
    assert terminated and reward == 5 + 6
    np.testing.assert_array_equal(obs, [[0, 50], [60, 0]])


def test_check_env_on_the_single_wrapped_atari_env() -> None:
    env = envs.make_single("Pong")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "is different from the unwrapped version": intended here
        check_env(env, skip_render_check=True, skip_close_check=True)
    assert env.observation_space.shape == (4, 84, 84) and env.observation_space.dtype == np.uint8
    env.close()
    env.close()


def test_sticky_actions_are_on_by_default_and_nature_is_reachable() -> None:
    ale = envs.make_single("Pong").unwrapped.ale
    assert ale.getFloat("repeat_action_probability") == pytest.approx(0.25)
    assert envs.make_single("Pong", sticky=0.0).unwrapped.ale.getFloat("repeat_action_probability") == 0.0
    assert envs.make_single("Pong").unwrapped._frameskip == 1  # the emulator does not skip: we max-pool
    assert atari_kwargs(AtariOptions())["repeat_action_probability"] == 0.25  # and EnvPool is told


def test_frame_stack_shifts_by_one_frame_per_step() -> None:
    venv = envs.make("Pong", 2, backend="sync")
    steps = rollout(venv, 30)
    obs = [s[0] for s in steps]
    assert obs[0].shape == (2, 4, 84, 84) and obs[0].dtype == np.uint8
    assert (obs[0][:, 0] == obs[0][:, 3]).all()  # a reset fills the stack with its frame
    for prev, cur in zip(obs[1:-1], obs[2:], strict=True):
        np.testing.assert_array_equal(cur[:, :3], prev[:, 1:])
    # A Pong frame: the brown-gray background dominates, paddles and ball are brighter.
    frame = obs[-1][0, -1]
    values, counts = np.unique(frame, return_counts=True)
    assert counts.max() > 0.5 * frame.size and frame.max() > values[counts.argmax()]


def test_frame_stack_1_gives_one_channel() -> None:
    obs, _ = envs.make("Pong", 2, frame_stack=1, backend="sync").reset()
    assert obs.shape == (2, 1, 84, 84)
    obs, _ = envs.make("Pong", 1, frame_stack=None, backend="sync").reset()
    assert obs.shape == (1, 1, 84, 84)
    for backend in ("envpool", "ale"):
        if backend in envs.backends.candidates("atari", gym_only=False, video=False):
            assert envs.make("Pong", 2, frame_stack=1, backend=backend).reset()[0].shape == (2, 1, 84, 84)


def test_same_seed_same_observations_and_different_seed_differs() -> None:
    a = rollout(envs.make("Pong", 2, seed=3, backend="sync"), 40)
    b = rollout(envs.make("Pong", 2, seed=3, backend="sync"), 40)
    c = rollout(envs.make("Pong", 2, seed=4, backend="sync"), 40)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x[0], y[0])
    assert any(not np.array_equal(x[0], z[0]) for x, z in zip(a, c, strict=True))


# ----------------------------------------------------------------------------------- games, episodes


@pytest.mark.parametrize("backend", ["sync", *POOLS])
def test_breakout_life_loss_ends_the_episode_not_the_game(backend: str) -> None:
    venv = envs.make("Breakout", 1, mode="train", backend=backend, **DETERMINISTIC)
    venv.reset()
    rng = np.random.default_rng(0)
    terminations, games, lives_seen, after_done = 0, [], [], False
    for _ in range(2000):
        obs, reward, terminated, truncated, info = venv.step(rng.integers(0, 4, 1))
        lives_seen.append(int(info["lives"][0]))
        if after_done:  # the continuation after a life loss keeps the game: lives are not back to 5
            assert reward[0] == 0.0 and (lives_seen[-1] < 5 or games)
        after_done = bool(terminated[0] or truncated[0])
        terminations += int(terminated[0])
        games += envs.finished_episodes(info)
        if games:
            break
    assert terminations == 5, "4 life losses and the game over each end a training episode"
    assert len(games) == 1 and games[0][0] == 0
    assert sorted(set(lives_seen), reverse=True) == [5, 4, 3, 2, 1, 0]
    assert games[0][2] == len(lives_seen)  # the length counts every agent step of the whole game


@pytest.mark.parametrize("backend", ["sync", *POOLS])
def test_eval_mode_ends_episodes_at_game_over_only(backend: str) -> None:
    venv = envs.make("Breakout", 1, mode="eval", backend=backend, **DETERMINISTIC)
    steps = rollout(venv, 400)
    ends = [i for i, s in enumerate(steps[1:]) if s[2][0] or s[3][0]]
    games = [g for s in steps[1:] for g in envs.finished_episodes(s[4])]
    assert len(ends) == len(games) >= 1
    assert games[0][2] == ends[0] + 1


def test_reward_clipping_never_changes_the_reported_score() -> None:
    scores = {}
    for clip in (True, False):
        env = envs.make_single("SpaceInvaders", mode="train", clip_rewards=clip, max_frames=4 * 300)
        env.reset(seed=1)
        env.action_space.seed(1)
        rewards = []
        while True:
            _, reward, terminated, truncated, info = env.step(env.action_space.sample())
            rewards.append(reward)
            if "game_score" in info:
                scores[clip] = (info["game_score"], rewards)
                break
    assert scores[True][0] == scores[False][0] == sum(scores[False][1]) > 0
    assert set(scores[True][1]) <= {-1.0, 0.0, 1.0} and max(scores[False][1]) > 1  # invaders score 5..30


def test_frame_cap_truncates_the_whole_game() -> None:
    venv = envs.make("Pong", 1, max_frames=4 * 25, backend="sync")
    steps = rollout(venv, 26)
    assert [bool(s[3][0]) for s in steps[1:]].index(True) == 24
    assert envs.finished_episodes(steps[25][4])[0][2] == 25
    assert AtariOptions().max_steps == 27_000


@pytest.mark.parametrize("backend", ["sync", pytest.param("envpool", marks=needs_envpool)])
def test_classic_control_through_the_same_call(backend: str) -> None:
    venv = envs.make("CartPole-v1", 3, seed=0, backend=backend)
    steps = rollout(venv, 200)
    assert steps[0][0].shape == (3, 4) and steps[0][0].dtype == np.float32
    games = [g for s in steps[1:] for g in envs.finished_episodes(s[4])]
    assert games and all(score == length for _, score, length in games)  # +1 per step


# ---------------------------------------------------------------------------------------- names, options


def test_names_resolve_and_unknown_names_list_close_matches() -> None:
    assert envs.resolve("Pong").env_id == envs.resolve("ALE/Pong-v5").env_id == "ALE/Pong-v5"
    assert envs.resolve("space_invaders").env_id == "ALE/SpaceInvaders-v5"
    with pytest.raises(ValueError, match="Pong"):
        envs.make("Pnog")
    with pytest.raises(ValueError, match="Breakout"):
        envs.make("Breakot")
    with pytest.raises(ValueError, match="CartPole-v1"):
        envs.make("CartPol-v1")


def test_bad_arguments_name_the_problem_and_the_fix() -> None:
    with pytest.raises(ValueError, match="sticky"):  # the list of valid options
        envs.make("Pong", stickiness=0.1)
    with pytest.raises(ValueError, match="num_envs"):
        envs.make("Pong", 0)
    with pytest.raises(ValueError, match="mode='eval'"):
        envs.make("Pong", mode="test")
    with pytest.raises(ValueError, match="envpool"):
        envs.make("Pong", backend="gpu")
    with pytest.raises(ValueError, match="hide_velocity"):
        envs.make("CartPole-v1", sticky=0.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        envs.make("Pong", sticky=2.0)
    with pytest.raises(ValueError, match="groups=3 must be >= 1 and divide num_envs=4; use groups=1"):
        envs.make("Pong", 4, groups=3)


# ------------------------------------------------------------------------------- other preprocessings


def test_karpathy_frame_erases_background_and_binarises() -> None:
    rgb = np.zeros((210, 160, 3), np.uint8)
    rgb[..., 0] = 144  # background colour 1
    rgb[100:110, :, 0] = 109  # background colour 2
    rgb[50:60, 20:22, 0] = 213  # a paddle
    x = karpathy_frame(rgb)
    assert x.shape == (80, 80) and x.dtype == np.float32
    expected = np.zeros((80, 80), np.float32)
    expected[[(r - 35) // 2 for r in range(35, 195, 2) if 50 <= r < 60], 10] = 1.0  # every 2nd row
    np.testing.assert_array_equal(x, expected)


def test_karpathy_difference_frames_on_pong() -> None:
    venv = envs.make("Pong", 2, preprocess="karpathy", backend="sync")
    steps = rollout(venv, 60)
    assert steps[0][0].shape == (2, 6400) and steps[0][0].dtype == np.float32
    assert not steps[0][0].any()  # no motion at a reset
    moving = np.stack([s[0] for s in steps[1:]])
    assert set(np.unique(moving)) <= {-1.0, 0.0, 1.0} and (moving != 0).any()
    assert (moving != 0).mean() < 0.05  # only paddles and ball move


def test_flicker_blanks_whole_frames_with_probability_p() -> None:
    venv = envs.make("Pong", 1, flicker=0.5, frame_stack=1, backend="sync")
    frames = np.stack([s[0][0, 0] for s in rollout(venv, 300)])
    blank = ~frames.reshape(len(frames), -1).any(axis=1)
    assert 0.4 < blank.mean() < 0.6
    assert (frames[~blank].reshape((~blank).sum(), -1) > 0).mean(axis=1).min() > 0.5  # others are full


def test_hide_velocity_keeps_position_and_angle() -> None:
    full = rollout(envs.make("CartPole-v1", 2, seed=5), 20)
    hidden = rollout(envs.make("CartPole-v1", 2, seed=5, hide_velocity=True), 20)
    alias = rollout(envs.make("cartpole-novel", 2, seed=5), 20)  # the short name, any case
    for f, h, a in zip(full, hidden, alias, strict=True):
        assert h[0].shape == (2, 2)
        np.testing.assert_array_equal(h[0], f[0][:, [0, 2]])
        np.testing.assert_array_equal(a[0], h[0])


# ------------------------------------------------------------------------------------ episode boundary

BACKENDS = ["sync", "async", pytest.param("envpool", marks=needs_envpool)]
ATARI_BACKENDS = [*BACKENDS, pytest.param("ale", marks=needs_ale_vector)]  # ale runs Atari only


def firsts(steps: list) -> np.ndarray:
    """(len(steps), N) bool: the first-of-episode flags of reset() (row 0) and of every step after it."""
    return np.stack([envs.first_of_episode(s[-1]) for s in steps])


def assert_first_after_each_end(steps: list) -> np.ndarray:
    """The flag of dm_env: all True after reset(), False at the first step, then True exactly on the step
    after a terminated or truncated one (NEXT_STEP's reset step, reward 0). Returns the flags."""
    flags = firsts(steps)
    assert flags.dtype == bool and flags[0].all() and not flags[1].any()
    ended = np.stack([s[2] | s[3] for s in steps[1:]])  # (steps, N)
    np.testing.assert_array_equal(flags[2:], ended[:-1])
    rewards = np.stack([s[1] for s in steps[1:]])
    assert (rewards[flags[1:]] == 0).all()
    return flags


@pytest.mark.parametrize("backend", BACKENDS)
def test_first_of_episode_after_reset_terminations_and_truncations(backend: str) -> None:
    cartpole = envs.make("CartPole-v1", 3, seed=0, backend=backend)
    steps = rollout(cartpole, 120)
    flags = assert_first_after_each_end(steps)
    assert any(s[2].any() for s in steps[1:]) and flags[1:].any()  # episodes terminated in the run
    assert flags[1:].mean() < 0.2  # False mid-episode
    rewards = np.stack([s[1] for s in steps[1:]])
    np.testing.assert_array_equal(rewards, (~flags[1:]).astype(np.float32))  # every real step pays 1
    obs, info = cartpole.reset()  # a reset in mid-episode starts every env's episode again
    assert envs.first_of_episode(info).all()
    assert not envs.first_of_episode(cartpole.step(np.zeros(3, np.int64))[-1]).any()
    cartpole.close()


@pytest.mark.parametrize("backend", ATARI_BACKENDS)
def test_first_of_episode_after_the_frame_cap(backend: str) -> None:
    capped = envs.make("Pong", 2, max_frames=4 * 10, backend=backend)  # a game of 10 agent steps
    steps = rollout(capped, 23)
    capped.close()
    flags = assert_first_after_each_end(steps)
    assert [t for t in range(1, 24) if steps[t][3].all()] == [10, 21]  # truncated, never terminated
    assert [t for t in range(1, 24) if flags[t].any()] == [11, 22] and flags[1:].all(axis=1).sum() == 2


@pytest.mark.parametrize("backend", ATARI_BACKENDS)
def test_first_of_episode_at_life_loss_continuations_in_training_only(backend: str) -> None:
    """Breakout, one whole game: in train mode a life loss ends the episode, so the continuation step that
    follows it (same game, fewer lives, reward 0) starts the next one; in eval mode only the game's end."""
    for mode, expected_starts in (("train", 5), ("eval", 1)):
        venv = envs.make("Breakout", 1, mode=mode, backend=backend, **DETERMINISTIC)
        rng = np.random.default_rng(0)
        steps = [venv.reset()]
        while len(steps) < 3000 and not (len(steps) > 2 and envs.finished_episodes(steps[-2][4])):
            steps.append(venv.step(rng.integers(0, 4, 1)))  # up to the step after the game's end
        venv.close()
        flags = assert_first_after_each_end(steps)
        starts = [t for t in range(1, len(steps)) if flags[t, 0]]
        assert len(starts) == expected_starts and starts[-1] == len(steps) - 1  # the last: a new game
        for t in starts[:-1]:  # life-loss continuations: the same game goes on with the lives left
            assert 0 < steps[t][4]["lives"][0] < 5 and steps[t][4]["lives"][0] == steps[t - 1][4]["lives"][0]


def test_partial_reset_marks_only_the_envs_reset() -> None:
    venv = envs.make("CartPole-v1", 3, seed=0, backend="sync")
    venv.reset()
    venv.step(np.zeros(3, np.int64))
    _, info = venv.reset(options={"reset_mask": np.array([False, True, False])})
    np.testing.assert_array_equal(envs.first_of_episode(info), [False, True, False])
    assert not envs.first_of_episode(venv.step(np.zeros(3, np.int64))[-1]).any()
    with pytest.raises(KeyError, match="envs.make"):
        envs.first_of_episode({})
    venv.close()


@pytest.mark.parametrize("backend", POOLS)
def test_pool_groups_received_apart_flag_the_same_episode_starts(backend: str) -> None:
    """recv(group) reports its group's flags: stepping two groups apart gives, step by step, the flags
    (and frames) of the same envs stepped as one pool, life-loss continuations and new games included."""
    together = envs.make("Breakout", 4, seed=2, backend=backend)
    grouped = envs.make("Breakout", 4, seed=2, backend=backend, groups=2)
    (_, info_t), (_, info_g) = together.reset(), grouped.reset()
    np.testing.assert_array_equal(envs.first_of_episode(info_t), envs.first_of_episode(info_g))
    rng, starts = np.random.default_rng(1), 0
    for _ in range(200):
        actions = rng.integers(0, 4, 4)
        obs_t, *_, info_t = together.step(actions)
        grouped.send(actions[2:], 1)
        grouped.send(actions[:2], 0)
        second, first = grouped.recv(1), grouped.recv(0)
        for part, sl in ((first, slice(0, 2)), (second, slice(2, 4))):
            assert envs.first_of_episode(part[-1]).shape == (2,)
            np.testing.assert_array_equal(envs.first_of_episode(part[-1]), envs.first_of_episode(info_t)[sl])
            np.testing.assert_array_equal(part[0], obs_t[sl])
        starts += int(envs.first_of_episode(info_t).sum())
    together.close()
    grouped.close()
    assert starts >= 4


# ---------------------------------------------------------------------------------------------- backends


@pytest.mark.parametrize("backend", POOLS)
def test_pools_and_gymnasium_agree_step_by_step(backend: str) -> None:
    """Same game, start and actions: identical frames (the ale backend's reset stacks included), rewards,
    episode ends, first-of-episode flags and game statistics (except the terminal frame of a game that ends
    mid-skip, which the pools do not max-pool)."""
    runs = [rollout(envs.make("Breakout", 2, backend=b, **DETERMINISTIC), 500) for b in ("sync", backend)]
    for step, (g, e) in enumerate(zip(*runs, strict=True)):
        game_over = step > 0 and bool(envs.finished_episodes(g[4]))
        if not game_over:
            np.testing.assert_array_equal(g[0], e[0])
        np.testing.assert_array_equal(envs.first_of_episode(g[-1]), envs.first_of_episode(e[-1]))
        if step:
            for k in (1, 2, 3):
                np.testing.assert_array_equal(g[k], e[k])
            assert envs.finished_episodes(g[4]) == envs.finished_episodes(e[4])
    assert sum(len(envs.finished_episodes(s[4])) for s in runs[0][1:]) >= 2
    starts = sum(int(envs.first_of_episode(s[4]).sum()) for s in runs[0][1:])
    assert starts > sum(len(envs.finished_episodes(s[4])) for s in runs[0][1:])  # life losses too


def test_sync_and_async_agree() -> None:
    a = rollout(envs.make("Pong", 2, seed=1, backend="sync"), 30)
    b = rollout(envs.make("Pong", 2, seed=1, backend="async"), 30)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x[0], y[0])


def test_everything_works_without_envpool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "envpool", None)  # `import envpool` now raises ImportError
    assert not envs.envpool_available()
    expected = "ale" if ale_vector_available() else "async"
    assert envs.choose_backend("atari", 4).backend == expected
    assert envs.choose_backend("atari", 4, video=True).backend == "async"  # ale cannot film
    obs, _ = envs.make("Pong", 1).reset()
    assert obs.shape == (1, 4, 84, 84)
    with pytest.raises(ValueError, match="import envpool"):
        envs.make("Pong", backend="envpool")


@needs_ale_vector
def test_auto_picks_the_fastest_measured_on_this_machine_among_those_that_can_do_the_job(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without measurements a rule picks (EnvPool for several Atari envs); once `benchmark.py envs` has
    recorded this machine's speeds, the fastest at the nearest measured env count wins; speeds recorded
    under another machine's key, or not covering every backend that could run, are not used; backends that
    cannot do what was asked are never chosen."""
    monkeypatch.setenv("PIXELRL_ENV_SPEEDS", str(tmp_path / "speeds.json"))
    monkeypatch.setattr(envs.backends, "envpool_available", lambda: True)  # choices only: EnvPool never built
    assert envs.measured_speeds() == {}
    assert envs.choose_backend("atari", 8) == ("envpool", envs.choose_backend("atari", 8).why)
    assert "no measurements" in envs.choose_backend("atari", 8).why
    assert envs.choose_backend("atari", 1).backend == envs.choose_backend("classic", 8).backend == "sync"

    speeds = {
        "sync": {1: 2500, 8: 2700},
        "async": {1: 1600, 8: 2000},
        "envpool": {1: 2200, 8: 5000},
        "ale": {1: 2300, 8: 9000},
    }
    rows = [{"backend": b, "num_envs": n, "sps": v} for b, by_n in speeds.items() for n, v in by_n.items()]
    path = envs.record_speeds(rows, "today")
    assert envs.measured_speeds() == speeds
    best = ("ale", "fastest measured on this machine (9,000 steps/s with 8 envs)")
    assert envs.choose_backend("atari", 8) == best
    assert envs.choose_backend("atari", 32).backend == "ale"  # the nearest measured count: 8
    assert envs.choose_backend("atari", 1).backend == "sync"  # at 1 env: 2,500 beats EnvPool's 2,200
    assert envs.choose_backend("atari", 8, video=True) == (
        "envpool",
        "fastest measured on this machine (5,000 steps/s with 8 envs); ale measured faster but cannot film",
    )
    assert envs.choose_backend("atari", 8, gym_only=True).backend == "sync"  # flicker: gymnasium only
    venv = envs.make("Pong", 8, max_frames=400)
    assert isinstance(venv.unwrapped, envs.ale_backend.AleVectorEnv)
    assert envs.backend_of(venv).startswith("ale (fastest measured")
    venv.close()

    partial = [r for r in rows if r["backend"] in ("sync", "async")]  # say, measured before EnvPool and ale
    path.unlink()
    envs.record_speeds(partial, "yesterday")
    assert envs.choose_backend("atari", 8).backend == "envpool"  # the rule, not async
    assert envs.choose_backend("atari", 8).why.startswith("envpool, ale not measured on this machine")
    path.unlink()
    envs.record_speeds([{"backend": b, "num_envs": 64 if b == "sync" else 8, "sps": 1} for b in speeds], "")
    assert envs.choose_backend("atari", 64).why.startswith("no env count at which every backend was measured")

    table = json.loads(path.read_text())
    path.write_text(json.dumps({"another CPU, 64 cores, x86_64": table[envs.machine_key()]}))
    assert envs.measured_speeds() == {} and envs.choose_backend("atari", 8).backend == "envpool"
    path.write_text("{half a fi")  # unreadable: as if never measured
    assert envs.choose_backend("atari", 8).backend == "envpool"


@pytest.mark.parametrize("backend", POOLS)
def test_gymnasium_only_options_refuse_pools_and_auto_picks_gymnasium(backend: str) -> None:
    with pytest.raises(ValueError, match="backend='gymnasium'"):
        envs.make("Pong", backend=backend, flicker=0.5)
    assert isinstance(envs.make("Pong", 1, preprocess="karpathy").unwrapped, gym.vector.SyncVectorEnv)


# ------------------------------------------------------------------------------------------------ video


def test_mp4_round_trip(tmp_path: Any) -> None:
    y, x = np.mgrid[0:210, 0:160]
    frames = [np.stack([(x + 8 * t) % 256, y, np.full_like(x, 128)], -1).astype(np.uint8) for t in range(12)]
    with envs.video.mp4_writer(tmp_path / "clip.mp4") as writer:
        for frame in frames:
            writer.append_data(frame)
    back = envs.video.read_mp4(tmp_path / "clip.mp4")
    assert back.shape == (12, 210, 160, 3) and back.dtype == np.uint8
    assert np.abs(back.astype(int) - np.stack(frames)).mean() < 3


def test_game_videos_stream_whole_games_and_drop_unfinished_ones(tmp_path: Any) -> None:
    videos, t = envs.video.GameVideos(tmp_path, every=2), iter(range(1000))
    screen = lambda: np.full((210, 160, 3), 10 * next(t) % 256, np.uint8)  # noqa: E731
    videos.new_game(screen)  # game 0: recorded, but reset before it ends
    for _ in range(3):
        videos.step(1.0, False, screen)
    videos.new_game(screen)  # game 1: not recorded (every 2nd game)
    videos.step(5.0, True, screen)
    videos.new_game(screen)  # game 2: recorded to the end
    videos.step(2.0, False, screen)
    videos.step(-1.0, True, screen)
    files = [p.name for p in tmp_path.glob("*.mp4")]
    assert files == ["episode-000002-score-1.mp4"] == [p.name for p in videos.paths]
    assert not any((tmp_path / ".partial").iterdir())
    frames = envs.video.read_mp4(videos.paths[0])  # screens 4, 5 and 6: none of game 1's
    assert frames.shape == (3, 210, 160, 3) and abs(int(frames[-1].mean()) - 10 * 6) <= 2
    (tmp_path / ".partial").mkdir(exist_ok=True)
    (tmp_path / ".partial" / "episode-000003.mp4").write_bytes(b"left by a killed run")
    resumed = envs.video.GameVideos(tmp_path, every=1)  # a resumed run goes on from game 3
    resumed.new_game(screen)
    resumed.step(0.0, True, screen)
    assert [p.name for p in resumed.paths] == ["episode-000003-score-0.mp4"]
    assert not any((tmp_path / ".partial").iterdir()) and len(list(tmp_path.glob("*.mp4"))) == 2


def test_eval_video_records_every_whole_game_in_colour(tmp_path: Any) -> None:
    venv = envs.make("Pong", 1, mode="eval", video_dir=str(tmp_path), max_frames=4 * 40)
    steps = rollout(venv, 81)  # two capped games of 40 steps
    venv.close()
    games = [g for s in steps[1:] for g in envs.finished_episodes(s[4])]
    files = sorted(p.name for p in tmp_path.glob("*.mp4"))
    assert files == [f"episode-{i:06d}-score-{g[1]:g}.mp4" for i, g in enumerate(games)] and len(files) == 2
    video = envs.video.read_mp4(tmp_path / files[0])
    assert video.shape == (41, 210, 160, 3)  # the reset screen and one per step
    assert np.abs(video[..., 0].astype(np.int16) - video[..., 2]).mean() > 10  # colour, not gray
    assert AtariOptions(mode="eval").video_period == 1 and AtariOptions(mode="train").video_period == 100


@pytest.mark.parametrize("backend", ["sync", pytest.param("envpool", marks=needs_envpool)])
def test_classic_control_videos_film_whole_episodes_of_env_0(backend: str, tmp_path: Any) -> None:
    """CartPole is filmed like Atari: env 0's whole episodes, gymnasium's 400x600 colour render (EnvPool
    renders it too), the reset screen and one frame per step, the return in the file name. CartPole-NoVel
    hides the velocities from the agent, not from the film."""
    venv = envs.make("CartPole-NoVel", 2, mode="eval", backend=backend, video_dir=str(tmp_path))
    assert venv.single_observation_space.shape == (2,)
    rng, games = np.random.default_rng(0), []
    venv.reset()
    while sum(g[0] == 0 for g in games) < 3:
        games += envs.finished_episodes(venv.step(rng.integers(0, 2, 2))[4])
    venv.close()
    games = [g for g in games if g[0] == 0]  # env 1 films nothing
    files = sorted(p.name for p in tmp_path.glob("*.mp4"))
    assert files == [f"episode-{i:06d}-score-{g[1]:g}.mp4" for i, g in enumerate(games)]
    for name, (_, score, length) in zip(files, games, strict=True):
        video = envs.video.read_mp4(tmp_path / name)
        assert score == length and video.shape == (length + 1, 400, 600, 3)
        pixels = video.reshape(len(video), -1, 3)  # (T, H*W, 3)
        assert (pixels != pixels[:, :1]).any(axis=(1, 2)).all()  # a drawing: not one colour in any frame
        assert (video[..., 0].astype(np.int16) - video[..., 2] > 50).any()  # the pole's colour, not gray
        assert (np.abs(video[1:].astype(np.int16) - video[0]).sum(-1) > 100).sum() > 100  # the pole falls


def test_classic_control_renders_only_to_film(tmp_path: Any) -> None:
    """Only env 0 with a video folder renders (training without video is as fast as before); training
    films 1 episode in 100, evaluation every one, as for Atari."""
    assert envs.make_single("CartPole-v1").render_mode is None
    assert envs.make_single("CartPole-v1", env_index=1, video_dir=str(tmp_path)).render_mode is None
    trained = envs.make_single("CartPole-v1", video_dir=str(tmp_path))
    assert trained.render_mode == "rgb_array" and trained.videos.every == 100
    assert envs.make_single("CartPole-v1", mode="eval", video_dir=str(tmp_path)).videos.every == 1
    assert envs.make_single("CartPole-v1", video_dir=str(tmp_path), video_every=7).videos.every == 7
    with pytest.raises(ValueError, match="video_every=0 must be >= 1"):
        envs.make("CartPole-v1", video_dir=str(tmp_path), video_every=0)
    with pytest.raises(ValueError, match="hide_velocity, video_dir, video_every"):
        envs.make("CartPole-v1", frame_skip=2)


@needs_envpool
@pytest.mark.parametrize("groups", [1, 2])
def test_envpool_records_the_same_training_videos_as_gymnasium(groups: int, tmp_path: Any) -> None:
    """Env 0's whole games (not lives) from EnvPool's renderer (reset(seed) rebuilds the pools):
    the same files, named by game and raw score, with the same screens as the gymnasium stack's recorder;
    the unfinished game at close leaves nothing. auto keeps EnvPool when video is on."""
    folders = {b: tmp_path / b for b in ("sync", "envpool")}
    for backend, folder in folders.items():
        options = dict(video_dir=str(folder), video_every=1, **DETERMINISTIC)
        venv = envs.make(
            "Breakout", 2, backend=backend, groups=groups if backend == "envpool" else 1, **options
        )
        steps = rollout(venv, 500, reset_seed=0)
        venv.close()
        assert not any((folder / ".partial").iterdir())  # the game in progress at close was dropped
    games = [g for s in steps[1:] for g in envs.finished_episodes(s[4]) if g[0] == 0]  # env 0's games
    files = sorted(p.name for p in folders["envpool"].glob("*.mp4"))
    assert files == [f"episode-{i:06d}-score-{g[1]:g}.mp4" for i, g in enumerate(games)] and files
    assert files == sorted(p.name for p in folders["sync"].glob("*.mp4"))
    for name in files:
        pooled, plain = (envs.video.read_mp4(folder / name) for folder in folders.values())
        assert pooled.shape == plain.shape and pooled.shape[1:] == (210, 160, 3)
        assert pooled.shape[0] == games[int(name[8:14])][2] + 1  # the reset screen and one per step
        np.testing.assert_array_equal(pooled, plain)
    venv = envs.make("Pong", 2, video_dir=str(tmp_path / "auto"))
    assert isinstance(venv.unwrapped, envs.envpool_backend.EnvPoolVectorEnv)
    venv.close()


@pytest.mark.parametrize("backend", POOLS)
def test_pool_same_seed_same_observations_new_seed_differs(backend: str) -> None:
    venv = envs.make("Pong", 2, seed=0, backend=backend)
    first = np.stack([s[0] for s in rollout(venv, 60)])  # make()'s seed
    again = np.stack([s[0] for s in rollout(venv, 60, reset_seed=0)])  # reseeding repeats the games
    other = np.stack([s[0] for s in rollout(venv, 60, reset_seed=7)])
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("backend", POOLS)
def test_pool_groups_play_the_same_games_and_step_apart(backend: str) -> None:
    """Env i is seeded seed + i in any grouping, so `step` on two groups returns exactly what one pool
    returns (frames, rewards, life losses, game statistics); `send`/`recv` step one group on its own."""
    together = rollout(envs.make("Breakout", 4, seed=2, backend=backend), 400)
    grouped_env = envs.make("Breakout", 4, seed=2, backend=backend, groups=2)
    grouped = rollout(grouped_env, 400)
    for a, b in zip(together, grouped, strict=True):
        for x, y in zip(a[:-1], b[:-1], strict=True):
            np.testing.assert_array_equal(x, y)
        assert a[-1].keys() == b[-1].keys()
        for key in a[-1]:
            np.testing.assert_array_equal(a[-1][key], b[-1][key])
    assert any(s[2].any() for s in together[1:])  # life losses were compared too

    reference = envs.make("Breakout", 4, seed=5, backend=backend)
    grouped_env.reset(seed=5)
    reference.reset()
    actions = np.array([1, 1, 3, 2])
    grouped_env.send(actions[2:], group=1)
    with pytest.raises(RuntimeError, match="recv"):
        grouped_env.send(actions[2:], group=1)
    grouped_env.send(actions[:2], group=0)
    second, first = grouped_env.recv(1), grouped_env.recv(0)  # in any order
    expected = reference.step(actions)
    np.testing.assert_array_equal(first[0], expected[0][:2])
    np.testing.assert_array_equal(second[0], expected[0][2:])
    np.testing.assert_array_equal(second[1], expected[1][2:])
    with pytest.raises(RuntimeError, match=r"recv\(0\): group 0 is not stepping; send\(actions, 0\) first"):
        grouped_env.recv(0)
    with pytest.raises(ValueError, match="group 2 does not exist"):
        grouped_env.send(actions[:2], group=2)
    grouped_env.send(actions[:2], group=0)
    grouped_env.close()  # with group 0 still stepping: collected first, no hang
    reference.close()


# ------------------------------------------------------------------------------------ the ale backend


@needs_ale_vector
def test_ale_backend_scores_raw_whole_games_under_clipped_training_rewards() -> None:
    """SpaceInvaders (invaders score 5..30): the training rewards are clipped, the game statistics are the
    raw score, and both equal the gymnasium stack's on the same game, game for game."""
    options = dict(mode="train", max_frames=4 * 300, **DETERMINISTIC)
    runs = {b: rollout(envs.make("SpaceInvaders", 2, backend=b, **options), 620) for b in ("sync", "ale")}
    games = {b: [g for st in steps[1:] for g in envs.finished_episodes(st[4])] for b, steps in runs.items()}
    assert games["ale"] == games["sync"] and len(games["ale"]) >= 2
    rewards = np.concatenate([st[1] for st in runs["ale"][1:]])
    assert set(np.unique(rewards)) <= {-1.0, 0.0, 1.0}
    assert max(score for _, score, _ in games["ale"]) > 30  # more than the clipped rewards could add up to


@needs_ale_vector
def test_ale_backend_starts_games_after_random_no_ops() -> None:
    """The default protocol's random starts: ale-py's own reset counter shows 1..noop_max emulator frames
    before the first observation (FIRE first on ale-py, see envs/ale_backend.py), spread over the range."""
    venv = envs.make("Pong", 8, seed=0, backend="ale", max_frames=None)
    # The pool's own info: frames played before the first step, over 16 resets with new seeds (128 games).
    starts = np.concatenate([venv.pools[0].reset(seed=8 * k)[1]["episode_frame_number"] for k in range(16)])
    assert starts.min() >= 1 and starts.max() <= 30 and len(set(starts)) >= 20
    venv.close()
    no_noops = envs.make("Pong", 2, noop_max=0, backend="ale")  # FIRE only, as the gymnasium stack
    assert no_noops.pools[0].reset(seed=0)[1]["frame_number"].tolist() == [1, 1]


def test_ale_backend_names_every_game_and_refuses_what_it_cannot_do(tmp_path: Any) -> None:
    """Every ALE v5 game maps to an ale-py ROM id; video, classic control and a missing ale-py vector env
    are refused with the fix."""
    from ale_py import roms

    atari = {spec.env_id for spec in envs.valid_names().values() if spec.kind == "atari"}
    assert {rom_id(env_id) for env_id in atari} <= set(roms.get_all_rom_ids()) and len(atari) > 100
    assert rom_id("ALE/SpaceInvaders-v5") == "space_invaders" and rom_id("ALE/UpNDown-v5") == "up_n_down"
    with pytest.raises(ValueError, match="cannot record video.*--video-every 0"):
        envs.make("Pong", backend="ale", video_dir=str(tmp_path))
    with pytest.raises(ValueError, match="Atari games only"):
        envs.make("CartPole-v1", backend="ale")
