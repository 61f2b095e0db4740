"""Small pieces shared by the agents: schedules and tensor movement."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch


def linear_schedule(start: float, end: float, duration: int, step: int) -> float:
    """`start` at step 0, moving linearly to `end` at `duration`, then flat."""
    if duration <= 0:
        return end
    return start + (end - start) * min(step / duration, 1.0)


def to_device(array: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """numpy (or a tensor) -> tensor on `device` without changing the dtype (uint8 pixels stay uint8 until
    the net)."""
    if isinstance(array, torch.Tensor):
        return array.to(device, non_blocking=True)
    return torch.from_numpy(np.ascontiguousarray(array)).to(device, non_blocking=True)


def take_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """`x[index]` along the first dim for an integer `index`, for minibatches: on CPU, index_select over
    flat rows is ~10x faster than `x[index]` on image batches (0.5 vs 5 ms for 256 Atari observations),
    and channels-last images stay channels-last, so the network needs no re-layout."""
    if x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return take_rows(x.permute(0, 2, 3, 1), index).permute(0, 3, 1, 2)  # via the (B, H, W, C) rows
    if x.ndim > 1 and x.is_contiguous():
        return x.flatten(1).index_select(0, index).view(index.numel(), *x.shape[1:])
    return x.index_select(0, index)


def num_discrete_actions(env: gym.vector.VectorEnv, agent: str) -> int:
    """The env's action count, or a clear error when its actions are not discrete."""
    space = env.single_action_space
    if not isinstance(space, gym.spaces.Discrete):
        raise ValueError(f"{agent} here needs discrete actions, the env has {space}")
    return int(space.n)
