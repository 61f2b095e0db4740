"""Experience replay that stores each Atari frame once.

Each env owns a ring of slots. Slot k holds the newest frame of observation o_k, and, when o_k -> o_{k+1}
was a real step, its action, reward and `terminated` flag (`valid`). A stacked observation is the window
of the last `stack` slots, rebuilt when sampling. Where an episode starts, the start observation's older
frames are written as extra slots first, so every window is exactly the stack the env returned (whatever
the env's padding rule) and no window needs per-sample episode bookkeeping.

`add` takes the env's first-of-episode flags (`envs.first_of_episode`): a `next_obs` that is first (the
step after a done, gymnasium's NEXT_STEP reset step, or a life-loss continuation) begins a new episode in
its env's ring and stores no transition, and the final observation before it is not a transition start,
so no bogus transition is ever sampled. Truncated episodes keep their final observation and bootstrap from
it (design rule 4).

Memory per Atari transition: 84*84 frame bytes + 1 (action) + 4 (reward) + 2 (flags) + 4 (priority,
when prioritized) = ~1.001 x 84 x 84, plus a few extra slots per episode start.

`DeviceBatches` hands the learner its batches on the device: on CUDA gathered straight into pinned host
memory and copied asynchronously, so that sampling never waits on the GPU.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from nets import to_device

Array = np.ndarray | torch.Tensor


@dataclass
class Transitions:
    """A sampled batch: numpy from `ReplayBuffer.sample`; `to(device)` gives the same batch as tensors."""

    obs: Array  # (B, K, 84, 84) uint8 | (B, D) float32
    actions: Array  # (B,) int64
    returns: Array  # (B,) float32: n-step discounted reward sum
    next_obs: Array  # like obs: the observation to bootstrap from
    discounts: Array  # (B,) float32: gamma**m, or 0 where the episode terminated within the n steps
    weights: Array  # (B,) float32: importance-sampling weights (ones when uniform)
    indices: np.ndarray  # (B,) int64: flat slots, for priority updates (stays numpy, on the CPU)

    def to(self, device: torch.device) -> Transitions:
        """Every field but `indices` as a tensor on `device`, dtypes kept (uint8 pixels stay uint8)."""
        moved = {f.name: to_device(getattr(self, f.name), device) for f in dataclasses.fields(self)
                 if f.name != "indices"}  # fmt: skip
        return Transitions(**moved, indices=self.indices)


class SumTree:
    """Binary tree whose leaves hold priorities and inner nodes their sums: O(log n) sampling by mass."""

    def __init__(self, capacity: int) -> None:
        self.size = 1
        while self.size < capacity:
            self.size *= 2
        self.nodes = np.zeros(2 * self.size, dtype=np.float64)

    @property
    def total(self) -> float:
        return float(self.nodes[1])

    def set(self, leaves: np.ndarray, values: np.ndarray) -> None:
        if len(leaves) == 0:
            return
        idx = np.asarray(leaves, dtype=np.int64) + self.size
        self.nodes[idx] = values
        idx = np.unique(idx // 2)
        while idx[0] >= 1:
            self.nodes[idx] = self.nodes[2 * idx] + self.nodes[2 * idx + 1]
            if idx[0] == 1:
                break
            idx = np.unique(idx // 2)

    def get(self, leaves: np.ndarray) -> np.ndarray:
        return self.nodes[np.asarray(leaves) + self.size]

    def find(self, mass: np.ndarray) -> np.ndarray:
        """Leaf index where the running sum of priorities first exceeds each `mass`."""
        idx = np.ones(len(mass), dtype=np.int64)
        mass = mass.copy()
        while idx[0] < self.size:
            left = 2 * idx
            go_right = mass >= self.nodes[left]
            mass -= np.where(go_right, self.nodes[left], 0.0)
            idx = np.where(go_right, left + 1, left)
        return idx - self.size


class ReplayBuffer:
    """Frame-once replay for `num_envs` parallel envs with n-step returns and optional proportional
    prioritized sampling (Schaul et al. 2016)."""

    def __init__(
        self,
        capacity: int,
        num_envs: int,
        obs_shape: tuple[int, ...],
        obs_dtype: np.dtype,
        *,
        frame_stack: bool,
        n_step: int = 1,
        gamma: float = 0.99,
        prioritized: bool = False,
        alpha: float = 0.6,
        seed: int = 0,
    ) -> None:
        self.num_envs, self.per_env = num_envs, capacity // num_envs
        self.frame_stack = frame_stack
        self.stack = obs_shape[0] if frame_stack else 1
        if self.per_env < self.stack + n_step + 2:
            raise ValueError(
                f"replay capacity {capacity} is too small for {num_envs} envs; raise buffer-size"
            )
        self.frame_shape = obs_shape[1:] if frame_stack else obs_shape
        self.obs_shape = tuple(obs_shape)
        self.n_step, self.gamma = n_step, gamma
        shape = (num_envs, self.per_env)
        self.frames = np.zeros((*shape, *self.frame_shape), dtype=obs_dtype)  # lazily paged in by the OS
        self.actions = np.zeros(shape, dtype=np.uint8)
        self.rewards = np.zeros(shape, dtype=np.float32)
        self.terminated = np.zeros(shape, dtype=bool)
        self.valid = np.zeros(shape, dtype=bool)  # slot k starts a real transition k -> k+1
        self.size = 0  # valid.sum(), kept as slots change: summing 100k flags took 28 us, once per step
        self.pos = np.zeros(num_envs, dtype=np.int64)  # slot of each env's current observation
        self.written = np.zeros(num_envs, dtype=np.int64)  # slots ever written, per env
        self.added = np.zeros((), dtype=np.int64)  # real transitions ever added (gates learning_starts)
        self.prioritized, self.alpha = prioritized, alpha
        self.tree = SumTree(num_envs * self.per_env) if prioritized else None
        self.max_priority = 1.0
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        """Number of sampleable transitions."""
        return self.size

    @property
    def bytes_per_transition(self) -> float:
        arrays = [self.frames, self.actions, self.rewards, self.terminated, self.valid]
        extra = 4 if self.prioritized else 0  # a float32-equivalent share of the tree's leaves
        return sum(a.nbytes for a in arrays) / (self.num_envs * self.per_env) + extra

    STATE = ("frames", "actions", "rewards", "terminated", "valid", "pos", "written", "added")

    def state_dict(self) -> dict[str, np.ndarray]:
        """Plain arrays (no objects), so a saved buffer loads without unpickling."""
        state = {name: getattr(self, name) for name in self.STATE}
        if self.tree is not None:
            state["priorities"] = self.tree.nodes[
                self.tree.size : self.tree.size + self.num_envs * self.per_env
            ]
            state["max_priority"] = np.array(self.max_priority)
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        for name in self.STATE:
            if state[name].shape != getattr(self, name).shape:
                mine = getattr(self, name).shape
                raise ValueError(f"saved replay {name} has shape {state[name].shape}, this buffer {mine}: "
                                 "it was saved with other settings")  # fmt: skip
            getattr(self, name)[...] = state[name]
        self.size = int(self.valid.sum())
        if self.tree is not None and "priorities" in state:
            self.tree.set(np.arange(len(state["priorities"])), state["priorities"])
            self.max_priority = float(state["max_priority"])

    # ------------------------------------------------------------------ writing
    def _write(self, env: int, frame: np.ndarray) -> None:
        """Advance env's ring by one slot and store `frame` there, invalidating what it overwrites."""
        p = (self.pos[env] + 1) % self.per_env if self.written[env] else 0
        self.pos[env] = p
        self.written[env] += 1
        self.frames[env, p] = frame
        self._invalidate(env, p)
        # windows of slots p+1 .. p+stack-1 now include this newer frame: no longer sampleable
        self._invalidate(env, (p + self.stack - 1) % self.per_env)

    def _invalidate(self, env: int, slot: int) -> None:
        if self.valid[env, slot]:
            self.valid[env, slot] = False
            self.size -= 1
            if self.tree is not None:
                self.tree.set([env * self.per_env + slot], [0.0])

    def _start_episode(self, env: int, obs: np.ndarray) -> None:
        if not self.frame_stack:
            self._write(env, obs)
            return
        for frame in obs:  # the whole stack: older frames become unsampleable pre-history slots
            self._write(env, frame)

    def add(
        self,
        actions: np.ndarray,  # (N,) actions taken from the current observations
        rewards: np.ndarray,  # (N,) rewards as the agent learns them (clipped for Atari training)
        terminated: np.ndarray,  # (N,) bool
        next_obs: np.ndarray,  # (N, ...) as returned by the vector env's step
        first: np.ndarray,  # (N,) bool: next_obs is the first of an episode (envs.first_of_episode(info))
        envs: slice | None = None,  # the env slots these N envs fill (Ape-X: one actor's); default all
    ) -> None:
        """Record one vector-env step. Call `reset(obs)` once after the env's first reset."""
        for i, e in enumerate(range(self.num_envs)[envs or slice(None)]):
            if first[i]:  # a new episode (NEXT_STEP's reset step): next_obs starts it, no transition
                self._start_episode(e, next_obs[i])
            else:
                slot = self.pos[e]
                self.actions[e, slot] = actions[i]
                self.rewards[e, slot] = rewards[i]
                self.terminated[e, slot] = terminated[i]
                self._write(e, next_obs[i][-1] if self.frame_stack else next_obs[i])
                self.size += not self.valid[e, slot]
                self.valid[e, slot] = True
                self.added += 1
                if self.tree is not None:
                    self.tree.set([e * self.per_env + slot], [self.max_priority**self.alpha])

    def reset(self, obs: np.ndarray, envs: slice | None = None) -> None:
        """Start every env's episode (or those of slots `envs`) from the observations of the reset()."""
        for i, e in enumerate(range(self.num_envs)[envs or slice(None)]):
            self._start_episode(e, obs[i])

    # ------------------------------------------------------------------ sampling
    def _stacked(self, env: np.ndarray, slot: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Writes into `out` (B, *obs_shape) the observations whose newest frames are at (env, slot): each
        the window of the last `stack` slots, gathered as whole frames in one call."""
        offsets = np.arange(-self.stack + 1, 1)  # oldest .. newest
        flat = env[:, None] * self.per_env + (slot[:, None] + offsets[None]) % self.per_env  # (B, K)
        frames = self.frames.reshape(-1, *self.frame_shape)  # a view: the rings end to end
        # mode="clip": the indices are in range by construction, and "raise" gathers into a temporary first
        np.take(frames, flat.ravel(), axis=0, out=out.reshape(-1, *self.frame_shape), mode="clip")
        return out

    def batch_layout(self, batch_size: int) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """(shape, dtype) of each array field of a sampled batch, for preallocated `sample(out=...)`."""
        obs = ((batch_size, *self.obs_shape), self.frames.dtype)
        scalar = ((batch_size,), np.dtype(np.float32))
        actions = ((batch_size,), np.dtype(np.int64))
        return {"obs": obs, "actions": actions, "returns": scalar, "next_obs": obs, "discounts": scalar,
                "weights": scalar}  # fmt: skip

    def sample(self, batch_size: int, beta: float = 0.4, out: Transitions | None = None) -> Transitions:
        """`batch_size` transitions, uniformly or (prioritized) by priority with importance weights to the
        power `beta`, as numpy arrays: fresh ones, or written into `out`'s (C-contiguous, laid out as
        `batch_layout` says; `DeviceBatches` passes pinned ones)."""
        if len(self) < batch_size:
            raise ValueError(f"replay holds {len(self)} transitions, fewer than a batch of {batch_size}")
        if self.tree is not None:
            segment = self.tree.total / batch_size  # stratified: one draw per equal slice of the mass
            mass = (np.arange(batch_size) + self.rng.random(batch_size)) * segment
            flat = np.minimum(self.tree.find(mass), self.num_envs * self.per_env - 1)
            env, slot = np.divmod(flat, self.per_env)
            ok = self.valid[env, slot]  # float round-off can land on an empty leaf: redraw uniformly there
            if not ok.all():
                env[~ok], slot[~ok] = self._uniform((~ok).sum())
            flat = env * self.per_env + slot
            probs = self.tree.get(flat) / self.tree.total
            weights = (len(self) * probs) ** (-beta)
            weights = (weights / weights.max()).astype(np.float32)
        else:
            env, slot = self._uniform(batch_size)
            flat = env * self.per_env + slot
            weights = np.ones(batch_size, dtype=np.float32)

        returns = np.zeros(batch_size, dtype=np.float32)
        discounts = np.ones(batch_size, dtype=np.float32)
        cursor = slot.copy()
        active = np.ones(batch_size, dtype=bool)  # still accumulating rewards
        for _ in range(self.n_step):
            returns += np.where(active, discounts * self.rewards[env, cursor], 0.0)
            ended = active & self.terminated[env, cursor]
            discounts = np.where(active, discounts * self.gamma, discounts)
            discounts[ended] = 0.0
            cursor = np.where(active, (cursor + 1) % self.per_env, cursor)
            # stop at a terminal, or where the next slot is not a transition (episode end or newest slot)
            active &= ~ended & self.valid[env, cursor]
        if out is None:
            layout = self.batch_layout(batch_size)
            out = Transitions(**{name: np.empty(*layout[name]) for name in ("obs", "next_obs")},
                              actions=self.actions[env, slot].astype(np.int64), returns=returns,
                              discounts=discounts, weights=weights, indices=flat)  # fmt: skip
        else:
            out.actions[:], out.returns[:], out.discounts[:], out.weights[:] = (
                self.actions[env, slot], returns, discounts, weights)  # fmt: skip
        self._stacked(env, slot, out.obs)
        self._stacked(env, cursor, out.next_obs)
        return dataclasses.replace(out, indices=flat.astype(np.int64))

    def _uniform(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        env = np.empty(0, dtype=np.int64)
        slot = np.empty(0, dtype=np.int64)
        filled = np.minimum(self.written, self.per_env)  # slots in use per env
        while len(env) < n:  # rejection sampling: nearly every slot is valid once the buffer has filled
            e = self.rng.choice(self.num_envs, 2 * n, p=filled / filled.sum())  # uniform over all slots
            s = self.rng.integers(0, filled[e])
            keep = self.valid[e, s]
            env, slot = np.concatenate([env, e[keep]]), np.concatenate([slot, s[keep]])
        return env[:n], slot[:n]

    def update_priorities(self, indices: np.ndarray, td_errors: np.ndarray, eps: float = 1e-6) -> None:
        if self.tree is None:
            return
        priorities = np.abs(td_errors) + eps
        self.max_priority = max(self.max_priority, float(priorities.max()))
        env, slot = np.divmod(indices, self.per_env)
        keep = self.valid[env, slot]  # a slot overwritten since sampling stays at zero
        self.tree.set(indices[keep], priorities[keep] ** self.alpha)


class DeviceBatches:
    """Replay batches on the learner's device. `staged` (the default on CUDA): each batch is gathered straight
    into page-locked (pinned) host arrays and copied with `non_blocking=True`, so the host goes on to the
    update while the copy runs and never waits on the GPU. Two sets of arrays take turns; a set is refilled
    only once its last copy has finished (a CUDA event, long done by then), so no copy in flight is
    overwritten. Pinning needs CUDA: staged elsewhere (as the CPU tests run it) the arrays are plain memory.

    Unstaged (the default elsewhere), `sample` hands over the replay's fresh numpy batch as tensors: on the
    CPU `torch.from_numpy` shares the memory, so there is nothing to copy."""

    def __init__(
        self, replay: ReplayBuffer, device: torch.device, batch_size: int, staged: bool | None = None
    ) -> None:
        self.replay, self.device, self.batch_size = replay, device, batch_size
        self.staged = device.type == "cuda" if staged is None else staged
        pin = self.staged and torch.cuda.is_available()
        # Torch tensors own the (pinned) memory, so that copies from them are asynchronous; the replay
        # writes into numpy views of them.
        layout = replay.batch_layout(batch_size)
        self._host = [
            {name: torch.empty(shape, dtype=_torch_dtype(dtype), pin_memory=pin)
             for name, (shape, dtype) in layout.items()}
            for _ in range(2 if self.staged else 0)
        ]  # fmt: skip
        no_indices = np.empty(0, np.int64)
        self._views = [Transitions(**{name: t.numpy() for name, t in host.items()}, indices=no_indices)
                       for host in self._host]  # fmt: skip
        # An event per set, recorded after its copy is issued (a never-recorded event counts as done).
        self._copied = [torch.cuda.Event() for _ in self._host] if device.type == "cuda" else []
        self._turn = 0

    def sample(self, beta: float = 0.4) -> Transitions:
        if not self.staged:
            return self.replay.sample(self.batch_size, beta).to(self.device)
        k, self._turn = self._turn, 1 - self._turn
        if self._copied:
            self._copied[k].synchronize()  # this set's copy, issued a whole update ago, has finished
        indices = self.replay.sample(self.batch_size, beta, out=self._views[k]).indices
        moved = {name: t.to(self.device, non_blocking=True) for name, t in self._host[k].items()}
        batch = Transitions(**moved, indices=indices)
        if self._copied:
            self._copied[k].record()
        return batch


def _torch_dtype(dtype: np.dtype) -> torch.dtype:
    return torch.from_numpy(np.empty(0, dtype)).dtype
