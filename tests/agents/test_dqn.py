import numpy as np
import pytest
import torch

import envs
import nets
from agents import dqn
from agents.common import ConfigError
from agents.replay import Transitions
from pixelrl.checkpoint import load_checkpoint, save_checkpoint


def test_td_targets_double_versus_vanilla_and_terminal_versus_truncated_by_hand():
    returns = torch.tensor([1.0, 2.0, 0.5])
    discounts = torch.tensor([0.99, 0.0, 0.99**3])  # bootstrap / terminated / truncated after 3 steps
    next_q_target = torch.tensor([[1.0, 5.0], [7.0, 3.0], [2.0, 4.0]])
    next_q_online = torch.tensor([[3.0, 0.0], [0.0, 9.0], [1.0, 2.0]])
    vanilla = dqn.td_targets(returns, discounts, next_q_target)
    torch.testing.assert_close(vanilla, torch.tensor([1 + 0.99 * 5, 2.0, 0.5 + 0.99**3 * 4]))
    double = dqn.td_targets(returns, discounts, next_q_target, next_q_online)
    # online net picks action 0 for the first row, so the target net's value of action 0 is used
    torch.testing.assert_close(double, torch.tensor([1 + 0.99 * 1, 2.0, 0.5 + 0.99**3 * 4]))


def pong_agent(**overrides):
    cfg = dqn.Config(**{"buffer_size": 1000, "learning_starts": 100, **overrides})
    env = envs.make("Pong", 2, seed=0, backend="sync")
    return cfg, env, dqn.make_agent(cfg, env, "cpu")


def test_update_moves_q_towards_targets_and_syncs_target():
    torch.manual_seed(0)
    cfg, env, agent = pong_agent(lr=1e-3, precision="fp32", dueling=True, prioritized=True)
    env.close()
    rng = np.random.default_rng(0)
    batch = Transitions(
        obs=rng.integers(0, 256, (8, 4, 84, 84), dtype=np.uint8),
        actions=rng.integers(0, 6, 8),
        returns=np.ones(8, dtype=np.float32),
        next_obs=rng.integers(0, 256, (8, 4, 84, 84), dtype=np.uint8),
        discounts=np.zeros(8, dtype=np.float32),  # terminal: targets are exactly 1
        weights=np.ones(8, dtype=np.float32),
        indices=np.arange(8),
    )
    moved = batch.to(agent.device)  # one call: tensors on the device, pixels still uint8, indices numpy
    assert moved.obs.dtype == torch.uint8 and moved.actions.dtype == torch.int64
    assert isinstance(moved.weights, torch.Tensor) and moved.indices is batch.indices
    first = agent.update(batch)
    td_first = agent.td_abs
    for _ in range(30):
        metrics = agent.update(batch)
        td = agent.td_abs
    assert metrics["losses/td_loss"] < first["losses/td_loss"] / 10
    assert td.shape == (8,) and td.mean() < td_first.mean()
    pairs = list(zip(agent.q_net.parameters(), agent.target_q_net.parameters(), strict=True))
    assert sum((a - b).abs().sum() for a, b in pairs) > 0
    agent.sync_target()
    for a, b in zip(agent.q_net.parameters(), agent.target_q_net.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_forward_only_copies_serve_the_online_and_the_target_network(monkeypatch):
    """Acting reads the online network and TD targets read the target network, each through its bf16
    copy (nets.InferenceCopy), including after updates and a target sync."""
    monkeypatch.setattr(nets.device, "bf16_supported", lambda device: True)  # "auto" is bf16, on any CPU
    torch.manual_seed(0)
    cfg, env, agent = pong_agent(lr=1e-3)
    assert agent.q.bf16 and agent.target_q.bf16
    env.close()
    obs = torch.randint(0, 256, (8, 4, 84, 84), dtype=torch.uint8)
    ones, zeros = np.ones(8, np.float32), np.zeros(8, np.float32)
    batch = Transitions(obs=obs.numpy(), actions=np.zeros(8, np.int64), returns=ones, next_obs=obs.numpy(),
                        discounts=zeros, weights=ones, indices=np.arange(8))  # fmt: skip

    def outputs() -> tuple[torch.Tensor, ...]:
        with torch.inference_mode(), nets.autocast(agent.device, True):
            nets_and_copies = (agent.q_net, agent.q.inference, agent.target_q_net, agent.target_q.inference)
            return tuple(n(obs).float() for n in nets_and_copies)

    for step in range(3):
        online, acting, target, target_copy = outputs()
        torch.testing.assert_close(acting, online, atol=0.05, rtol=0.02)
        torch.testing.assert_close(target_copy, target, atol=0.05, rtol=0.02)
        assert (step == 0) == torch.allclose(online, target)  # apart after an update
        for _ in range(5):
            agent.update(batch)
    agent.sync_target()
    online, acting, target, target_copy = outputs()
    torch.testing.assert_close(target_copy, online, atol=0.05, rtol=0.02)


def test_checkpoint_round_trip_gives_identical_greedy_actions(tmp_path):
    cfg, env, agent = pong_agent()
    obs, _ = env.reset()
    replay = dqn.make_replay(cfg, env)
    replay.reset(obs)
    for _ in range(80):  # a few real updates so optimiser state exists
        a = agent.act(obs, 1.0)
        obs, r, te, tr, info = env.step(a)
        replay.add(a, r, te, obs, envs.first_of_episode(info))
    agent.update(replay.sample(32))
    save_checkpoint(tmp_path / "ck", agent.state_dict(), {"step": 80})
    state, meta = load_checkpoint(tmp_path / "ck")
    _, _, fresh = pong_agent()
    fresh.load_state_dict(state)
    probe = np.random.default_rng(1).integers(0, 256, (16, 4, 84, 84), dtype=np.uint8)
    np.testing.assert_array_equal(agent.act(probe, 0.0), fresh.act(probe, 0.0))
    assert meta["step"] == 80 and fresh.updates == agent.updates == 1
    opt_a, opt_b = agent.optimizer.state_dict()["state"], fresh.optimizer.state_dict()["state"]
    torch.testing.assert_close(opt_a[0]["exp_avg"], opt_b[0]["exp_avg"])
    env.close()


def test_epsilon_greedy_explores_at_the_given_rate():
    cfg, env, agent = pong_agent()
    env.close()
    obs = np.zeros((2000, 4, 84, 84), dtype=np.uint8)  # identical observations: one greedy action
    greedy = agent.act(obs[:1], 0.0)[0]
    actions = agent.act(obs, 0.3)
    # explored actions are uniform over 6, so 0.3 * 5/6 of them differ from the greedy one
    assert abs((actions != greedy).mean() - 0.25) < 0.04


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"frames": 0}, "--frames must be positive"),
        ({"lr": -1.0}, "--lr must be positive"),
        ({"buffer_size": 16, "batch_size": 32, "learning_starts": 0}, "smaller than --batch-size"),
        ({"learning_starts": 10**6}, "exceeds --buffer-size"),
    ],
)
def test_bad_configs_fail_with_a_message(overrides, message):
    with pytest.raises(ConfigError, match=message):  # the config refuses itself
        dqn.Config(**overrides)


def test_learning_starts_equal_to_the_buffer_size_still_trains():
    # A full ring never holds buffer_size sampleable transitions (episode starts, the newest slot), so
    # the gate counts transitions added.
    cfg = dqn.PRESETS["classic"]
    cfg = dqn.Config(**{**cfg.__dict__, "buffer_size": 200, "learning_starts": 200, "frames": 600,
                        "train_every": 4, "gradient_steps": 1})  # fmt: skip
    env = envs.make("CartPole-v1", 1, seed=0)
    agent = dqn.make_agent(cfg, env, "cpu")
    for _ in dqn.train(cfg, env, agent, total_steps=600):
        pass
    # learning starts once 200 real transitions were added (reset steps are not transitions): ~100 updates
    assert 90 <= agent.updates <= (600 - 200) // 4
