"""The throughput benchmark: ceilings arithmetic, matched settings, and one tiny end-to-end run."""

import json

import pytest
import torch

import nets
from pixelrl import measure, throughput


def test_serial_ceiling_adds_the_seconds_per_step_of_env_and_compute():
    # 1,000 env steps/s and 1,000 compute steps/s in series: 2 ms per step -> 500 steps/s.
    assert measure.serial_ceiling(1000.0, 1000.0) == pytest.approx(500.0)
    assert measure.serial_ceiling(1e12, 800.0) == pytest.approx(800.0)


def test_benchmark_settings_match_sb3_zoo_atari():
    ppo, dqn = throughput.PPO_CFG, throughput.DQN_CFG
    assert (ppo.num_envs, ppo.num_steps, ppo.epochs, ppo.minibatches) == (8, 128, 4, 4)
    assert (ppo.lr, ppo.clip, ppo.ent_coef, ppo.clip_value) == (2.5e-4, 0.1, 0.01, False)
    assert ppo.vf_coef * 0.5 == 0.5  # our value loss is vf_coef * 0.5 * MSE; SB3's zoo: 0.5 * MSE
    # one gradient step of 32 per 4 transitions, plain 1-step targets like SB3's DQN
    assert (dqn.batch_size, dqn.train_every, dqn.gradient_steps, dqn.n_step) == (32, 4, 1, 1)
    assert not dqn.double and not dqn.dueling and not dqn.prioritized


@pytest.mark.parametrize(("default", "ours", "sb3"), [("bf16", "bf16", "fp32"), ("tf32", "tf32", "tf32"),
                                                     ("fp32", "fp32", "fp32")])  # fmt: skip
def test_sb3_gets_tf32_where_ours_runs_it_and_the_fp32_variants_run_fp32(default, ours, sb3):
    """bf16 on CPUs that have it natively, TF32 on Ampere+ GPUs, fp32 elsewhere (nets.choose_precision)."""
    assert throughput.contender_precision("pixelrl", default) == ours
    assert throughput.contender_precision("pixelrl 1 env group", default) == ours
    assert throughput.contender_precision("pixelrl fp32", default) == "fp32"
    assert throughput.contender_precision("sb3", default) == sb3


def test_network_seconds_times_inference_faster_than_training():
    net = nets.ActorCritic((4, 84, 84), 6, (64,))
    cpu = torch.device("cpu")
    infer = measure.network_seconds(net, 8, "fp32", cpu, train=False)
    train = measure.network_seconds(net, 8, "fp32", cpu, train=True)
    assert 0 < infer < train


def test_throughput_benchmark_end_to_end(tmp_path, capsys, script):
    tiny = ["--ppo-steps", "1024", "--dqn-steps", "64", "--repeats", "2", "--dqn-learning-starts", "64"]
    script("benchmark")(["throughput", *tiny, "--env-seconds", "0.3", "--out", str(tmp_path)])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    summary = json.loads(last)
    assert {"ppo_vs_sb3", "dqn_vs_sb3", "ppo_fp32_vs_sb3", "dqn_fp32_vs_sb3"} <= set(summary)
    # frame-once replay: about one 84x84 frame per transition; SB3 keeps obs and next_obs (8 frames)
    assert summary["bytes_per_transition"] <= 1.1 * 84 * 84
    assert summary["sb3_bytes_per_transition"] >= 8 * 84 * 84
    report = json.loads((tmp_path / "benchmark_throughput.json").read_text())
    rows = {(r["algo"], r["who"]): r for r in report["rows"]}
    assert {("ppo", "pixelrl"), ("ppo", "pixelrl 1 env group"), ("ppo", "sb3"), ("dqn", "pixelrl"),
            ("dqn", "sb3")} <= set(rows)  # fmt: skip
    # the same work on both sides: as many DQN gradient steps after the same number of agent steps (SB3
    # starts one vector step later: it trains once num_timesteps > learning_starts, we once it is reached)
    assert rows[("dqn", "sb3")]["updates"] > 0
    assert 0 <= rows[("dqn", "pixelrl")]["updates"] - rows[("dqn", "sb3")]["updates"] <= 1
    assert rows[("ppo", "sb3")]["ceiling_sps"] is None and rows[("ppo", "pixelrl")]["of_ceiling"] > 0
    for c in report["ceilings"]:  # timed in every repeat, the median reported
        assert len(c["env_sps_all"]) == len(c["compute_sps_all"]) == 2
        assert c["env_sps"] == pytest.approx(sum(c["env_sps_all"]) / 2)
        assert c["ceiling_sps"] == pytest.approx(measure.serial_ceiling(c["env_sps"], c["compute_sps"]))
    markdown = (tmp_path / "benchmark_throughput.md").read_text()
    assert "| PPO | sb3 |" in markdown
    assert report["cpu_model"] and f"CPU: {report['cpu_model']}." in markdown  # speeds depend on it
    assert (tmp_path / "benchmark_throughput.png").stat().st_size > 0
