"""Optimisers and learning-rate schedules by name, so configs can stay plain strings and numbers."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch

OPTIMIZERS = ("sgd", "rmsprop", "adam", "adamw")
SCHEDULES = ("constant", "linear", "cosine")


def make_optimizer(
    name: str,
    params: Iterable[torch.nn.Parameter],
    lr: float,
    *,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    eps: float | None = None,
) -> torch.optim.Optimizer:
    """SGD with momentum, RMSProp, Adam or AdamW (decoupled weight decay)."""
    if lr <= 0:
        raise ValueError(f"learning rate must be positive, got {lr}")
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=momentum > 0
        )
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=weight_decay, eps=eps or 1e-8)
    if name in ("adam", "adamw"):
        params = list(params)
        # The fused kernel does the whole update in one pass: ~4x faster than the per-tensor loop on this
        # CPU, where Adam on the Nature CNN's 1.7M weights otherwise costs as much as a forward pass.
        fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        return cls(params, lr=lr, weight_decay=weight_decay, eps=eps or 1e-8, fused=fused)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {OPTIMIZERS}")


def lr_factor(schedule: str | Callable[[float], float], progress: float) -> float:
    """Multiplier on the base learning rate at `progress` in [0, 1] of training."""
    if callable(schedule):
        return schedule(progress)
    if schedule == "constant":
        return 1.0
    if schedule == "linear":
        return max(1.0 - progress, 0.0)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    raise ValueError(f"unknown lr schedule {schedule!r}; choose one of {SCHEDULES} or pass a callable")


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
