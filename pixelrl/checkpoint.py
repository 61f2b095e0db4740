"""Checkpoints that never execute code on load: tensors in .safetensors, everything else in JSON.

A nested state (module and optimiser state dicts, counters) is split into flat tensors and a JSON
skeleton that says where each tensor goes. Skeleton and metadata live in the safetensors header, and the
file is written under a temp name and renamed, so a crash mid-write leaves the previous checkpoint whole.

Reading trusts nothing in the file: the header's length is checked against the file's size and a bound
before it is read, the header, the metadata and the skeleton are checked field by field, and the network
sizes that a checkpoint's config asks for are compared with the tensors in the file (`check_agent_fits`,
on torch's meta device) before any network is built. Whatever is wrong comes back as one CheckpointError
naming the file, the problem and what to pass instead.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import secrets
import warnings
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch.overrides import TorchFunctionMode

from pixelrl.logger import write_json_atomic

META_KEY = "pixelrl"
# Our headers (metadata and skeleton) are ~14 kB; a parsed JSON header can take ~20x its size in memory.
MAX_HEADER_BYTES = 8 * 1024 * 1024
# Metadata a run's checkpoint always has (Trainer.save): evaluate, watch and resume need all of them.
RUN_FIELDS = ("agent", "game", "step", "agent_config")

# What a resume may change besides the agent's own `resumable` fields: how the run is logged and where it
# runs (the device, and the agent's precision, which follows it), never what is learned.
RESUMABLE = ("wandb", "device", "precision", "progress", "checkpoint_minutes", "save_replay", "log_every")
FIX = "pass a run directory written by scripts/train.py, or its checkpoints/latest.safetensors"
_DTYPE_BYTES = {  # the byte-sized safetensors dtypes torch loads
    **dict.fromkeys(("BOOL", "U8", "I8", "F8_E4M3", "F8_E5M2"), 1),
    **dict.fromkeys(("I16", "U16", "F16", "BF16"), 2),
    **dict.fromkeys(("I32", "U32", "F32"), 4),
    **dict.fromkeys(("I64", "U64", "F64"), 8),
}
_META_TYPES: dict[str, tuple[type, ...]] = {  # the fields the run layer reads, when present
    "agent": (str,),
    "game": (str,),
    "step": (int,),
    "frames": (int,),
    "agent_config": (dict,),
    "env_options": (dict,),
    "run_config": (dict,),
    "export": (dict,),
    "eval": (dict,),
    "best_eval": (int, float),
    "skeleton": (dict, list, str, int, float, bool, type(None)),
    "loop_skeleton": (dict,),
}


class CheckpointError(ValueError):
    """A file that is not a loadable pixelrl checkpoint. A ValueError, so that the command lines report it as
    one line (`cli.one_line_errors`); the message names the file, what is wrong and what to pass instead."""

    def __init__(self, path: str | Path, problem: str, fix: str = FIX) -> None:
        super().__init__(" ".join(f"{path}: {problem}; {fix}".split()))  # one line, whatever it quotes
        self.path = Path(path)


def _flatten(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().to("cpu").contiguous().clone()
        return {"__tensor__": prefix}
    if isinstance(obj, dict):  # pairs keep int keys (optimiser state is keyed by parameter index)
        return {"__dict__": [[k, _flatten(v, f"{prefix}/{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, list | tuple):
        return {"__list__": [_flatten(v, f"{prefix}/{i}", tensors) for i, v in enumerate(obj)]}
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at {prefix!r} in a checkpoint")


def _unflatten(node: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(node, dict):
        if "__tensor__" in node:
            return tensors[node["__tensor__"]]
        if "__dict__" in node:
            return {k: _unflatten(v, tensors) for k, v in node["__dict__"]}
        if "__list__" in node:
            return [_unflatten(v, tensors) for v in node["__list__"]]
    return node


def _check_skeleton(node: Any, shapes: dict[str, tuple[int, ...]], path: Path) -> None:
    """Refuse a skeleton that `_flatten` could not have written, or that names a tensor the file lacks."""
    stack = [node]
    while stack:
        node = stack.pop()
        if node is None or isinstance(node, bool | int | float | str):
            continue
        if isinstance(node, dict) and len(node) == 1:
            ((kind, value),) = node.items()
            if kind == "__tensor__" and isinstance(value, str):
                if value not in shapes:
                    raise CheckpointError(
                        path,
                        f"its skeleton refers to tensor {value!r}, which the file "
                        "does not hold (a damaged or hand-edited checkpoint)",
                    )
                continue
            if kind == "__list__" and isinstance(value, list):
                stack.extend(value)
                continue
            if kind == "__dict__" and isinstance(value, list):
                for pair in value:
                    if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str | int)):
                        raise CheckpointError(path, f"its skeleton has a malformed dict entry {_short(pair)}")
                    stack.append(pair[1])
                continue
        raise CheckpointError(path, f"its skeleton has a node pixelrl does not write: {_short(node)}")


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def save_checkpoint(
    path: str | Path, state: dict[str, Any], meta: dict[str, Any], loop: dict[str, Any] | None = None
) -> Path:
    """Write `path` (.safetensors) and a readable .json copy of its metadata beside it. `loop`: what a
    resume needs besides the agent's state (pixelrl/resume.py), stored the same way under "loop/"."""
    path = Path(path).with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    skeletons = {"skeleton": _flatten(state, "state", tensors)}
    if loop is not None:
        skeletons["loop_skeleton"] = _flatten(loop, "loop", tensors)
    tmp = path.with_suffix(".safetensors.tmp")
    # The metadata travels inside the weights file: one rename publishes both, so no crash can pair new
    # weights with old metadata. The .json beside it is for people and tools that read JSON.
    save_file(tensors, str(tmp), metadata={META_KEY: json.dumps({**meta, **skeletons})})
    os.replace(tmp, path)
    write_json_atomic(path.with_suffix(".json"), meta)
    return path


def _read_header(path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, Any]]:
    """(tensor name -> shape, pixelrl metadata) from the header alone. The 8-byte header length is checked
    against the file's size and MAX_HEADER_BYTES before the header is read; no tensor data is read."""
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}; {FIX}")
    if not path.is_file():
        raise CheckpointError(path, "is not a file")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(
            path,
            "is empty (0 bytes): the run that wrote it may have been stopped before its first checkpoint",
        )
    with open(path, "rb") as f:
        head = f.read(8)
        length = int.from_bytes(head, "little") if size >= 8 else None
        raw = f.read(length) if length is not None and length <= min(MAX_HEADER_BYTES, size - 8) else b""
    if not raw.startswith(b"{"):  # not a safetensors header: say what the file looks like instead
        if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
            kind = "is a pickle (torch.save's and pickle.dump's format)"
        elif head.startswith(b"PK\x03\x04"):
            kind = "is a zip archive (torch.save's or SB3's format)"
        else:
            kind = None
        if kind is not None:
            raise CheckpointError(
                path,
                f"{kind}, not a safetensors checkpoint; pixelrl never unpickles a "
                "file, since loading a pickle can run any code put in it",
            )
        if length is None:
            raise CheckpointError(
                path,
                f"is truncated or not a safetensors file ({size} bytes, shorter than "
                "the 8-byte header length)",
            )
        if length > MAX_HEADER_BYTES:
            raise CheckpointError(
                path,
                f"is not a safetensors checkpoint: its first 8 bytes ask for a "
                f"{length:,}-byte header, over the {MAX_HEADER_BYTES:,}-byte bound",
            )
        if length > size - 8:
            raise CheckpointError(
                path,
                f"is truncated or not a safetensors file: its header length says "
                f"{length:,} bytes, but only {size - 8:,} follow",
            )
        raise CheckpointError(path, "is not a safetensors checkpoint: its header is not a JSON object")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise CheckpointError(
            path, f"is not a safetensors checkpoint: its header is not JSON ({err})"
        ) from None
    if not isinstance(header, dict):
        raise CheckpointError(path, "is not a safetensors checkpoint: its header is not a JSON object")
    stored = header.pop("__metadata__", None)
    data = size - 8 - length  # bytes of tensor data in the file
    shapes, spans = {}, []
    for name, info in header.items():
        entry = info if isinstance(info, dict) else {}
        shape, offsets, dtype = entry.get("shape"), entry.get("data_offsets"), entry.get("dtype")
        if not (_ints(shape) and _ints(offsets) and len(offsets) == 2 and offsets[0] <= offsets[1]):
            raise CheckpointError(
                path, f"is not a safetensors checkpoint: tensor {_short(name, 40)} has entry {_short(info)}"
            )
        if offsets[1] > data:
            raise CheckpointError(
                path,
                f"is truncated: tensor {_short(name, 40)} ends at data byte "
                f"{offsets[1]:,}, but the file holds {data:,} bytes of data",
            )
        if not isinstance(dtype, str) or dtype not in _DTYPE_BYTES:
            raise CheckpointError(
                path, f"tensor {_short(name, 40)} has dtype {_short(dtype, 20)}, which pixelrl does not load"
            )
        if _nbytes(shape, _DTYPE_BYTES[dtype], offsets[1] - offsets[0]) != offsets[1] - offsets[0]:
            raise CheckpointError(
                path,
                f"is not a safetensors checkpoint: tensor {_short(name, 40)} of "
                f"shape {_short(shape, 40)} does not fill bytes {offsets}",
            )
        shapes[name] = tuple(shape)
        spans.append((offsets[0], offsets[1]))
    end = 0
    for start, stop in sorted(spans):
        if start != end:
            raise CheckpointError(path, "is not a safetensors checkpoint: its tensors overlap or leave gaps")
        end = stop
    if end != data:
        raise CheckpointError(
            path, f"is not a safetensors checkpoint: {data - end:,} bytes follow its last tensor"
        )
    if not isinstance(stored, dict) or not isinstance(stored.get(META_KEY), str):
        raise CheckpointError(
            path,
            f"is a safetensors file but not a pixelrl checkpoint (no '{META_KEY}' metadata in its header)",
        )
    try:
        meta = json.loads(stored[META_KEY])
    except (ValueError, RecursionError) as err:
        raise CheckpointError(path, f"its '{META_KEY}' metadata is not JSON ({err})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(path, f"its '{META_KEY}' metadata is not a JSON object")
    return shapes, meta


def _nbytes(shape: list[int], itemsize: int, bound: int) -> int:
    """Bytes of a tensor of `shape`, or bound + 1 once past `bound` (a hostile shape's product may have
    millions of digits)."""
    if 0 in shape:
        return 0
    total = itemsize
    for dim in shape:
        total *= dim
        if total > bound:
            return bound + 1
    return total


def _ints(value: Any) -> bool:
    """A list of non-negative ints (JSON's true/false are not sizes)."""
    return isinstance(value, list) and all(type(v) is int and v >= 0 for v in value)


def _check_meta(meta: dict[str, Any], required: Collection[str], path: Path) -> None:
    missing = [name for name in ("skeleton", *required) if name not in meta]
    if missing:
        raise CheckpointError(
            path,
            f"its metadata lacks {', '.join(missing)} (a checkpoint that "
            "scripts/train.py did not write, or one edited since)",
        )
    for name, types in _META_TYPES.items():
        value = meta.get(name)
        if name not in meta or (name == "best_eval" and value is None):
            continue
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            want = " or ".join("object" if t is dict else t.__name__ for t in types)
            raise CheckpointError(path, f"its metadata field {name!r} is {_short(value, 40)}, not {want}")
        if name in ("agent", "game") and not value:
            raise CheckpointError(path, f"its metadata field {name!r} is empty")
        if name in ("step", "frames") and value < 0:
            raise CheckpointError(path, f"its metadata field {name!r} is negative ({value})")


def tensor_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor in a checkpoint (named as `_flatten` names them: "state/net/0.weight"),
    read from its header: no tensor data is read."""
    return _read_header(Path(path).with_suffix(".safetensors"))[0]


def read_meta(path: str | Path, required: Collection[str] = ()) -> dict[str, Any]:
    """The metadata stored in a checkpoint's weights file (step, agent, game, configs), checked: the fields
    the run layer reads must have their types, and `required` ones (e.g. RUN_FIELDS) must be there.
    CheckpointError for anything that is not a checkpoint pixelrl wrote; FileNotFoundError for no file."""
    path = Path(path).with_suffix(".safetensors")
    shapes, meta = _read_header(path)
    _check_meta(meta, required, path)
    try:
        _check_skeleton(meta["skeleton"], shapes, path)
        _check_skeleton(meta.get("loop_skeleton"), shapes, path)
    except RecursionError:
        raise CheckpointError(path, "its skeleton is nested too deeply") from None
    return meta


def load_checkpoint(
    path: str | Path, device: str | torch.device = "cpu", required: Collection[str] = ()
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return (state, meta). Only tensors and JSON are read: nothing is unpickled or executed. Everything
    `read_meta` checks is checked before the tensors are read (their total size is the file's)."""
    path = Path(path).with_suffix(".safetensors")
    meta = read_meta(path, required)
    try:
        tensors = load_file(str(path), device=str(device))
        meta.pop("loop_skeleton", None)  # see load_loop_state
        return _unflatten(meta.pop("skeleton"), tensors), meta
    except (SafetensorError, OSError, RuntimeError, RecursionError) as err:
        raise CheckpointError(path, f"its tensors cannot be read ({type(err).__name__}: {err})") from None


def load_loop_state(path: str | Path) -> dict[str, Any] | None:
    """The loop state saved beside the agent's (`save_checkpoint(..., loop=)`), or None: checked and read
    as `load_checkpoint` reads the agent's."""
    path = Path(path).with_suffix(".safetensors")
    meta = read_meta(path)
    if "loop_skeleton" not in meta:
        return None
    try:
        return _unflatten(meta["loop_skeleton"], load_file(str(path)))
    except (SafetensorError, OSError, RuntimeError, RecursionError) as err:
        raise CheckpointError(path, f"its tensors cannot be read ({type(err).__name__}: {err})") from None


def find_checkpoint(target: str | Path, which: str = "latest") -> Path:
    """A run directory (-> its checkpoints/<which>) or a checkpoint file, with a clear error otherwise."""
    target = Path(target)
    if target.is_dir():
        path = target / "checkpoints" / f"{which}.safetensors"
        if not path.exists() and which == "best":
            path = target / "checkpoints" / "latest.safetensors"
    else:
        path = target.with_suffix(".safetensors")
    if not path.exists():
        raise FileNotFoundError(
            f"no checkpoint at {path}; pass a run directory made by scripts/train.py or a .safetensors file"
        )
    return path


# ---------------------------------------------------------------- network sizes before allocation
class _MetaDevice(TorchFunctionMode):
    """Every tensor made inside is a meta tensor (shape and dtype, no memory), whatever device the code
    asks for; moves to a device keep it on meta, and meta tensors report `device` as the device the code
    was built for, so that code that branches on it (autocast queries) takes that device's path."""

    def __init__(self, device: str = "cpu") -> None:
        super().__init__()
        from torch.utils._device import _device_constructors

        self.device, self.meta = torch.device(device), torch.device("meta")
        self._constructors = _device_constructors()
        self._device_get = torch.Tensor.device.__get__  # type: ignore[attr-defined]

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = dict(kwargs or {})
        first = args[0] if args else None
        on_meta = isinstance(first, torch.Tensor) and first.is_meta
        if on_meta and func == self._device_get:
            return self.device
        if func in self._constructors:
            kwargs["device"] = self.meta
        elif on_meta and func in (torch.Tensor.cpu, torch.Tensor.cuda):
            return first
        elif on_meta and func is torch.Tensor.to:
            rest: list[Any] = []
            for arg in args[1:]:
                if isinstance(arg, torch.Tensor):  # .to(other): other's dtype, on meta
                    rest += [self.meta, arg.dtype]
                else:
                    rest.append(
                        self.meta
                        if isinstance(arg, str | torch.device | int) and not isinstance(arg, bool)
                        else arg
                    )
            if "device" in kwargs:
                kwargs["device"] = self.meta
            if "other" in kwargs:
                kwargs |= {"device": self.meta, "dtype": kwargs.pop("other").dtype}
            args = (first, *rest)
        return func(*args, **kwargs)


def meta_state(build: Callable[[], Any], device: str = "cpu") -> dict[str, Any]:
    """The state_dict of the agent `build()` makes, built on torch's meta device: its tensors have their
    shapes but no memory, so a config asking for huge networks costs nothing here."""
    with _MetaDevice(device), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "initializing zero-element tensors": the real build says it
        return build().state_dict()


def _tensor_shapes_of(obj: Any, prefix: str, out: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """Shapes under the names `_flatten` gives tensors (without touching their data)."""
    if isinstance(obj, torch.Tensor):
        out[prefix] = tuple(obj.shape)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _tensor_shapes_of(v, f"{prefix}/{k}", out)
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            _tensor_shapes_of(v, f"{prefix}/{i}", out)
    return out


def check_shapes(expected_state: dict[str, Any], path: str | Path) -> None:
    """Refuse (CheckpointError) unless every tensor of `expected_state` (an agent's state_dict, e.g. from
    `meta_state`) is in the checkpoint with the same shape. Tensors only the file has (optimiser moments,
    which a fresh optimiser makes on its first step) are not compared. Reads the header only."""
    path = Path(path).with_suffix(".safetensors")
    stored = tensor_shapes(path)
    for name, shape in _tensor_shapes_of(expected_state, "state", {}).items():
        if name not in stored:
            raise CheckpointError(
                path,
                f"its config builds tensor {name} {list(shape)}, which the file lacks "
                "(its metadata does not match its tensors)",
            )
        if stored[name] != shape:
            raise CheckpointError(
                path,
                f"its config builds tensor {name} as {list(shape)} but the file holds "
                f"{list(stored[name])} (its metadata does not match its tensors)",
            )


def checkpoint_agent(meta: dict[str, Any], path: str | Path) -> tuple[Any, Any]:
    """(AgentSpec, Config) named by a checkpoint's metadata (read with RUN_FIELDS required); CheckpointError
    for an agent this pixelrl does not have or a config that its Config refuses."""
    import agents
    from agents.common import ConfigError

    try:
        spec = agents.get_agent(meta["agent"])
    except ValueError as err:
        raise CheckpointError(
            path, f"it was written by agent {meta['agent']!r}, which this pixelrl does not have ({err})"
        ) from None
    try:
        cfg = agents.config_from_dict(spec.Config, meta["agent_config"])
    except (ValueError, TypeError, ConfigError) as err:
        raise CheckpointError(path, f"its agent_config does not make a {spec.name} config: {err}") from None
    return spec, cfg


def probe_env(meta: dict[str, Any], path: str | Path) -> Any:
    """One evaluation env of the checkpoint's game and observation options (what its networks were built
    for); close it after use. CheckpointError when the metadata does not make one."""
    import envs

    try:
        return envs.make(meta["game"], 1, mode="eval", backend="sync", **meta.get("env_options", {}))
    except (ValueError, TypeError, KeyError) as err:
        raise CheckpointError(
            path,
            f"its game {meta['game']!r} with env_options "
            f"{_short(meta.get('env_options', {}), 60)} does not make an env: {err}",
        ) from None


def check_agent_fits(path: str | Path, spec: Any, cfg: Any, env: Any = None) -> None:
    """Refuse (CheckpointError, in well under a second) a checkpoint whose config would build networks
    other than the tensors it holds, before anything is allocated: the agent is built on the meta device
    (`meta_state`) from `spec` and `cfg` for `env` (default: `probe_env` of the checkpoint's metadata) and
    compared with the file's tensor shapes (`check_shapes`). Once this passes, building the agent for real
    allocates networks of the size of the file's tensors."""
    path = Path(path).with_suffix(".safetensors")
    probe = probe_env(read_meta(path, RUN_FIELDS), path) if env is None else env
    try:
        expected = meta_state(lambda: spec.make_agent(cfg, probe, "cpu", 0))
    except Exception as err:  # built from the file's config alone: whatever it breaks is the file's fault
        raise CheckpointError(
            path, f"its agent_config does not build a {spec.name} agent ({type(err).__name__}: {err})"
        ) from None
    finally:
        if env is None:
            probe.close()
    check_shapes(expected, path)


def check_same_run(
    run_dir: str | Path, path: str | Path, meta: dict[str, Any], keep: Collection[str], fix: str
) -> None:
    """Refuse (ValueError, one line) a checkpoint that another run wrote, copied into `run_dir` or left by a
    run that used the same folder: its agent, game, run id (where both have one) and every run and agent
    option except those in `keep` (what a resume may change) must be those of the run directory's
    config.json, written when the run started or last resumed. `meta` is read with RUN_FIELDS required. A
    run directory without config.json has nothing to compare with."""
    config_path = Path(run_dir) / "config.json"
    if not config_path.is_file():
        return
    try:
        config = json.loads(config_path.read_text())
    except (ValueError, OSError) as err:
        raise ValueError(f"{config_path} is not JSON ({err}); restore it, or start a new run") from None
    if not isinstance(config, dict):
        raise ValueError(f"{config_path} is not a JSON object; restore it, or start a new run")
    saved_run = meta.get("run_config") or {}
    keep = {*keep, "run_dir", "resume"}  # where the run lives and how it was started may change
    ours = {"agent": config.get("agent"), "game": config.get("game"), "run_id": config.get("run_id")}
    theirs = {
        "agent": meta["agent"],
        "game": meta["game"],
        "run_id": meta.get("run_id", saved_run.get("run_id")),
    }
    # config.json holds the run's options at its top level beside agent, game and agent_config.
    for name in saved_run.keys() & config.keys() - keep - {"agent", "game", "agent_config", "run_id"}:
        ours[name], theirs[name] = config[name], saved_run[name]
    ours_cfg, theirs_cfg = config.get("agent_config"), meta["agent_config"]
    if isinstance(ours_cfg, dict):
        for name in ours_cfg.keys() & theirs_cfg.keys() - keep:
            ours[f"--{name}"], theirs[f"--{name}"] = ours_cfg[name], theirs_cfg[name]
    named = ("agent", "game", "run_id")  # compared where both name one; options where both have them
    differ = [
        k for k in ours if ours[k] != theirs[k] and (k not in named or None not in (ours[k], theirs[k]))
    ]
    if differ:
        shown = "; ".join(f"{k} {_brief(theirs[k])} vs {_brief(ours[k])}" for k in differ[:4])
        raise ValueError(
            f"{path} is not this run's checkpoint: it is a {meta['agent']} run on {meta['game']} but "
            f"{config_path} is a {ours['agent']} run on {ours['game']} ({shown}); {fix}"
        )


def _brief(value: Any, limit: int = 40) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def save_arrays(path: str | Path, arrays: dict[str, Any]) -> Path:
    """numpy arrays to .npz (no object arrays), atomically."""
    import numpy as np

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return path


def load_arrays(path: str | Path) -> dict[str, Any]:
    import numpy as np

    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


# ---------------------------------------------------------------- exports in another library's format
# SB3's zip holds pickles: loading one can run any code its author put there. A run therefore signs each
# zip it writes with a key that only this user's account holds (HMAC-SHA256, key file mode 0600) and keeps
# the signature in its safetensors checkpoint; `verified_export` loads nothing that this user's pixelrl
# did not write, such as a zip from someone else's run directory or one changed after it was written.
KEY_FILE_ENV = "PIXELRL_KEY_FILE"


def _user_key() -> bytes:
    """This user's signing key: 32 random bytes in a file only they can read, made on first use."""
    path = Path(os.environ.get(KEY_FILE_ENV) or Path.home() / ".config" / "pixelrl" / "export.key")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
        try:  # published whole: another process never reads a half-written key
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            tmp.unlink()
    info = path.stat()
    if info.st_size != 32 or info.st_mode & 0o077 or (hasattr(os, "getuid") and info.st_uid != os.getuid()):
        raise ValueError(f"the signing key {path} must be 32 bytes, yours, and readable by you only "
                         "(chmod 600); delete it to make a new one (its zips are then refused)")  # fmt: skip
    return path.read_bytes()


def _signature(data: bytes) -> str:
    return hmac.new(_user_key(), data, hashlib.sha256).hexdigest()


def write_export(path: Path, write: Callable[[io.BytesIO], None]) -> dict[str, str]:
    """`write(buffer)` fills the file's bytes in memory; they are signed, then written to a temp file and
    renamed into place, so what is signed is exactly what was written. Returns what the checkpoint records."""
    buffer = io.BytesIO()
    write(buffer)
    data = buffer.getvalue()
    tmp = path.with_name(f"{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return {"file": path.name, "hmac_sha256": _signature(data)}


def verified_export(path: str | Path) -> tuple[dict[str, Any], bytes]:
    """The metadata of the checkpoint beside an exported file and the file's bytes, once those bytes are
    shown to be ones this user's runs wrote; otherwise ValueError, and nothing is loaded. Load the returned
    bytes, never the path again: the file could be swapped after the check."""
    path = Path(path)
    checkpoint = path.with_name(path.name.split(".", 1)[0] + ".safetensors")
    why = (f"refusing to load {path}: SB3 zips contain pickles that can run code when loaded, so pixelrl "
           "loads only zips that your own runs wrote. ")  # fmt: skip
    if not path.exists():
        raise FileNotFoundError(f"no file at {path}")
    if not checkpoint.exists():
        raise ValueError(why + f"There is no pixelrl checkpoint beside it ({checkpoint.name}).")
    meta = read_meta(checkpoint, RUN_FIELDS)
    export = meta.get("export") or {}
    data = path.read_bytes()
    if export.get("file") != path.name or not hmac.compare_digest(
        str(export.get("hmac_sha256", "")), _signature(data)
    ):
        raise ValueError(why + f"Its signature does not match {checkpoint}: it was changed after it was "
                         "written (or a crash came between it and the checkpoint), or another user wrote it. "
                         "Pass the run directory to use its .safetensors checkpoint instead.")  # fmt: skip
    return meta, data
