"""What every command line shares: options parsed by tyro from the run layer's dataclasses, errors as one
line before any long work, and the train command's agent-first options with presets and resume."""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import tyro

import agents
import envs
from agents.common import ConfigError
from pixelrl.checkpoint import (
    RESUMABLE,
    RUN_FIELDS,
    CheckpointError,
    check_agent_fits,
    check_same_run,
    checkpoint_agent,
    find_checkpoint,
    read_meta,
)
from pixelrl.logger import RunFilesError
from pixelrl.training import Diverged, Interrupted, RunConfig, changed_fields

T = TypeVar("T")


@contextlib.contextmanager
def one_line_errors(prefix: str = "") -> Iterator[None]:
    """Bad input (a config that refuses a value, ValueError, a missing file) leaves as one line,
    `error: ...`, with exit status 1. (Arguments tyro cannot parse at all, such as `--frames abc` or an
    unknown option, get tyro's own message box and exit status 2.)"""
    try:
        yield
    except (ConfigError, ValueError, FileNotFoundError) as err:
        raise SystemExit(f"error: {prefix}{err}") from None


@contextlib.contextmanager
def training_exits(continue_command: str) -> Iterator[None]:
    """A run stopped by Ctrl-C or a kill (its checkpoint saved) exits with status 130 and the command that
    continues it; a diverged run or unusable run files exit as one line, `error: ...`."""
    try:
        yield
    except Interrupted as stop:
        print(f"\n{stop}. Continue with:\n  {continue_command}", file=sys.stderr)
        raise SystemExit(130) from None
    except (Diverged, RunFilesError) as err:
        raise SystemExit(f"error: {err}") from None


def parse(options: type[T], argv: Sequence[str] | None, *, prog: str, description: str | None) -> T:
    """A command's options dataclass from argv (its required fields are positional arguments)."""
    with one_line_errors():
        return tyro.cli(options, args=argv, prog=prog, description=description,
                        config=(tyro.conf.PositionalRequiredArgs,))  # fmt: skip


def parse_train(argv: list[str], usage: str | None) -> tuple[agents.AgentSpec, RunConfig, Any]:
    """`AGENT [options]`: the run's and the agent's options, flat, over the agent's preset for the game's
    family (Atari or classic control), or over the saved configs with `--resume RUN_DIR`."""
    names = ", ".join(agents.AGENTS)
    if not argv or argv[0].startswith("-"):
        if argv and argv[0] in ("-h", "--help"):
            print(usage)
            print(f"Agents: {names}. `train.py AGENT --help` lists the agent's options.")
            raise SystemExit(0)
        raise SystemExit(f"error: name an agent first, e.g. `train.py dqn --env Pong`; agents: {names}")
    with one_line_errors():
        spec = agents.get_agent(argv[0])
    rest, preset = _take_option(argv[1:], "--preset")
    resume = _option(rest, "--resume")
    if resume is not None:
        if preset is not None:
            raise SystemExit("error: --preset starts a new run; a resumed run keeps its saved config")
        return spec, *_parse_resume(spec, Path(resume), rest)
    game = _option(rest, "--env") or RunConfig.env
    with one_line_errors("--env: "):
        kind = envs.resolve(game).kind
    with one_line_errors():
        preset = agents.choose_preset(spec, preset, kind, game)
    return spec, *_parse_over(spec, rest, RunConfig(), spec.presets[preset])


def describe_presets(spec: agents.AgentSpec) -> str:
    """One line per preset: what it changes from the family default (for --help)."""
    lines = ["Presets (--preset NAME; default: atari for Atari games, classic for classic control):"]
    base = spec.presets["atari"]
    for name, cfg in spec.presets.items():
        if name == "atari":
            lines.append("  atari: the published Atari settings")
            continue
        changed = [f"{f.name}={getattr(cfg, f.name)}" for f in dataclasses.fields(cfg)
                   if getattr(cfg, f.name) != getattr(base, f.name)]  # fmt: skip
        lines.append(f"  {name} ({agents.preset_family(name)}): {', '.join(changed) or 'as atari'}")
    return "\n".join(lines)


def _parse_over(spec: agents.AgentSpec, rest: list[str], run: RunConfig, cfg: Any) -> tuple[RunConfig, Any]:
    """Flat options over the given defaults; the configs validate themselves as they are built."""
    # Built at run time so the agent's own Config supplies the options (tyro reads the field docstrings).
    Args = dataclasses.make_dataclass("Args", [("run", RunConfig), ("agent", spec.Config)], frozen=True)
    with one_line_errors():
        args = tyro.cli(
            Args,
            args=rest,
            default=Args(run, cfg),
            prog=f"train.py {spec.name}",
            config=(tyro.conf.OmitArgPrefixes,),
            description=f"{sys.modules[spec.Config.__module__].__doc__}\n{describe_presets(spec)}",
        )  # the agent's paper box, and its presets
    return args.run, args.agent


def _take_option(argv: list[str], name: str) -> tuple[list[str], str | None]:
    """argv without `name VALUE` (or `name=VALUE`), and VALUE (None when absent)."""
    for i, arg in enumerate(argv):
        if arg == name:
            if i + 1 == len(argv):
                raise SystemExit(f"error: {name} needs a value")
            return argv[:i] + argv[i + 2 :], argv[i + 1]
        if arg.startswith(name + "="):
            return argv[:i] + argv[i + 1 :], arg.split("=", 1)[1]
    return argv, None


def _option(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _parse_resume(spec: agents.AgentSpec, run_dir: Path, rest: list[str]) -> tuple[RunConfig, Any]:
    with one_line_errors("--resume: "):
        path = find_checkpoint(run_dir, "latest")
        meta = read_meta(path, (*RUN_FIELDS, "run_config"))
    if meta["agent"] != spec.name:
        raise SystemExit(f"error: {run_dir} holds a {meta['agent']} checkpoint, not {spec.name}; "
                         f"run `train.py {meta['agent']} --resume {run_dir}`")  # fmt: skip
    with one_line_errors("--resume: "):  # not a checkpoint copied in from another run
        fix = "put the run's own checkpoint back, or start a new run with another --run-dir"
        check_same_run(run_dir, path, meta, keep={*spec.resumable, *RESUMABLE}, fix=fix)
    game = _option(rest, "--env")
    if game is not None:
        with one_line_errors("--env: "):
            other = envs.resolve(game).name != envs.resolve(meta["game"]).name
        if other:
            raise SystemExit(
                f"error: {run_dir} was trained on {meta['game']}, not {game}; drop --env to resume it"
            )
    with one_line_errors("--resume: "):
        try:
            saved_run = agents.config_from_dict(
                RunConfig, {**meta["run_config"], "run_dir": run_dir, "resume": run_dir}
            )
        except (TypeError, ValueError, ConfigError) as err:
            raise CheckpointError(path, f"its run_config does not make a RunConfig: {err}") from None
        saved_cfg = checkpoint_agent(meta, path)[1]
    run, cfg = _parse_over(spec, rest, saved_run, saved_cfg)
    allowed = (*spec.resumable, *RESUMABLE)
    refused = changed_fields(spec, saved_cfg, cfg) + [
        f.name
        for f in dataclasses.fields(run)
        if f.name not in (*allowed, "env") and getattr(run, f.name) != getattr(saved_run, f.name)
    ]
    if refused:
        flags = ", ".join("--" + n.replace("_", "-") for n in refused)
        raise SystemExit(
            f"error: {flags} cannot change when resuming {run_dir} (its saved config is used); "
            f"a resume may change only {', '.join('--' + n.replace('_', '-') for n in allowed)}"
        )
    with one_line_errors("--resume: "):  # network sizes against the file's tensors, before the Trainer builds
        check_agent_fits(path, spec, cfg)
    return dataclasses.replace(run, env=saved_run.env), cfg
