"""The one agent interface: every agent declares it correctly, and a wrong declaration is named."""

import dataclasses

import pytest
import torch

import agents
import envs
import nets
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
    assert (spec.make_replay is not None) == (name in ("dqn", "apex", "drqn"))  # these have a buffer to save


def test_a_wrong_declaration_is_named():
    spec = agents.get_agent("ppo")

    @dataclasses.dataclass  # not frozen
    class Mutable:
        frames: int = 1

    bad = {
        "Config must be a frozen dataclass": dataclasses.replace(spec, Config=Mutable),
        "presets must include 'atari' and 'classic'": dataclasses.replace(
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


# REINFORCE runs plain float32; SB3's agents run as SB3 runs them (float32).
PRECISION_AGENTS = [name for name in agents.AGENTS if name != "reinforce" and not name.startswith("sb3-")]


@pytest.mark.parametrize("name", PRECISION_AGENTS)
def test_precision_is_checked_and_resolved_for_the_device(name, monkeypatch):
    spec = agents.get_agent(name)
    with pytest.raises(ConfigError, match="--precision 'fp16': choose one of auto, bf16, fp32, tf32"):
        dataclasses.replace(spec.presets["atari"], precision="fp16")
    cpu = torch.device("cpu")
    for native, auto in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(nets.device, "bf16_supported", lambda device, native=native: native)
        assert agents.resolve_precision(spec.presets["atari"], cpu).precision == auto
        assert agents.resolve_precision(spec.presets["classic"], cpu).precision == "fp32"  # MLPs: fp32


def test_resolve_precision_leaves_a_config_without_one_as_it_is():
    cfg = agents.get_agent("reinforce").presets["atari"]
    assert agents.resolve_precision(cfg, torch.device("cpu")) is cfg


@pytest.mark.parametrize("name", PRECISION_AGENTS)
def test_configs_saved_with_bf16_load_with_the_precision_it_meant(name):
    """Run directories from before `precision` hold "bf16": true (bf16 where native) or false."""
    Config = agents.get_agent(name).Config
    assert agents.config_from_dict(Config, {"bf16": True, "lr": 0.01}).precision == "auto"
    assert agents.config_from_dict(Config, {"bf16": False}).precision == "fp32"
    assert agents.config_from_dict(Config, {"precision": "tf32"}).precision == "tf32"


def test_a_bf16_key_is_still_refused_where_a_config_never_had_it():
    with pytest.raises(ValueError, match=r"has no field\(s\) \['bf16'\]"):
        agents.config_from_dict(agents.get_agent("reinforce").Config, {"bf16": True})
