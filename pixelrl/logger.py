"""The run logger: the one place that writes run directories and talks to Weights & Biases.

It sees plain numbers, never tensors. A W&B failure is reported once and logging carries on to the files,
so a logging problem never stops training.
"""

from __future__ import annotations

import contextlib
import json
import math
import netrc
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

WANDB_MODES = ("auto", "online", "offline", "off")


def wandb_logged_in() -> bool:
    """True when an API key is available without asking the user (env var or ~/.netrc)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def resolve_wandb_mode(mode: str) -> str:
    """auto -> online when logged in, else offline (syncable later with `wandb sync`)."""
    if mode not in WANDB_MODES:
        raise ValueError(f"--wandb {mode!r} is not known; use one of {', '.join(WANDB_MODES)}")
    if mode != "auto":
        return mode
    env_mode = os.environ.get("WANDB_MODE")
    if env_mode in ("online", "offline", "disabled"):
        return "off" if env_mode == "disabled" else env_mode
    return "online" if wandb_logged_in() else "offline"


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON through a temp file and a rename, so a crash never leaves half a file."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


class RunFilesError(OSError):
    """A run file could not be written (disk full, read-only, removed): what to do is in the message."""


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The rows of a metrics.jsonl. A line that does not parse (the half line a crash or a full disk left
    at the end) is dropped with a warning, so the run can still be resumed and reported."""
    path = Path(path)
    if not path.exists():
        return []
    rows, bad = [], []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                bad.append(number)
                continue
            if isinstance(row, dict):
                rows.append(row)
            else:
                bad.append(number)
    if bad:
        where = f"line {bad[0]}" + (f" and {len(bad) - 1} more" if len(bad) > 1 else "")
        warnings.warn(f"{path}: dropped {where} that did not parse (cut by a crash or a full disk)",
                      stacklevel=2)  # fmt: skip
    return rows


class RunLogger:
    """Writes runs/<run>/config.json and metrics.jsonl, and mirrors both to W&B when enabled."""

    def __init__(
        self,
        run_dir: str | Path,
        config: dict[str, Any],
        *,
        wandb_mode: str = "off",
        project: str = "pixelrl",
        resume: bool = False,
        quiet: bool = False,
        step_metric: str = "global_step",
        on_log: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.on_log = on_log  # called with every row written (a Ray Tune trial reports them)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.config = config
        write_json_atomic(self.run_dir / "config.json", config)
        self._metrics = open(self.run_dir / "metrics.jsonl", "a" if resume else "w")  # noqa: SIM115
        self.mode = resolve_wandb_mode(wandb_mode)
        self.step_metric = step_metric
        self._wandb = None
        if self.mode != "off":
            self._start_wandb(project, resume, quiet)

    def _start_wandb(self, project: str, resume: bool, quiet: bool) -> None:
        # wandb advertises its LLM tracer when a module named like an LLM SDK ("agents") is imported.
        os.environ.setdefault("WANDB_DISABLE_WEAVE", "1")
        try:
            import wandb

            self._wandb = wandb.init(
                project=project,
                name=self.run_dir.name,
                dir=str(self.run_dir),
                config=self.config,
                mode=self.mode,
                id=self._run_id(),
                resume="allow" if resume else None,
                settings=wandb.Settings(silent=True, console="off"),
            )
            # Plot against our own step key rather than W&B's internal counter, so a resumed run that
            # re-logs steps after its last checkpoint is not dropped by W&B.
            self._wandb.define_metric(self.step_metric)
            self._wandb.define_metric("*", step_metric=self.step_metric)
            if not quiet:
                how = (
                    "online"
                    if self.mode == "online"
                    else f"offline (upload later: wandb sync {self.run_dir}/wandb)"
                )
                print(f"W&B: logging {how}", file=sys.stderr)
        except Exception as exc:  # a logging failure must never stop training
            self._wandb_failed(exc)

    def _run_id(self) -> str:
        id_file = self.run_dir / "wandb_id.txt"
        if not id_file.exists():
            import uuid

            id_file.write_text(uuid.uuid4().hex[:12])
        return id_file.read_text().strip()

    def _wandb_failed(self, exc: Exception) -> None:
        warnings.warn(
            f"W&B logging disabled after an error ({exc!r}); metrics still go to metrics.jsonl", stacklevel=3
        )
        self._wandb = None

    def log(self, metrics: dict[str, Any]) -> None:
        """Append one line to metrics.jsonl (non-finite floats become null) and send it to W&B."""
        row = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}
        start = self._metrics.tell()
        try:
            self._metrics.write(json.dumps(row) + "\n")
            self._metrics.flush()
        except OSError as err:  # a full disk can take half a line: cut it, so the file stays readable
            with contextlib.suppress(OSError):
                self._metrics.truncate(start)
            why = err.strerror or str(err)
            path = self.run_dir / "metrics.jsonl"
            raise RunFilesError(
                f"cannot write {path}: {why}; free space or fix the folder's permissions, "
                "then continue with --resume"
            ) from None
        if self._wandb is not None:
            try:
                self._wandb.log(metrics)
            except Exception as exc:
                self._wandb_failed(exc)
        if self.on_log is not None:
            self.on_log(row)

    def log_video(self, path: str | Path, step: int, key: str = "media/video") -> None:
        if self._wandb is None:
            return
        try:
            import wandb

            self._wandb.log({key: wandb.Video(str(path), format="mp4"), self.step_metric: step})
        except Exception as exc:
            self._wandb_failed(exc)

    def log_image(self, path: str | Path, step: int, key: str) -> None:
        if self._wandb is None:
            return
        try:
            import wandb

            self._wandb.log({key: wandb.Image(str(path)), self.step_metric: step})
        except Exception as exc:
            self._wandb_failed(exc)

    def close(self) -> None:
        with contextlib.suppress(OSError):  # a full disk: what was written stays; the error was reported
            self._metrics.close()
        if self._wandb is not None:
            try:
                self._wandb.finish()
            except Exception as exc:
                self._wandb_failed(exc)
            self._wandb = None

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
