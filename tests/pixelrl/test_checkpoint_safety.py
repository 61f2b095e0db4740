"""Bad checkpoints are refused with one line, before anything in them runs or is allocated (issue 17, part 5):
pickles and zips renamed to .safetensors, empty, truncated and giant-header files, headers that are not
JSON, missing or mistyped metadata, configs asking for networks larger than the file's tensors, and
checkpoints of another run copied into a run directory. Property-based tests fuzz the loader and the
train command line."""

import json
import os
import pickle
import re
import shutil
import tempfile
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

import agents
import envs
from pixelrl import cli, evaluation
from pixelrl.checkpoint import (
    MAX_HEADER_BYTES,
    RUN_FIELDS,
    CheckpointError,
    check_agent_fits,
    check_shapes,
    load_checkpoint,
    load_loop_state,
    meta_state,
    read_meta,
    save_checkpoint,
    tensor_shapes,
)

TINY = [
    "--frames",
    "1000",
    "--learning-starts",
    "100",
    "--buffer-size",
    "1000",
    "--num-envs",
    "2",
    "--eval-episodes",
    "1",
    "--wandb",
    "off",
    "--no-progress",
]
# Seconds in all; PIXELRL_FUZZ_EXAMPLES=2000 searches deeper.
FUZZ = settings(
    max_examples=int(os.environ.get("PIXELRL_FUZZ_EXAMPLES", "60")),
    deadline=3000,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def cartpole(tmp_path_factory, script):
    """A tiny CartPole DQN run written by train.py."""
    run_dir = tmp_path_factory.mktemp("safety") / "cartpole"
    script("train")(["dqn", "--env", "CartPole-v1", "--run-dir", str(run_dir), *TINY])
    return run_dir


def copy_run(cartpole: Path, where: Path) -> tuple[Path, Path]:
    """A copy of the run with only its latest checkpoint (evaluate and watch fall back to it)."""
    run_dir = where / "run"
    shutil.copytree(cartpole, run_dir)
    for leftover in (run_dir / "checkpoints").glob("best.*"):
        leftover.unlink()
    return run_dir, run_dir / "checkpoints" / "latest.safetensors"


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value.code)
    assert re.match(r"^error: ", message) and "\n" not in message, message
    return message


def refused(run, name: str, argv: list[str], *fragments: str) -> str:
    with pytest.raises(SystemExit) as err:
        run(name)(argv)
    message = one_line(err)
    for fragment in fragments:
        assert fragment in message, message
    return message


def header_length(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[:8], "little")


def rewrite_meta(path: Path, change) -> None:
    """Save the checkpoint again with its metadata changed by `change(meta)` (tensors as they were)."""
    state, meta = load_checkpoint(path)
    change(meta)
    save_checkpoint(path, state, meta)


def rewrite_run(latest: Path, change) -> None:
    """`rewrite_meta`, with the run's config.json changed alike: a run whose own checkpoint is bad, rather
    than another run's checkpoint (which is refused for that alone)."""
    changed = {}
    rewrite_meta(latest, lambda meta: change(meta) or changed.update(meta))
    config_path = latest.parent.parent / "config.json"
    config = json.loads(config_path.read_text())
    config |= {k: changed[k] for k in ("agent", "game", "agent_config") if k in changed}
    config_path.write_text(json.dumps(config))


class Boom:
    """Unpickling this creates the marker file: a stand-in for code that a pickle runs when loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


# ---------------------------------------------------------------- files that are not checkpoints
@pytest.mark.parametrize("kind", ["pickle", "torch.save"])
def test_a_pickle_or_zip_renamed_to_safetensors_is_refused_without_running_it(
    kind, cartpole, tmp_path, script
):
    run_dir, latest = copy_run(cartpole, tmp_path)
    live = tmp_path / "live-marker"
    pickle.loads(pickle.dumps(Boom(live)))
    assert live.exists()  # the payload is live: loading it would run code
    marker = tmp_path / "marker"
    if kind == "pickle":
        latest.write_bytes(pickle.dumps({"weights": Boom(marker)}))
    else:
        torch.save({"weights": torch.zeros(3), "boom": Boom(marker)}, latest)
    what = "a pickle" if kind == "pickle" else "a zip archive"
    for name, argv in (
        ("evaluate", [str(run_dir), "--episodes", "1"]),
        ("watch", [str(run_dir)]),
        ("train", ["dqn", "--resume", str(run_dir)]),
    ):
        refused(script, name, argv, str(latest), f"is {what}", "never unpickles", "pass a run directory")
    with pytest.raises(CheckpointError):
        load_checkpoint(latest)
    assert not marker.exists()
    assert not (run_dir / "eval.json").exists()


@pytest.mark.parametrize("length", [0x280, 0x380, 0x480, 0x580])
def test_a_checkpoint_whose_header_length_starts_like_a_pickle_still_loads(length, tmp_path):
    """A header of 0x480 bytes starts the file with 80 04, as pickle protocol 4 does: the file is read as
    safetensors first, and only a file that is not one is named after what it looks like."""
    state = {"w": torch.arange(3.0)}
    for pad in range(length):
        path = save_checkpoint(tmp_path / "ck", state, {"step": 1, "pad": "x" * pad})
        if header_length(path) >= length:
            break
    assert header_length(path) == length and path.read_bytes()[:1] == b"\x80"
    loaded, meta = load_checkpoint(path)
    assert meta["pad"] == "x" * pad and loaded["w"].tolist() == [0.0, 1.0, 2.0]


def test_empty_and_truncated_files_are_refused_at_every_cut(cartpole, tmp_path, script):
    run_dir, latest = copy_run(cartpole, tmp_path)
    whole = latest.read_bytes()
    end = 8 + header_length(latest)
    latest.write_bytes(b"")
    refused(script, "evaluate", [str(run_dir)], str(latest), "is empty (0 bytes)")
    refused(script, "train", ["dqn", "--resume", str(run_dir)], "error: --resume: ", "is empty")
    for cut in (3, 8, 9, 200, end - 1, end, end + 1, len(whole) // 2, len(whole) - 1):
        latest.write_bytes(whole[:cut])
        message = refused(script, "evaluate", [str(run_dir), "--episodes", "1"], str(latest))
        assert "truncated" in message or "not a safetensors" in message, (cut, message)
        with pytest.raises(CheckpointError):
            load_checkpoint(latest)
    assert not (run_dir / "eval.json").exists()


def test_a_giant_header_length_is_refused_before_the_header_is_read(cartpole, tmp_path, script):
    run_dir, latest = copy_run(cartpole, tmp_path)
    for length in (2**64 - 1, MAX_HEADER_BYTES + 1):
        latest.write_bytes(length.to_bytes(8, "little") + b'{"a": 1}')
        start = time.perf_counter()
        refused(script, "evaluate", [str(run_dir)], str(latest), f"{length:,}-byte header", "bound")
        assert time.perf_counter() - start < 1
    latest.write_bytes((10**6).to_bytes(8, "little") + b"{}")  # under the bound, longer than the file
    refused(script, "evaluate", [str(run_dir)], "is truncated or not a safetensors file", "1,000,000 bytes")


@pytest.mark.parametrize(
    "header, problem",
    [
        (b"{not json", "its header is not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"a": \xff}', "its header is not JSON"),
        (b"   {}", "not a JSON object"),
        (b'{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}', "does not fill bytes"),
        (b'{"w": {"dtype": "OBJ", "shape": [1], "data_offsets": [0, 4]}}', "dtype 'OBJ'"),
        (b'{"w": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}', "2 bytes follow its last tensor"),
        (b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 99]}}', "is truncated"),
        (
            b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "__metadata__": {}}',
            "not a pixelrl checkpoint",
        ),
        (
            b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, '
            b'"__metadata__": {"pixelrl": "{oops"}}',
            "'pixelrl' metadata is not JSON",
        ),
    ],
)
def test_headers_that_are_not_a_pixelrl_checkpoint_are_named(header, problem, cartpole, tmp_path, script):
    run_dir, latest = copy_run(cartpole, tmp_path)
    latest.write_bytes(len(header).to_bytes(8, "little") + header + bytes(4))
    refused(script, "evaluate", [str(run_dir)], str(latest), problem)
    refused(script, "train", ["dqn", "--resume", str(run_dir)], problem)


# ---------------------------------------------------------------- metadata
def _drop(name):
    return lambda meta: meta.pop(name)


def _set(name, value):
    return lambda meta: meta.__setitem__(name, value)


@pytest.mark.parametrize(
    "change, problem",
    [
        *[(_drop(name), f"its metadata lacks {name}") for name in RUN_FIELDS],
        (_set("agent", 5), "'agent' is 5, not str"),
        (_set("game", None), "'game' is None, not str"),
        (_set("step", "12"), "'step' is '12', not int"),
        (_set("step", True), "'step' is True, not int"),
        (_set("step", -1), "'step' is negative"),
        (_set("agent_config", [1]), "'agent_config' is [1], not object"),
        (_set("env_options", "x"), "'env_options' is 'x', not object"),
        (_set("agent", ""), "'agent' is empty"),
        (_set("agent", "dqn9"), "agent 'dqn9', which this pixelrl does not have"),
        (lambda m: m["agent_config"].update(wings=2), "agent_config does not make a dqn config"),
        (lambda m: m["agent_config"].update(hidden="abc"), "agent_config does not build a dqn agent"),
        (lambda m: m["agent_config"].update(hidden=[-3]), "agent_config does not"),
        (_set("game", "NoSuchGame"), "its game 'NoSuchGame'"),
    ],
)
def test_missing_or_mistyped_metadata_is_refused_with_one_line(change, problem, cartpole, tmp_path, script):
    run_dir, latest = copy_run(cartpole, tmp_path)
    rewrite_run(latest, change)
    message = refused(script, "evaluate", [str(run_dir), "--episodes", "1"], str(latest), problem)
    assert "pass a run directory written by scripts/train.py" in message
    refused(script, "watch", [str(run_dir)], problem)
    assert not (run_dir / "eval.json").exists()


@pytest.mark.parametrize(
    "skeleton, problem",
    [
        (
            {"__tensor__": "state/nothing"},
            "its skeleton refers to tensor 'state/nothing', which the file does not",
        ),
        ({"__dict__": [[[1], 2]]}, "its skeleton has a malformed dict entry"),
        ({"__list__": [{"x": 1}]}, "its skeleton has a node pixelrl does not write"),
        ([1, 2], "its skeleton has a node pixelrl does not write"),
    ],
)
def test_a_skeleton_that_pixelrl_did_not_write_is_refused(skeleton, problem, cartpole, tmp_path, script):
    run_dir, latest = copy_run(cartpole, tmp_path)
    meta = read_meta(latest)
    save_file(
        {"x": torch.zeros(2)}, str(latest), metadata={"pixelrl": json.dumps({**meta, "skeleton": skeleton})}
    )
    refused(script, "evaluate", [str(run_dir)], str(latest), problem)
    refused(script, "train", ["dqn", "--resume", str(run_dir)], problem)


def test_a_huge_network_asked_for_by_the_metadata_is_refused_fast_without_allocating(
    cartpole, tmp_path, script
):
    run_dir, latest = copy_run(cartpole, tmp_path)
    rewrite_meta(latest, lambda meta: meta["agent_config"].update(hidden=[10**6, 10**6]))  # 4 TB of weights
    # In the run directory its config.json says hidden [256, 256]: refused as another run's checkpoint.
    refused(script, "evaluate", [str(run_dir)], "not this run's checkpoint", "--hidden [1000000, 1000000] vs")
    # As the run's own (config.json says so too): refused by its sizes, fast, before any allocation.
    rewrite_run(latest, lambda meta: None)
    evaluation.load_agent(cartpole, "latest", "cpu")  # imports and first builds are done
    start = time.perf_counter()
    with pytest.raises(
        CheckpointError,
        match=r"builds tensor state/q_net/\S+ as \[1000000, 4\] but the file holds \[256, 4\]",
    ):
        evaluation.load_agent(run_dir, "latest", "cpu")
    assert time.perf_counter() - start < 1
    refused(script, "evaluate", [str(run_dir)], "as [1000000, 4] but the file holds [256, 4]")
    refused(script, "watch", [str(run_dir)], "as [1000000, 4]")
    # A resume is refused by the command line before the Trainer builds anything.
    before = (run_dir / "metrics.jsonl").read_bytes()
    refused(script, "train", ["dqn", "--resume", str(run_dir)], "error: --resume: ", "as [1000000, 4]")
    assert (run_dir / "metrics.jsonl").read_bytes() == before


def test_sizes_are_checked_against_the_file_header_only(cartpole):
    latest = cartpole / "checkpoints" / "latest.safetensors"
    shapes = tensor_shapes(latest)
    assert shapes["state/q_net/backbone.net.1.weight"] == (256, 4)
    spec, cfg = (
        agents.get_agent("dqn"),
        agents.config_from_dict(agents.get_agent("dqn").Config, read_meta(latest)["agent_config"]),
    )
    check_agent_fits(latest, spec, cfg)  # the run's own config fits its tensors
    state, _ = load_checkpoint(latest)
    state["q_net"]["head.advantage.weight"] = torch.zeros(7, 7, device="meta")
    with pytest.raises(CheckpointError, match=r"advantage.weight as \[7, 7\] but the file holds \[2, 256\]"):
        check_shapes(state, latest)
    with pytest.raises(CheckpointError, match=r"builds tensor state/q_net/extra \[1\], which the file lacks"):
        check_shapes({"q_net": {"extra": torch.zeros(1, device="meta")}}, latest)


@pytest.mark.parametrize("game", ["CartPole-v1", "Pong"])
def test_every_agent_builds_on_the_meta_device_with_its_real_shapes(game):
    """`check_agent_fits` builds agents on the meta device; each agent must build there as it does for real
    (else its checkpoints could not be loaded)."""

    def shapes(obj, prefix="state", out=None):
        out = {} if out is None else out
        if isinstance(obj, torch.Tensor):
            out[prefix] = (tuple(obj.shape), obj.dtype)
        elif isinstance(obj, dict | list | tuple):
            for k, v in obj.items() if isinstance(obj, dict) else enumerate(obj):
                shapes(v, f"{prefix}/{k}", out)
        return out

    probe = envs.make(game, 1, mode="eval", backend="sync")
    family = "classic" if game == "CartPole-v1" else "atari"
    for name, spec in agents.AGENTS.items():
        cfg = spec.presets[family]
        on_meta = meta_state(lambda spec=spec, cfg=cfg: spec.make_agent(cfg, probe, "cpu", 0))
        assert all(t.is_meta for t in _tensors(on_meta)), name
        assert shapes(on_meta) == shapes(spec.make_agent(cfg, probe, "cpu", 0).state_dict()), name
    probe.close()


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict | list | tuple):
        for v in obj.values() if isinstance(obj, dict) else obj:
            yield from _tensors(v)


# ---------------------------------------------------------------- another run's checkpoint
def pong_checkpoint_like(cartpole_latest: Path, where: Path) -> Path:
    """A DQN Pong checkpoint as Trainer.save writes one (weights of an agent built for Pong)."""
    meta = read_meta(cartpole_latest)
    meta.pop("skeleton")
    meta.pop("loop_skeleton")  # CartPole's env states: this checkpoint holds none
    spec, cfg = agents.get_agent("dqn"), agents.get_agent("dqn").presets["atari"]
    probe = envs.make("Pong", 1, mode="eval", backend="sync")
    agent = spec.make_agent(cfg, probe, "cpu", 0)
    probe.close()
    import dataclasses

    meta |= {
        "game": "ALE/Pong-v5",
        "agent_config": dataclasses.asdict(cfg),
        "env_options": {},
        "run_config": {**meta["run_config"], "env": "Pong"},
    }
    return save_checkpoint(where / "pong" / "latest", agent.state_dict(), meta)


def test_a_pong_checkpoint_copied_into_a_cartpole_run_is_not_resumed(cartpole, tmp_path, script):
    run_dir, latest = copy_run(cartpole, tmp_path)
    pong = pong_checkpoint_like(latest, tmp_path)
    shutil.copy(pong, latest)
    config, metrics = (run_dir / "config.json").read_bytes(), (run_dir / "metrics.jsonl").read_bytes()
    message = refused(
        script,
        "train",
        ["dqn", "--resume", str(run_dir), "--wandb", "off", "--no-progress"],
        "error: --resume: ",
        f"{latest} is not this run's checkpoint",
        "a dqn run on ALE/Pong-v5",
        "config.json is a dqn run on CartPole-v1",
    )
    assert "game ALE/Pong-v5 vs CartPole-v1" in message
    assert (run_dir / "config.json").read_bytes() == config  # config.json stays CartPole's
    assert (run_dir / "metrics.jsonl").read_bytes() == metrics  # and no metrics were cut
    assert not (run_dir / "checkpoints" / "replay.npz").exists()
    # Evaluating or watching it would report Pong scores as this CartPole run's: refused too.
    for name in ("evaluate", "watch"):
        refused(script, name, [str(run_dir)], f"{latest} is not this run's checkpoint", "evaluate the run")
    assert not (run_dir / "eval.json").exists() and not (run_dir / "videos").exists()
    evaluation.load_agent(pong, "latest", "cpu")  # the file itself is a sound Pong checkpoint


def test_a_checkpoint_of_another_run_of_the_same_game_is_not_resumed(cartpole, tmp_path, script):
    run_dir, latest = copy_run(cartpole, tmp_path)
    rewrite_meta(latest, lambda meta: meta["run_config"].update(seed=7))  # the seed-7 run's checkpoint
    refused(script, "train", ["dqn", "--resume", str(run_dir)], "is not this run's checkpoint", "seed 7 vs 0")
    rewrite_meta(
        latest, lambda meta: meta["run_config"].update(seed=0) or meta["agent_config"].update(lr=0.5)
    )
    refused(script, "train", ["dqn", "--resume", str(run_dir)], "--lr 0.5 vs 0.0023")
    rewrite_meta(latest, lambda meta: meta["agent_config"].update(lr=0.0023, frames=999))  # a resumable field
    spec, run, cfg = cli.parse_train(["dqn", "--resume", str(run_dir)], None)
    assert (spec.name, run.env, cfg.frames) == ("dqn", "CartPole-v1", 999)
    (run_dir / "config.json").write_text("{ torn")
    refused(script, "train", ["dqn", "--resume", str(run_dir)], "config.json is not JSON")


# ---------------------------------------------------------------- property-based
def _loads(path: Path, **kwargs) -> None:
    """load_checkpoint either returns a state and metadata or refuses with CheckpointError: nothing else."""
    try:
        state, meta = load_checkpoint(path, **kwargs)
    except CheckpointError as err:
        assert "\n" not in str(err) and str(path) in str(err)
        event(f"refused: {str(err).split(': ')[1][:40]}")
        return
    event("loaded")
    assert isinstance(meta, dict)


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory) -> bytes:
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters())
    net(torch.ones(1, 3)).sum().backward()
    opt.step()
    path = save_checkpoint(
        tmp_path_factory.mktemp("small") / "ck",
        {"net": net.state_dict(), "optimizer": opt.state_dict()},
        {"agent": "dqn", "game": "CartPole-v1", "step": 3, "agent_config": {}},
    )
    return path.read_bytes()


def _in_file(data: bytes, fn) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ck.safetensors"
        path.write_bytes(data)
        fn(path)


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes_are_always_refused_with_a_checkpoint_error(data):
    def check(path):
        with pytest.raises(CheckpointError):
            load_checkpoint(path)

    _in_file(data, check)


@FUZZ
@given(st.data())
def test_every_truncation_of_a_checkpoint_is_refused(small_checkpoint, data):
    cut = data.draw(st.integers(0, len(small_checkpoint) - 1))

    def check(path):
        with pytest.raises(CheckpointError):
            load_checkpoint(path)

    _in_file(small_checkpoint[:cut], check)


@FUZZ
@given(st.data())
def test_flipped_bytes_load_or_are_refused(small_checkpoint, data):
    at = data.draw(st.lists(st.integers(0, len(small_checkpoint) - 1), min_size=1, max_size=4))
    flipped = bytearray(small_checkpoint)
    for i in at:
        flipped[i] ^= data.draw(st.integers(1, 255))
    _in_file(bytes(flipped), _loads)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@FUZZ
@given(header=JSON, extra=st.binary(max_size=64))
def test_random_header_json_is_refused_or_loads(header, extra):
    raw = json.dumps(header).encode()
    _in_file(len(raw).to_bytes(8, "little") + raw + extra, _loads)


TENSOR_ENTRY = st.fixed_dictionaries(
    {
        "dtype": st.sampled_from(["F32", "I64", "U8", "BOOL", "OBJ", 3]),
        "shape": st.lists(st.integers(-2, 2**40), max_size=3) | JSON,
        "data_offsets": st.lists(st.integers(-2, 64), min_size=0, max_size=3) | JSON,
    }
)


@FUZZ
@given(
    tensors=st.dictionaries(st.text(max_size=6), TENSOR_ENTRY, max_size=3),
    data=st.binary(max_size=64),
    meta=st.dictionaries(st.sampled_from([*RUN_FIELDS, "skeleton", "env_options", "run_config", "x"]), JSON),
)
def test_random_tensor_entries_and_metadata_are_refused_or_load(tensors, data, meta):
    header = json.dumps({**tensors, "__metadata__": {"pixelrl": json.dumps(meta)}}).encode()
    _in_file(
        len(header).to_bytes(8, "little") + header + data, lambda path: _loads(path, required=RUN_FIELDS)
    )


SIZES = st.lists(st.integers(-2, 300), max_size=3) | st.sampled_from([[256, 256], [10**6, 10**6], [2**63]])
CONFIG = st.dictionaries(
    st.sampled_from(["hidden", "lr", "gamma", "num_envs", "frames", "dueling", "lstm_hidden", "wings"]),
    SIZES | st.integers(-(2**65), 2**65) | st.floats() | JSON,
    max_size=4,
)


@FUZZ
@given(
    meta=st.fixed_dictionaries(
        {
            "agent": st.sampled_from([*agents.AGENTS, "nope"]),
            "game": st.sampled_from(["CartPole-v1", "CartPole-v1", "Acrobot-v1", "NoSuchGame"]),
            "step": st.integers(-1, 10),
            "agent_config": CONFIG,
        },
        optional={
            "env_options": st.dictionaries(st.sampled_from(["frame_stack", "sticky", "x"]), JSON, max_size=2),
        },
    )
)
def test_random_metadata_of_a_real_checkpoint_loads_an_agent_or_is_refused(cartpole, meta):
    state, _ = load_checkpoint(cartpole / "checkpoints" / "latest")
    with tempfile.TemporaryDirectory() as folder:
        path = save_checkpoint(Path(folder) / "ck", state, meta)
        try:
            evaluation.load_agent(path, "latest", "cpu")
            event("loaded")
        except CheckpointError as err:
            assert "\n" not in str(err)
            event(f"refused: {str(err).split(': ')[1][:40]}")


OPTION = st.sampled_from(
    [
        "--env",
        "--frames",
        "--seed",
        "--hidden",
        "--lr",
        "--num-envs",
        "--preset",
        "--resume",
        "--run-dir",
        "--device",
        "--sticky",
        "--backend",
        "--eval-every",
        "--wandb",
        "--precision",
        "--no-progress",
        "--compile",
        "--gamma",
    ]
)
VALUE = (
    st.sampled_from(
        [
            "Pong",
            "CartPole-v1",
            "nope",
            "0",
            "-1",
            "1e9",
            "nan",
            "inf",
            "classic",
            "atari",
            "cpu",
            "cuda",
            "off",
            "auto",
            "",
            "=",
            "--",
            "1 2",
            "True",
        ]
    )
    | st.integers(-(2**70), 2**70).map(str)
    | st.text(max_size=6)
)


@FUZZ
@given(st.sampled_from([*agents.AGENTS, "nope", "-x", "--help"]), st.lists(OPTION | VALUE, max_size=6))
def test_random_train_options_parse_or_exit_with_one_line(agent, argv):
    try:
        cli.parse_train([agent, *argv], "usage")
        event("parsed")
    except SystemExit as err:
        event(f"exit {err.code}" if isinstance(err.code, int) else str(err.code)[:20])
        # tyro's own usage errors and --help exit with a status (its message box on stderr); ours say
        # one line, `error: ...`.
        if not isinstance(err.code, int):
            assert re.match(r"^error: [^\n]*$", str(err.code)), err.code


@FUZZ
@given(
    argv=st.lists(OPTION | VALUE, max_size=4),
    kind=st.sampled_from(["good", "pickle", "huge", "pong", "missing"]),
)
def test_random_options_on_bad_run_directories_exit_with_one_line(argv, kind, bad_runs):
    try:
        cli.parse_train(["dqn", "--resume", str(bad_runs[kind]), *argv], "usage")
    except SystemExit as err:
        event(f"{kind}: exit {err.code}" if isinstance(err.code, int) else f"{kind}: one line")
        if not isinstance(err.code, int):
            assert re.match(r"^error: [^\n]*$", str(err.code)), err.code
    else:
        event(f"{kind}: parsed")
        assert kind == "good"


@pytest.fixture(scope="module")
def bad_runs(cartpole, tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-runs")
    runs = {}
    for kind in ("good", "pickle", "huge", "pong", "missing"):
        (root / kind).mkdir()
        run_dir, latest = copy_run(cartpole, root / kind)
        runs[kind] = run_dir
        if kind == "pickle":
            latest.write_bytes(pickle.dumps([1, 2, 3]))
        elif kind == "huge":
            rewrite_run(latest, lambda meta: meta["agent_config"].update(hidden=[10**6, 10**6]))
        elif kind == "pong":
            shutil.copy(pong_checkpoint_like(latest, root / kind), latest)
        elif kind == "missing":
            rewrite_meta(latest, lambda meta: meta.pop("run_config"))
    return runs


def test_a_loop_state_that_does_not_fit_is_refused_with_one_line(cartpole, tmp_path, script):
    """The loop state (random streams, env states) is data from the file too: one that cannot be put back
    is named in one line, before training."""
    run_dir, latest = copy_run(cartpole, tmp_path)
    state, meta = load_checkpoint(latest)
    loop = load_loop_state(latest)
    loop["random"]["python"] = [3, [1, 2], None]  # not a Mersenne Twister state
    save_checkpoint(latest, state, meta, loop)
    refused(script, "train", ["dqn", "--resume", str(run_dir), "--wandb", "off", "--no-progress"],
            f"{latest}: its loop state cannot be restored (ValueError: ")  # fmt: skip
