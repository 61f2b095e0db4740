"""backend="auto": the fastest vector-env backend on the machine it runs on, from that machine's own
measurements.

`python scripts/benchmark.py envs` times every backend at several env counts (random actions on Pong,
the full training protocol) and records agent steps/s here with `record_speeds`, in a file kept per
user (`speeds_file()`), under a key naming this machine (`machine_key()`: CPU model, family/model, cores,
architecture). `choose_backend` then picks, among the backends that are installed and can do what was
asked (video, gymnasium-only preprocessing), the one measured fastest at the nearest measured env count.
On a machine with no measurements it falls back to a rule from measurements on two kinds of machine
(docs/envs.md): several Atari envs run in EnvPool, else in ale-py's vector env, else in gymnasium async;
one env runs in-process. EnvPool comes first in the rule because it also films training videos and has
been measured on both kinds of development machine; ale was faster on one of them.
"""

from __future__ import annotations

import json
import math
import os
import platform
from pathlib import Path
from typing import Literal, NamedTuple, get_args

from envs.envpool_backend import envpool_available

Backend = Literal["auto", "gymnasium", "sync", "async", "envpool", "ale"]
BACKENDS: tuple[str, ...] = get_args(Backend)
SPEEDS_ENV_VAR = "PIXELRL_ENV_SPEEDS"  # overrides where the measurements are kept (tests, shared homes)


class Choice(NamedTuple):
    backend: str
    why: str


def ale_vector_available() -> bool:
    try:
        from ale_py.vector_env import AtariVectorEnv  # noqa: F401  (ale-py >= 0.11)
    except ImportError:
        return False
    return True


def machine_key() -> str:
    """Names this machine's kind, so that speeds measured on one machine never choose for another."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "cpu family", "model") and key not in fields:
                fields[key] = value.strip()
    except OSError:
        pass
    model = fields.get("model name") or platform.processor() or "unknown CPU"
    family = f" family {fields['cpu family']} model {fields['model']}" if "cpu family" in fields else ""
    return f"{model}{family}, {os.cpu_count()} cores, {platform.machine()}"


def speeds_file() -> Path:
    """Where measured speeds are kept: $PIXELRL_ENV_SPEEDS, else the user's cache folder."""
    if os.environ.get(SPEEDS_ENV_VAR):
        return Path(os.environ[SPEEDS_ENV_VAR])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "pixelrl" / "env_speeds.json"


def record_speeds(results: list[dict], measured_at: str) -> Path:
    """Keep this machine's measured speeds (rows of backend, num_envs, sps) for `choose_backend`,
    replacing the figures of the same backend and env count; other machines' entries are kept."""
    path = speeds_file()
    table = _read(path)
    entry = table.setdefault(machine_key(), {"speeds": {}})
    for row in results:
        entry["speeds"].setdefault(row["backend"], {})[str(row["num_envs"])] = row["sps"]
    entry["measured_at"] = measured_at
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)  # atomic: a reader never sees half a file
    return path


def measured_speeds() -> dict[str, dict[int, float]]:
    """This machine's measured agent steps/s: backend -> {num_envs: sps} (empty if never measured)."""
    entry = _read(speeds_file()).get(machine_key(), {})
    return {b: {int(n): float(s) for n, s in by_n.items()} for b, by_n in entry.get("speeds", {}).items()}


def _read(path: Path) -> dict:
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError):  # none yet, or unreadable: measured again by the next benchmark
        return {}
    return table if isinstance(table, dict) else {}


def candidates(kind: str, gym_only: bool, video: bool) -> list[str]:
    """The backends that are installed here and can run what was asked."""
    if kind != "atari":
        return ["sync", "async"] + (["envpool"] if envpool_available() else [])
    out = ["sync", "async"]
    if not gym_only:
        out += ["envpool"] if envpool_available() else []
        out += ["ale"] if ale_vector_available() and not video else []
    return out


def choose_backend(kind: str, num_envs: int, gym_only: bool = False, video: bool = False) -> Choice:
    """The backend for `make(backend="auto")`, and why (see the module docstring).

    kind: "atari" or "classic"; gym_only: options only the gymnasium wrappers have (Karpathy, flicker);
    video: env 0 films its games (ale-py's vector env cannot)."""
    if kind != "atari":  # classic control steps cost microseconds: workers and threads cost more
        return Choice("sync", "classic control runs in-process")
    allowed, installed = candidates(kind, gym_only, video), candidates(kind, False, False)
    measured = measured_speeds()
    # Trusted only where every allowed backend was measured at the same env count: a record made before
    # EnvPool was installed, or of some backends only, must not keep auto on a slower one.
    counts = set.intersection(*(set(measured.get(b, {})) for b in allowed))
    if counts:  # compare at the env count nearest to num_envs (log scale; ties: the larger)
        n = min(counts, key=lambda m: (abs(math.log2(m) - math.log2(num_envs)), -m))
        best = max(allowed, key=lambda b: measured[b][n])
        top = measured[best][n]
        why = f"fastest measured on this machine ({top:,.0f} steps/s with {n} envs)"
        faster = [b for b in installed if b not in allowed and measured.get(b, {}).get(n, 0) > top]
        if faster:  # say what the options cost, e.g. that filming rules out the ale backend
            cannot = "film" if video else "run these options"
            why += f"; {', '.join(faster)} measured faster but cannot {cannot}"
        return Choice(best, why)
    missing = [b for b in allowed if b not in measured]
    if not measured:
        rule = "no measurements on this machine"
    elif missing:
        rule = f"{', '.join(missing)} not measured on this machine"
    else:
        rule = "no env count at which every backend was measured on this machine"
    rule += " (python scripts/benchmark.py envs makes them)"
    if num_envs == 1:
        return Choice("sync", f"{rule}: one env runs in-process")
    for backend in ("envpool", "ale"):
        if backend in allowed:
            return Choice(backend, f"{rule}: {backend} is the fastest installed by rule")
    return Choice("async", f"{rule}: gymnasium async")
