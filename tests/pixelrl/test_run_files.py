"""Run files that survive faults: a cut metrics line, a full disk while logging or checkpointing, and a run
directory that cannot be written, each met with one line and a run that can still be resumed."""

import errno
import json
from collections import namedtuple

import pytest

import pixelrl.training as training
from pixelrl.checkpoint import read_meta
from pixelrl.logger import RunFilesError, RunLogger, read_jsonl

TINY = ["--env", "CartPole-v1", "--wandb", "off", "--no-progress", "--eval-episodes", "1", "--frames", "2000",
        "--learning-starts", "500"]  # fmt: skip


def test_a_cut_last_line_is_dropped_with_a_warning(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"global_step": 1}\n{"global_step": 2}\n{"global_st')
    with pytest.warns(UserWarning, match="dropped line 3 that did not parse"):
        assert read_jsonl(path) == [{"global_step": 1}, {"global_step": 2}]


def test_a_full_disk_while_logging_leaves_no_half_line(tmp_path):
    logger = RunLogger(tmp_path, {"agent": "x"})
    logger.log({"global_step": 1})
    real = logger._metrics

    class FullDisk:  # writes half of what it is given, then reports the disk full, as ENOSPC does
        def __getattr__(self, name):
            return getattr(real, name)

        def write(self, text):
            real.write(text[: len(text) // 2])
            real.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

    logger._metrics = FullDisk()
    with pytest.raises(
        RunFilesError, match="cannot write .*metrics.jsonl: No space left on device; free space"
    ):
        logger.log({"global_step": 2, "episode_return": 1.0})
    logger._metrics = real
    logger.close()
    assert [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [
        {"global_step": 1}
    ]


def test_resume_after_a_crash_that_cut_a_line(tmp_path, script):
    run_dir = tmp_path / "run"
    script("train")(["dqn", *TINY, "--run-dir", str(run_dir)])
    with (run_dir / "metrics.jsonl").open("a") as f:
        f.write('{"global_step": 99999, "episode_ret')  # the crash
    with pytest.warns(UserWarning, match="did not parse"):
        summary = script("train")(["dqn", "--resume", str(run_dir), "--frames", "3000", "--no-progress"])
    assert summary["global_step"] == 3000
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["global_step"] <= 3000  # every line parses again


def test_a_failed_checkpoint_write_keeps_the_previous_one_and_says_so(tmp_path, monkeypatch, script):
    run_dir = tmp_path / "run"
    calls = []
    save = training.save_checkpoint

    def disk_full_on_the_third_save(path, state, meta, loop=None):
        calls.append(path)
        if len(calls) == 3:
            path.with_suffix(".safetensors.tmp").write_bytes(b"half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        return save(path, state, meta, loop)

    monkeypatch.setattr(training, "save_checkpoint", disk_full_on_the_third_save)
    message = r"^error: could not write the latest checkpoint .*No space.*the previous one \(step 1,000\)"
    with pytest.raises(SystemExit, match=message):
        script("train")(["dqn", *TINY, "--run-dir", str(run_dir), "--eval-every", "1000"])
    assert read_meta(run_dir / "checkpoints" / "latest")["step"] == 1000  # whole, and resumable
    assert not (run_dir / "checkpoints" / "latest.safetensors.tmp").exists()


def test_an_unwritable_or_full_run_directory_is_refused_before_training(tmp_path, monkeypatch, script):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(SystemExit, match="^error: cannot write the run directory .*; pick another --run-dir"):
        script("train")(["dqn", *TINY, "--run-dir", str(blocker / "run")])
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(training.shutil, "disk_usage", lambda path: usage(2**30, 2**30, 1_000_000))
    with pytest.raises(SystemExit, match=r"^error: only 1 MB free for .*; a run needs at least 200 MB"):
        script("train")(["dqn", *TINY, "--run-dir", str(tmp_path / "run")])
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
