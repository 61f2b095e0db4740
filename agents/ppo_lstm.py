"""Recurrent PPO: PPO whose policy and value share an LSTM, fed one observation per step, for games where
one frame does not show everything (CleanRL's ppo_atari_lstm; SB3-contrib's RecurrentPPO).

Algorithm box, as agents/ppo.py with memory:
1. Carry one LSTM state per env through the rollouts; zero it before each observation that starts an
   episode (the envs' first-of-episode flag). The rollout keeps the state before its first row.
2. GAE(lambda) as in PPO.
3. For `epochs` passes, split the envs into `minibatches` groups and, for each group, run the network over
   the group's whole sequences (T steps) from their stored initial states, zeroing the state at the same
   episode starts as when acting: truncated backpropagation through time over the rollout. The loss is
   PPO's (agents.ppo.ppo_loss) on the real transitions of those sequences.
In the first pass, before any step, the recomputed log-probabilities equal the collected ones (a test).

Deviations: as in agents/ppo.py, NEXT_STEP's reset steps are not transitions; here they stay in the
sequences (the LSTM reads them, as when acting) and are left out of the loss. Minibatches are groups of
whole env sequences, so `num_envs` must be a multiple of `minibatches` (CleanRL: 8 envs, 4 minibatches).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from torch import nn

import nets
from agents import ppo
from agents.common import ConfigError, check_config, num_discrete_actions, take_columns
from agents.interface import AgentSpec
from agents.rollout import PolicyBatch, SequenceBatch, sample_from_logits


@dataclass(frozen=True)
class Config(ppo.Config):
    """PPO's hyperparameters (agents.ppo.Config, one source of truth for their meaning and defaults) plus
    the memory's. `minibatches` counts groups of whole env sequences here."""

    hidden: tuple[int, ...] = (64,)
    """Encoder MLP widths for vector observations (ReLU), before the LSTM; pixels use the Nature CNN."""
    lstm_hidden: int = 128
    """LSTM state size (CleanRL's ppo_atari_lstm: 128 after the CNN's 512 features)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_config(self, positive=("lstm_hidden",))
        if self.num_envs % self.minibatches:
            raise ConfigError(f"--num-envs {self.num_envs} must be a multiple of --minibatches "
                              f"{self.minibatches}: a minibatch holds whole env sequences")  # fmt: skip


PRESETS = {
    # CleanRL's ppo_atari_lstm: PPO's Atari settings on single frames (the env option frame_stack=1).
    "atari": Config(),
    # CartPole (and CartPole-NoVel, its velocities hidden): PPO's CartPole preset, one minibatch of all
    # 8 sequences of 32 steps, as the SB3 zoo's RecurrentPPO on CartPoleNoVel (n_envs 8, n_steps 32,
    # batch 256, lr 1e-3, gamma 0.98, lambda 0.8, clip 0.2, no entropy bonus), with 64-unit LSTMs, 10
    # epochs instead of 20 and 200k steps. The zoo also normalises observations and rewards; we do not.
    # On CartPole-NoVel, seed 1 (one thread, 2-core AMD EPYC): 10 epochs reached an evaluation of 498 at
    # 40k steps, 20 epochs peaked at 500 at 120k and ended at 282; 20 epochs on seeds 0-2 ended at 355,
    # 282 and 277 after peaks of 453, 500 and 308 (evaluations oscillate; see docs/memory.md).
    "classic": Config(
        **{
            **dataclasses.asdict(ppo.PRESETS["classic"]),
            "hidden": (64,),
            "lstm_hidden": 64,
            "epochs": 10,
            "frames": 200_000,
        }
    ),  # fmt: skip
}


def env_options(cfg: Config, kind: str) -> dict[str, int]:
    """One frame per observation on Atari: the LSTM, not a frame stack, remembers."""
    return {"frame_stack": 1} if kind == "atari" else {}


class RecurrentPPO:
    def __init__(
        self,
        cfg: Config,
        obs_space: gym.Space,
        num_actions: int,
        num_envs: int,
        device: str = "auto",
        seed: int = 0,
    ) -> None:
        self.cfg, self.device, self.num_actions = cfg, nets.resolve_device(device), num_actions
        self.net = nets.RecurrentActorCritic(obs_space.shape, num_actions, cfg.hidden, cfg.lstm_hidden)
        self.net.to(self.device)
        self.optimizer = nets.make_optimizer("adam", self.net.parameters(), cfg.lr, eps=cfg.adam_eps)
        self.actor_critic = nets.DeviceNet(self.net, self.device, cfg.precision, self.optimizer)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.clip = cfg.clip
        self.state = self.net.initial_state(num_envs, self.device)  # (h, c), each (1, N, H): while training
        self._eval_state = self.net.initial_state(0, self.device)  # while evaluating (sized on first use)

    @torch.no_grad()
    def act(
        self, obs: np.ndarray | torch.Tensor, first: np.ndarray, envs: slice = slice(None)
    ) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
        """Sampled actions, log-probabilities and values (n,) for envs `envs`, whose state it advances."""
        h, c = self.state
        logits, values, h[:, envs], c[:, envs] = self.actor_critic.infer(obs, h[:, envs], c[:, envs], first)
        return *sample_from_logits(logits, self.generator), values

    @torch.no_grad()
    def value(self, obs: np.ndarray | torch.Tensor, first: np.ndarray) -> torch.Tensor:
        """V of every env's observation (N,), from the carried state, which it leaves as it is."""
        return self.actor_critic.infer(obs, *self.state, first)[1]

    @torch.no_grad()
    def eval_act(self, obs: np.ndarray, first: np.ndarray | None = None) -> np.ndarray:
        """Greedy actions, with a state of its own that starts afresh wherever `first` (None: everywhere)."""
        if first is None or len(first) != self._eval_state[0].shape[1]:
            self._eval_state = self.net.initial_state(len(obs), self.device)
            first = np.ones(len(obs), dtype=bool)
        logits, _, *self._eval_state = self.actor_critic.infer(obs, *self._eval_state, first)
        return logits.argmax(-1).cpu().numpy()

    def update(self, batch: SequenceBatch) -> dict[str, float]:
        """`epochs` passes over the rollout, in minibatches of whole env sequences (see the module box)."""
        cfg, rollout = self.cfg, batch.rollout
        N = rollout.actions.shape[1]
        h0, c0 = rollout.initial_state  # (1, N, H) each: the state before the rollout's first row
        stats: dict[str, list[float]] = {}
        for _ in range(cfg.epochs):
            order = torch.randperm(N, generator=self.generator, device=self.device)
            for cols in order.chunk(cfg.minibatches):
                firsts = rollout.firsts.index_select(1, cols)  # (T + 1, n)
                logits, values, _, _ = self.actor_critic(
                    take_columns(rollout.obs, cols), h0.index_select(1, cols), c0.index_select(1, cols),
                    firsts[:-1],
                )  # fmt: skip
                real = (~firsts[1:]).flatten().nonzero().squeeze(1)  # the sequences' transitions (B,)
                if len(real) == 0:
                    continue
                collected = (rollout.actions, rollout.logprobs, rollout.values, batch.advantages,
                             batch.returns)  # fmt: skip
                mb_rows = [x.index_select(1, cols).flatten(0, 1).index_select(0, real) for x in collected]
                mb_batch = PolicyBatch(logits.new_empty(0), *mb_rows)  # (B,) each; the loss reads no obs
                loss, mb_stats = ppo.ppo_loss(cfg, self.clip, logits.flatten(0, 1)[real],
                                              values.flatten(0, 1)[real], mb_batch)  # fmt: skip
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(self.net.parameters(), cfg.max_grad_norm)
                self.optimizer.step()
                for k, v in mb_stats.items():
                    stats.setdefault(k, []).append(v.item())
            last_kl = float(np.mean(stats.get("approx_kl", [0.0])[-cfg.minibatches :]))  # as PPO's
            if cfg.target_kl is not None and last_kl > cfg.target_kl:
                break
        means = {f"losses/{k}": float(np.mean(v)) for k, v in stats.items()}
        return means | {"losses/last_epoch_kl": last_kl}

    def state_dict(self) -> dict:
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])


def make_agent(cfg: Config, env: gym.vector.VectorEnv, device: str = "auto", seed: int = 0) -> RecurrentPPO:
    num_actions = num_discrete_actions(env, "recurrent PPO")
    return RecurrentPPO(cfg, env.single_observation_space, num_actions, env.num_envs, device, seed)


# The loop is PPO's (agents.ppo.train) with the recurrent collector and whole-sequence batches.
train = functools.partial(ppo.train, recurrent=True)


SPEC = AgentSpec("ppo-lstm", Config, PRESETS, make_agent, train, env_options=env_options, on_policy=True,
                 resumable=("frames", "env_groups"))  # fmt: skip
