"""Sequence replay for recurrent value-based agents (DRQN with R2D2's practice, Kapturowski et al. 2019).

Each env owns a ring of slots, one per observation the actor saw, in order: slot k holds observation o_k
(a single frame or vector, stored once, no stack), whether o_k is the first of an episode
(`envs.first_of_episode`), and, once the env has stepped from it, the action, the reward, `terminated`, and
`valid`: whether o_k -> o_{k+1} was a real transition (it was not when o_{k+1} starts an episode: the
NEXT_STEP reset step and the life-loss continuation are not transitions, design rule 4). Every vector step
writes one slot in every ring, so the rings advance in lockstep and one counter (`written`) says where
each env's stream stands.

R2D2's stored state: sequences start every `seq_stride` steps of each env's stream, and at those steps only
the replay keeps the actor's recurrent state (h, c) from before it saw that observation. A sampled
sequence is the window of `burn_in + seq_len + n_step` consecutive slots from such a start:
- the burn-in prefix only warms the stored (stale) state up for the current network;
- the next `seq_len` positions are learned from, with n-step returns computed inside the window (the last
  `n_step` slots are only bootstrapped from);
- `first` goes with the window, so the network zeroes its state at every episode start in it
  (nets.LSTMCore), and the loss `mask` drops every position from the first episode start after the
  learning part begins: a position counts only if its episode began at or before the learning part's first
  step. An episode start inside the burn-in is allowed: the state is zeroed there exactly as the actor's
  was, and without it the first `burn_in` to `burn_in + seq_stride` steps of every episode would never be
  learned from;
- windows never reach past the newest slot (the ring's write head) nor into overwritten slots.

Memory per Atari transition: 84*84 frame bytes + 2 (action) + 4 (reward) + 3 (flags) +
2 * 4 * lstm_hidden / seq_stride (the stored state: ~205 bytes at 512 units and a stride of 20).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from nets import to_device

Array = np.ndarray | torch.Tensor


@dataclass
class Sequences:
    """A sampled batch of B sequences, time-major: numpy from `SequenceReplay.sample`, tensors after `to`.
    T = burn_in + seq_len + n_step observations, L = seq_len learned positions (window positions
    burn_in .. burn_in + L - 1)."""

    obs: Array  # (T, B, 1, 84, 84) uint8 | (T, B, D) float32
    first: Array  # (T, B) bool: obs starts an episode (the network zeroes its state before that step)
    h: Array  # (1, B, H) float32: the actor's LSTM state before obs[0], as stored
    c: Array  # (1, B, H) float32
    actions: Array  # (L, B) int64
    returns: Array  # (L, B) float32: n-step discounted reward sums
    discounts: Array  # (L, B) float32: gamma**m, 0 where the episode terminated within the n steps
    bootstrap: Array  # (L, B) int64: window position of the observation to bootstrap from
    mask: Array  # (L, B) float32: 1 where the position is a transition of the learning part's episode
    indices: np.ndarray  # (B,) int64: env * per_env + start slot (stays numpy)

    def to(self, device: torch.device) -> Sequences:
        """Every field but `indices` as a tensor on `device`, dtypes kept (uint8 pixels stay uint8)."""
        moved = {f.name: to_device(getattr(self, f.name), device) for f in dataclasses.fields(self)
                 if f.name != "indices"}  # fmt: skip
        return Sequences(**moved, indices=self.indices)


def n_step_targets(
    rewards: np.ndarray,  # (T, B)
    terminated: np.ndarray,  # (T, B) bool
    valid: np.ndarray,  # (T, B) bool: slot t -> t+1 was a real transition
    gamma: float,
    n_step: int,
    start: int,
    length: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n-step returns inside a window for positions start .. start + length - 1 (each (length, B)):
    R_t = sum_{k<m} gamma^k r_{t+k}, discount gamma^m (0 if the episode terminated), and the position t+m
    to bootstrap from. Accumulation stops at a terminal, or where the next slot is no transition (the
    final observation of a truncated episode: bootstrap from it, design rule 4). Needs
    start + length + n_step <= T. Positions that are no transition get 0, 0 and themselves."""
    t = start + np.arange(length)[:, None] + np.zeros(rewards.shape[1], dtype=np.int64)  # (L, B)
    cursor = t.copy()
    returns = np.zeros(t.shape, dtype=np.float32)
    discounts = np.ones(t.shape, dtype=np.float32)
    active = np.take_along_axis(valid, t, axis=0)  # still accumulating rewards
    discounts[~active] = 0.0
    for _ in range(n_step):
        reward = np.take_along_axis(rewards, cursor, axis=0)
        ended = active & np.take_along_axis(terminated, cursor, axis=0)
        returns += np.where(active, discounts * reward, 0.0).astype(np.float32)
        discounts = np.where(active, discounts * gamma, discounts).astype(np.float32)
        discounts[ended] = 0.0
        cursor = np.where(active, cursor + 1, cursor)
        active &= ~ended & np.take_along_axis(valid, cursor, axis=0)
    return returns, discounts, cursor


class SequenceReplay:
    """Frame-once sequence replay for `num_envs` envs stepped together, with R2D2's stored states."""

    STATE = ("obs", "actions", "rewards", "terminated", "valid", "first", "h", "c", "written", "added")

    def __init__(
        self,
        capacity: int,
        num_envs: int,
        obs_shape: tuple[int, ...],
        obs_dtype: np.dtype,
        *,
        state_size: int,
        burn_in: int,
        seq_len: int,
        seq_stride: int,
        n_step: int = 1,
        gamma: float = 0.99,
        seed: int = 0,
    ) -> None:
        self.num_envs, self.seq_stride = num_envs, seq_stride
        self.burn_in, self.seq_len, self.n_step, self.gamma = burn_in, seq_len, n_step, gamma
        self.window = burn_in + seq_len + n_step  # observations per sampled sequence
        # A whole number of strides per ring: slot k holds a stored state exactly when k % seq_stride == 0.
        self.per_env = capacity // num_envs // seq_stride * seq_stride
        if self.per_env < self.window + seq_stride:
            raise ValueError(f"replay capacity {capacity} is too small for {num_envs} envs and sequences of "
                             f"{self.window} steps; raise buffer-size")  # fmt: skip
        shape = (num_envs, self.per_env)
        self.obs = np.zeros((*shape, *obs_shape), dtype=obs_dtype)  # lazily paged in by the OS
        self.actions = np.zeros(shape, dtype=np.int16)
        self.rewards = np.zeros(shape, dtype=np.float32)
        self.terminated = np.zeros(shape, dtype=bool)
        self.valid = np.zeros(shape, dtype=bool)
        self.first = np.zeros(shape, dtype=bool)
        states = (num_envs, self.per_env // seq_stride, state_size)
        self.h = np.zeros(states, dtype=np.float32)
        self.c = np.zeros(states, dtype=np.float32)
        self.written = np.zeros((), dtype=np.int64)  # observations ever written per env (all envs alike)
        self.added = np.zeros((), dtype=np.int64)  # real transitions ever added (gates learning_starts)
        self.rng = np.random.default_rng(seed)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, np.ndarray]:
        """Plain arrays (no objects), so a saved buffer loads without unpickling."""
        return {name: getattr(self, name) for name in self.STATE}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        for name in self.STATE:
            mine = getattr(self, name)
            if state[name].shape != mine.shape:
                raise ValueError(f"saved replay {name} has shape {state[name].shape}, this buffer "
                                 f"{mine.shape}: it was saved with other settings")  # fmt: skip
            mine[...] = state[name]

    @property
    def bytes_per_transition(self) -> float:
        return sum(getattr(self, name).nbytes for name in self.STATE) / (self.num_envs * self.per_env)

    # ------------------------------------------------------------------ writing
    def _write(self, obs: np.ndarray, first: np.ndarray, state: tuple[Array, Array]) -> None:
        """Store the next observation of every env; at a stride, the actor's state from before it."""
        slot = int(self.written % self.per_env)
        self.obs[:, slot] = obs
        self.first[:, slot] = first
        self.valid[:, slot] = False  # the newest observation has no transition yet
        if slot % self.seq_stride == 0:
            for stored, x in zip((self.h, self.c), state, strict=True):
                x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
                stored[:, slot // self.seq_stride] = x.reshape(self.num_envs, -1)
        self.written += 1

    def reset(self, obs: np.ndarray, state: tuple[Array, Array]) -> None:
        """Start every env's episode from the vector env's reset() observations; `state` (h, c), each
        (N, H) or (1, N, H), is the actor's state before it sees them."""
        self._write(obs, np.ones(self.num_envs, dtype=bool), state)

    def add(
        self,
        actions: np.ndarray,  # (N,) actions taken from the current observations
        rewards: np.ndarray,  # (N,) rewards as the agent learns them (clipped for Atari training)
        terminated: np.ndarray,  # (N,) bool
        next_obs: np.ndarray,  # (N, ...) as returned by the vector env's step
        first: np.ndarray,  # (N,) bool: next_obs starts an episode (envs.first_of_episode(info))
        state: tuple[Array, Array],  # the actor's (h, c) after acting, i.e. before it sees next_obs
    ) -> None:
        """Record one vector-env step. Call `reset(obs, state)` once after the env's first reset."""
        slot = int((self.written - 1) % self.per_env)
        self.actions[:, slot] = actions
        self.rewards[:, slot] = rewards
        self.terminated[:, slot] = terminated
        self.valid[:, slot] = ~np.asarray(first, dtype=bool)  # a step into an episode start is none
        self.added += int(self.valid[:, slot].sum())
        self._write(next_obs, first, state)

    # ------------------------------------------------------------------ sampling
    def _starts(self) -> tuple[int, int]:
        """(first, count) of the sampleable start positions in each env's stream: multiples of the stride
        whose whole window lies between the oldest slot still held and the newest one."""
        oldest, last_start = max(0, int(self.written) - self.per_env), int(self.written) - self.window
        first = -(-oldest // self.seq_stride) * self.seq_stride
        return first, max(0, (last_start - first) // self.seq_stride + 1)

    def __len__(self) -> int:
        """Number of sampleable sequences."""
        return self._starts()[1] * self.num_envs

    def sample(self, batch_size: int) -> Sequences:
        """`batch_size` sequences drawn uniformly (with replacement) from the sampleable ones."""
        first_start, count = self._starts()
        if count == 0:
            raise ValueError(f"replay holds no whole sequence of {self.window} steps yet")
        env = self.rng.integers(0, self.num_envs, batch_size)
        start = first_start + self.seq_stride * self.rng.integers(0, count, batch_size)  # stream positions
        slots = (start[None] + np.arange(self.window)[:, None]) % self.per_env  # (T, B)
        envs = np.broadcast_to(env, slots.shape)
        rewards, terminated = self.rewards[envs, slots], self.terminated[envs, slots]
        valid, first = self.valid[envs, slots], self.first[envs, slots]
        learn = slice(self.burn_in, self.burn_in + self.seq_len)
        returns, discounts, bootstrap = n_step_targets(
            rewards, terminated, valid, self.gamma, self.n_step, self.burn_in, self.seq_len
        )
        # Nothing from an episode that starts after the learning part's first step counts.
        later_episode = np.cumsum(first[learn], axis=0) - first[learn][:1] > 0  # (L, B)
        mask = (valid[learn] & ~later_episode).astype(np.float32)
        state_rows = slots[0] // self.seq_stride
        return Sequences(
            obs=self.obs[envs, slots],
            first=first,
            h=self.h[env, state_rows][None],
            c=self.c[env, state_rows][None],
            actions=self.actions[envs[learn], slots[learn]].astype(np.int64),
            returns=returns * mask,
            discounts=discounts * mask,
            bootstrap=bootstrap,
            mask=mask,
            indices=env * self.per_env + slots[0],
        )
