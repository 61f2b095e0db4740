"""Sequence replay (agents/sequence_replay.py): windows of consecutive steps that never reach past the write
head or into overwritten slots, masks that stop at episode starts, R2D2's stored states, n-step targets."""

import numpy as np
import pytest

from agents.sequence_replay import SequenceReplay, n_step_targets
from pixelrl.checkpoint import load_arrays, save_arrays


def test_n_step_targets_by_hand():
    """Column 0: the step from slot 2 terminates; slot 3 is the terminal observation, whose step is the
    reset step (reward 0, no transition). Column 1: the step from slot 1 is truncated; slot 2 is the final
    observation, its step the reset step."""
    g = 0.5
    rewards = np.array([[1, 10], [2, 20], [3, 0], [0, 40], [5, 50], [6, 60], [7, 70]], dtype=np.float32)
    terminated = np.zeros((7, 2), dtype=bool)
    terminated[2, 0] = True
    valid = np.ones((7, 2), dtype=bool)
    valid[3, 0] = valid[2, 1] = False
    returns, discounts, bootstrap = n_step_targets(rewards, terminated, valid, g, n_step=3, start=0, length=4)
    np.testing.assert_allclose(returns[:, 0], [1 + 2 * g + 3 * g**2, 2 + 3 * g, 3, 0])
    np.testing.assert_allclose(discounts[:, 0], [0, 0, 0, 0])  # terminated within the n steps / no transition
    np.testing.assert_allclose(returns[:, 1], [10 + 20 * g, 20, 0, 40 + 50 * g + 60 * g**2])
    np.testing.assert_allclose(discounts[:, 1], [g**2, g, 0, g**3])
    np.testing.assert_array_equal(bootstrap[:, 1], [2, 2, 2, 6])  # truncation: bootstrap from slot 2
    np.testing.assert_array_equal(bootstrap[[0, 1, 2], 0], [3, 3, 3])


STARTS = ({0, 9, 14, 40, 43, 90, 130}, {0, 25, 27, 70, 71, 120})  # episode starts of each env's stream
TRUNCATED = {(0, 14), (1, 120)}  # (env, start) whose previous episode was truncated, not terminated


def fake_stream(replay: SequenceReplay, steps: int, hidden: int = 3) -> None:
    """Steps two fake envs as gymnasium's NEXT_STEP autoreset does: obs of env e at stream position k is
    (k, e); before each episode start p, the step from p-2 ended the episode (terminated, or truncated) and
    the step from p-1 is the reset step (reward 0). Rewards are k + 1 elsewhere. The actor's state before
    position k is h = k + 0.5 * e, c = -h."""

    def state(k: int) -> tuple[np.ndarray, np.ndarray]:
        h = np.repeat((k + 0.5 * np.arange(2))[:, None], hidden, axis=1).astype(np.float32)
        return h, -h

    obs = lambda k: np.array([[k, 0], [k, 1]], dtype=np.float32)  # noqa: E731
    replay.reset(obs(0), state(0))
    for k in range(steps):
        first = np.array([k + 1 in STARTS[e] for e in range(2)])
        reset_step = first
        ends = np.array([k + 2 in STARTS[e] for e in range(2)])
        terminated = ends & np.array([(e, k + 2) not in TRUNCATED for e in range(2)])
        rewards = np.where(reset_step, 0.0, k + 1.0).astype(np.float32)
        replay.add(np.array([k % 3, (k + 1) % 3]), rewards, terminated, obs(k + 1), first, state(k + 1))


def make_replay(**overrides):
    settings = {"capacity": 2 * 48, "state_size": 3, "burn_in": 3, "seq_len": 6, "seq_stride": 4, "n_step": 2,
                "gamma": 0.9, "seed": 0} | overrides  # fmt: skip
    return SequenceReplay(settings.pop("capacity"), 2, (2,), np.float32, **settings)


@pytest.mark.parametrize("steps", [15, 47, 160])  # before, at and long after the ring wraps (48 per env)
def test_sampled_windows_are_consecutive_held_steps_masked_at_episode_starts_with_their_stored_states(steps):
    replay = make_replay()
    fake_stream(replay, steps)
    T, burn_in, L, n = replay.window, replay.burn_in, replay.seq_len, replay.n_step
    newest, per_env = steps, replay.per_env
    batch = replay.sample(400)
    for b in range(400):
        env = int(batch.obs[0, b, 1])
        start = int(batch.obs[0, b, 0])
        positions = start + np.arange(T)
        np.testing.assert_array_equal(batch.obs[:, b, 0], positions)  # consecutive steps of one env
        assert (batch.obs[:, b, 1] == env).all()
        assert start % replay.seq_stride == 0
        assert newest - per_env < start and positions[-1] <= newest  # held data only, up to the write head
        assert batch.h[0, b, 0] == start + 0.5 * env and batch.c[0, b, 0] == -(start + 0.5 * env)
        firsts = np.array([p in STARTS[env] for p in positions])
        np.testing.assert_array_equal(batch.first[:, b], firsts)
        for i in range(L):
            t = burn_in + i
            p = positions[t]
            transition = p + 1 not in STARTS[env] and p + 1 <= newest
            new_episode = firsts[burn_in + 1 : t + 1].any()  # an episode began after the learning part did
            assert batch.mask[i, b] == (transition and not new_episode)
            if not batch.mask[i, b]:
                continue
            assert batch.actions[i, b] == (p % 3 if env == 0 else (p + 1) % 3)
            # n-step return by hand from the stream's rules
            ret, disc, q = 0.0, 1.0, p
            for _ in range(n):
                ret += disc * (q + 1)
                disc *= replay.gamma
                if q + 2 in STARTS[env] and (env, q + 2) not in TRUNCATED:  # terminated at q
                    disc = 0.0
                    break
                q += 1
                if q + 1 in STARTS[env]:  # q is a final observation: bootstrap from it
                    break
            assert batch.returns[i, b] == pytest.approx(ret) and batch.discounts[i, b] == pytest.approx(disc)
            if disc:
                assert positions[batch.bootstrap[i, b]] == q


def test_masks_start_no_window_before_enough_steps_and_count_sequences():
    replay = make_replay()
    fake_stream(replay, replay.window - 2)
    assert len(replay) == 0
    with pytest.raises(ValueError, match="no whole sequence"):
        replay.sample(1)
    fake_stream(replay := make_replay(), 47)  # stream positions 0..47, all held: starts 0, 4, .., 36
    assert len(replay) == 2 * 10
    assert replay.added == 2 * 47 - sum(1 for e in range(2) for p in STARTS[e] if 0 < p <= 47)


def test_state_dict_is_plain_arrays_and_a_loaded_buffer_samples_the_same(tmp_path):
    replay = make_replay()
    fake_stream(replay, 100)
    state = replay.state_dict()
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in state.values())
    save_arrays(tmp_path / "replay.npz", state)
    loaded = make_replay()
    loaded.load_state_dict(load_arrays(tmp_path / "replay.npz"))
    a, b = replay.sample(16), loaded.sample(16)
    for name in ("obs", "first", "h", "c", "actions", "returns", "discounts", "bootstrap", "mask"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    with pytest.raises(ValueError, match="saved with other settings"):
        make_replay(state_size=4).load_state_dict(state)


def test_a_too_small_buffer_is_refused():
    with pytest.raises(ValueError, match="raise buffer-size"):
        make_replay(capacity=2 * 12)
