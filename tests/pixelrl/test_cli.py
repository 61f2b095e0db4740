"""The train command line's presets: chosen by name, listed with what they change, overridable."""

import pytest

from pixelrl import cli


def test_presets_are_chosen_by_name_and_options_still_override_them(capsys: pytest.CaptureFixture) -> None:
    _, _, default = cli.parse_train(["ppo", "--env", "Pong"], "")
    _, _, big = cli.parse_train(["ppo", "--env", "Pong", "--preset", "throughput"], "")
    assert (default.num_envs, default.epochs, default.minibatches) == (8, 4, 4)  # the published settings
    assert (big.num_envs, big.epochs, big.minibatches, big.num_steps) == (64, 3, 8, 128)
    assert big.lr == default.lr and big.gamma == default.gamma  # only what the preset names changes
    _, _, mixed = cli.parse_train(["ppo", "--preset=throughput", "--env", "Pong", "--num-envs", "32"], "")
    assert (mixed.num_envs, mixed.minibatches) == (32, 8)
    _, _, classic = cli.parse_train(["ppo", "--env", "CartPole-v1"], "")
    assert classic.epochs == 20  # the family default without --preset

    with pytest.raises(SystemExit, match="--preset quick: ppo has presets atari, classic, throughput, fast"):
        cli.parse_train(["ppo", "--env", "Pong", "--preset", "quick"], "")
    with pytest.raises(SystemExit, match="--preset starts a new run; a resumed run keeps its saved config"):
        cli.parse_train(["ppo", "--resume", "runs/x", "--preset", "throughput"], "")
    with pytest.raises(SystemExit, match="--preset throughput is for atari games, not CartPole-v1; drop"):
        cli.parse_train(["ppo", "--env", "CartPole-v1", "--preset", "throughput"], "")
    with pytest.raises(SystemExit, match="--preset classic is for classic games, not Pong; .*: atari, thr"):
        cli.parse_train(["ppo", "--env", "Pong", "--preset", "classic"], "")
    with pytest.raises(SystemExit, match="--preset needs a value"):
        cli.parse_train(["ppo", "--preset"], "")

    with pytest.raises(SystemExit):
        cli.parse_train(["ppo", "--help"], "")
    out = capsys.readouterr().out
    assert "throughput (atari): num_envs=64, epochs=3, minibatches=8" in out
    assert "fast (atari): frames=8000000, num_envs=16, minibatches=8, lr=0.0005, clip=0.2" in out
    assert "classic (classic): frames=100000" in out
