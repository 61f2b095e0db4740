import dataclasses

import numpy as np
import pytest
import torch

import envs
import nets
from agents import a2c, ppo
from agents.common import ConfigError
from agents.rollout import PolicyBatch, Rollout
from pixelrl.checkpoint import load_checkpoint, save_checkpoint


def test_clipped_surrogate_on_a_hand_made_batch():
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0, 2.0])
    ratio = torch.tensor([1.5, 0.5, 1.5, 0.5, 1.05])
    loss = ppo.clipped_surrogate(adv, ratio, clip=0.2)
    # A>0: the gain is capped at 1.2 when r grows, but not when r shrinks (min picks the smaller gain)
    # A<0: the loss is not capped when r grows (1.5), and stops falling at 0.8 when r shrinks
    torch.testing.assert_close(loss, torch.tensor([-1.2, -0.5, 1.5, 0.8, -2.1]))


def rollout_of_rows(obs, actions, logprobs, values, firsts):
    """A Rollout of T = len(obs) steps of one env from flat rows, for feeding updates by hand."""
    column = [x[:, None] for x in (obs, actions, logprobs, values)]
    zeros = torch.zeros_like(column[3])
    return Rollout(*column, next_values=zeros, rewards=zeros, terminated=zeros.bool(),
                   episode_ends=zeros.bool(), firsts=firsts[:, None])  # fmt: skip


def test_update_drops_reset_steps_and_moves_the_policy_towards_positive_advantages():
    torch.manual_seed(0)
    cfg = ppo.Config(**{**ppo.PRESETS["classic"].__dict__, "epochs": 10, "minibatches": 1})
    env = envs.make("CartPole-v1", 2, seed=0)
    agent = ppo.make_agent(cfg, env, "cpu")
    env.close()
    obs = torch.randn(64, 4)
    actions = torch.zeros(64, dtype=torch.long)
    with torch.no_grad():
        logits, values = agent.net(obs)
    old_logprobs = torch.log_softmax(logits, -1)[:, 0]
    valid = torch.ones(64)
    valid[32:] = 0.0  # reset steps: their huge advantages must not matter
    advantages = torch.where(valid > 0, 1.0, -1e6)
    firsts = torch.cat([torch.ones(1), 1 - valid]).bool()  # row t is a reset step where obs[t + 1] is first
    rollout = rollout_of_rows(obs, actions, old_logprobs, values, firsts)
    b_batch = rollout.policy_batch(advantages[:, None], (values + 1.0)[:, None])
    assert len(b_batch) == 32
    agent.cfg = ppo.Config(**{**cfg.__dict__, "norm_adv": False})
    agent.clip = 0.2
    stats = agent.update(b_batch)
    with torch.no_grad():
        new_logits, _ = agent.net(obs)
    gained = torch.log_softmax(new_logits, -1)[:, 0] - old_logprobs
    assert gained[:32].mean() > 0.05  # action 0 became more likely where its advantage was positive
    assert np.isfinite(list(stats.values())).all() and stats["losses/clipfrac"] > 0


def test_checkpoint_round_trip_gives_identical_greedy_actions(tmp_path):
    cfg = ppo.PRESETS["atari"]
    env = envs.make("Pong", 2, seed=0, backend="sync")
    agent = ppo.make_agent(cfg, env, "cpu")
    save_checkpoint(tmp_path / "ck", agent.state_dict(), {"step": 1})
    fresh = ppo.make_agent(cfg, env, "cpu", seed=1)
    fresh.load_state_dict(load_checkpoint(tmp_path / "ck")[0])
    probe = np.random.default_rng(0).integers(0, 256, (8, 4, 84, 84), dtype=np.uint8)
    np.testing.assert_array_equal(agent.eval_act(probe), fresh.eval_act(probe))
    env.close()


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"num_steps": 0}, "--num-steps must be positive"),
        ({"lr": 0.0}, "--lr must be positive"),
        ({"env_groups": 0}, "--env-groups must be positive"),
        ({"precision": "fp16"}, "--precision 'fp16': choose one of auto, bf16, fp32, tf32"),
    ],
)
def test_bad_configs_fail_with_a_message(overrides, message):
    with pytest.raises(ConfigError, match=message):  # the config refuses itself
        ppo.Config(**overrides)


@pytest.mark.parametrize("module", [ppo, a2c])
def test_acting_follows_every_update(module, monkeypatch):
    """The policy-gradient agents act through a bf16 copy of their network (nets.InferenceCopy): after
    each update, the log-probabilities and values they act with are the updated network's."""
    monkeypatch.setattr(nets.device, "bf16_supported", lambda device: True)  # "auto" is bf16, on any CPU
    torch.manual_seed(0)
    env = envs.make("Pong", 2, seed=0, backend="sync")
    agent = module.make_agent(module.PRESETS["atari"], env, "cpu")
    assert agent.actor_critic.precision == "bf16" and agent.actor_critic.bf16
    env.close()
    obs = torch.randint(0, 256, (64, 4, 84, 84), dtype=torch.uint8)
    b_batch = PolicyBatch(obs, actions=torch.randint(0, 6, (64,)), logprobs=torch.full((64,), -1.8),
                          values=torch.zeros(64), advantages=torch.randn(64),
                          returns=torch.full((64,), 3.0))  # fmt: skip
    acted_values = []
    for _ in range(3):
        actions, logprobs, values = agent.act(obs.numpy())
        with torch.inference_mode(), nets.autocast(agent.device, True):
            logits, net_values = agent.net(obs)
        expected = torch.log_softmax(logits.float(), -1).gather(1, torch.from_numpy(actions)[:, None])
        torch.testing.assert_close(logprobs.float(), expected.squeeze(1), atol=0.03, rtol=0.03)
        torch.testing.assert_close(values.float(), net_values.float(), atol=0.03, rtol=0.03)
        acted_values.append(values.float())
        if module is ppo:
            agent.clip = 0.1
        agent.update(b_batch)
    assert (acted_values[-1] - acted_values[0]).abs().mean() > 0.1  # the updates moved the values


def test_the_adaptive_rate_follows_the_kl_within_its_bounds():
    assert ppo.adapted_lr(3e-4, 0.001, 0.01) == pytest.approx(4.5e-4)  # moved too little: faster
    assert ppo.adapted_lr(3e-4, 0.05, 0.01) == pytest.approx(2e-4)  # too much: slower
    assert ppo.adapted_lr(3e-4, 0.01, 0.01) == 3e-4  # within [target / 2, 2 target]: kept
    low, high = ppo.ADAPTIVE_LR_RANGE
    assert ppo.adapted_lr(high, 0.0, 0.01) == high and ppo.adapted_lr(low, 1.0, 0.01) == low


def test_the_adaptive_rate_lives_in_the_optimiser_and_is_logged():
    cfg = dataclasses.replace(ppo.PRESETS["classic"], adaptive_kl=1e-9, frames=512, anneal=False)
    env = envs.make("CartPole-v1", cfg.num_envs, seed=0)
    agent = ppo.make_agent(cfg, env, "cpu", 0)
    loop = ppo.train(cfg, env, agent, total_steps=512)
    rows = [r for _, rows in loop for r in rows if "losses/policy" in r]
    env.close()
    rates = [r["charts/learning_rate"] for r in rows]
    assert rates == pytest.approx([cfg.lr / 1.5, cfg.lr / 1.5**2])  # every update moved more than 2e-9
    assert agent.optimizer.param_groups[0]["lr"] == pytest.approx(rates[-1])
