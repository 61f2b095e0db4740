"""PPO: proximal policy optimisation with a clipped surrogate (Schulman et al. 2017).

Algorithm box: step `num_envs` envs for `num_steps` with the current policy, estimate advantages with
GAE(lambda) (Schulman et al. 2016), then for `epochs` passes over shuffled minibatches minimise
    L = -min(r A, clip(r, 1-eps, 1+eps) A) + c_v (V - V_target)^2 - c_e H[pi],   r = pi / pi_old,
with optional value clipping, per-minibatch advantage normalisation, gradient-norm clipping, linearly
annealed learning rate and clip range, and an optional early stop when the approximate KL exceeds a
target. Defaults are the paper's Atari settings (Table 5), as CleanRL and the SB3 zoo use them.

Deviations: with gymnasium's NEXT_STEP autoreset the step after an episode end is a reset, not a
transition; it is dropped from the batch (`Rollout.policy_batch`), so an epoch's minibatches are
len(batch) // minibatches rows and the few rows left over sit that epoch out. Truncated episodes bootstrap
from their final observation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from torch import nn

import nets
from agents.common import ConfigError, check_config, check_precision, num_discrete_actions
from agents.interface import UPDATED, AgentSpec
from agents.returns import gae
from agents.rollout import (
    PolicyBatch,
    RolloutCollector,
    SequenceBatch,
    greedy_actions,
    sample_actions,
    state_values,
)


@dataclass(frozen=True)
class Config:
    """PPO hyperparameters. Defaults are the Atari preset; `PRESETS["classic"]` holds CartPole's."""

    frames: int = 40_000_000
    """Training budget in emulator frames (agent steps x 4 on Atari): the paper's 10M timesteps. With
    `anneal`, the learning rate and clip range decay to 0 over it, so a shorter budget decays faster."""
    num_envs: int = 8
    """Parallel envs (Schulman et al. 2017, Table 5)."""
    env_groups: int = 2
    """Step the envs in this many groups (EnvPool backend only): the network acts for one group while the
    others' emulators run (see `agents.rollout.RolloutCollector`). 1 steps all envs at once; train.py
    falls back to 1 where groups cannot apply (another backend, or num_envs not a multiple)."""
    num_steps: int = 128
    """Steps per env per rollout (Table 5)."""
    epochs: int = 4
    """Passes over each rollout (Table 5: 3; CleanRL and the SB3 zoo: 4)."""
    minibatches: int = 4
    """Minibatches per epoch (rollout of 1,024 -> 256 per minibatch)."""
    lr: float = 2.5e-4
    """Adam learning rate, annealed linearly to 0 when `anneal` (Table 5)."""
    adam_eps: float = 1e-5
    """Adam epsilon (OpenAI baselines)."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    clip: float = 0.1
    """Surrogate clip range, annealed with the learning rate when `anneal` (Table 5: 0.1)."""
    clip_value: bool = True
    """Clip the value update to the same range around the old values (OpenAI baselines)."""
    ent_coef: float = 0.01
    """Entropy bonus coefficient."""
    vf_coef: float = 0.5
    """Value loss coefficient."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    anneal: bool = True
    """Anneal learning rate and clip range linearly to zero over training."""
    norm_adv: bool = True
    """Normalise advantages per minibatch."""
    target_kl: float | None = None
    """Stop the epochs of an update early once the approximate KL exceeds this (None: never)."""
    adaptive_kl: float | None = None
    """Adapt the learning rate to keep each update's approximate KL near this, as rl_games' "adaptive"
    schedule does: x1.5 after an update whose last epoch is below half of it, /1.5 after one above
    twice it, within ADAPTIVE_LR_RANGE. The rate is the optimiser's, so checkpoints keep it; `anneal`
    then anneals the clip range only. None: the rate follows `anneal`."""
    hidden: tuple[int, ...] = (64, 64)
    """MLP widths for vector observations (separate actor and critic); pixels share a Nature CNN."""
    precision: str = "auto"
    """Network precision: auto, bf16, fp32 or tf32. auto picks by device (nets.choose_precision): bf16
    autocast on CPUs that run it natively, TF32 on Ampere+ GPUs, else fp32. Losses and optimiser stay fp32."""

    def __post_init__(self) -> None:
        check_config(self, positive=("frames", "num_envs", "env_groups", "num_steps", "epochs", "minibatches",
                                     "lr", "adam_eps", "gamma", "target_kl", "adaptive_kl"),
                     non_negative=("clip", "ent_coef", "vf_coef",
                                     "max_grad_norm"), unit=("gamma", "gae_lambda"))  # fmt: skip
        check_precision(self.precision)
        if self.num_envs * self.num_steps < self.minibatches:
            raise ConfigError(
                f"a rollout of {self.num_envs}x{self.num_steps} cannot fill {self.minibatches} minibatches"
            )


PRESETS = {
    "atari": Config(),
    # CartPole: the SB3 zoo's tuned PPO (short rollouts, many epochs, no entropy bonus).
    "classic": Config(
        frames=100_000,
        num_envs=8,
        num_steps=32,
        epochs=20,
        minibatches=1,
        lr=1e-3,
        adam_eps=1e-8,
        gamma=0.98,
        gae_lambda=0.8,
        clip=0.2,
        clip_value=False,
        ent_coef=0.0,
        precision="fp32",
        env_groups=1,
    ),
    # Big machines (many cores, a GPU): 8x the envs, bigger minibatches and 3 epochs (Schulman et al. 2017,
    # Table 5), as throughput-oriented Atari PPOs run (rl_games' Pong: 24 envs x 256 steps, minibatches
    # of 768, 3 epochs; PQN: 128 envs). A rollout is 8,192 steps in 8 minibatches of 1,024. Chosen for
    # agent steps/s; its learning curve has not been measured against the default's.
    "throughput": Config(num_envs=64, epochs=3, minibatches=8),
    # Pong in 8M frames (sticky 0): twice the envs and minibatches of the published settings (16 x 128
    # steps, 8 minibatches of 256: twice the gradient steps per update, the same work per frame), a 2x
    # learning rate and clip 0.2, annealed over the shorter budget. Against rl_games' Pong settings (24 x
    # 256 steps, 3 epochs of 768, lr adapted to a KL of 0.01, `adaptive_kl`) on Pong, side by side: at
    # 2.4M frames a 5-game evaluation of -4.6 vs -15.4, 20 training games -16.6 vs -19.0 at 2M.
    "fast": Config(frames=8_000_000, num_envs=16, minibatches=8, lr=5e-4, clip=0.2),
}


def clipped_surrogate(
    advantages: torch.Tensor, ratio: torch.Tensor, clip: float
) -> torch.Tensor:  # (B,) per-sample loss
    """-min(r A, clip(r, 1 - eps, 1 + eps) A): the PPO objective, negated to be minimised."""
    return torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - clip, 1 + clip))


def ppo_loss(
    cfg: Config,
    clip: float,
    logits: torch.Tensor,  # (B, A) of the network being trained
    values: torch.Tensor,  # (B,)
    mb_batch: PolicyBatch,  # the same B rows as collected (its obs is not read)
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The PPO loss of a minibatch, with its statistics (detached): policy, value and entropy terms, the
    approximate KL and the fraction of clipped ratios."""
    log_probs = torch.log_softmax(logits, -1)
    new_logprobs = log_probs.gather(1, mb_batch.actions[:, None]).squeeze(1)
    log_ratio = new_logprobs - mb_batch.logprobs
    ratio = log_ratio.exp()
    adv = mb_batch.advantages
    if cfg.norm_adv:
        mean = adv.mean()
        std = ((adv - mean) ** 2).mean().sqrt()
        adv = (adv - mean) / (std + 1e-8)
    policy_loss = clipped_surrogate(adv, ratio, clip).mean()
    old_values, returns = mb_batch.values, mb_batch.returns
    if cfg.clip_value:
        clipped = old_values + (values - old_values).clamp(-clip, clip)
        value_loss = 0.5 * torch.max((values - returns) ** 2, (clipped - returns) ** 2).mean()
    else:
        value_loss = 0.5 * ((values - returns) ** 2).mean()
    entropy_mean = nets.entropy(logits)
    loss = policy_loss + cfg.vf_coef * value_loss - cfg.ent_coef * entropy_mean
    with torch.no_grad():  # Schulman's unbiased low-variance KL estimator, (r - 1) - log r
        approx_kl = ((ratio - 1) - log_ratio).mean()
        clipfrac = ((ratio - 1).abs() > clip).float().mean()
    stats = {"policy": policy_loss, "value": value_loss, "entropy": entropy_mean, "approx_kl": approx_kl,
             "clipfrac": clipfrac}  # fmt: skip
    return loss, {k: v.detach() for k, v in stats.items()}


class PPO:
    def __init__(
        self, cfg: Config, obs_space: gym.Space, num_actions: int, device: str = "auto", seed: int = 0
    ) -> None:
        self.cfg, self.device, self.num_actions = cfg, nets.resolve_device(device), num_actions
        self.net = nets.ActorCritic(obs_space.shape, num_actions, cfg.hidden).to(self.device)
        self.optimizer = nets.make_optimizer("adam", self.net.parameters(), cfg.lr, eps=cfg.adam_eps)
        self.actor_critic = nets.DeviceNet(self.net, self.device, cfg.precision, self.optimizer)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.clip = cfg.clip  # the surrogate's clip range eps: the loop anneals it, as it does the lr

    def act(self, obs: np.ndarray | torch.Tensor) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
        """Sampled actions (N,), their log-probabilities (N,) and the values (N,)."""
        return sample_actions(self.actor_critic, obs, self.generator)

    def eval_act(self, obs: np.ndarray, first: np.ndarray | None = None) -> np.ndarray:
        """Greedy actions for evaluation (no memory: `first` is not needed)."""
        return greedy_actions(self.actor_critic, obs)

    def value(self, obs: np.ndarray) -> torch.Tensor:
        return state_values(self.actor_critic, obs)

    def update(self, b_batch: PolicyBatch) -> dict[str, float]:
        """`epochs` passes of minibatch PPO, with clip range `self.clip`, over a rollout's real
        transitions; minibatches of len(b_batch) // minibatches rows."""
        cfg = self.cfg
        b_size = len(b_batch)
        if b_size == 0:  # every row a reset step (tiny rollouts only): nothing to learn from
            return {}
        mb_size = max(1, b_size // cfg.minibatches)
        stats: dict[str, list[float]] = {
            k: [] for k in ("policy", "value", "entropy", "approx_kl", "clipfrac")
        }
        for _ in range(cfg.epochs):
            order = torch.randperm(b_size, generator=self.generator, device=self.device)
            for start in range(0, min(mb_size * cfg.minibatches, b_size), mb_size):
                mb_stats = self._minibatch_step(b_batch.take(order[start : start + mb_size]))
                for k, v in mb_stats.items():
                    stats[k].append(v)
            last_kl = float(np.mean(stats["approx_kl"][-cfg.minibatches :]))  # the epoch's, not the first's
            if cfg.target_kl is not None and last_kl > cfg.target_kl:
                break
        means = {f"losses/{k}": float(np.mean(v)) for k, v in stats.items()}
        return means | {"losses/last_epoch_kl": last_kl}

    def _minibatch_step(self, mb_batch: PolicyBatch) -> dict[str, float]:
        logits, values = self.actor_critic(mb_batch.obs)
        loss, stats = ppo_loss(self.cfg, self.clip, logits, values, mb_batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.net.parameters(), self.cfg.max_grad_norm)
        self.optimizer.step()
        return {k: v.item() for k, v in stats.items()}

    def state_dict(self) -> dict:
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])


def make_agent(cfg: Config, env: gym.vector.VectorEnv, device: str = "auto", seed: int = 0) -> PPO:
    num_actions = num_discrete_actions(env, "PPO")
    return PPO(cfg, env.single_observation_space, num_actions, device, seed)


def train(
    cfg: Config,
    env: gym.vector.VectorEnv,
    agent: PPO,
    *,
    total_steps: int,
    start_step: int = 0,
    seed: int = 0,
    log_every: int = 0,
    recurrent: bool = False,
) -> Iterator[tuple[int, list[dict[str, float]]]]:
    """Collect a rollout, update, repeat. Yields (global_step, rows) after every vector step; a
    training-statistics row follows each update. `recurrent=True` is recurrent PPO's loop
    (agents/ppo_lstm.py): the rollout carries the agent's LSTM state and the update gets whole sequences."""
    collector = RolloutCollector(env, cfg.num_steps, agent.device, seed, recurrent=recurrent)
    global_step = start_step
    while global_step < total_steps:
        schedule = anneal(cfg, agent, global_step, total_steps)
        rollout = yield from collector.collect(agent, global_step)
        global_step += cfg.num_steps * env.num_envs
        advantages, returns = gae(rollout.rewards, rollout.values, rollout.next_values, rollout.terminated,
                                  rollout.episode_ends, cfg.gamma, cfg.gae_lambda)  # fmt: skip
        if recurrent:
            metrics = agent.update(SequenceBatch(rollout, advantages, returns))
        else:
            metrics = agent.update(rollout.policy_batch(advantages, returns))  # reset steps dropped
        yield global_step, [{**metrics, **schedule, **adapt(cfg, agent, metrics), UPDATED: 1}]


def anneal(cfg: Config, agent: PPO, global_step: int, total_steps: int) -> dict[str, float]:
    """Before an update: the learning rate (unless `adaptive_kl` adapts it) and the clip range, annealed
    linearly to 0 over the run when `anneal`; the clip range as a statistic."""
    frac = 1.0 - global_step / total_steps if cfg.anneal else 1.0
    if cfg.adaptive_kl is None:
        nets.optim.set_lr(agent.optimizer, cfg.lr * frac)
    agent.clip = cfg.clip * frac
    return {"charts/clip": agent.clip}


def adapt(cfg: Config, agent: PPO, metrics: dict[str, float]) -> dict[str, float]:
    """After an update: with `adaptive_kl`, the learning rate adapted to the update's KL; the rate as a
    statistic."""
    lr = agent.optimizer.param_groups[0]["lr"]
    if cfg.adaptive_kl is not None and "losses/last_epoch_kl" in metrics:
        lr = adapted_lr(lr, metrics["losses/last_epoch_kl"], cfg.adaptive_kl)
        nets.optim.set_lr(agent.optimizer, lr)
    return {"charts/learning_rate": lr}


# rl_games bounds the adapted rate to [1e-6, 1e-2]. With this ReLU CNN 1e-2 kills the network: on Pong
# the rate climbed there within 300k frames while the KL stayed low (a dead network's policy barely moves),
# and the score stayed at -21 for 800k frames. So the rate stays within 10x of Adam's usual 1e-4.
ADAPTIVE_LR_RANGE = (1e-5, 1e-3)


def adapted_lr(lr: float, kl: float, target: float) -> float:
    """rl_games' adaptive schedule: an update whose last epoch moved the policy less than half the target
    KL raises the rate by 1.5, one that moved it more than twice the target lowers it by 1.5."""
    if kl > 2 * target:
        lr /= 1.5
    elif kl < target / 2:
        lr *= 1.5
    return min(max(lr, ADAPTIVE_LR_RANGE[0]), ADAPTIVE_LR_RANGE[1])


SPEC = AgentSpec(
    "ppo", Config, PRESETS, make_agent, train, on_policy=True, resumable=("frames", "env_groups")
)
