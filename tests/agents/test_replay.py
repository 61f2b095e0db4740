import hashlib

import numpy as np
import pytest

import envs
from agents.replay import ReplayBuffer, SumTree


def key(a: np.ndarray) -> bytes:
    return hashlib.sha1(np.ascontiguousarray(a).tobytes()).digest()


def test_stacks_rebuilt_from_single_frames_match_the_env_across_episode_starts_and_wraparound():
    # Breakout in training mode: every life loss ends an episode, so starts are frequent; a small ring
    # wraps around several times.
    env = envs.make("Breakout", 2, seed=3, backend="sync")
    replay = ReplayBuffer(2 * 120, 2, (4, 84, 84), np.uint8, frame_stack=True, n_step=1, gamma=0.9)
    rng = np.random.default_rng(0)
    obs, _ = env.reset()
    replay.reset(obs)
    real = set()  # (obs, action, reward, terminated, next_obs) of every real transition
    prev_done = np.zeros(2, dtype=bool)
    starts = 0
    for _ in range(700):
        actions = rng.integers(0, 4, 2)
        next_obs, rewards, term, trunc, info = env.step(actions)
        first = envs.first_of_episode(info)
        np.testing.assert_array_equal(first, prev_done)  # the env's flag: the step after a done resets
        for e in range(2):
            if prev_done[e]:
                starts += 1
            else:
                real.add((key(obs[e]), int(actions[e]), float(rewards[e]), bool(term[e]), key(next_obs[e])))
        replay.add(actions, rewards, term, next_obs, first)
        prev_done = term | trunc
        obs = next_obs
    env.close()
    assert starts >= 4  # the run really crossed episode starts
    assert replay.written.min() > 2 * replay.per_env  # and wrapped around
    batch = replay.sample(128)
    for i in range(128):
        item = (key(batch.obs[i]), int(batch.actions[i]), float(batch.returns[i]), batch.discounts[i] == 0,
                key(batch.next_obs[i]))  # fmt: skip
        assert item in real, "sampled a transition the env never produced"
    assert batch.obs.dtype == np.uint8 and batch.obs.shape == (128, 4, 84, 84)


class Counter:
    """Vector observations equal to the step count, to check n-step targets by hand."""

    def __init__(self, n_step, capacity=64, gamma=0.5):
        self.replay = ReplayBuffer(
            capacity, 1, (1,), np.float32, frame_stack=False, n_step=n_step, gamma=gamma
        )
        self.t = 0
        self.replay.reset(np.array([[0.0]]))

    def step(self, reward, term=False, trunc=False):  # `trunc` only names the step: the env's next is a reset
        self.t += 1
        self.replay.add(np.array([1]), np.array([reward]), np.array([term]), np.array([[self.t]]),
                        np.array([False]))  # fmt: skip

    def reset_step(self):  # the NEXT_STEP autoreset step: reward 0, obs = a fresh start (100 + t), first
        self.t += 1
        self.replay.add(np.array([0]), np.array([0.0]), np.array([False]), np.array([[100.0 + self.t]]),
                        np.array([True]))  # fmt: skip

    def targets(self):
        r = self.replay
        env, slot = np.nonzero(r.valid)
        batch_idx = env * r.per_env + slot
        r_prioritized = r.tree
        r.tree = None
        out = {}
        # sample everything deterministically by pointing the uniform sampler at each valid slot
        for e, s, _ in zip(env, slot, batch_idx, strict=True):
            r._uniform = lambda n, e=e, s=s: (np.array([e]), np.array([s]))
            b = r.sample(1)
            out[float(b.obs[0, 0])] = (float(b.returns[0]), float(b.discounts[0]), float(b.next_obs[0, 0]))
        r.tree = r_prioritized
        return out


def test_n_step_targets_terminal_versus_truncated_by_hand():
    c = Counter(n_step=3, gamma=0.5)
    c.step(1.0)  # 0 -> 1
    c.step(2.0)  # 1 -> 2
    c.step(4.0, term=True)  # 2 -> 3, terminal
    c.reset_step()  # obs 104: new episode
    c.step(8.0)  # 104 -> 5
    c.step(16.0, trunc=True)  # 5 -> 6, truncated: bootstrap from 6
    c.reset_step()  # obs 107
    c.step(1.0)  # 107 -> 8 (newest: bootstrap from 8)
    t = c.targets()
    assert t[0.0] == (1 + 0.5 * 2 + 0.25 * 4, 0.0, 3.0)  # three rewards, then terminal: no bootstrap
    assert t[1.0] == (2 + 0.5 * 4, 0.0, 3.0)
    assert t[2.0] == (4.0, 0.0, 3.0)
    assert t[104.0] == (8 + 0.5 * 16, 0.25, 6.0)  # truncated: bootstrap from the final observation
    assert t[5.0] == (16.0, 0.5, 6.0)
    assert t[107.0] == (1.0, 0.5, 8.0)
    assert 3.0 not in t and 6.0 not in t  # final observations never start a transition


def test_one_step_double_check_and_too_small_batches():
    c = Counter(n_step=1, gamma=0.9)
    c.step(1.0)
    assert c.targets()[0.0] == (1.0, pytest.approx(0.9), 1.0)
    with pytest.raises(ValueError, match="fewer than a batch"):
        c.replay.sample(2)


def test_bytes_per_atari_transition_within_target():
    r = ReplayBuffer(10_000, 4, (4, 84, 84), np.uint8, frame_stack=True, prioritized=True)
    assert r.bytes_per_transition <= 1.1 * 84 * 84


def test_sum_tree_samples_in_proportion_to_priority():
    tree = SumTree(5)
    tree.set(np.arange(5), np.array([1.0, 0.0, 3.0, 0.0, 6.0]))
    assert tree.total == 10.0
    rng = np.random.default_rng(0)
    leaves = tree.find(rng.random(20_000) * tree.total)
    freq = np.bincount(leaves, minlength=5) / 20_000
    np.testing.assert_allclose(freq, [0.1, 0.0, 0.3, 0.0, 0.6], atol=0.015)


def test_prioritized_replay_prefers_large_td_errors_and_weights_them_down():
    c = Counter(n_step=1, capacity=64, gamma=0.9)
    c.replay = ReplayBuffer(64, 1, (1,), np.float32, frame_stack=False, prioritized=True, alpha=1.0)
    c.replay.reset(np.array([[0.0]]))
    for _ in range(10):
        c.step(0.0)
    b = c.replay.sample(10)
    td = np.where(b.obs[:, 0] == 4.0, 100.0, 1.0)  # one transition with a huge TD error
    c.replay.update_priorities(b.indices, td)
    batches = [c.replay.sample(10, beta=1.0) for _ in range(30)]
    share = np.mean([(b.obs[:, 0] == 4.0).mean() for b in batches])
    assert share > 0.8  # priority 100 of a total ~109
    mixed = [b for b in batches if 0 < (b.obs[:, 0] == 4.0).sum() < 10]
    assert mixed
    for b in mixed:  # importance weights undo the bias: the over-sampled transition counts less
        hot = b.obs[:, 0] == 4.0
        assert b.weights[hot].max() < b.weights[~hot].min()


def test_saved_replay_loads_into_a_fresh_buffer_and_samples_the_same(tmp_path):
    from pixelrl.checkpoint import load_arrays, save_arrays

    c = Counter(n_step=2, gamma=0.9)
    c.replay = ReplayBuffer(64, 1, (1,), np.float32, frame_stack=False, n_step=2, prioritized=True, seed=5)
    c.replay.reset(np.array([[0.0]]))
    for r in range(20):
        c.step(float(r), term=r == 9)
        if r == 9:
            c.reset_step()
    save_arrays(tmp_path / "replay.npz", c.replay.state_dict())
    fresh = ReplayBuffer(64, 1, (1,), np.float32, frame_stack=False, n_step=2, prioritized=True, seed=5)
    fresh.load_state_dict(load_arrays(tmp_path / "replay.npz"))
    a, b = c.replay.sample(16), fresh.sample(16)
    for field in ("obs", "returns", "discounts", "next_obs", "weights"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    with pytest.raises(ValueError, match="saved with other settings"):
        ReplayBuffer(32, 1, (1,), np.float32, frame_stack=False).load_state_dict(c.replay.state_dict())


def random_replay(seed=0, steps=400, **kwargs):
    """Three envs of 2-frame pixel stacks with random episode starts and terminals; the rings wrap around."""
    replay = ReplayBuffer(3 * 60, 3, (2, 5, 5), np.uint8, frame_stack=True, n_step=3, gamma=0.9, seed=1,
                          **kwargs)  # fmt: skip
    rng = np.random.default_rng(seed)
    replay.reset(rng.integers(0, 256, (3, 2, 5, 5), dtype=np.uint8))
    for _ in range(steps):
        replay.add(rng.integers(0, 6, 3), rng.standard_normal(3).astype(np.float32), rng.random(3) < 0.05,
                   rng.integers(0, 256, (3, 2, 5, 5), dtype=np.uint8), rng.random(3) < 0.05)  # fmt: skip
        assert len(replay) == replay.valid.sum()  # the kept count, against a recount
    return replay


def test_sampleable_count_is_kept_through_starts_wraparound_and_loading():
    replay = random_replay()
    assert replay.written.min() > 2 * replay.per_env and 0 < len(replay) < 3 * 60
    fresh = ReplayBuffer(3 * 60, 3, (2, 5, 5), np.uint8, frame_stack=True, n_step=3, gamma=0.9)
    fresh.load_state_dict(replay.state_dict())
    assert len(fresh) == len(replay)


@pytest.mark.parametrize("prioritized", [False, True])
def test_staged_device_batches_equal_fresh_ones_and_stay_valid_until_their_buffer_returns(prioritized):
    """The CUDA path (pinned buffers taking turns) forced on the CPU: each batch equals what `sample` gives
    from an identical replay, and is not overwritten by the next one, only by the one after (whose turn in
    the buffers it is; on CUDA an event first waits for its copy)."""
    import torch

    from agents.replay import DeviceBatches

    staged_replay, plain_replay = (
        random_replay(prioritized=prioritized),
        random_replay(prioritized=prioritized),
    )
    staged = DeviceBatches(staged_replay, torch.device("cpu"), 16, staged=True)
    assert DeviceBatches(plain_replay, torch.device("cpu"), 16).staged is False  # the default off CUDA
    fields = ("obs", "actions", "returns", "next_obs", "discounts", "weights")
    batches = []
    for _ in range(4):
        batch, expected = staged.sample(0.5), plain_replay.sample(16, 0.5)
        for name in fields:
            value = getattr(batch, name)
            assert (
                isinstance(value, torch.Tensor)
                and value.dtype == torch.from_numpy(getattr(expected, name)).dtype
            )
            np.testing.assert_array_equal(value.numpy(), getattr(expected, name))
        np.testing.assert_array_equal(batch.indices, expected.indices)
        batches.append((batch, expected))
        if len(batches) >= 2:  # the previous batch is intact after this one
            np.testing.assert_array_equal(batches[-2][0].obs.numpy(), batches[-2][1].obs)
    assert batches[0][0].obs.data_ptr() == batches[2][0].obs.data_ptr() != batches[1][0].obs.data_ptr()
