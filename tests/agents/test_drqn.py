"""DRQN (agents/drqn.py): stored states are the actor's, the state resets where episodes start, burn-in gets
no gradient, the loss is the masked double-Q n-step TD loss, checkpoints round-trip, and tiny runs train on
CartPole-NoVel and on single-frame Pong through the agent registry."""

import dataclasses

import numpy as np
import pytest
import torch

import agents
import envs
import nets
from agents import drqn
from agents.common import ConfigError
from pixelrl.checkpoint import load_arrays, load_checkpoint, save_arrays, save_checkpoint

TINY = dataclasses.replace(
    drqn.PRESETS["classic"], buffer_size=2_000, learning_starts=200, batch_size=8, burn_in=3, seq_len=5,
    seq_stride=4, n_step=2, lstm_hidden=16, hidden=(16,), train_every=8,
)  # fmt: skip


def cartpole_agent(cfg=TINY, num_envs=2, seed=0, backend="sync"):
    torch.manual_seed(seed)
    env = envs.make("CartPole-NoVel", num_envs, seed=seed, backend=backend)
    return env, drqn.make_agent(cfg, env, "cpu", seed)


def collect(env, agent, replay, steps, epsilon=0.5):
    """Acts as the training loop does, recording the actor's state before every observation and the Q-values
    the actor computed, (steps + 1, N, H) and (steps, N, A)."""
    obs, info = env.reset(seed=0)
    first = envs.first_of_episode(info)
    agent.actor_state = agent.initial_state(env.num_envs)
    replay.reset(obs, agent.actor_state)
    states, q_values = [agent.actor_state], []
    for _ in range(steps):
        h, c = agent.actor_state
        with torch.no_grad():
            q_values.append(agent.q_net(torch.as_tensor(obs), h, c, torch.as_tensor(first))[0])
        actions = agent.act(obs, first, epsilon)
        obs, rewards, terminated, _, info = env.step(actions)
        first = envs.first_of_episode(info)
        replay.add(actions, rewards, terminated, obs, first, agent.actor_state)
        states.append(agent.actor_state)
    h = torch.stack([s[0][0] for s in states])
    return h, torch.stack([s[1][0] for s in states]), torch.stack(q_values)


BACKENDS = ["sync", "async"] + (["envpool"] if envs.envpool_available() else [])


@pytest.mark.parametrize("backend", BACKENDS)
def test_stored_states_are_the_actors_and_a_window_replays_the_actors_q_values(backend):
    """The replay keeps the actor's (h, c) at every stride, and unrolling the (unchanged) network over a
    sampled window from its stored state, zeroing at its episode starts, gives exactly the Q-values the actor
    computed at those steps: the state is reset exactly where the actor's was."""
    env, agent = cartpole_agent(backend=backend)
    replay = drqn.make_replay(TINY, env)
    h, c, q_actor = collect(env, agent, replay, 300, epsilon=1.0)  # random play: many episode starts
    for k in range(0, 301, TINY.seq_stride):
        row = (k % replay.per_env) // TINY.seq_stride
        np.testing.assert_array_equal(replay.h[:, row], h[k].numpy())
        np.testing.assert_array_equal(replay.c[:, row], c[k].numpy())
    batch = replay.sample(64)
    assert batch.first[1:].any()  # some windows cross an episode start
    with torch.no_grad():
        q, _, _ = agent.q_net(*(torch.as_tensor(x) for x in (batch.obs, batch.h, batch.c, batch.first)))
    env_index, start = np.divmod(batch.indices, replay.per_env)
    for b in range(64):
        steps = start[b] + np.arange(replay.window)  # the ring has not wrapped: slot = stream position
        torch.testing.assert_close(q[:, b], q_actor[steps, env_index[b]], rtol=1e-5, atol=1e-5)
    env.close()


def test_act_always_runs_the_network_and_resets_memory_where_first():
    env, agent = cartpole_agent()
    env.close()
    obs = np.random.default_rng(0).standard_normal((2, 2)).astype(np.float32)
    agent.act(obs, np.ones(2, bool), epsilon=1.0)
    after_one = agent.actor_state[0].clone()
    assert after_one.abs().sum() > 0  # exploring steps advance the memory too
    agent.act(obs, np.zeros(2, bool), epsilon=1.0)
    assert not torch.equal(agent.actor_state[0], after_one)
    agent.act(obs, np.array([True, False]), epsilon=1.0)
    torch.testing.assert_close(agent.actor_state[0][:, 0], after_one[:, 0])  # env 0 started afresh
    agent.eval_act(obs)  # evaluation has its own memory
    torch.testing.assert_close(agent.actor_state[0][:, 0], after_one[:, 0])


def lstm_calls(module):
    """Records (time steps, gradient enabled) of every call of `module`'s LSTM."""
    calls = []
    module.core.lstm.register_forward_hook(
        lambda m, inputs, out: calls.append((len(inputs[0]), torch.is_grad_enabled()))
    )
    return calls


def test_burn_in_gets_no_gradient_and_the_loss_is_the_masked_double_q_n_step_loss():
    env, agent = cartpole_agent()
    replay = drqn.make_replay(TINY, env)
    collect(env, agent, replay, 200)
    env.close()
    online, target = lstm_calls(agent.q_net), lstm_calls(agent.target_q_net)
    batch = replay.sample(TINY.batch_size)
    b = batch.to(agent.device)
    burn_in, T = TINY.burn_in, replay.window
    with torch.no_grad():  # the loss by hand, before the update
        _, h, c = agent.q_net(b.obs[:burn_in], b.h, b.c, b.first[:burn_in])
        q_all = agent.q_net(b.obs[burn_in:], h, c, b.first[burn_in:])[0]
        q_target = agent.target_q_net(b.obs, b.h, b.c, b.first)[0]
        y = torch.zeros(TINY.seq_len, TINY.batch_size)
        for i in range(TINY.seq_len):
            for j in range(TINY.batch_size):
                boot = int(b.bootstrap[i, j])
                best = q_all[boot - burn_in, j].argmax()  # double Q: online picks, target values
                y[i, j] = b.returns[i, j] + b.discounts[i, j] * q_target[boot, j, best]
        q_taken = q_all[: TINY.seq_len].gather(2, b.actions[..., None]).squeeze(2)
        expected = ((q_taken - y) ** 2 * b.mask).sum() / b.mask.sum()
    online.clear(), target.clear()
    metrics = agent.update(batch)
    assert metrics["losses/td_loss"] == pytest.approx(expected.item(), rel=1e-5)
    assert 0 < metrics["losses/counted_fraction"] <= 1
    # the online LSTM ran the burn-in without autograd and only the rest with it; the target without
    assert sum(n for n, grad in online if not grad) == burn_in
    assert sum(n for n, grad in online if grad) == T - burn_in
    assert sum(n for n, grad in target if not grad) == T and not any(grad for _, grad in target)


def test_checkpoint_round_trip_gives_the_same_actions_with_the_same_state(tmp_path):
    env, agent = cartpole_agent()
    replay = drqn.make_replay(TINY, env)
    collect(env, agent, replay, 100)
    for _ in range(3):
        agent.update(replay.sample(TINY.batch_size))
    save_checkpoint(tmp_path / "ck", agent.state_dict(), {"step": 100})
    state, _ = load_checkpoint(tmp_path / "ck")
    _, fresh = cartpole_agent(seed=1)
    fresh.load_state_dict(state)
    assert fresh.updates == agent.updates == 3
    rng = np.random.default_rng(0)
    for step in range(20):
        obs = rng.standard_normal((2, 2)).astype(np.float32)
        first = np.array([step == 0, step % 7 == 0])
        np.testing.assert_array_equal(agent.eval_act(obs, first), fresh.eval_act(obs, first))
        torch.testing.assert_close(agent.eval_state, fresh.eval_state)
    env.close()


def test_spec_registry_and_configs():
    spec = agents.get_agent("drqn")  # checked against the interface on the way out
    agents.check_spec(spec)
    assert spec.env_options(spec.presets["atari"], "atari") == {"frame_stack": 1}
    assert spec.env_options(spec.presets["classic"], "classic") == {}
    with pytest.raises(ConfigError, match="--seq-stride 8 exceeds --seq-len 4"):
        drqn.Config(seq_len=4, seq_stride=8)
    with pytest.raises(ConfigError, match="--burn-in must be >= 0"):
        drqn.Config(burn_in=-1)


def run(spec, cfg, game, steps, seed=0):
    env = envs.make(
        game, cfg.num_envs, seed=seed, backend="sync", **spec.env_options(cfg, envs.resolve(game).kind)
    )
    agent = spec.make_agent(cfg, env, "cpu", seed)
    replay = spec.make_replay(cfg, env, seed)
    rows = [
        r
        for _, rs in spec.train(cfg, env, agent, total_steps=steps, log_every=100, replay=replay)
        for r in rs
    ]
    return env, agent, replay, rows


def test_tiny_cartpole_novel_run_trains_and_its_replay_saves_and_loads(tmp_path):
    spec = agents.get_agent("drqn")
    env, agent, replay, rows = run(spec, TINY, "CartPole-NoVel", 600)
    assert env.single_observation_space.shape == (2,)  # velocities hidden
    assert agent.updates == pytest.approx((600 - 200) / TINY.train_every, abs=3)
    assert any("episode_return" in r for r in rows) and any("losses/td_loss" in r for r in rows)
    save_arrays(tmp_path / "replay.npz", replay.state_dict())
    loaded = spec.make_replay(TINY, env, 0)
    loaded.load_state_dict(load_arrays(tmp_path / "replay.npz"))
    assert len(loaded) == len(replay) and loaded.added == replay.added
    games = __import__("pixelrl.evaluation", fromlist=["play_games"]).play_games(agent, "CartPole-NoVel", 2)
    assert len(games) == 2
    env.close()


def test_tiny_single_frame_pong_run(monkeypatch):
    monkeypatch.setattr(nets.device, "bf16_supported", lambda device: True)  # the CNN + LSTM under bf16
    spec = agents.get_agent("drqn")
    cfg = dataclasses.replace(
        spec.presets["atari"], num_envs=2, buffer_size=400, learning_starts=100, batch_size=2, burn_in=2,
        seq_len=4, seq_stride=2, n_step=2, train_every=16, lstm_hidden=32,
    )  # fmt: skip
    env, agent, replay, rows = run(spec, cfg, "Pong", 240)
    assert env.single_observation_space.shape == (1, 84, 84)  # single frames: the LSTM is the memory
    assert replay.obs.shape[2:] == (1, 84, 84) and replay.obs.dtype == np.uint8
    assert agent.q.bf16 and agent.updates > 0
    metrics = [r for r in rows if "losses/td_loss" in r]
    assert metrics and np.isfinite(metrics[-1]["losses/td_loss"])
    env.close()
