import dataclasses
import shutil

import gymnasium as gym
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


def random_batch(rng, n=8, obs_shape=(4, 84, 84), num_actions=6):
    """A batch of random transitions: uint8 frames, or float vectors; bootstrapped, with uneven weights."""

    def obs():
        if len(obs_shape) == 3:
            return rng.integers(0, 256, (n, *obs_shape), dtype=np.uint8)
        return rng.standard_normal((n, *obs_shape)).astype(np.float32)

    f32 = np.float32
    return Transitions(
        obs=obs(), actions=rng.integers(0, num_actions, n), returns=rng.standard_normal(n).astype(f32),
        next_obs=obs(), discounts=np.full(n, 0.99**3, f32), weights=rng.random(n).astype(f32) + 0.5,
        indices=np.arange(n),
    )  # fmt: skip


def test_learn_keeps_metrics_on_the_device_and_they_read_as_the_step_computed_by_hand():
    """`learn` reads nothing to the host; `metrics()` and `td_abs` later give the values of a gradient step
    written out plainly (double DQN targets, weighted Huber loss, gradient norm before the clip)."""
    cfg = dqn.Config(buffer_size=1000, learning_starts=100, double=True, lr=1e-3, max_grad_norm=0.5)
    space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    torch.manual_seed(0)
    agent = dqn.DQN(cfg, space, 6, "cpu")
    torch.manual_seed(0)
    by_hand = dqn.DQN(cfg, space, 6, "cpu")
    assert agent.metrics() == {}  # nothing to log before the first update
    rng = np.random.default_rng(0)
    for _ in range(3):
        batch = random_batch(rng)
        agent.learn(batch)
        b = batch.to(by_hand.device)
        with torch.no_grad():
            y = dqn.td_targets(
                b.returns, b.discounts, by_hand.target_q.infer(b.next_obs), by_hand.q(b.next_obs)
            )
        q = by_hand.q(b.obs).gather(1, b.actions[:, None]).squeeze(1)
        loss = nets.huber(q, y, b.weights)
        by_hand.optimizer.zero_grad()
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(by_hand.q_net.parameters(), cfg.max_grad_norm)
        by_hand.optimizer.step()
        metrics = agent.metrics()
        assert metrics == pytest.approx({"losses/td_loss": loss.item(), "losses/q_values": q.mean().item(),
                                         "losses/grad_norm": norm.item()}, rel=1e-5)  # fmt: skip
        assert norm.item() > cfg.max_grad_norm  # the clip was active, and the norm logged is the raw one
        np.testing.assert_allclose(agent.td_abs, (y - q).abs().detach().numpy(), rtol=1e-5, atol=1e-6)
    for mine, theirs in zip(agent.q_net.parameters(), by_hand.q_net.parameters(), strict=True):
        torch.testing.assert_close(mine, theirs)


def test_the_training_loop_logs_the_metrics_of_its_last_update():
    cfg = dqn.PRESETS["classic"]
    cfg = dqn.Config(**{**cfg.__dict__, "learning_starts": 64, "train_every": 4, "gradient_steps": 1})
    env = envs.make("CartPole-v1", 1, seed=0)
    agent = dqn.make_agent(cfg, env, "cpu")
    after_each_update = []
    learn = agent.learn

    def learn_and_record(batch):
        learn(batch)
        after_each_update.append(agent.metrics())

    agent.learn = learn_and_record
    checked = 0
    for _, rows in dqn.train(cfg, env, agent, total_steps=300, log_every=50):
        for row in (r for r in rows if "losses/td_loss" in r):
            assert {k: row[k] for k in after_each_update[-1]} == after_each_update[-1]
            checked += 1
    assert len(after_each_update) > 50 and checked >= 4
    env.close()


def test_acting_skips_the_network_when_every_env_explores_and_draws_as_before():
    cfg, env, agent = pong_agent()
    env.close()
    obs = np.random.default_rng(0).integers(0, 256, (4, 4, 84, 84), dtype=np.uint8)
    greedy = agent.act(obs, 0.0)

    def no_network(_obs):
        raise AssertionError("the network ran although every env explores")

    forward, agent._greedy_q = agent._greedy_q, no_network
    agent.rng = np.random.default_rng(7)
    reference = np.random.default_rng(7)  # the same draws, in the same order, as before the shortcut
    assert np.array_equal(agent.act(obs, 1.0), (reference.random(4), reference.integers(0, 6, 4))[1])
    agent._greedy_q = forward
    explore = reference.random(4) < 0.5
    random_actions = reference.integers(0, 6, 4)
    assert 0 < explore.sum() < 4  # this seed mixes greedy and random actions
    np.testing.assert_array_equal(agent.act(obs, 0.5), np.where(explore, random_actions, greedy))


@pytest.mark.skipif(
    not (shutil.which("c++") or shutil.which("g++")), reason="torch.compile needs a C++ compiler"
)
def test_compiled_update_and_acting_match_eager():
    """compile=True on a small MLP in float32: the same losses, weights and greedy actions as eager."""
    cfg = dqn.Config(**{**dqn.PRESETS["classic"].__dict__, "batch_size": 16, "double": True, "n_step": 3})
    space = gym.spaces.Box(-5.0, 5.0, (4,), np.float32)
    agents = []
    for compile in (False, True):
        torch.manual_seed(0)
        agents.append(dqn.DQN(dataclasses.replace(cfg, compile=compile), space, 2, "cpu"))
    eager, compiled = agents
    rng = np.random.default_rng(0)
    for step in range(4):
        batch = random_batch(rng, 16, (4,), 2)
        assert compiled.update(batch) == pytest.approx(eager.update(batch), rel=1e-4, abs=1e-6)
        if step == 1:
            eager.sync_target(), compiled.sync_target()
    for a, b in zip(eager.q_net.parameters(), compiled.q_net.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    probe = rng.standard_normal((64, 4)).astype(np.float32)
    np.testing.assert_array_equal(compiled.act(probe, 0.0), eager.act(probe, 0.0))
