"""On-policy rollouts for the policy-gradient agents (A2C, PPO): T steps of N envs as tensors.

With gymnasium's NEXT_STEP autoreset the step after an episode end only resets its env: `valid` is False
there and every loss masks it out. V(s_{t+1}) is read from the next row's V(s_t): at an episode end that
row holds the final observation, so truncated episodes bootstrap from it (design rule 4).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import envs
import nets
from agents.common import to_device

Rows = list[dict[str, float]]


@dataclass
class Rollout:
    obs: torch.Tensor  # (T, N, 4, 84, 84) uint8, channels-last in memory | (T, N, D) float32
    actions: torch.Tensor  # (T, N) int64
    logprobs: torch.Tensor  # (T, N) log pi_old(a|s)
    values: torch.Tensor  # (T, N) V(s_t)
    next_values: torch.Tensor  # (T, N) V(s_{t+1}); at an episode end, V(final observation)
    rewards: torch.Tensor  # (T, N)
    terminated: torch.Tensor  # (T, N) bool
    episode_ends: torch.Tensor  # (T, N) bool: terminated or truncated
    valid: torch.Tensor  # (T, N) float: 0 on autoreset steps

    def flat(self, **extra: torch.Tensor) -> dict[str, torch.Tensor]:
        """b_ tensors of length T*N for minibatching: obs, actions, logprobs, values, valid and `extra`."""
        names = ("obs", "actions", "logprobs", "values", "valid")
        return {k: v.flatten(0, 1) for k, v in {**{n: getattr(self, n) for n in names}, **extra}.items()}


@torch.inference_mode()
def sample_actions(
    net: torch.nn.Module, obs: np.ndarray, device: torch.device, bf16: bool, generator: torch.Generator
) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """An actor-critic's sampled actions (N,), their log-probabilities (N,) and the values (N,)."""
    with nets.autocast(device, bf16):
        logits, values = net(to_device(obs, device))
    actions = torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(1)
    logprobs = torch.log_softmax(logits, -1).gather(1, actions[:, None]).squeeze(1)
    return actions.cpu().numpy(), logprobs, values


@torch.inference_mode()
def greedy_actions(net: torch.nn.Module, obs: np.ndarray, device: torch.device, bf16: bool) -> np.ndarray:
    with nets.autocast(device, bf16):
        return net(to_device(obs, device))[0].argmax(-1).cpu().numpy()


@torch.inference_mode()
def state_values(net: torch.nn.Module, obs: np.ndarray, device: torch.device, bf16: bool) -> torch.Tensor:
    with nets.autocast(device, bf16):
        return net(to_device(obs, device))[1]


class RolloutCollector:
    """Steps `env` with an agent's `act(obs) -> (actions, logprobs, values)` and `value(obs)`."""

    def __init__(
        self, env: gym.vector.VectorEnv, num_steps: int, device: torch.device, seed: int = 0
    ) -> None:
        self.env, self.T, self.N, self.device = env, num_steps, env.num_envs, device
        space = env.single_observation_space
        obs_dtype = torch.from_numpy(np.zeros(0, space.dtype)).dtype
        shape = (self.T, self.N)
        # Images are stored channels-last, the layout the convolutions read, so minibatches go to the
        # network without a re-layout in every epoch.
        if len(space.shape) == 3:
            c, h, w = space.shape
            self.obs_buf = torch.zeros((*shape, h, w, c), dtype=obs_dtype, device=device).permute(
                0, 1, 4, 2, 3
            )
        else:
            self.obs_buf = torch.zeros((*shape, *space.shape), dtype=obs_dtype, device=device)
        self.obs, _ = env.reset(seed=seed)
        self.prev_done = np.zeros(self.N, dtype=bool)

    def collect(self, agent: Any, global_step: int) -> Generator[tuple[int, Rows], None, Rollout]:
        """Yields (global_step, finished-game rows) after each vector step; returns the Rollout."""
        T, N, dev = self.T, self.N, self.device
        actions_buf = torch.zeros((T, N), dtype=torch.long, device=dev)
        logprobs, values, rewards = (torch.zeros((T, N), device=dev) for _ in range(3))
        terminated, ends, valid = (torch.zeros((T, N), dtype=torch.bool, device=dev) for _ in range(3))
        for t in range(T):
            actions, logprobs[t], values[t] = agent.act(self.obs)
            self.obs_buf[t] = to_device(self.obs, dev)
            actions_buf[t] = torch.from_numpy(actions)
            valid[t] = torch.from_numpy(~self.prev_done)
            self.obs, reward, term, trunc, info = self.env.step(actions)
            self.prev_done = term | trunc
            rewards[t] = torch.from_numpy(np.asarray(reward, dtype=np.float32))
            terminated[t], ends[t] = torch.from_numpy(term), torch.from_numpy(self.prev_done)
            global_step += N
            yield global_step, [{"episode_return": score, "episode_length": length}
                                for _, score, length in envs.finished_episodes(info)]  # fmt: skip
        next_values = torch.cat([values[1:], agent.value(self.obs)[None]])
        return Rollout(self.obs_buf, actions_buf, logprobs, values, next_values, rewards, terminated, ends,
                       valid.float())  # fmt: skip
