"""Shared test helpers: the command lines in scripts/ are files, not an installed package, so tests load
them by path, as `python scripts/NAME.py` does."""

import os
import runpy
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist each worker takes its share of the cores, so that workers do not oversubscribe them
    (torch would start one intra-op thread per core in every worker)."""
    # backend="auto" reads the env speeds `benchmark.py envs` recorded on this machine (envs.speeds_file()):
    # tests start from none, so that they do not depend on what was measured here.
    os.environ["PIXELRL_ENV_SPEEDS"] = os.path.join(tempfile.mkdtemp(prefix="pixelrl-speeds-"), "none.json")
    # Exported SB3 zips are signed with a per-user key (pixelrl.checkpoint): tests use their own, not yours.
    os.environ.setdefault("PIXELRL_KEY_FILE", os.path.join(tempfile.mkdtemp(prefix="pixelrl-key-"), "key"))
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def load_script(name: str) -> Callable[[list[str]], Any]:
    """The `main(argv)` of scripts/<name>.py."""
    return runpy.run_path(str(ROOT / "scripts" / f"{name}.py"), run_name=f"script_{name}")["main"]


@pytest.fixture(scope="session")
def script() -> Callable[[str], Callable[[list[str]], Any]]:
    return load_script
