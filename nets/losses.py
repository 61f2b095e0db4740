"""Losses of the supervised core. RL reuses them: TD learning is regression on bootstrapped targets
(`huber`, `mse`), policy gradient is advantage-weighted cross-entropy (`cross_entropy(..., weights=A)`)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Loss = Callable[..., torch.Tensor]


def _reduce(per_sample: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if weights is not None:
        per_sample = per_sample * weights
    return per_sample.mean()


def mse(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error; `weights` scale each sample (e.g. prioritized replay's importance weights)."""
    return _reduce((pred - target).pow(2), weights)


def huber(
    pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None, delta: float = 1.0
) -> torch.Tensor:
    """Huber loss: quadratic within `delta`, linear outside, so large TD errors cannot blow up gradients."""
    return _reduce(F.huber_loss(pred, target, reduction="none", delta=delta), weights)


def cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Negative log-likelihood of `labels`; with `weights` = advantages this is the REINFORCE loss."""
    return _reduce(F.cross_entropy(logits, labels.long(), reduction="none"), weights)


def entropy(logits: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean entropy of the categorical distributions softmax(logits) (B, A): the exploration bonus of
    the policy-gradient agents; `weights` as in the losses."""
    log_probs = torch.log_softmax(logits.float(), -1)
    return _reduce(-(log_probs.exp() * log_probs).sum(-1), weights)


LOSSES: dict[str, Loss] = {"mse": mse, "huber": huber, "cross_entropy": cross_entropy}


def get_loss(name: str | Loss) -> Loss:
    if callable(name):
        return name
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)} or pass a callable")
    return LOSSES[name]
