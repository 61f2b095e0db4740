"""The one interface between an agent and the run layer, declared once and checked.

Each agent module ends with `SPEC = AgentSpec(...)`: its Config class and presets, how to build the agent
(and its replay buffer, if it has one to save), the training loop, the env options and which config
fields a resume may change. The run layer reads these fields and nothing else; `check_spec` says what is
missing before any training starts.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np
import torch

import nets

Rows = list[dict[str, float]]  # finished games ({"episode_return", "episode_length"}) and training stats
Loop = Iterator[tuple[int, Rows]]  # (global_step, rows) after every vector step
# On-policy loops mark the yield right after each update with a row holding this key (alone, or beside the
# update's statistics): the run layer captures the loop's state there (pixelrl/resume.py) and drops the key.
UPDATED = "updated"


@runtime_checkable
class AgentConfig(Protocol):
    """What the run layer reads of every agent's frozen Config dataclass. Agents whose networks run through
    nets.DeviceNet also have `precision: str`, which the run resolves for its device (`resolve_precision`)."""

    frames: int  # training budget in emulator frames
    num_envs: int  # envs stepped together

    @property
    def env_groups(self) -> int:  # groups the envs are stepped in (1: all at once)
        ...


@runtime_checkable
class Agent(Protocol):
    """What the run layer calls on a built agent: greedy (evaluation) actions and its state for
    checkpoints. `update(batch) -> metrics` takes the agent's own typed batch; only its loop calls it."""

    device: torch.device
    num_actions: int

    def eval_act(self, obs: np.ndarray, first: np.ndarray | None = None) -> np.ndarray: ...

    # `first` (N,) bool marks observations that start an episode (`envs.first_of_episode`): agents with
    # memory reset their evaluation state there; None means every observation starts one.

    def update(self, batch: Any) -> dict[str, float]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def no_env_options(cfg: Any, kind: str) -> dict[str, Any]:
    """The default: the agent takes the env protocol as it is."""
    return {}


@dataclass(frozen=True)
class AgentSpec:
    """An agent as the run layer sees it."""

    name: str
    """The command-line name (`train.py NAME`)."""
    Config: type
    """Its frozen Config dataclass; every field is a command-line option."""
    presets: Mapping[str, Any]
    """Named Configs: "atari" and "classic" (classic control) are the defaults of each game family; others
    are chosen by name (`train.py AGENT --preset NAME`), a comment above each saying what it is for. A
    name starting with "classic" is for classic control, any other for Atari (`preset_family`)."""
    make_agent: Callable[[Any, gym.vector.VectorEnv, str, int], Agent]
    """(cfg, env, device, seed) -> agent."""
    train: Callable[..., Loop]
    """The training loop: (cfg, env, agent, *, total_steps, start_step, seed, log_every[, replay])."""
    make_replay: Callable[[Any, gym.vector.VectorEnv, int], Any] | None = None
    """(cfg, env, seed) -> a replay buffer with state_dict/load_state_dict, passed to `train` as
    `replay=`; None for agents that learn from fresh rollouts only."""
    env_options: Callable[[Any, str], dict[str, Any]] = no_env_options
    """(cfg, game kind) -> observation options for envs.make, recorded with every checkpoint."""
    make_env: Callable[..., Any] | None = None
    """(game, num_envs, *, seed, backend, **options) -> the vector env `train` steps, for agents that step
    envs through another library's vector env (Stable-Baselines3's, with its own autoreset contract);
    None: `envs.make`, whose envs every agent of ours steps."""
    export: Callable[[Any, io.BytesIO], None] | None = None
    """(agent, buffer): write the agent in another library's own format beside each checkpoint (SB3's zip),
    for that library's tools; the run records its keyed signature (HMAC-SHA256) in the checkpoint."""
    load_export: Callable[[bytes, Any, str], Agent] | None = None
    """(bytes, cfg, device) -> agent from such a file's bytes, once the run layer has verified them."""
    on_policy: bool = False
    """Its loop yields while it collects a rollout, and those steps are trained on only at the yield right
    after an update, which carries an `UPDATED` row. Checkpoints hold the state at that yield, so an
    interrupted run never counts steps it did not train on and resumes where that update left it."""
    resumable: tuple[str, ...] = ("frames",)
    """Config fields a resume may change: how long and how fast to train, never what is learned."""


def preset_family(name: str) -> str:
    """The game family a preset is for: "classic" for "classic" and "classic-...", else "atari"."""
    return "classic" if name == "classic" or name.startswith("classic-") else "atari"


def choose_preset(spec: AgentSpec, preset: str | None, kind: str, game: str) -> str:
    """The preset a run of `spec` on `game` (of env kind `kind`) uses: `preset`, checked against the agent's
    presets and the game's family, or the family's default when None. Raises ValueError naming the fix."""
    family = "atari" if kind == "atari" else "classic"
    if preset is None:
        return family
    if preset not in spec.presets:
        raise ValueError(f"--preset {preset}: {spec.name} has presets {', '.join(spec.presets)}")
    if preset_family(preset) != family:
        fits = ", ".join(p for p in spec.presets if preset_family(p) == family)
        raise ValueError(f"--preset {preset} is for {preset_family(preset)} games, not {game}; "
                         f"drop it or pick one of: {fits}")  # fmt: skip
    return preset


def check_spec(spec: AgentSpec) -> None:
    """Raise TypeError naming what an agent module declares wrongly."""
    where = f"agent {spec.name!r}"
    if not (dataclasses.is_dataclass(spec.Config) and spec.Config.__dataclass_params__.frozen):
        raise TypeError(f"{where}: Config must be a frozen dataclass")
    if not {"atari", "classic"} <= set(spec.presets):
        raise TypeError(f"{where}: presets must include 'atari' and 'classic', got {sorted(spec.presets)}")
    for family, preset in spec.presets.items():
        if type(preset) is not spec.Config or not isinstance(preset, AgentConfig):
            raise TypeError(f"{where}: preset {family!r} must be a Config with frames, num_envs, env_groups")
    fields = {f.name for f in dataclasses.fields(spec.Config)}
    unknown = sorted(set(spec.resumable) - fields)
    if unknown:
        raise TypeError(f"{where}: resumable names {unknown}, which are not Config fields")


def config_from_dict(cls: type, values: dict[str, Any]) -> Any:
    """Rebuild a frozen config dataclass from its JSON form (lists back to tuples; unknown keys rejected).
    Configs saved before `precision` replaced `bf16` load with bf16 true as "auto", false as "fp32"."""
    fields = {f.name for f in dataclasses.fields(cls)}
    if "bf16" in values and "bf16" not in fields and "precision" in fields:
        values = dict(values)
        values.setdefault("precision", "auto" if values.pop("bf16") else "fp32")
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ValueError(f"{cls.__module__}.{cls.__name__} has no field(s) {unknown}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def resolve_precision(cfg: Any, device: torch.device) -> Any:
    """`cfg` with its `precision` resolved for `device` by nets.choose_precision ("auto" becomes "bf16",
    "tf32" or "fp32"), as a run records it. A config without the field (REINFORCE: its small networks run
    plain float32) comes back as it is."""
    if "precision" not in {f.name for f in dataclasses.fields(cfg)}:
        return cfg
    return dataclasses.replace(cfg, precision=nets.choose_precision(device, cfg.precision))
