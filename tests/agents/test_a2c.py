import numpy as np
import torch

import envs
from agents import a2c


def test_update_is_advantage_weighted_cross_entropy_and_ignores_reset_steps():
    torch.manual_seed(0)
    cfg = a2c.PRESETS["classic"]
    env = envs.make("CartPole-v1", 2, seed=0)
    agent = a2c.make_agent(cfg, env, "cpu")
    env.close()
    obs = torch.randn(40, 4)
    actions = torch.ones(40, dtype=torch.long)
    with torch.no_grad():
        logits, values = agent.net(obs)
    valid = torch.ones(40)
    valid[20:] = 0.0
    # returns above the value for real steps (advantage > 0), absurd ones on reset steps
    returns = torch.where(valid > 0, values + 1.0, torch.full_like(values, -1e6))
    for _ in range(20):
        metrics = agent.update({"obs": obs, "actions": actions, "returns": returns, "valid": valid})
    with torch.no_grad():
        new_logits, new_values = agent.net(obs)
    gained = torch.log_softmax(new_logits, -1)[:, 1] - torch.log_softmax(logits, -1)[:, 1]
    assert gained[:20].mean() > 0.05
    assert (new_values[:20] - values[:20]).mean() > 0.1  # values moved towards the higher returns
    assert np.isfinite(list(metrics.values())).all()
