"""agents: each module reads like its paper's algorithm box and ends with its `SPEC`, the one interface the
run layer uses (agents/interface.py): Config and presets, `make_agent`, the training loop, and what a
resume may change."""

from __future__ import annotations

import difflib

from agents import a2c, apex, appo, dqn, drqn, ppo, ppo_lstm, reinforce, sb3
from agents.interface import (
    UPDATED,
    Agent,
    AgentConfig,
    AgentSpec,
    check_spec,
    choose_preset,
    config_from_dict,
    preset_family,
    resolve_precision,
)

AGENTS: dict[str, AgentSpec] = {
    spec.name: spec
    for spec in (
        dqn.SPEC,
        reinforce.SPEC,
        a2c.SPEC,
        ppo.SPEC,
        appo.SPEC,
        apex.SPEC,
        ppo_lstm.SPEC,
        drqn.SPEC,
        *sb3.SPECS,
    )
}


def get_agent(name: str) -> AgentSpec:
    """The agent called `name`, checked against the interface; an unknown name lists the valid ones."""
    if name not in AGENTS:
        close = difflib.get_close_matches(name.lower(), AGENTS, n=3, cutoff=0.4)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(f"unknown agent {name!r}{hint}; choose one of: {', '.join(AGENTS)}")
    check_spec(AGENTS[name])
    return AGENTS[name]


__all__ = [
    "AGENTS",
    "Agent",
    "AgentConfig",
    "AgentSpec",
    "UPDATED",
    "check_spec",
    "choose_preset",
    "config_from_dict",
    "get_agent",
    "preset_family",
    "resolve_precision",
]
