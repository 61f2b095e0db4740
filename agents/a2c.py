"""A2C: synchronous advantage actor-critic (Mnih et al. 2016, "Asynchronous methods for deep RL").

Algorithm box: step `num_envs` envs for `num_steps` (n-step returns), then take one gradient step on
    L = CE(pi(.|s), a; weights = A) + c_v (V - R)^2 - c_e H[pi],    A = R - V(s),
where the policy term is the supervised core's advantage-weighted cross-entropy and R is the n-step
return bootstrapped from V (GAE with lambda = 1 gives exactly that). One shared Nature CNN for pixels.

Deviations: synchronous (as OpenAI baselines' A2C) instead of A3C's asynchronous workers; the reset step
of gymnasium's NEXT_STEP autoreset is dropped from the batch (`Rollout.policy_batch`), not a transition;
truncated episodes bootstrap from their final frame.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from torch import nn

import nets
from agents.common import check_config, check_precision, crossings, num_discrete_actions
from agents.interface import UPDATED, AgentSpec
from agents.returns import gae
from agents.rollout import PolicyBatch, RolloutCollector, greedy_actions, sample_actions, state_values


@dataclass(frozen=True)
class Config:
    """A2C hyperparameters. Defaults are the Atari preset; `PRESETS["classic"]` holds CartPole's."""

    frames: int = 40_000_000
    """Training budget in emulator frames (agent steps x 4 on Atari): baselines' 10M timesteps. With
    `anneal`, the learning rate decays to 0 over it, so a shorter budget decays faster."""
    num_envs: int = 16
    """Parallel envs (OpenAI baselines and the SB3 zoo use 16 on Atari)."""
    env_groups: int = 1
    """Step the envs in this many groups (EnvPool backend only): the network acts for one group while the
    others' emulators run (see `agents.rollout.RolloutCollector`). 1 steps all envs at once. Unlike PPO's
    128-step rollouts, A2C's 5 steps gained nothing from 2 groups on 2 cores: 1,554-1,621 vs 1,557-1,669
    agent steps/s (3 interleaved repeats on Pong)."""
    num_steps: int = 5
    """Steps per env before each update: the n of the n-step return (Mnih et al. 2016: 5)."""
    lr: float = 7e-4
    """RMSProp learning rate (Mnih et al. 2016; baselines), annealed linearly when `anneal`."""
    rms_alpha: float = 0.99
    """RMSProp smoothing constant."""
    rms_eps: float = 1e-5
    """RMSProp epsilon (baselines)."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 1.0
    """1.0 gives the paper's n-step returns; lower trades bias for variance (GAE)."""
    ent_coef: float = 0.01
    """Entropy bonus coefficient (Mnih et al. 2016)."""
    vf_coef: float = 0.25
    """Value loss coefficient (SB3 zoo Atari)."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    anneal: bool = True
    """Anneal the learning rate linearly to zero over training."""
    hidden: tuple[int, ...] = (64, 64)
    """MLP widths for vector observations (separate actor and critic); pixels share a Nature CNN."""
    precision: str = "auto"
    """Network precision: auto, bf16, fp32 or tf32. auto picks by device (nets.choose_precision): bf16
    autocast on CPUs that run it natively, TF32 on Ampere+ GPUs, else fp32. Losses and optimiser stay fp32."""

    def __post_init__(self) -> None:
        check_config(
            self,
            positive=("frames", "num_envs", "env_groups", "num_steps", "lr", "rms_eps", "gamma"),
            non_negative=("ent_coef", "vf_coef", "max_grad_norm"),
            unit=("rms_alpha", "gamma", "gae_lambda"),
        )
        check_precision(self.precision)


PRESETS = {
    "atari": Config(),
    # CartPole: the SB3 zoo's A2C (8 envs, no entropy bonus) with 8-step returns.
    "classic": Config(frames=200_000, num_envs=8, num_steps=8, ent_coef=0.0, vf_coef=0.5,
                      precision="fp32"),
}  # fmt: skip


class A2C:
    def __init__(
        self, cfg: Config, obs_space: gym.Space, num_actions: int, device: str = "auto", seed: int = 0
    ) -> None:
        self.cfg, self.device, self.num_actions = cfg, nets.resolve_device(device), num_actions
        self.net = nets.ActorCritic(obs_space.shape, num_actions, cfg.hidden).to(self.device)
        self.optimizer = torch.optim.RMSprop(
            self.net.parameters(), cfg.lr, alpha=cfg.rms_alpha, eps=cfg.rms_eps
        )
        self.actor_critic = nets.DeviceNet(self.net, self.device, cfg.precision, self.optimizer)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    def act(self, obs: np.ndarray | torch.Tensor) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
        """Sampled actions (N,), their log-probabilities (N,) and the values (N,)."""
        return sample_actions(self.actor_critic, obs, self.generator)

    def eval_act(self, obs: np.ndarray, first: np.ndarray | None = None) -> np.ndarray:
        """Greedy actions for evaluation (no memory: `first` is not needed)."""
        return greedy_actions(self.actor_critic, obs)

    def value(self, obs: np.ndarray) -> torch.Tensor:
        return state_values(self.actor_critic, obs)

    def update(self, b_batch: PolicyBatch) -> dict[str, float]:
        """One gradient step on a rollout's real transitions (its returns; advantages are R - V here)."""
        cfg = self.cfg
        if len(b_batch) == 0:  # every row a reset step (tiny rollouts only): nothing to learn from
            return {}
        logits, values = self.actor_critic(b_batch.obs)
        advantages = b_batch.returns - values.detach()
        policy_loss = nets.cross_entropy(logits, b_batch.actions, weights=advantages)
        value_loss = nets.mse(values, b_batch.returns)
        entropy = nets.entropy(logits)
        loss = policy_loss + cfg.vf_coef * value_loss - cfg.ent_coef * entropy
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(self.net.parameters(), cfg.max_grad_norm)
        self.optimizer.step()
        return {"losses/policy": policy_loss.item(), "losses/value": value_loss.item(),
                "losses/entropy": entropy.item(), "losses/grad_norm": grad_norm.item()}  # fmt: skip

    def state_dict(self) -> dict:
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])


def make_agent(cfg: Config, env: gym.vector.VectorEnv, device: str = "auto", seed: int = 0) -> A2C:
    num_actions = num_discrete_actions(env, "A2C")
    return A2C(cfg, env.single_observation_space, num_actions, device, seed)


def train(
    cfg: Config,
    env: gym.vector.VectorEnv,
    agent: A2C,
    *,
    total_steps: int,
    start_step: int = 0,
    seed: int = 0,
    log_every: int = 1_000,
) -> Iterator[tuple[int, list[dict[str, float]]]]:
    """Collect n steps, take one gradient step, repeat; statistics every `log_every` agent steps."""
    collector = RolloutCollector(env, cfg.num_steps, agent.device, seed)
    global_step = start_step
    while global_step < total_steps:
        frac = 1.0 - global_step / total_steps if cfg.anneal else 1.0
        nets.optim.set_lr(agent.optimizer, cfg.lr * frac)
        rollout = yield from collector.collect(agent, global_step)
        global_step += cfg.num_steps * env.num_envs
        advantages, returns = gae(rollout.rewards, rollout.values, rollout.next_values, rollout.terminated,
                                  rollout.episode_ends, cfg.gamma, cfg.gae_lambda)  # fmt: skip
        metrics = agent.update(rollout.policy_batch(advantages, returns))  # reset steps dropped
        # Logged where the step crosses a multiple of log_every: a resumed run logs where this one did.
        if crossings(global_step - cfg.num_steps * env.num_envs, global_step, log_every):
            yield global_step, [{**metrics, "charts/learning_rate": cfg.lr * frac, UPDATED: 1}]
        else:
            yield global_step, [{UPDATED: 1}]


SPEC = AgentSpec(
    "a2c", Config, PRESETS, make_agent, train, on_policy=True, resumable=("frames", "env_groups")
)
