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
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

import envs
import nets
from agents import ppo
from agents.actors import ActorEnvs, cpu_weights, start_ray
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
                  if f.name not in ("obs", "initial_state")}  # fmt: skip
        # Images travel in their memory layout, (T, N, H, W, C): a (T, N, C, H, W) view of it would be
        # copied into that layout on the way, and the learner's convolutions would then re-lay it out.
        image = rollout.obs.ndim == 5
        fields["obs"] = (rollout.obs.permute(0, 1, 3, 4, 2) if image else rollout.obs).cpu().numpy()
        return fields, games, version

    def close(self) -> None:
        self.env.close()


def make_agent(cfg: Config, env: Any, device: str = "auto", seed: int = 0) -> ppo.PPO:
    return ppo.make_agent(cfg, env, device, seed)  # the learner: PPO itself


def train(
    cfg: Config, env: ActorEnvs, agent: ppo.PPO, *, total_steps: int, start_step: int = 0, seed: int = 0,
    log_every: int = 0,
) -> Iterator[tuple[int, list[dict[str, float]]]]:  # fmt: skip
    """Learn from the actors' rollouts as they arrive. Yields (global_step, rows) once per rollout: its
    finished games and the update's statistics (an UPDATED row)."""
    ray = start_ray()
    remote = ray.remote(num_cpus=cfg.cpus_per_actor)(RolloutActor)
    actors = [remote.remote(cfg, env.game, env.actor_options(i), env.backend, seed + i * cfg.num_envs)
              for i in range(cfg.actors)]  # fmt: skip
    version, weights = 0, ray.put(cpu_weights(agent.net))
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
            if rollout.obs.ndim == 5:  # images: (T, N, C, H, W) over channels-last memory, as PPO's rollouts
                rollout.obs = rollout.obs.permute(0, 1, 4, 2, 3)
            schedule = ppo.anneal(cfg, agent, global_step, total_steps)  # as PPO: from the step before it
            global_step += rollout.actions.numel()
            r = rollout
            advantages, returns = gae(r.rewards, r.values, r.next_values, r.terminated, r.episode_ends,
                                      cfg.gamma, cfg.gae_lambda)  # fmt: skip
            metrics = agent.update(rollout.policy_batch(advantages, returns))
            version += 1
            weights = ray.put(cpu_weights(agent.net))
            pending[actor.collect.remote(weights, version)] = actor
            stats = {**metrics, **ppo.adapt(cfg, agent, metrics), **schedule,
                     "charts/policy_lag": version - 1 - acted_with, UPDATED: 1}  # fmt: skip
            yield global_step, [*games, stats]
    finally:
        for actor in actors:
            ray.kill(actor)


SPEC = AgentSpec("appo", Config, PRESETS, make_agent, train, make_env=ActorEnvs, on_policy=True,
                 resumable=("frames", "env_groups", "actors", "cpus_per_actor"))  # fmt: skip
