"""agents: each module reads like its paper's algorithm box and exposes the same few names:
`Config`, `PRESETS` ("atari", "classic"), `make_agent(cfg, env, device)` and the loop
`train(cfg, env, agent, total_steps=..., start_step=..., seed=...)`."""

from __future__ import annotations

import dataclasses
import difflib
from types import ModuleType
from typing import Any

from agents import a2c, dqn, ppo, reinforce

AGENTS: dict[str, ModuleType] = {"dqn": dqn, "reinforce": reinforce, "a2c": a2c, "ppo": ppo}


def get_agent(name: str) -> ModuleType:
    if name not in AGENTS:
        close = difflib.get_close_matches(name.lower(), AGENTS, n=3, cutoff=0.4)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(f"unknown agent {name!r}{hint}; choose one of: {', '.join(AGENTS)}")
    return AGENTS[name]


def config_from_dict(cls: type, values: dict[str, Any]) -> Any:
    """Rebuild a frozen config dataclass from its JSON form (lists back to tuples; unknown keys rejected)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"{cls.__module__}.{cls.__name__} has no field(s) {unknown}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def env_options(module: ModuleType, cfg: Any, kind: str) -> dict[str, Any]:
    """Observation options an agent asks of envs.make (REINFORCE's difference frames); none by default."""
    hook = getattr(module, "env_options", None)
    return hook(cfg, kind) if hook is not None else {}
