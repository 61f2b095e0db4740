import json

import pytest

TARGETS = {"mlp": 0.97, "cnn": 0.98, "lstm": 0.95}


@pytest.mark.parametrize("net", TARGETS)
def test_digits_accuracy_targets_and_run_directory(net, tmp_path, capsys, script):
    result = script("supervised")(["--net", net, "--run-dir", str(tmp_path), "--no-progress"])
    assert result["test_accuracy"] >= TARGETS[net]
    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last_line)["test_accuracy"] == result["test_accuracy"]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["net"] == net and config["seed"] == 0
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == result["epochs_run"] + 1 and rows[-1]["test_accuracy"] == result["test_accuracy"]
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
