"""Small pieces shared by the agents: schedules and tensor movement."""

from __future__ import annotations

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
