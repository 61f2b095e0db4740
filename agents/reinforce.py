"""REINFORCE from pixels, as in Karpathy's "Pong from Pixels" (2016), after Williams (1992).

Algorithm box: play `batch_games` whole episodes with the stochastic policy, compute each step's
discounted return, normalise the returns over the batch, and take one RMSProp step on
    L = CE(pi(.|s), a; weights = G_norm)       (or weights = G - V(s) with `baseline`)
which is plain supervised classification of the actions taken, weighted by how well they turned out.
Karpathy's setup: 80x80 difference frames flattened to 6,400 inputs, one hidden layer of 200 units, two
actions (up, down), gamma 0.99, RMSProp lr 1e-3 with decay 0.99, an update every 10 games, and in Pong
the running return restarts at every point scored (each rally is its own credit-assignment problem).

Deviations: a categorical head over the two actions instead of one sigmoid unit (the same model);
the 0.25 sticky-action protocol of design §1; `baseline=True` adds a learned state value; `ent_coef` (an
entropy bonus) and `anneal` (learning rate to 0 over the budget) are off for Pong and on for CartPole, where
without them the policy often turned deterministic before it balanced the pole.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

import envs
import nets
from agents.common import ConfigError, check_config, num_discrete_actions
from agents.interface import UPDATED, AgentSpec
from agents.returns import discounted_returns


@dataclass(frozen=True)
class Config:
    """REINFORCE hyperparameters. Defaults are Karpathy's Pong setup; `PRESETS["classic"]` is CartPole's."""

    frames: int = 10_000_000
    """Training budget in emulator frames (agent steps x 4 on Atari)."""
    num_envs: int = 1
    """One env: every batch is made of whole episodes played with the same policy."""
    batch_games: int = 10
    """Episodes per update (Karpathy: 10)."""
    optimizer: str = "rmsprop"
    """rmsprop (Karpathy; decay 0.99 is torch's default alpha) or adam."""
    lr: float = 1e-3
    """Learning rate (Karpathy: 1e-3)."""
    anneal: bool = False
    """Anneal the learning rate linearly to 0 over the budget, so the last updates cannot undo a
    learned policy (not in Karpathy's setup; the CartPole preset uses it)."""
    gamma: float = 0.99
    """Discount factor."""
    hidden: tuple[int, ...] = (200,)
    """Hidden layer widths (Karpathy: one layer of 200)."""
    actions: tuple[int, ...] = (2, 3)
    """The env actions the policy chooses from (Pong's minimal set: 2 = up, 3 = down). Empty: all."""
    reset_on_reward: bool = True
    """Restart the return at every non-zero reward (Pong: a point ends a rally)."""
    ent_coef: float = 0.0
    """Entropy bonus (Williams & Peng 1991): keeps the policy from turning deterministic too early.
    Karpathy's setup has none."""
    baseline: bool = False
    """Subtract a learned state value V(s) from the return (trained by regression on the returns)."""
    preprocess: str = "karpathy"
    """Atari observation: "karpathy" (80x80 difference frame) or "nature" (84x84x4 stack, Nature CNN)."""

    def __post_init__(self) -> None:
        check_config(self, positive=("frames", "batch_games", "lr", "gamma"), non_negative=("ent_coef",),
                     unit=("gamma",))  # fmt: skip
        if self.num_envs != 1:
            raise ConfigError("REINFORCE plays whole episodes in one env; use --num-envs 1")
        if self.preprocess not in ("karpathy", "nature"):
            raise ConfigError(f"--preprocess {self.preprocess!r}: choose karpathy or nature")

    @property
    def env_groups(self) -> int:
        """REINFORCE plays in one env (the run layer asks every agent)."""
        return 1


PRESETS = {
    "atari": Config(),
    # CartPole: the best of a small search here (10 settings x up to 3 seeds, 100k steps each). Greedy
    # returns after 100k steps: 224 / 212 / 160 on seeds 0-2; with the annealing but no entropy bonus
    # 190 / 139 on seeds 0-1, and Adam at 1e-2 collapsed to an always-push policy on some seeds.
    "classic": Config(
        frames=100_000,
        batch_games=5,
        lr=3e-3,
        anneal=True,
        ent_coef=0.01,
        hidden=(64,),
        actions=(),
        reset_on_reward=False,
    ),
}


def env_options(cfg: Config, kind: str) -> dict[str, str]:
    """Observation options this agent needs from envs.make (recorded in checkpoints for watch/evaluate)."""
    return {"preprocess": cfg.preprocess} if kind == "atari" else {}


@dataclass
class EpisodeBatch:
    """The steps of whole episodes as flat rows, for `Reinforce.update`."""

    obs: torch.Tensor  # (B, 6400) float32 difference frames | (B, 4, 84, 84) uint8 | (B, D) float32
    actions: torch.Tensor  # (B,) int64: indices into `Reinforce.env_actions`, not env actions
    returns: torch.Tensor  # (B,) discounted returns G_t


class Reinforce:
    def __init__(
        self, cfg: Config, obs_space: gym.Space, num_actions: int, device: str = "auto", seed: int = 0
    ) -> None:
        self.cfg, self.device = cfg, nets.resolve_device(device)
        self.env_actions = np.array(cfg.actions or range(num_actions))
        self.num_actions = num_actions
        body = nets.backbone_for(obs_space.shape, cfg.hidden)
        self.policy = nets.BackboneWithHead(
            body, nets.CategoricalPolicyHead(body.out_dim, len(self.env_actions))
        )
        self.value = None
        if cfg.baseline:
            value_body = nets.backbone_for(obs_space.shape, cfg.hidden)
            self.value = nets.BackboneWithHead(value_body, nets.ValueHead(value_body.out_dim))
        params = [p for m in (self.policy, self.value) if m is not None for p in m.parameters()]
        self.optimizer = nets.make_optimizer(cfg.optimizer, params, cfg.lr)
        self.to(self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    def to(self, device: torch.device) -> None:
        for m in (self.policy, self.value):
            if m is not None:
                m.to(device)

    @torch.inference_mode()
    def act(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(env actions (N,), indices into `env_actions` (N,)) sampled from the policy."""
        probs = self.policy(nets.to_device(obs, self.device)).softmax(-1)
        index = torch.multinomial(probs, 1, generator=self.generator).squeeze(1).cpu().numpy()
        return self.env_actions[index], index

    @torch.inference_mode()
    def eval_act(self, obs: np.ndarray, first: np.ndarray | None = None) -> np.ndarray:
        return self.env_actions[self.policy(nets.to_device(obs, self.device)).argmax(-1).cpu().numpy()]

    def update(self, b_batch: EpisodeBatch) -> dict[str, float]:
        """One step on a batch of whole episodes."""
        obs, returns, metrics = b_batch.obs, b_batch.returns, {}
        if self.value is not None:
            values = self.value(obs)
            advantages = returns - values.detach()
            value_loss = nets.mse(values, returns)
            metrics["losses/value"] = value_loss.item()
        else:
            advantages, value_loss = returns, torch.zeros((), device=self.device)
        # Normalising the weights per batch controls the gradient's variance (Karpathy; Sutton & Barto 13.4).
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        logits = self.policy(obs)
        policy_loss = nets.cross_entropy(logits, b_batch.actions, weights=advantages)
        entropy = nets.entropy(logits)
        self.optimizer.zero_grad(set_to_none=True)
        (policy_loss + value_loss - self.cfg.ent_coef * entropy).backward()
        self.optimizer.step()
        return {"losses/policy": policy_loss.item(), "losses/entropy": entropy.item(), **metrics}

    def state_dict(self) -> dict:
        state = {"policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict()}
        return state | ({"value": self.value.state_dict()} if self.value is not None else {})

    def load_state_dict(self, state: dict) -> None:
        self.policy.load_state_dict(state["policy"])
        if self.value is not None:
            self.value.load_state_dict(state["value"])
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])


def make_agent(cfg: Config, env: gym.vector.VectorEnv, device: str = "auto", seed: int = 0) -> Reinforce:
    n = num_discrete_actions(env, "REINFORCE")
    if cfg.actions and max(cfg.actions) >= n:
        raise ValueError(f"--actions {cfg.actions} names actions the env lacks (it has {n}); use --actions")
    return Reinforce(cfg, env.single_observation_space, n, device, seed)


def train(
    cfg: Config,
    env: gym.vector.VectorEnv,
    agent: Reinforce,
    *,
    total_steps: int,
    start_step: int = 0,
    seed: int = 0,
    log_every: int = 0,
) -> Iterator[tuple[int, list[dict[str, float]]]]:
    """Play `batch_games` episodes, update, repeat. Yields (global_step, rows) after every step."""
    obs, _ = env.reset(seed=seed)
    N = env.num_envs
    global_step = start_step
    steps: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []  # per step: obs, index, r, end
    games = 0
    while global_step < total_steps:
        actions, index = agent.act(obs)
        next_obs, rewards, terminations, truncations, info = env.step(actions)
        done = terminations | truncations
        if not envs.first_of_episode(info).any():  # a first next_obs: a reset step, no transition (N = 1)
            ends = done | ((rewards != 0) if cfg.reset_on_reward else False)
            storable = (
                obs.astype(np.int8) if obs.dtype == np.float32 and cfg.preprocess == "karpathy" else obs
            )
            steps.append((storable, index, np.asarray(rewards, np.float32), ends))
        obs = next_obs
        global_step += N
        games += int(done.sum())
        rows = [{"episode_return": s, "episode_length": n} for _, s, n in envs.finished_episodes(info)]
        if games >= cfg.batch_games and done.all():
            if cfg.anneal:
                nets.optim.set_lr(agent.optimizer, cfg.lr * max(0.0, 1 - global_step / total_steps))
            rows.append(_update(agent, steps, cfg.gamma))
            steps, games = [], 0
        yield global_step, rows


def _update(agent: Reinforce, steps: list, gamma: float) -> dict[str, float]:
    obs, index, rewards, ends = (np.stack(x) for x in zip(*steps, strict=True))  # (T, N, ...)
    dev = agent.device
    returns = discounted_returns(torch.from_numpy(rewards).to(dev), torch.from_numpy(ends).to(dev), gamma)
    b_obs = torch.from_numpy(obs).to(dev).flatten(0, 1)
    b_obs = b_obs.float() if b_obs.dtype == torch.int8 else b_obs  # int8 storage of {-1, 0, 1} frames
    b_batch = EpisodeBatch(b_obs, torch.from_numpy(index).to(dev).flatten(), returns.flatten())
    return agent.update(b_batch) | {"charts/batch_steps": len(steps), UPDATED: 1}


SPEC = AgentSpec("reinforce", Config, PRESETS, make_agent, train, env_options=env_options, on_policy=True)
