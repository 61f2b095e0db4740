"""One env's state as data, so that a resumed run continues the very games it stopped in.

An env made by `make_single` is a chain of wrappers around a base env. What carries over from one step to
the next is listed here, per class: the wrappers' counters and buffers (`WRAPPER_FIELDS`), the base env's
physics (classic control's `state`) or emulator (the ALE's state, its RNG included, serialised by ale-py
itself), and the base env's numpy generator (no-op starts, flicker). Every value is stored as JSON scalars
or tensors, never as a pickle. A chain with a class that is in neither table has state this module does
not know: `single_state` returns None for it and the run resumes from fresh games instead.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np
import torch

# What each wrapper carries between steps; the classes in STATELESS carry only settings.
WRAPPER_FIELDS: dict[str, tuple[str, ...]] = {
    "WholeGame": ("score", "length"),
    "EpisodicLife": ("lives", "game_over"),
    "FrameStack": ("frames",),
    "KarpathyDiff": ("_prev",),
    "TimeLimit": ("_elapsed_steps",),
    "OrderEnforcing": ("_has_reset",),
}
STATELESS = frozenset(
    {
        "NoopFireReset",
        "MaxAndSkip",
        "Resize",
        "Flicker",
        "ClipReward",
        "TransformObservation",
        "VideoRecorder",
    }  # fmt: skip
)  # VideoRecorder: a game being filmed when the run stopped is not filmed on after the resume
# Classic control keeps its physics in these attributes (Pendulum: also the last torque, for rendering).
CLASSIC_FIELDS = ("state", "steps_beyond_terminated", "last_u")


def to_data(value: Any) -> Any:
    """numpy arrays and deques of them -> tensors and lists; numpy scalars -> Python scalars."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, deque):
        return [to_data(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str | torch.Tensor):
        return value
    raise TypeError(f"cannot store an env's {type(value).__name__} as data")


def _from_data(stored: Any, current: Any) -> Any:
    """Back to the type the attribute has now (a deque keeps its maxlen; arrays their dtype)."""
    if isinstance(current, deque):
        return deque((_from_data(v, None) for v in stored), maxlen=current.maxlen)
    if isinstance(stored, torch.Tensor):
        return stored.numpy().copy()
    return stored


def _chain(env: gym.Env) -> list[gym.Env]:
    chain = [env]
    while isinstance(chain[-1], gym.Wrapper):
        chain.append(chain[-1].env)
    return chain


def single_state(env: gym.Env) -> dict[str, Any] | None:
    """The state of one env made by `make_single` as data, or None where a class in its chain is unknown."""
    layers = []
    for layer in _chain(env)[:-1]:
        name = type(layer).__name__
        if name not in WRAPPER_FIELDS and name not in STATELESS:
            return None
        layers.append({f: to_data(getattr(layer, f)) for f in WRAPPER_FIELDS.get(name, ())})
    base = env.unwrapped
    if hasattr(base, "ale"):  # ale-py's AtariEnv: the emulator, its sticky-action RNG included
        raw = bytes(base.ale.cloneState(include_rng=True).serialize())
        physics: dict[str, Any] = {"ale": torch.frombuffer(bytearray(raw), dtype=torch.uint8)}
    elif type(base).__module__.startswith("gymnasium.envs.classic_control"):
        physics = {f: to_data(getattr(base, f)) for f in CLASSIC_FIELDS if hasattr(base, f)}
    else:
        return None
    return {"layers": layers, "base": physics, "np_random": base.np_random.bit_generator.state}


def restore_single(env: gym.Env, state: dict[str, Any]) -> None:
    """Put `state` (from `single_state` on an env made with the same options) back into `env`."""
    import ale_py

    chain = _chain(env)
    if len(state["layers"]) != len(chain) - 1:
        raise ValueError("the saved env state has another wrapper chain: the env options differ")
    for layer, fields in zip(chain[:-1], state["layers"], strict=True):
        for name, value in fields.items():
            setattr(layer, name, _from_data(value, getattr(layer, name)))
    base = env.unwrapped
    if "ale" in state["base"]:
        base.ale.restoreState(ale_py.ALEState(state["base"]["ale"].numpy().tobytes()))
    else:
        for name, value in state["base"].items():
            setattr(base, name, _from_data(value, getattr(base, name)))
    base.np_random.bit_generator.state = state["np_random"]
