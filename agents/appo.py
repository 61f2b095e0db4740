"""APPO: PPO whose envs run on Ray actors, learning from their rollouts as they arrive (the actor-learner
split of IMPALA, Espeholt et al. 2018; the policy lag handled by PPO's clipping, as RLlib's APPO does
without V-trace).

Algorithm box: each of `actors` Ray actors steps `num_envs` envs with its copy of the policy for
`num_steps` steps, then sends the rollout (observations, actions, the behaviour policy's log-probabilities
and values, rewards, episode flags) to the learner. The learner takes rollouts in the order they arrive,
computes GAE from the behaviour values, and makes PPO's update (agents/ppo.py, unchanged) on each, with
the behaviour log-probabilities as pi_old. The ratio pi / pi_behaviour then includes the lag between the
weights that acted and the ones that learn, and PPO's clip bounds it. After each update the learner puts
its weights in Ray's object store once and sends the actor that delivered back to collect with them.

With one actor, collecting and learning take turns (no lag): PPO with its envs in another process. With
more, actors collect while the learner learns; `charts/policy_lag` logs how many updates old the weights
of each rollout were. Ray is imported only when training starts (`pip install .[ray]`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

import envs
import nets
from agents import ppo
from agents.common import check_config
from agents.interface import UPDATED, AgentSpec
from agents.returns import gae
from agents.rollout import Rollout, RolloutCollector


@dataclass(frozen=True)
class Config(ppo.Config):
    """PPO's hyperparameters, with `num_envs` the envs of each actor (so one update learns from as many
    transitions as PPO's), and the actors."""

    actors: int = 2
    """Ray actors, each stepping num_envs envs."""
    cpus_per_actor: float = 1.0
    """CPUs Ray reserves for each actor (its torch threads follow, at least 1)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_config(self, positive=("actors", "cpus_per_actor"))


PRESETS = {name: Config(**dataclasses.asdict(cfg)) for name, cfg in ppo.PRESETS.items()}


class ActorEnvs:
    """What the run layer holds as an APPO run's env: what each actor builds its envs from, and the spaces
    (read from one env made and closed here). The actors' envs never live in this process."""

    def __init__(self, game: str, num_envs: int, *, seed: int, backend: str = "auto", **options: Any) -> None:
        film = {k: options.pop(k) for k in ("video_dir", "video_every") if k in options}
        probe = envs.make(game, 1, seed=seed, backend="sync", **options)
        self.single_observation_space, self.single_action_space = (
            probe.single_observation_space, probe.single_action_space)  # fmt: skip
        probe.close()
        self.game, self.num_envs, self.backend = game, num_envs, backend
        self.options, self.film = options, film
        self.metadata = {"backend": f"{backend}, in Ray actors", "backend_why": "APPO steps its envs there"}

    def actor_options(self, index: int) -> dict[str, Any]:
        """envs.make options of actor `index`: only actor 0 films (its env 0), as a single run would."""
        return {**self.options, **(self.film if index == 0 else {})}

    def close(self) -> None:  # the actors close their own envs
        pass


class RolloutActor:
    """Runs in a Ray actor: its envs, a copy of the policy, and PPO's rollout collector."""

    def __init__(self, cfg: Config, game: str, options: dict[str, Any], backend: str, seed: int) -> None:
        torch.set_num_threads(max(1, int(cfg.cpus_per_actor)))
        groups = cfg.env_groups if cfg.num_envs % cfg.env_groups == 0 else 1
        self.env = envs.make(game, cfg.num_envs, seed=seed, mode="train", backend=backend, groups=groups,
                             **options)  # fmt: skip
        self.agent = ppo.make_agent(cfg, self.env, "cpu", seed)
        self.collector = RolloutCollector(self.env, cfg.num_steps, self.agent.device, seed)

    def collect(
        self, weights: dict[str, torch.Tensor], version: int
    ) -> tuple[dict[str, np.ndarray], list[dict[str, float]], int]:
        """One rollout with `weights` (the learner's after update `version`): its fields as numpy arrays,
        the games that finished in it, and `version`."""
        self.agent.net.load_state_dict(weights)
        games, steps = [], self.collector.collect(self.agent, 0)
        while True:
            try:
                games += next(steps)[1]
            except StopIteration as done:
                rollout: Rollout = done.value
                break
        fields = {f.name: getattr(rollout, f.name).cpu().numpy() for f in dataclasses.fields(Rollout)
                  if f.name != "initial_state"}  # fmt: skip
        return fields, games, version

    def close(self) -> None:
        self.env.close()


def make_env(game: str, num_envs: int, *, seed: int, backend: str = "auto", **options: Any) -> ActorEnvs:
    return ActorEnvs(game, num_envs, seed=seed, backend=backend, **options)


def make_agent(cfg: Config, env: Any, device: str = "auto", seed: int = 0) -> ppo.PPO:
    return ppo.make_agent(cfg, env, device, seed)  # the learner: PPO itself


def _cpu_weights(agent: ppo.PPO) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in agent.net.state_dict().items()}


def train(
    cfg: Config, env: ActorEnvs, agent: ppo.PPO, *, total_steps: int, start_step: int = 0, seed: int = 0,
    log_every: int = 0,
) -> Iterator[tuple[int, list[dict[str, float]]]]:  # fmt: skip
    """Learn from the actors' rollouts as they arrive. Yields (global_step, rows) once per rollout: its
    finished games and the update's statistics (an UPDATED row)."""
    import ray

    if not ray.is_initialized():  # a cluster when RAY_ADDRESS names one, else a local Ray
        ray.init(address=os.environ.get("RAY_ADDRESS"), include_dashboard=False, log_to_driver=False)
    remote = ray.remote(num_cpus=cfg.cpus_per_actor)(RolloutActor)
    actors = [remote.remote(cfg, env.game, env.actor_options(i), env.backend, seed + i * cfg.num_envs)
              for i in range(cfg.actors)]  # fmt: skip
    version, weights = 0, ray.put(_cpu_weights(agent))
    pending = {actor.collect.remote(weights, version): actor for actor in actors}
    global_step = start_step
    try:
        while global_step < total_steps:
            [ready], _ = ray.wait(list(pending), num_returns=1)
            actor = pending.pop(ready)
            fields, games, acted_with = ray.get(ready)
            # Ray hands over read-only views of its object store: copied, as torch wants writable memory.
            rollout = Rollout(**{k: nets.to_device(np.require(v, requirements="W"), agent.device)
                                 for k, v in fields.items()})  # fmt: skip
            schedule = ppo.anneal(cfg, agent, global_step, total_steps)  # as PPO: from the step before it
            global_step += rollout.actions.numel()
            r = rollout
            advantages, returns = gae(r.rewards, r.values, r.next_values, r.terminated, r.episode_ends,
                                      cfg.gamma, cfg.gae_lambda)  # fmt: skip
            metrics = agent.update(rollout.policy_batch(advantages, returns))
            version += 1
            weights = ray.put(_cpu_weights(agent))
            pending[actor.collect.remote(weights, version)] = actor
            stats = {**metrics, **ppo.adapt(cfg, agent, metrics), **schedule,
                     "charts/policy_lag": version - 1 - acted_with, UPDATED: 1}  # fmt: skip
            yield global_step, [*games, stats]
    finally:
        for actor in actors:
            ray.kill(actor)


SPEC = AgentSpec("appo", Config, PRESETS, make_agent, train, make_env=make_env, on_policy=True,
                 resumable=("frames", "actors", "cpus_per_actor"))  # fmt: skip
