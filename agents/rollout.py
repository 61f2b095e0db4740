"""On-policy rollouts for the policy-gradient agents (A2C, PPO): T steps of N envs as tensors.

The envs mark each observation that starts an episode (`envs.first_of_episode`), and the rollout keeps
those flags beside its observation rows: `firsts[t]` is True where obs[t] is the first of its episode,
row T being the observation after the rollout. A step that returns a first observation is gymnasium's
NEXT_STEP reset step (or a life-loss continuation), not a transition: row t is a real transition exactly
where ~firsts[t + 1], and `Rollout.policy_batch` drops the other rows. V(s_{t+1}) is read from the next
row's V(s_t): at an episode end that row holds the final observation, so truncated episodes bootstrap
from it (design rule 4). Recurrent agents reset their state where firsts[:-1].
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import envs
import nets
from agents.common import take_rows
from nets import to_device

Rows = list[dict[str, float]]


@dataclass
class PolicyBatch:
    """The real transitions of a rollout as flat rows (B <= T*N), for the policy-gradient updates."""

    obs: torch.Tensor  # (B, 4, 84, 84) uint8, channels-last in memory | (B, D) float32
    actions: torch.Tensor  # (B,) int64
    logprobs: torch.Tensor  # (B,) log pi_old(a|s)
    values: torch.Tensor  # (B,) V_old(s)
    advantages: torch.Tensor  # (B,)
    returns: torch.Tensor  # (B,) value targets

    def __len__(self) -> int:
        return len(self.actions)

    def take(self, index: torch.Tensor) -> PolicyBatch:
        """The rows `index` (int64 on the batch's device), e.g. a minibatch; images stay channels-last."""
        return PolicyBatch(*(take_rows(getattr(self, f.name), index) for f in dataclasses.fields(self)))


@dataclass
class SequenceBatch:
    """A rollout's whole env sequences with their advantages and value targets, each (T, N), for the
    recurrent agents' updates (agents/ppo_lstm.py)."""

    rollout: Rollout
    advantages: torch.Tensor
    returns: torch.Tensor


@dataclass
class Rollout:
    obs: torch.Tensor  # (T, N, 4, 84, 84) uint8, channels-last in memory | (T, N, D) float32
    actions: torch.Tensor  # (T, N) int64
    logprobs: torch.Tensor  # (T, N) log pi_old(a|s)
    values: torch.Tensor  # (T, N) V(s_t)
    next_values: torch.Tensor  # (T, N) V(s_{t+1}); at an episode end, V(final observation)
    rewards: torch.Tensor  # (T, N)
    terminated: torch.Tensor  # (T, N) bool
    episode_ends: torch.Tensor  # (T, N) bool: terminated or truncated
    firsts: torch.Tensor  # (T + 1, N) bool: obs row t is the first of its episode; row T, the next obs
    initial_state: tuple[torch.Tensor, ...] = ()  # recurrent agents: their state before row 0, e.g. (h, c)

    def policy_batch(self, advantages: torch.Tensor, returns: torch.Tensor) -> PolicyBatch:
        """The real transitions as b_ rows (row t of env n is flat row t*N + n): the rows whose next
        observation is first (NEXT_STEP's reset steps, which only reset their env) are dropped."""
        fields = (self.obs, self.actions, self.logprobs, self.values, advantages, returns)
        b_all = PolicyBatch(*(x.flatten(0, 1) for x in fields))  # views: no copy
        real = ~self.firsts[1:].flatten()  # (T*N,) bool
        if bool(real.all()):
            return b_all
        return b_all.take(real.nonzero().squeeze(1))  # one gather per rollout, in order


@torch.inference_mode()
def sample_actions(
    net: nets.DeviceNet, obs: np.ndarray | torch.Tensor, generator: torch.Generator
) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """An actor-critic's sampled actions (N,), their log-probabilities (N,) and the values (N,)."""
    logits, values = net.infer(obs)
    return *sample_from_logits(logits, generator), values


def sample_from_logits(logits: torch.Tensor, generator: torch.Generator) -> tuple[np.ndarray, torch.Tensor]:
    """Actions (N,) drawn from a categorical policy's logits (N, A), and their log-probabilities (N,)."""
    actions = torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(1)
    logprobs = torch.log_softmax(logits, -1).gather(1, actions[:, None]).squeeze(1)
    return actions.cpu().numpy(), logprobs


@torch.inference_mode()
def greedy_actions(net: nets.DeviceNet, obs: np.ndarray) -> np.ndarray:
    return net.infer(obs)[0].argmax(-1).cpu().numpy()


@torch.inference_mode()
def state_values(net: nets.DeviceNet, obs: np.ndarray | torch.Tensor) -> torch.Tensor:
    return net.infer(obs)[1]


class RolloutCollector:
    """Steps `env` with an agent's `act(obs) -> (actions, logprobs, values)` and `value(obs)`; `act` gets
    the observations as a tensor on the device (images channels-last, the layout they are stored in). That
    tensor is a view that the next observations overwrite, and the returned `Rollout.obs` is the buffer
    that the next `collect` overwrites: copy what must outlive them.

    On an env stepped in groups (`envs.make(..., groups=G)` on EnvPool) the agent acts for one group while
    the others' emulators run: act for group g and send its actions, then receive group g + 1, the group
    sent longest ago. Every env still sees the current policy at every step, so the envs play what they
    would play stepped all at once; only the order of the random draws differs.

    `recurrent=True` is for agents with memory (agents/ppo_lstm.py): they carry one state per env in
    `agent.state`, `act(obs, first, envs)` and `value(obs, first)` get the first-of-episode flags of the
    observations (and which envs they are), so that the state is reset exactly where an episode starts,
    and the rollout keeps a copy of the state before its first row (`Rollout.initial_state`).
    """

    def __init__(
        self,
        env: gym.vector.VectorEnv,
        num_steps: int,
        device: torch.device,
        seed: int = 0,
        *,
        recurrent: bool = False,
    ) -> None:
        self.env, self.T, self.N, self.device = env, num_steps, env.num_envs, device
        self.recurrent = recurrent
        space = env.single_observation_space
        obs_dtype = torch.from_numpy(np.zeros(0, space.dtype)).dtype
        # Images are kept channels-last, the layout the convolutions read: the envs' (N, C, H, W) frames
        # are re-laid out once, on arrival, into `obs` (N, C, H, W) over (N, H, W, C) memory; the agent
        # acts on them there and the buffer keeps a plain copy, so minibatches need no re-layout either.
        self.image = len(space.shape) == 3
        lead = (self.T + 1, self.N)  # rows 0..T-1: the rollout; row T: the latest observations
        if self.image:
            c, h, w = space.shape
            self._rows_hwc = torch.zeros((*lead, h, w, c), dtype=obs_dtype, device=device)
            rows = self._rows_hwc.permute(0, 1, 4, 2, 3)
        else:
            rows = torch.zeros((*lead, *space.shape), dtype=obs_dtype, device=device)
        self.obs_buf, self.obs = rows[: self.T], rows[self.T]
        obs, info = env.reset(seed=seed)
        self._arrive(slice(0, self.N), obs)
        self.first = envs.first_of_episode(info).copy()  # (N,) bool: of the latest observations
        self.groups = envs.group_slices(env)
        self.act_threads: int | None = None
        if len(self.groups) > 1 and device.type == "cpu":
            # The network gets the cores that the running groups' emulator threads leave free; on 2 cores
            # that is 1 thread, and no idle OpenMP thread spins on the emulators' core while they run.
            running = (len(self.groups) - 1) * envs.emulator_threads_per_group(env)
            self.act_threads = max(1, torch.get_num_threads() - running)
        self._actions: np.ndarray | None = None  # ungrouped envs: the actions of the next `step`

    def _arrive(self, sl: slice, obs: np.ndarray) -> None:  # new observations of envs `sl`
        frames = to_device(np.asarray(obs), self.device)  # on a GPU the re-layout below runs there
        if self.image:  # (n, C, H, W) -> (n, H, W, C) memory: a plain copy reads them from there on
            self._rows_hwc[self.T, sl].copy_(frames.permute(0, 2, 3, 1))
        else:
            self.obs[sl].copy_(frames)

    def _send(self, group: int, actions: np.ndarray) -> None:
        if len(self.groups) > 1:
            self.env.send(actions, group)
        else:
            self._actions = actions

    def _recv(self, group: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        return self.env.recv(group) if len(self.groups) > 1 else self.env.step(self._actions)

    def _threads(self) -> contextlib.AbstractContextManager:
        return nets.num_threads(self.act_threads) if self.act_threads else contextlib.nullcontext()

    def collect(self, agent: Any, global_step: int) -> Generator[tuple[int, Rows], None, Rollout]:
        """Yields (global_step, finished-game rows) as each group's step arrives; returns the Rollout."""
        T, N, dev, groups = self.T, self.N, self.device, self.groups
        initial_state = tuple(x.clone() for x in agent.state) if self.recurrent else ()
        logprobs, values = torch.zeros((T, N), device=dev), torch.zeros((T, N), device=dev)
        # Small per-step fields go to numpy (a slice write costs 0.3 us there, 3 us in torch) and to the
        # device once per rollout.
        actions_buf = np.zeros((T, N), dtype=np.int64)
        rewards = np.zeros((T, N), dtype=np.float32)
        terminated, ends = np.zeros((T, N), dtype=bool), np.zeros((T, N), dtype=bool)
        firsts = np.zeros((T + 1, N), dtype=bool)

        def receive(group: int, t: int) -> Rows:  # the step sent for `group` at row t
            sl = groups[group]
            obs, reward, term, trunc, info = self._recv(group)
            self._arrive(sl, obs)
            self.first[sl] = envs.first_of_episode(info)
            rewards[t, sl], terminated[t, sl], ends[t, sl] = reward, term, term | trunc
            return [{"episode_return": score, "episode_length": length}
                    for _, score, length in envs.finished_episodes(info)]  # fmt: skip

        for t in range(T):
            for g, sl in enumerate(groups):
                with self._threads():
                    obs = self.obs[sl]  # a view: `act` reads it before the next observations arrive
                    if self.recurrent:
                        actions, logprobs[t, sl], values[t, sl] = agent.act(obs, self.first[sl], sl)
                    else:
                        actions, logprobs[t, sl], values[t, sl] = agent.act(obs)
                    self.obs_buf[t, sl] = obs
                    actions_buf[t, sl], firsts[t, sl] = actions, self.first[sl]
                    self._send(g, actions)
                    following = (g + 1) % len(groups)  # in flight since row t (group 0) or t - 1
                    if t == 0 and following > g:
                        continue  # the first row: nothing sent yet for the following group
                    rows = receive(following, t if following <= g else t - 1)
                global_step += groups[following].stop - groups[following].start
                yield global_step, rows
        for group in range(1, len(groups)):  # still stepping from the last row
            rows = receive(group, T - 1)
            global_step += groups[group].stop - groups[group].start
            yield global_step, rows
        firsts[T] = self.first
        last = agent.value(self.obs, self.first) if self.recurrent else agent.value(self.obs)
        next_values = torch.cat([values[1:], last[None]])
        return Rollout(self.obs_buf, *(to_device(a, dev) for a in (actions_buf, logprobs, values, next_values,
                       rewards, terminated, ends, firsts)), initial_state=initial_state)  # fmt: skip
