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


def to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """numpy -> tensor on `device` without changing the dtype (uint8 pixels stay uint8 until the net)."""
    return torch.from_numpy(np.ascontiguousarray(array)).to(device, non_blocking=True)


def num_discrete_actions(env: gym.vector.VectorEnv, agent: str) -> int:
    """The env's action count, or a clear error when its actions are not discrete."""
    space = env.single_action_space
    if not isinstance(space, gym.spaces.Discrete):
        raise ValueError(f"{agent} here needs discrete actions, the env has {space}")
    return int(space.n)
