import dataclasses

import numpy as np
import pytest
import torch

import envs
from agents.rollout import PolicyBatch, Rollout, RolloutCollector

needs_envpool = pytest.mark.skipif(not envs.envpool_available(), reason="envpool is not installed")


class ScriptedAgent:
    """Plays a fixed action sequence and keeps every observation it was shown."""

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def act(self, obs: torch.Tensor) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
        self.seen.append(obs.numpy().copy())
        n = len(obs)
        actions = np.full(n, (len(self.seen) // 3) % 4, dtype=np.int64)  # NOOP, FIRE, RIGHT, LEFT
        return actions, torch.zeros(n), torch.zeros(n)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(obs))


def collect(backend: str, steps: int = 48) -> tuple[Rollout, np.ndarray]:
    """A rollout from `backend` and the observations the agent acted on, (steps, 2, 4, 84, 84)."""
    env = envs.make("Breakout", 2, backend=backend, sticky=0.0, noop_max=0)
    agent = ScriptedAgent()
    try:
        loop = RolloutCollector(env, steps, torch.device("cpu")).collect(agent, 0)
        while True:
            next(loop)
    except StopIteration as done:
        return done.value, np.stack(agent.seen)
    finally:
        env.close()


@needs_envpool
def test_rollouts_store_the_frames_the_agent_saw_and_match_across_backends():
    """The stored frames are the ones acted on, channels-last in memory, the same from EnvPool as from
    the gymnasium backend."""
    pooled, seen = collect("envpool")
    np.testing.assert_array_equal(pooled.obs.numpy(), seen)
    assert pooled.obs[0].is_contiguous(memory_format=torch.channels_last)
    plain, _ = collect("sync")
    np.testing.assert_array_equal(pooled.obs.numpy(), plain.obs.numpy())
    torch.testing.assert_close(pooled.rewards, plain.rewards)
    assert len({frame.tobytes() for frame in seen[:, 0]}) > len(seen) // 2  # a moving game, not one frame


class PixelAgent:
    """Actions, log-probabilities and values computed from each env's own frames only, so a rollout does
    not depend on how the envs are batched; records the torch thread count it acted with."""

    def __init__(self) -> None:
        self.threads: set[int] = set()

    def act(self, obs: torch.Tensor) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
        self.threads.add(torch.get_num_threads())
        total = obs.numpy().reshape(len(obs), -1).sum(axis=1, dtype=np.int64)
        return (total // 7) % 4, torch.from_numpy(total % 11).float(), torch.from_numpy(total % 13).float()

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(obs.numpy().reshape(len(obs), -1).sum(axis=1, dtype=np.int64) % 17).float()


@needs_envpool
def test_envs_stepped_in_groups_give_the_rollouts_of_envs_stepped_together():
    """Acting for one group while the other steps (env groups=2) changes the order of work, not the data:
    three consecutive rollouts equal field by field those of the same envs stepped at once, across life
    losses and game ends. Torch acts on the cores the emulators leave free and has its own thread count
    back whenever the collector yields."""
    threads = torch.get_num_threads()
    results = []
    for groups in (1, 2):
        env = envs.make("Breakout", 4, seed=3, groups=groups)
        collector, agent, rollouts = RolloutCollector(env, 64, torch.device("cpu"), seed=3), PixelAgent(), []
        yielded_threads = set()
        for _ in range(3):
            loop, steps = collector.collect(agent, 0), []
            try:
                while True:
                    steps.append(next(loop)[0])
                    yielded_threads.add(torch.get_num_threads())
            except StopIteration as done:  # the next collect overwrites the frames: keep a copy
                rollouts.append(dataclasses.replace(done.value, obs=done.value.obs.clone()))
            assert steps[-1] == 64 * 4 and steps == sorted(set(steps))  # global step as the steps arrive
        env.close()
        assert yielded_threads == {threads}
        expected = {max(1, threads - env.threads_per_group)} if groups > 1 else {threads}
        assert agent.threads == expected
        results.append(rollouts)
    for together, grouped in zip(*results, strict=True):
        for field in ("obs", "actions", "logprobs", "values", "next_values", "rewards", "terminated",
                      "episode_ends", "firsts"):  # fmt: skip
            torch.testing.assert_close(getattr(grouped, field), getattr(together, field), msg=field)
    terminated = torch.stack([r.terminated for r in results[0]])
    reset_rows = torch.stack([r.firsts[1:] for r in results[0]])  # the steps that returned a first obs
    assert terminated.any() and reset_rows.any()


def hand_made_rollout(firsts: torch.Tensor, images: bool = False) -> Rollout:
    """T = len(firsts) - 1 rows of N envs; row t of env n carries the number t * N + n in every field
    (images: in every pixel)."""
    T, N = len(firsts) - 1, firsts.shape[1]
    number = torch.arange(T * N).view(T, N)
    if images:
        hwc = number.to(torch.uint8)[:, :, None, None, None].expand(T, N, 5, 5, 4).contiguous()
        obs = hwc.permute(0, 1, 4, 2, 3)  # (T, N, 4, 5, 5) over channels-last memory, as the collector
    else:
        obs = number[:, :, None].float().expand(T, N, 3)
    fields = (number, number.float(), number.float() + 0.5, number.float(), number.float(), number > -1,
              number % 2 == 0)  # fmt: skip
    return Rollout(obs, *fields, firsts=firsts)


def test_policy_batch_drops_exactly_the_reset_step_rows():
    """Row t is NEXT_STEP's reset step where obs[t + 1] is first: those rows, and only those, are dropped,
    the others keep their order and every field; a rollout without reset steps is passed through whole."""
    T, N = 4, 3
    firsts = torch.zeros(T + 1, N, dtype=torch.bool)
    firsts[0] = True  # after reset(): not a reset step, a real transition starts there
    firsts[2, 1] = firsts[4, 0] = firsts[1, 2] = True  # the steps of rows 1, 3 and 0 returned a first obs
    for images in (False, True):
        rollout = hand_made_rollout(firsts, images)
        advantages, returns = -torch.arange(T * N).view(T, N).float(), torch.full((T, N), 2.0)
        b_batch = rollout.policy_batch(advantages, returns)
        dropped = {1 * N + 1, 3 * N + 0, 0 * N + 2}  # flat row t * N + n
        kept = [i for i in range(T * N) if i not in dropped]
        assert isinstance(b_batch, PolicyBatch) and len(b_batch) == len(kept) == (~firsts[1:]).sum()
        torch.testing.assert_close(b_batch.actions, torch.tensor(kept))
        torch.testing.assert_close(b_batch.logprobs, torch.tensor(kept).float())
        torch.testing.assert_close(b_batch.values, torch.tensor(kept).float() + 0.5)
        torch.testing.assert_close(b_batch.advantages, -torch.tensor(kept).float())
        torch.testing.assert_close(b_batch.returns, torch.full((len(kept),), 2.0))
        pixels = b_batch.obs.flatten(1)
        assert (pixels == pixels[:, :1]).all() and pixels[:, 0].tolist() == kept
        if images:
            assert b_batch.obs.is_contiguous(memory_format=torch.channels_last)
        mb_batch = b_batch.take(torch.tensor([2, 0]))  # a minibatch: the same rows of every field
        assert mb_batch.actions.tolist() == [kept[2], kept[0]] and len(mb_batch) == 2
        assert mb_batch.obs.flatten(1)[:, 0].tolist() == [kept[2], kept[0]]
        if images:
            assert mb_batch.obs.is_contiguous(memory_format=torch.channels_last)
    whole = hand_made_rollout(torch.zeros(T + 1, N, dtype=torch.bool)).policy_batch(returns, returns)
    assert len(whole) == T * N and whole.actions.tolist() == list(range(T * N))


class CoinAgent:
    """Uniformly random actions of a two-action env from a seeded generator."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)

    def act(self, obs: torch.Tensor) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
        return self.rng.integers(0, 2, len(obs)), torch.zeros(len(obs)), torch.zeros(len(obs))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(obs))


def test_collected_firsts_align_with_the_observation_rows():
    """CartPole: `firsts` (T + 1, N) is the env's flag of every observation row, all True after reset,
    row T that of the observation after the rollout (the next rollout's row 0). An episode that ends at
    row t makes obs[t + 2] first (row t + 1 is NEXT_STEP's reset step, reward 0 where every real CartPole
    step pays 1), and the policy batch keeps exactly the rows whose next observation is not first."""
    env = envs.make("CartPole-v1", 2, seed=1)
    collector, agent, rollouts = RolloutCollector(env, 40, torch.device("cpu"), seed=1), CoinAgent(), []
    for _ in range(2):
        loop = collector.collect(agent, 0)
        try:
            while True:
                next(loop)
        except StopIteration as done:
            rollouts.append(dataclasses.replace(done.value, obs=done.value.obs.clone()))
    env.close()
    first, second = rollouts
    assert first.firsts.shape == (41, 2) and first.firsts.dtype == torch.bool
    assert first.firsts[0].all() and not first.firsts[1].any()
    assert torch.equal(first.firsts[-1], second.firsts[0])
    assert torch.equal(second.firsts[1], first.episode_ends[-1])
    for r in rollouts:
        assert torch.equal(r.firsts[2:], r.episode_ends[:-1]) and r.firsts[1:].any()
        torch.testing.assert_close(r.rewards, (~r.firsts[1:]).float())  # reset steps pay 0, real steps 1
        b_batch = r.policy_batch(torch.zeros(40, 2), torch.zeros(40, 2))
        assert len(b_batch) == int((~r.firsts[1:]).sum()) < 80
        torch.testing.assert_close(b_batch.actions, r.actions[~r.firsts[1:]])
