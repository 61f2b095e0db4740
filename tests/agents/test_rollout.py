import dataclasses

import numpy as np
import pytest
import torch

import envs
from agents.rollout import Rollout, RolloutCollector

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
                      "episode_ends", "valid"):  # fmt: skip
            torch.testing.assert_close(getattr(grouped, field), getattr(together, field), msg=field)
    terminated = torch.stack([r.terminated for r in results[0]])
    assert terminated.any() and (torch.stack([r.valid for r in results[0]]) == 0).any()
