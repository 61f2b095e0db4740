"""Every agent learns CartPole-v1: mean greedy evaluation return above its target within its budget, on at
least 2 of 3 fixed seeds (issues 4 and 5). A few minutes in all; the default suite runs them."""

import pytest

TARGETS = [("dqn", 50_000, 195), ("ppo", 100_000, 475), ("a2c", 200_000, 400), ("reinforce", 100_000, 195)]


@pytest.mark.parametrize("agent, frames, target", TARGETS)
def test_agent_solves_cartpole_on_two_of_three_seeds(agent, frames, target, tmp_path, script):
    results = []
    for seed in (0, 1, 2):
        summary = script("train")(
            [
                agent,
                "--env",
                "CartPole-v1",
                "--seed",
                str(seed),
                "--frames",
                str(frames),
                "--eval-every",
                str(frames),
                "--eval-episodes",
                "10",
                "--wandb",
                "off",
                "--no-progress",
                "--run-dir",
                str(tmp_path / f"s{seed}"),
            ]
        )
        # PPO and A2C train whole rollouts, so they may pass the budget by less than one (256 steps here)
        assert frames <= summary["global_step"] <= frames + 256
        results.append(summary["final_eval_mean"])
        if sum(r >= target for r in results) >= 2:
            break
    assert sum(r >= target for r in results) >= 2, f"final evaluation returns per seed: {results}"
