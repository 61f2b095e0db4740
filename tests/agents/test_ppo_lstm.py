import dataclasses

import numpy as np
import pytest
import torch

import envs
from agents import ppo_lstm
from agents.common import ConfigError
from agents.returns import gae
from agents.rollout import RolloutCollector
from pixelrl.checkpoint import load_checkpoint, save_checkpoint

CLASSIC = dataclasses.replace(ppo_lstm.PRESETS["classic"], precision="fp32", num_envs=4, num_steps=64,
                              minibatches=2, epochs=1)  # fmt: skip


def collect(game, backend, cfg=CLASSIC, seed=0, rollouts=1):
    """An agent and its last rollout of `cfg.num_steps` steps on `game` (ppo_lstm.env_options applied)."""
    torch.manual_seed(seed)
    kind = envs.resolve(game).kind
    env = envs.make(game, cfg.num_envs, seed=seed, backend=backend, **envs.alias_options(game),
                    **ppo_lstm.env_options(cfg, kind))  # fmt: skip
    agent = ppo_lstm.make_agent(cfg, env, "cpu", seed)
    collector = RolloutCollector(env, cfg.num_steps, agent.device, seed, recurrent=True)
    for _ in range(rollouts):
        steps = collector.collect(agent, 0)
        try:
            while True:
                next(steps)
        except StopIteration as done:
            rollout = done.value
    env.close()
    return agent, rollout


def recompute(agent, rollout, state=None):
    """Logits and values (T, N, ...) of the whole rollout, recomputed as the update does."""
    with torch.no_grad():
        h0, c0 = state if state is not None else rollout.initial_state
        logits, values, _, _ = agent.actor_critic(rollout.obs, h0, c0, rollout.firsts[:-1])
    return logits, values


def test_recomputed_log_probabilities_equal_the_collected_ones():
    agent, rollout = collect("CartPole-NoVel", "sync", rollouts=2)  # the 2nd starts from a carried state
    assert rollout.initial_state[0].abs().sum() > 0 and rollout.firsts[1:-1].any()  # mid-episode, with starts
    logits, values = recompute(agent, rollout)
    logprobs = torch.log_softmax(logits, -1).gather(2, rollout.actions[..., None]).squeeze(2)
    torch.testing.assert_close(logprobs, rollout.logprobs, atol=1e-5, rtol=0)
    torch.testing.assert_close(values, rollout.values, atol=1e-5, rtol=0)
    # ...and the first epoch's first minibatch sees ratio 1: zero approximate KL and nothing clipped
    advantages, returns = gae(rollout.rewards, rollout.values, rollout.next_values, rollout.terminated,
                              rollout.episode_ends, 0.99, 0.95)  # fmt: skip
    agent.cfg = dataclasses.replace(CLASSIC, minibatches=1)
    stats = agent.update(ppo_lstm.SequenceBatch(rollout, advantages, returns))
    assert abs(stats["losses/approx_kl"]) < 1e-6 and stats["losses/clipfrac"] == 0.0


BACKENDS = [
    ("CartPole-NoVel", "sync"),
    ("CartPole-NoVel", "async"),
    ("Breakout", "sync"),
    ("Breakout", "ale"),
]
if envs.envpool_available():
    BACKENDS += [("CartPole-NoVel", "envpool"), ("Breakout", "envpool")]


@pytest.mark.parametrize("game, backend", BACKENDS)
def test_the_state_resets_exactly_where_an_episode_starts(game, backend):
    cfg = (
        CLASSIC
        if game.startswith("CartPole")
        else dataclasses.replace(
            ppo_lstm.PRESETS["atari"], precision="fp32", num_envs=2, num_steps=96, env_groups=1, minibatches=1
        )
    )
    agent, rollout = collect(game, backend, cfg, rollouts=2)
    firsts = rollout.firsts[:-1]  # (T, N): obs row t starts an episode (Breakout: also after a life loss)
    starts = firsts[1:].nonzero()
    assert len(starts) > 0, "no episode started inside the rollout: make it longer"
    _, carried = recompute(agent, rollout, rollout.initial_state)
    torch.testing.assert_close(carried, rollout.values, atol=1e-5, rtol=0)
    for t, n in (starts + torch.tensor([1, 0])).tolist()[:3]:
        later = firsts[t + 1 :, n].nonzero()
        end = t + 1 + int(later[0, 0]) if len(later) else len(firsts)
        with torch.no_grad():  # the episode alone, from a zero state: what acting must have computed
            episode = (rollout.obs[t:end, n : n + 1], *agent.net.initial_state(1), firsts[t:end, n : n + 1])
            _, alone, _, _ = agent.actor_critic(*episode)
        torch.testing.assert_close(alone[:, 0], rollout.values[t:end, n], atol=1e-5, rtol=0)
    with torch.no_grad():  # the reset matters: ignoring the flags gives other values after a start
        h0, c0 = rollout.initial_state
        _, no_reset, _, _ = agent.actor_critic(rollout.obs, h0, c0, torch.zeros_like(firsts))
    t, n = (starts[0] + torch.tensor([1, 0])).tolist()
    assert not torch.allclose(no_reset[t:, n], rollout.values[t:, n], atol=1e-4)


def test_checkpoint_round_trip_gives_the_same_actions_with_the_same_state(tmp_path):
    agent, rollout = collect("CartPole-NoVel", "sync", rollouts=1)
    save_checkpoint(tmp_path / "latest", agent.state_dict(), {"step": 1})
    env = envs.make("CartPole-NoVel", CLASSIC.num_envs, backend="sync")
    fresh = ppo_lstm.make_agent(CLASSIC, env, "cpu", 7)
    env.close()
    state, _ = load_checkpoint(tmp_path / "latest")
    fresh.load_state_dict(state)
    obs, firsts = rollout.obs, rollout.firsts[:-1].numpy()
    for t in range(len(obs)):  # greedy play over a whole rollout: the evaluation states must agree
        np.testing.assert_array_equal(agent.eval_act(obs[t].numpy(), firsts[t]),
                                      fresh.eval_act(obs[t].numpy(), firsts[t]))  # fmt: skip
    fresh.state = tuple(x.clone() for x in agent.state)  # same carried state, same draws
    agent.generator.manual_seed(3)
    fresh.generator.manual_seed(3)
    no_start = np.zeros(CLASSIC.num_envs, dtype=bool)
    a, lp, v = agent.act(obs[-1], no_start)
    b, lp2, v2 = fresh.act(obs[-1], no_start)
    np.testing.assert_array_equal(a, b)
    torch.testing.assert_close(lp, lp2)
    torch.testing.assert_close(agent.state[0], fresh.state[0])


def test_eval_state_starts_afresh_at_first_flags_only():
    agent, rollout = collect("CartPole-NoVel", "sync", rollouts=1)
    obs = rollout.obs[5].numpy()
    agent.eval_act(obs)  # None: every env starts
    after_one = [x.clone() for x in agent._eval_state]
    agent.eval_act(obs, np.zeros(len(obs), dtype=bool))  # continuing: the state moves on
    assert not torch.allclose(agent._eval_state[0], after_one[0])
    agent.eval_act(obs, np.ones(len(obs), dtype=bool))  # all start again: as after the first call
    torch.testing.assert_close(agent._eval_state[0], after_one[0])


def test_minibatches_must_split_the_envs_into_whole_sequences():
    with pytest.raises(ConfigError, match="--num-envs 6 must be a multiple of --minibatches 4"):
        dataclasses.replace(ppo_lstm.PRESETS["atari"], num_envs=6)
