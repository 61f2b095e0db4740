import json

import pytest
import torch
from safetensors.torch import save_file

from pixelrl.checkpoint import find_checkpoint, load_checkpoint, read_meta, save_checkpoint


def nested_state():
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters())
    net(torch.ones(1, 3)).sum().backward()
    opt.step()
    return {"net": net.state_dict(), "optimizer": opt.state_dict(), "updates": 7, "betas": (0.9, 0.99)}


def test_round_trip_restores_tensors_int_keys_and_scalars(tmp_path):
    state = nested_state()
    save_checkpoint(tmp_path / "ck", state, {"step": 12, "agent": "dqn"})
    loaded, meta = load_checkpoint(tmp_path / "ck")
    assert meta == {"step": 12, "agent": "dqn"}
    torch.testing.assert_close(loaded["net"]["weight"], state["net"]["weight"])
    assert set(loaded["optimizer"]["state"]) == {0, 1}  # int keys survive JSON
    torch.testing.assert_close(
        loaded["optimizer"]["state"][0]["exp_avg"], state["optimizer"]["state"][0]["exp_avg"]
    )
    assert loaded["updates"] == 7 and list(loaded["betas"]) == [0.9, 0.99]
    assert json.loads((tmp_path / "ck.json").read_text())["step"] == 12  # a readable copy beside it
    torch.optim.Adam(torch.nn.Linear(3, 2).parameters()).load_state_dict(loaded["optimizer"])


def test_a_cut_off_write_leaves_the_previous_checkpoint_loadable(tmp_path):
    save_checkpoint(tmp_path / "latest", nested_state(), {"step": 1})
    (tmp_path / "latest.safetensors.tmp").write_bytes(b"half a file")  # the crash left this behind
    (tmp_path / "latest.json").write_text("{ truncated")  # and a broken readable copy
    _, meta = load_checkpoint(tmp_path / "latest")
    assert meta["step"] == 1


def test_foreign_and_missing_files_are_named(tmp_path):
    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a pixelrl checkpoint"):
        read_meta(tmp_path / "other.safetensors")
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        find_checkpoint(tmp_path / "nothing-here")


def test_loading_never_unpickles(tmp_path, monkeypatch):
    import pickle

    save_checkpoint(tmp_path / "ck", nested_state(), {"step": 3})

    def refuse(*args, **kwargs):
        raise AssertionError("pickle used while loading a checkpoint")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    load_checkpoint(tmp_path / "ck")
