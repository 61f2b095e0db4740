"""What the agents whose envs run on Ray actors share (appo.py, apex.py): the env description the run layer
holds for them, starting Ray, and the weights they send. Ray is imported only when training starts."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import torch
from torch import nn

import envs


class ActorEnvs:
    """What the run layer holds as the env of a run whose envs live on Ray actors: what each actor builds
    its `num_envs` envs from, and the spaces (read from one env made and closed here)."""

    def __init__(self, game: str, num_envs: int, *, seed: int, backend: str = "auto", **options: Any) -> None:
        if importlib.util.find_spec("ray") is None:  # refused before any env or network is built
            raise ValueError(
                "this agent runs its envs on Ray actors: install the extra, pip install '.[ray]'"
            )
        film = {k: options.pop(k) for k in ("video_dir", "video_every") if k in options}
        probe = envs.make(game, 1, seed=seed, backend="sync", **options)
        self.single_observation_space = probe.single_observation_space
        self.single_action_space = probe.single_action_space
        probe.close()
        self.game, self.num_envs, self.backend = game, num_envs, backend
        self.options, self.film = options, film
        self.metadata = {
            "backend": f"{backend}, per Ray actor",
            "backend_why": "the agent steps its envs there",
        }

    def actor_options(self, index: int) -> dict[str, Any]:
        """envs.make options of actor `index`: only actor 0 films (its env 0), as a single run would."""
        return {**self.options, **(self.film if index == 0 else {})}

    def close(self) -> None:  # the actors close their own envs
        pass


def start_ray() -> Any:
    """The ray module, connected: to the cluster RAY_ADDRESS names, else a local Ray on this machine (or
    the Ray this process already runs in, such as a sweep's)."""
    import ray

    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), include_dashboard=False, log_to_driver=False)
    return ray


def cpu_weights(net: nn.Module) -> dict[str, torch.Tensor]:
    """A network's weights as CPU tensors, for Ray's object store."""
    return {k: v.detach().cpu() for k, v in net.state_dict().items()}
