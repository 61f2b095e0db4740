import numpy as np
import torch

import envs
import nets
from agents import a2c
from agents.rollout import Rollout


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
    # one env, 40 steps: row t is a reset step where obs[t + 1] is first; the batch drops those rows
    zeros = torch.zeros(40, 1)
    firsts = torch.cat([torch.ones(1), 1 - valid]).bool()[:, None]
    rollout = Rollout(obs[:, None], actions[:, None], zeros, values[:, None], zeros, zeros, zeros.bool(),
                      zeros.bool(), firsts)  # fmt: skip
    b_batch = rollout.policy_batch(zeros, returns[:, None])
    assert len(b_batch) == 20
    # The mean over the kept rows is the old masked mean over all rows (weights valid / mean(valid)).
    share = valid / valid.mean()
    expected = {"losses/policy": nets.cross_entropy(logits, actions, weights=(returns - values) * share),
                "losses/value": nets.mse(values, returns, weights=share),
                "losses/entropy": nets.entropy(logits, weights=share)}  # fmt: skip
    for _ in range(20):
        metrics = agent.update(b_batch)
        for key, value in expected.items():  # the first update's losses, on the untouched network
            torch.testing.assert_close(torch.tensor(metrics[key]), value, rtol=1e-5, atol=1e-6)
        expected = {}
    with torch.no_grad():
        new_logits, new_values = agent.net(obs)
    gained = torch.log_softmax(new_logits, -1)[:, 1] - torch.log_softmax(logits, -1)[:, 1]
    assert gained[:20].mean() > 0.05
    assert (new_values[:20] - values[:20]).mean() > 0.1  # values moved towards the higher returns
    assert np.isfinite(list(metrics.values())).all()
