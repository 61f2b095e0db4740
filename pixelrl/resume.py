"""What a checkpoint holds besides the agent's weights, so that a resumed run goes on as the uninterrupted one
would have: every random stream (Python's, NumPy's, torch's, and the generators the agent and its replay
own), the acting memory of agents with memory, and every env's state where the backend can save it
(`envs.env_state`: the sync backend, which classic control always runs on). All of it is tensors and JSON
scalars in the checkpoint file, like the weights; nothing is pickled.

On-policy loops change the agent only at an update, so the run layer captures this at each update's yield
and saves that capture with the weights, even when the run stops in the middle of the next rollout.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

import envs
from envs.resume import to_data

# An agent's memory carried from one acting step to the next: recurrent PPO's (h, c), DRQN's actor state.
MEMORY = ("state", "actor_state")


def _plain(value: Any) -> Any:
    """A bit generator's state (nested dicts of ints and arrays) as tensors and JSON scalars."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return to_data(value)


def _numpy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _numpy(v) for k, v in value.items()}
    return value.numpy().copy() if isinstance(value, torch.Tensor) else value


def _generators(holders: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """("agent.generator", gen), ...: the torch and NumPy generators each holder keeps as attributes."""
    for owner, obj in holders.items():
        if obj is None:
            continue
        for name, value in sorted(vars(obj).items()):
            if isinstance(value, torch.Generator | np.random.Generator):
                yield f"{owner}.{name}", value


def random_streams(**holders: Any) -> dict[str, Any]:
    """Every random stream: the global ones and the generators of `holders` (agent=..., replay=...)."""
    version, internal, gauss = random.getstate()
    streams: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": _plain(np.random.get_state(legacy=False)),
        "torch": torch.get_rng_state(),
    }
    for key, gen in _generators(holders):
        streams[key] = (
            gen.get_state() if isinstance(gen, torch.Generator) else _plain(gen.bit_generator.state)
        )
    return streams


def set_random_streams(streams: dict[str, Any], **holders: Any) -> None:
    """Put back what `random_streams` returned, into holders built as the saved ones were."""
    version, internal, gauss = streams["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(_numpy(streams["numpy"]))
    torch.set_rng_state(streams["torch"])
    for key, gen in _generators(holders):
        if key not in streams:  # e.g. a replay saved from this resume on (--save-replay): as seeded
            continue
        if isinstance(gen, torch.Generator):
            gen.set_state(streams[key].to(torch.uint8))
        else:
            gen.bit_generator.state = _numpy(streams[key])


def capture(agent: Any, env: Any, replay: Any = None) -> dict[str, Any]:
    """The loop's state now, copied: `restore` puts it back into a freshly built agent, env and replay."""
    memory = {name: [t.clone() for t in getattr(agent, name)] for name in MEMORY
              if getattr(agent, name, None) is not None}  # fmt: skip
    return {
        "random": random_streams(agent=agent, replay=replay),
        "memory": memory,
        "env": envs.env_state(env),
    }


def restore(loop: dict[str, Any], agent: Any, env: Any, replay: Any = None) -> bool:
    """Put a `capture` back, last of all (building the agent draws random numbers). Returns whether the
    envs' states were restored too (False: the saved run's backend could not save them, or this one's
    cannot take them, and the envs start new games)."""
    for name, tensors in loop["memory"].items():
        setattr(agent, name, tuple(t.to(agent.device) for t in tensors))
    with_envs = loop["env"] is not None and envs.can_restore(env)
    if with_envs:
        envs.set_env_state(env, loop["env"])
    set_random_streams(loop["random"], agent=agent, replay=replay)
    return with_envs


@contextlib.contextmanager
def untouched_streams(**holders: Any) -> Iterator[None]:
    """Evaluation and other side work draw no numbers from the training streams: a run's training is the
    same whether or not, and where, it evaluated."""
    saved = random_streams(**holders)
    try:
        yield
    finally:
        set_random_streams(saved, **holders)
