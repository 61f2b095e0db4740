"""The one agent interface: every agent declares it correctly, and a wrong declaration is named."""

import dataclasses

import pytest

import agents
import envs
from agents.common import ConfigError
from agents.interface import AgentSpec, check_spec


@pytest.mark.parametrize("name", list(agents.AGENTS))
def test_every_agent_declares_the_interface_and_builds_an_agent_that_implements_it(name):
    spec = agents.get_agent(name)  # checked on the way out
    assert spec.name == name
    for kind, game in (("classic", "CartPole-v1"), ("atari", "Pong")):
        cfg = spec.presets[kind]
        assert isinstance(cfg, agents.AgentConfig) and cfg.env_groups >= 1
        options = spec.env_options(cfg, kind)
        env = envs.make(game, 1, backend="sync", **options)
        agent = spec.make_agent(cfg, env, "cpu", 0)
        env.close()
        assert isinstance(agent, agents.Agent)
        assert set(spec.resumable) <= {f.name for f in dataclasses.fields(spec.Config)}
    assert (spec.make_replay is not None) == (name == "dqn")  # only DQN has a buffer worth saving


def test_a_wrong_declaration_is_named():
    spec = agents.get_agent("ppo")

    @dataclasses.dataclass  # not frozen
    class Mutable:
        frames: int = 1

    bad = {
        "Config must be a frozen dataclass": dataclasses.replace(spec, Config=Mutable),
        "presets must be 'atari' and 'classic'": dataclasses.replace(
            spec, presets={"atari": spec.presets["atari"]}
        ),
        "preset 'classic' must be a Config": dataclasses.replace(
            spec,
            presets={"atari": spec.presets["atari"], "classic": agents.get_agent("dqn").presets["classic"]},
        ),
        "resumable names ['lr_typo']": dataclasses.replace(spec, resumable=("frames", "lr_typo")),
    }
    for message, wrong in bad.items():
        with pytest.raises(TypeError, match=message.replace("[", r"\[").replace("(", r"\(")):
            check_spec(wrong)


def test_configs_validate_themselves_wherever_they_are_built():
    spec = agents.get_agent("a2c")
    with pytest.raises(ConfigError, match="--num-steps must be positive, got 0"):
        dataclasses.replace(spec.presets["atari"], num_steps=0)
    with pytest.raises(ConfigError, match="--lr must be positive, got nan"):
        agents.config_from_dict(spec.Config, {"lr": float("nan")})
    assert isinstance(AgentSpec("x", spec.Config, spec.presets, spec.make_agent, spec.train), AgentSpec)
