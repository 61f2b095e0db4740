"""Return estimators shared by the policy-gradient agents (pure functions on (T, N) arrays).

Termination is not truncation (design rule 4): a terminated step has no future value, a truncated step
bootstraps from the value of its final observation, and both cut the recursion so nothing leaks from
the next episode into this one.
"""

from __future__ import annotations

import torch


def discounted_returns(
    rewards: torch.Tensor,  # (T, N)
    episode_ends: torch.Tensor,  # (T, N) bool: terminated or truncated at step t
    gamma: float,
    bootstrap: torch.Tensor | None = None,  # (N,) value after the last step, where it did not end
) -> torch.Tensor:
    """G_t = r_t + gamma * G_{t+1}, restarting after each episode end (REINFORCE, Williams 1992)."""
    returns = torch.zeros_like(rewards)
    future = torch.zeros_like(rewards[0]) if bootstrap is None else bootstrap
    for t in reversed(range(len(rewards))):
        future = rewards[t] + gamma * future * (~episode_ends[t])
        returns[t] = future
    return returns


def gae(
    rewards: torch.Tensor,  # (T, N)
    values: torch.Tensor,  # (T, N) V(s_t)
    next_values: torch.Tensor,  # (T, N) V(s_{t+1}); at a truncation, V of the final observation
    terminated: torch.Tensor,  # (T, N) bool
    episode_ends: torch.Tensor,  # (T, N) bool: terminated or truncated
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016): returns (advantages, value targets)."""
    deltas = rewards + gamma * next_values * (~terminated) - values
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in reversed(range(len(rewards))):
        running = deltas[t] + gamma * lam * running * (~episode_ends[t])
        advantages[t] = running
    return advantages, advantages + values
