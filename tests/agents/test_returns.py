import torch

from agents.returns import discounted_returns, gae


def col(*xs, dtype=torch.float32):
    return torch.tensor(xs, dtype=dtype).view(-1, 1)  # (T, N=1)


def test_discounted_returns_restart_after_an_episode_end_and_bootstrap_the_tail():
    rewards = col(1.0, 2.0, 3.0, 4.0)
    ends = col(False, True, False, False, dtype=torch.bool)
    g = discounted_returns(rewards, ends, gamma=0.5, bootstrap=torch.tensor([8.0]))
    # episode 1: G1 = 2, G0 = 1 + 0.5*2; episode 2 (unfinished): G3 = 4 + 0.5*8, G2 = 3 + 0.5*G3
    torch.testing.assert_close(g, col(2.0, 2.0, 3.0 + 0.5 * 8.0, 8.0))


def test_gae_by_hand_with_termination_and_truncation():
    gamma, lam = 0.9, 0.5
    rewards = col(1.0, 0.0, 2.0, 1.0)
    values = col(0.5, 1.0, 2.0, 0.0)
    # step 1 terminates; step 3 is truncated: it bootstraps from V(final obs) = 3
    next_values = col(1.0, 99.0, 0.0, 3.0)
    terminated = col(False, True, False, False, dtype=torch.bool)
    ends = col(False, True, False, True, dtype=torch.bool)
    adv, targets = gae(rewards, values, next_values, terminated, ends, gamma, lam)
    d0 = 1.0 + 0.9 * 1.0 - 0.5
    d1 = 0.0 - 1.0  # terminal: the 99 must never be used
    d2 = 2.0 + 0.9 * 0.0 - 2.0
    d3 = 1.0 + 0.9 * 3.0 - 0.0
    expected = col(d0 + gamma * lam * d1, d1, d2 + gamma * lam * d3, d3)
    torch.testing.assert_close(adv, expected)
    torch.testing.assert_close(targets, expected + values)


def test_gae_with_lambda_one_equals_discounted_returns_minus_values():
    torch.manual_seed(0)
    rewards, values = torch.randn(6, 3), torch.randn(6, 3)
    next_values = torch.cat([values[1:], torch.zeros(1, 3)])
    ends = torch.zeros(6, 3, dtype=torch.bool)
    ends[-1] = True
    ends[2, 1] = True
    terminated = ends.clone()
    next_values[ends] = 0.0
    adv, _ = gae(rewards, values, next_values, terminated, ends, gamma=0.97, lam=1.0)
    torch.testing.assert_close(adv, discounted_returns(rewards, ends, 0.97) - values)
