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

    def act(self, obs: np.ndarray) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
        self.seen.append(obs.copy())
        n = len(obs)
        actions = np.full(n, (len(self.seen) // 3) % 4, dtype=np.int64)  # NOOP, FIRE, RIGHT, LEFT
        return actions, torch.zeros(n), torch.zeros(n)

    def value(self, obs: np.ndarray) -> torch.Tensor:
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
