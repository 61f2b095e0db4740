"""Checkpoints that never execute code on load: tensors in .safetensors, everything else in JSON.

A nested state (module and optimiser state dicts, counters) is split into flat tensors and a JSON
skeleton that says where each tensor goes. Skeleton and metadata live in the safetensors header, and the
file is written under a temp name and renamed, so a crash mid-write leaves the previous checkpoint whole.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from pixelrl.logger import write_json_atomic

META_KEY = "pixelrl"


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


def save_checkpoint(path: str | Path, state: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write `path` (.safetensors) and a readable .json copy of its metadata beside it."""
    path = Path(path).with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _flatten(state, "state", tensors)
    tmp = path.with_suffix(".safetensors.tmp")
    # The metadata travels inside the weights file: one rename publishes both, so no crash can pair new
    # weights with old metadata. The .json beside it is for people and tools that read JSON.
    save_file(tensors, str(tmp), metadata={META_KEY: json.dumps({**meta, "skeleton": skeleton})})
    os.replace(tmp, path)
    write_json_atomic(path.with_suffix(".json"), meta)
    return path


def read_meta(path: str | Path) -> dict[str, Any]:
    """The metadata stored in a checkpoint's weights file (step, agent, game, configs)."""
    from safetensors import safe_open

    path = Path(path).with_suffix(".safetensors")
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    with safe_open(str(path), framework="pt") as f:
        header = (f.metadata() or {}).get(META_KEY)
    if header is None:
        raise ValueError(
            f"{path} is a safetensors file but not a pixelrl checkpoint (no '{META_KEY}' metadata)"
        )
    return json.loads(header)


def load_checkpoint(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return (state, meta). Only tensors and JSON are read: nothing is unpickled or executed."""
    path = Path(path).with_suffix(".safetensors")
    meta = read_meta(path)
    tensors = load_file(str(path), device=str(device))
    skeleton = meta.pop("skeleton")
    return _unflatten(skeleton, tensors), meta


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
    path = Path(os.environ.get(KEY_FILE_ENV) or Path.home() / ".config" / "pixelrl" / "export.key")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
    return path.read_bytes()


def _signature(path: Path) -> str:
    return hmac.new(_user_key(), path.read_bytes(), hashlib.sha256).hexdigest()


def write_export(path: Path, write: Callable[[Path], None]) -> dict[str, str]:
    """Write `path` with `write(tmp)` and rename it into place; returns what the checkpoint records."""
    tmp = path.with_name(path.name.replace(".", ".tmp.", 1))
    write(tmp)
    os.replace(tmp, path)
    return {"file": path.name, "hmac_sha256": _signature(path)}


def verified_export(path: str | Path) -> dict[str, Any]:
    """The metadata of the checkpoint beside an exported file, once the file is shown to be one this
    user's runs wrote and not changed since; otherwise ValueError, and nothing is loaded."""
    path = Path(path)
    checkpoint = path.with_name(path.name.split(".", 1)[0] + ".safetensors")
    why = (f"refusing to load {path}: SB3 zips contain pickles that can run code when loaded, so pixelrl "
           "loads only zips that your own runs wrote. ")  # fmt: skip
    if not path.exists():
        raise FileNotFoundError(f"no file at {path}")
    if not checkpoint.exists():
        raise ValueError(why + f"There is no pixelrl checkpoint beside it ({checkpoint.name}).")
    meta = read_meta(checkpoint)
    export = meta.get("export") or {}
    if export.get("file") != path.name or not hmac.compare_digest(
        str(export.get("hmac_sha256", "")), _signature(path)
    ):
        raise ValueError(why + f"Its signature does not match {checkpoint}: it was changed after it was "
                         "written, or another user wrote it. Pass the run directory to use its .safetensors "
                         "checkpoint instead.")  # fmt: skip
    return meta
