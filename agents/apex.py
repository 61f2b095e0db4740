"""Ape-X DQN: DQN learning from one central replay that Ray actors fill, each exploring with its own
epsilon (Horgan et al. 2018, "Distributed Prioritized Experience Replay").

Algorithm box: actor i of N steps `num_envs` envs epsilon-greedily with its copy of the Q-network, at
    epsilon_i = eps_base ** (1 + eps_alpha * i / (N - 1))          (Ape-X: 0.4 and 7; eps_base for N = 1)
and sends chunks of `chunk_steps` vector steps (actions, rewards, terminations, next observations,
episode starts) to the learner. The learner writes each chunk into that actor's env slots of one
ReplayBuffer (agents/replay.py: frames stored once, n-step returns, optional priorities) and, from
`learning_starts` transitions on, makes DQN's update (`DQN.learn`, agents/dqn.py, unchanged) once per
`train_every` agent steps received, copies Q into the target network every `target_update_every`, and
sends its weights back to the actor with its next request. Deviation from the paper: new transitions get
the replay's maximum priority (as in DQN here) instead of priorities the actors compute.

With one actor, acting and learning take turns (DQN with its envs in another process, at one fixed
epsilon). Ray is imported only when training starts (`pip install .[ray]`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

import envs
from agents import dqn
from agents.actors import ActorEnvs, cpu_weights, start_ray
from agents.common import check_config, crossings, linear_schedule
from agents.interface import AgentSpec
from agents.replay import DeviceBatches, ReplayBuffer


@dataclass(frozen=True)
class Config(dqn.Config):
    """DQN's hyperparameters, with `num_envs` the envs of each actor. The actors explore at fixed epsilons
    (eps_base, eps_alpha): DQN's decaying one (eps_start, eps_end, eps_decay_steps) does not apply."""

    actors: int = 2
    """Ray actors, each stepping num_envs envs."""
    cpus_per_actor: float = 1.0
    """CPUs Ray reserves for each actor (its torch threads follow, at least 1)."""
    chunk_steps: int = 32
    """Vector steps an actor takes between two sends to the learner (and two weight refreshes)."""
    eps_base: float = 0.4
    """Ape-X's epsilon_i = eps_base ** (1 + eps_alpha * i / (N - 1))."""
    eps_alpha: float = 7.0
    """See eps_base."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_config(
            self, positive=("actors", "cpus_per_actor", "chunk_steps", "eps_alpha"), unit=("eps_base",)
        )


PRESETS = {name: Config(**dataclasses.asdict(cfg)) for name, cfg in dqn.PRESETS.items()}


def actor_epsilons(cfg: Config) -> list[float]:
    """Each actor's fixed exploration rate, from eps_base (actor 0) down to eps_base ** (1 + eps_alpha)."""
    n = cfg.actors
    return [cfg.eps_base ** (1 + cfg.eps_alpha * i / (n - 1)) if n > 1 else cfg.eps_base for i in range(n)]


class ExplorerActor:
    """Runs in a Ray actor: its envs and a copy of the Q-network, acting at one epsilon."""

    def __init__(self, cfg: Config, game: str, options: dict[str, Any], backend: str, seed: int,
                 epsilon: float) -> None:  # fmt: skip
        torch.set_num_threads(max(1, int(cfg.cpus_per_actor)))
        self.cfg, self.epsilon = cfg, epsilon
        self.env = envs.make(game, cfg.num_envs, seed=seed, mode="train", backend=backend, **options)
        self.agent = dqn.make_agent(cfg, self.env, "cpu", seed)
        self.obs, _ = self.env.reset(seed=seed)
        self.reset_obs: np.ndarray | None = self.obs.copy()  # sent with the first chunk

    def collect(self, weights: dict[str, torch.Tensor], version: int) -> tuple[dict[str, Any], list, int]:
        """`chunk_steps` vector steps with `weights` (the learner's after update `version`): the chunk's
        arrays, (T, N, ...) each, the games that finished in it, and `version`."""
        self.agent.q_net.load_state_dict(weights)
        T, N = self.cfg.chunk_steps, self.cfg.num_envs
        chunk = {"actions": np.zeros((T, N), np.int64), "rewards": np.zeros((T, N), np.float32),
                 "terminated": np.zeros((T, N), bool), "first": np.zeros((T, N), bool),
                 "next_obs": np.zeros((T, *self.obs.shape), self.obs.dtype)}  # fmt: skip
        games = []
        for t in range(T):
            actions = self.agent.act(self.obs, self.epsilon)
            next_obs, rewards, terminated, _, info = self.env.step(actions)
            chunk["actions"][t], chunk["rewards"][t], chunk["terminated"][t] = actions, rewards, terminated
            chunk["next_obs"][t], chunk["first"][t] = next_obs, envs.first_of_episode(info)
            games += [{"episode_return": score, "episode_length": length, "actor_epsilon": self.epsilon}
                      for _, score, length in envs.finished_episodes(info)]  # fmt: skip
            self.obs = next_obs
        chunk["reset_obs"], self.reset_obs = self.reset_obs, None
        return chunk, games, version

    def close(self) -> None:
        self.env.close()


def make_agent(cfg: Config, env: Any, device: str = "auto", seed: int = 0) -> dqn.DQN:
    return dqn.make_agent(cfg, env, device, seed)  # the learner: DQN itself


def make_replay(cfg: Config, env: Any, seed: int = 0) -> ReplayBuffer:
    """One replay for every actor's envs: actor i fills env slots i * num_envs .. (i + 1) * num_envs - 1."""
    space = env.single_observation_space
    return ReplayBuffer(
        cfg.buffer_size, cfg.actors * cfg.num_envs, space.shape, space.dtype,
        frame_stack=len(space.shape) == 3, n_step=cfg.n_step, gamma=cfg.gamma, prioritized=cfg.prioritized,
        alpha=cfg.per_alpha, seed=seed,
    )  # fmt: skip


def train(
    cfg: Config, env: ActorEnvs, agent: dqn.DQN, *, total_steps: int, start_step: int = 0, seed: int = 0,
    log_every: int = 1_000, replay: ReplayBuffer | None = None,
) -> Iterator[tuple[int, list[dict[str, float]]]]:  # fmt: skip
    """Learn from the actors' chunks as they arrive. Yields (global_step, rows) once per chunk: its finished
    games, and training statistics every `log_every` steps."""
    ray = start_ray()
    replay = replay if replay is not None else make_replay(cfg, env, seed)
    batches = DeviceBatches(replay, agent.device, cfg.batch_size)
    remote = ray.remote(num_cpus=cfg.cpus_per_actor)(ExplorerActor)
    actors = [remote.remote(cfg, env.game, env.actor_options(i), env.backend, seed + i * cfg.num_envs, eps)
              for i, eps in enumerate(actor_epsilons(cfg))]  # fmt: skip
    version, weights = 0, ray.put(cpu_weights(agent.q_net))
    pending = {actor.collect.remote(weights, version): i for i, actor in enumerate(actors)}
    global_step, lags = start_step, []
    try:
        while global_step < total_steps:
            [ready], _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(ready)
            chunk, games, acted_with = ray.get(ready)
            slots = slice(i * cfg.num_envs, (i + 1) * cfg.num_envs)
            if chunk["reset_obs"] is not None:  # the actor's first chunk: its envs' first observations
                replay.reset(chunk["reset_obs"], envs=slots)
            for t in range(cfg.chunk_steps):
                step = (chunk[k][t] for k in ("actions", "rewards", "terminated", "next_obs", "first"))
                replay.add(*step, envs=slots)
            prev_step, global_step = global_step, global_step + cfg.chunk_steps * cfg.num_envs
            lags.append(version - acted_with)
            if replay.added >= cfg.learning_starts and len(replay) >= cfg.batch_size:
                beta = linear_schedule(cfg.per_beta_start, 1.0, total_steps, global_step)
                for _ in range(crossings(prev_step, global_step, cfg.train_every) * cfg.gradient_steps):
                    batch = batches.sample(beta)
                    agent.learn(batch)
                    if replay.prioritized:
                        replay.update_priorities(batch.indices, agent.td_abs)
                    version += 1
                if crossings(prev_step, global_step, cfg.target_update_every):
                    agent.sync_target()
                weights = ray.put(cpu_weights(agent.q_net))
            pending[actors[i].collect.remote(weights, version)] = i
            rows = list(games)
            if crossings(prev_step, global_step, log_every):
                rows.append({**agent.metrics(), "charts/replay_size": len(replay),
                             "charts/policy_lag": float(np.mean(lags))})  # fmt: skip
                lags = []
            yield global_step, rows
    finally:
        for actor in actors:
            ray.kill(actor)


# A resume may change how fast the same algorithm runs (`compile`, `cpus_per_actor`), not the actors: the
# saved replay holds each actor's env slots.
SPEC = AgentSpec("apex", Config, PRESETS, make_agent, train, make_replay=make_replay, make_env=ActorEnvs,
                 resumable=("frames", "compile", "cpus_per_actor"))  # fmt: skip
