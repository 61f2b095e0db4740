"""Shared test helpers: the command lines in scripts/ are files, not an installed package, so tests load
them by path, as `python scripts/NAME.py` does."""

import runpy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str) -> Callable[[list[str]], Any]:
    """The `main(argv)` of scripts/<name>.py."""
    return runpy.run_path(str(ROOT / "scripts" / f"{name}.py"), run_name=f"script_{name}")["main"]


@pytest.fixture(scope="session")
def script() -> Callable[[str], Callable[[list[str]], Any]]:
    return load_script
