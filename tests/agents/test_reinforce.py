import numpy as np
import torch

import envs
from agents import reinforce
from pixelrl.evaluation import load_agent


def test_update_raises_the_probability_of_actions_with_above_average_returns():
    torch.manual_seed(0)
    cfg = reinforce.PRESETS["classic"]
    env = envs.make("CartPole-v1", 1, seed=0)
    agent = reinforce.make_agent(cfg, env, "cpu")
    env.close()
    obs = torch.randn(64, 4)
    index = torch.tensor([0, 1] * 32)
    returns = torch.where(index == 1, 10.0, 0.0)  # action 1 always paid off
    before = agent.policy(obs).softmax(-1)[:, 1].mean()
    for _ in range(10):
        agent.update(reinforce.EpisodeBatch(obs, index, returns))
    assert agent.policy(obs).softmax(-1)[:, 1].mean() > before + 0.1


def test_pong_from_difference_frames_trains_saves_and_reloads(tmp_path, script):
    run_dir = tmp_path / "pong"
    args = ["--frames", "8000", "--batch-games", "1", "--eval-episodes", "1", "--eval-every", "8000"]
    summary = script("train")(["reinforce", "--env", "Pong", *args, "--video-every", "0", "--wandb", "off",
                          "--no-progress", "--run-dir", str(run_dir)])  # fmt: skip
    assert summary["global_step"] == 2000
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert any("losses/policy" in line for line in lines)  # at least one whole game became an update
    agent, meta = load_agent(run_dir, "latest", "cpu")
    assert meta["env_options"] == {"preprocess": "karpathy"}
    env = envs.make("Pong", 1, mode="eval", **meta["env_options"])
    obs, _ = env.reset()
    for _ in range(30):
        obs, *_ = env.step(agent.eval_act(obs))
    assert obs.shape == (1, 6400) and set(np.unique(obs)) <= {-1.0, 0.0, 1.0}
    assert set(agent.eval_act(obs)) <= {2, 3}  # only up and down
    env.close()
