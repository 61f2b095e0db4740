"""The adapter shared by the emulator pools that run our Atari protocol in C++ threads (EnvPool, ale-py's
AtariVectorEnv): a gymnasium vector env with our exact semantics on top of a pool that does the emulator
work (sticky actions, no-ops/FIRE, frame skip with max-pool, INTER_AREA resize, frame stack).

The pools run with their own life-loss and clipping switched off; this adapter does what the gymnasium
stack does in `WholeGame`, `EpisodicLife` and `ClipReward`: whole-game statistics from the raw reward,
terminated=True at a life loss followed by one NOOP continuation step (reported like a reset step:
reward 0), and clipping. Pools autoreset in NEXT_STEP mode like gymnasium, so boundaries agree, and
info["first"] (`envs.first_of_episode`) marks the same steps as the gymnasium backends: all envs after
reset(), then the pool's reset steps (`pool_done`) and the life-loss continuations (`continuing`).

With `groups` > 1 the envs live in that many pools of num_envs / groups, each with its own threads, and
`send(actions, group)` / `recv(group)` step one group in the background: an agent acts for one group
while another's emulators run. `step` sends to every group, then receives them all. Env i is seeded
seed + i whatever the grouping, so grouped and ungrouped pools play the same games.
"""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from envs.atari import FIRST, STAT_LENGTH, STAT_SCORE
from envs.video import GameVideos


class PoolVectorEnv(gym.vector.VectorEnv):
    """Base of the pool backends (see module docstring). A subclass builds the pools (`_build_pools`),
    resets them (`_reset_pools`) and may fix their observations (`_obs`) or render env 0 (`_screen`)."""

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int,
        seed: int,
        *,
        groups: int = 1,
        life_loss_ends: bool = False,
        clip_rewards: bool = False,
        num_threads: int | None = None,
        video: GameVideos | None = None,
    ) -> None:
        check_groups(num_envs, groups)
        self.num_envs, self.seed, self.num_groups = num_envs, seed, groups
        size = num_envs // groups
        self.group_slices = [slice(g * size, (g + 1) * size) for g in range(groups)]
        # The cores are shared out between the groups: with two groups on two cores, one group's
        # emulators use one core while the agent acts on the other.
        self.threads_per_group = num_threads or max(1, min(size, (os.cpu_count() or 1) // groups))
        self.life_loss_ends, self.clip_rewards = life_loss_ends, clip_rewards
        self.video = video  # env 0's whole games, rendered by its pool after each of its steps
        self.pools = self._build_pools(seed)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.score = np.zeros(num_envs, np.float64)  # raw score of the current game
        self.length = np.zeros(num_envs, np.int64)  # its agent steps
        self.lives = np.zeros(num_envs, np.int64)
        self.pool_done = np.zeros(num_envs, bool)  # the pool resets these envs on the next step
        self.continuing = np.zeros(num_envs, bool)  # the next step is a life-loss continuation
        self.in_flight: dict[int, np.ndarray] = {}  # group -> its continuation mask, while it steps

    # ------------------------------------------------------------------------------ what a pool provides

    def _build_pools(self, seed: int) -> list[Any]:
        """One pool per group (envs group_slices[g], seeded seed + their index); sets the single spaces."""
        raise NotImplementedError

    def _reset_pools(self, seed: int | None) -> list[tuple[np.ndarray, dict]]:
        """reset() every pool, reseeding env i with seed + i when `seed` is given."""
        raise NotImplementedError

    def _obs(self, obs: np.ndarray, sl: slice, new_game: np.ndarray) -> np.ndarray:
        """The observations of envs `sl` as our protocol has them (`new_game`: the pool reset these)."""
        return obs

    def _screen(self) -> np.ndarray:
        """Env 0's RGB screen, (210, 160, 3) uint8, for `video`."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------ protocol

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        """With a seed, env i restarts from seed + i (as gymnasium, reset(seed=s) then repeats the same
        games); without one, the pools' random streams go on."""
        self._drain()
        if seed is not None:
            self.seed = seed
        obs, infos = zip(*self._reset_pools(seed), strict=True)
        self.score[:], self.length[:], self.pool_done[:], self.continuing[:] = 0.0, 0, False, False
        lives = [info.get("lives", np.zeros(len(o))) for o, info in zip(obs, infos, strict=True)]
        self.lives = np.concatenate(lives).astype(np.int64)
        info = {"lives": self.lives} if "lives" in infos[0] else {}
        if self.video is not None:
            self.video.new_game(self._screen)
        done, first = np.zeros(self.num_envs, bool), np.ones(self.num_envs, bool)
        obs = [self._obs(o, sl, first[sl]) for o, sl in zip(obs, self.group_slices, strict=True)]
        return np.concatenate(obs), self._info(info, done, first)

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        actions = np.asarray(actions)
        for g, sl in enumerate(self.group_slices):
            self.send(actions[sl], g)
        if self.num_groups == 1:
            return self.recv(0)
        results = [self.recv(g) for g in range(self.num_groups)]
        *arrays, infos = zip(*results, strict=True)
        info = {k: np.concatenate([i[k] for i in infos]) for k in infos[0]}
        return (*(np.concatenate(a) for a in arrays), info)  # type: ignore[return-value]

    def send(self, actions: Any, group: int = 0) -> None:
        """Start stepping `group` (envs group_slices[group]) with its actions; `recv(group)` collects it."""
        if not 0 <= group < self.num_groups:
            raise ValueError(f"group {group} does not exist: this env has groups 0..{self.num_groups - 1}")
        if group in self.in_flight:
            raise RuntimeError(f"group {group} is already stepping; recv({group}) before sending again")
        cont = self.continuing[self.group_slices[group]].copy()
        actions = np.array(actions, dtype=np.int64, copy=True)
        actions[cont] = 0  # the life-loss continuation is a NOOP, as in the gymnasium stack
        self.in_flight[group] = cont  # before sending: close() drains whatever may be running
        self.pools[group].send(actions)

    def recv(self, group: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        """Wait for `group`'s step: (obs, reward, terminated, truncated, info) of its envs only (info's
        arrays, the first-of-episode flags included, cover the group's envs)."""
        if group not in self.in_flight:
            raise RuntimeError(f"recv({group}): group {group} is not stepping; send(actions, {group}) first")
        cont, sl = self.in_flight[group], self.group_slices[group]
        obs, reward, terminated, truncated, info = self.pools[group].recv()
        del self.in_flight[group]
        score, length = self.score[sl], self.length[sl]  # views: updated in place
        raw = np.asarray(info.get("reward", reward), np.float64)  # unclipped game reward
        fresh = self.pool_done[sl].copy()  # the pool reset these envs in this step: reward 0, new game
        score[fresh], length[fresh] = 0.0, 0
        score[~fresh] += raw[~fresh]
        length[~fresh] += 1
        done = (terminated | truncated) & ~fresh
        lives = np.asarray(info.get("lives", np.zeros(len(done))), np.int64)
        life_lost = self.life_loss_ends & (lives > 0) & (lives < self.lives[sl]) & ~done & ~cont & ~fresh
        self.lives[sl] = lives

        if self.video is not None and group == 0:  # env 0 is the first of group 0
            if fresh[0]:  # the pool reset it in this step: the new game's reset screen
                self.video.new_game(self._screen)
            else:  # a step of the game (a life-loss continuation too, as below EpisodicLife)
                self.video.step(raw[0], bool(done[0]), self._screen)
        reward = np.sign(raw) if self.clip_rewards else raw.copy()
        reward[cont | fresh] = 0.0  # both are reset steps for the agent
        terminated = np.asarray(terminated, bool) | life_lost
        info_out = self._info(info, done, fresh | cont, sl)  # both start an episode
        self.pool_done[sl], self.continuing[sl] = done, life_lost
        obs = self._obs(obs, sl, fresh)
        return obs, reward.astype(np.float32), terminated, np.asarray(truncated, bool), info_out

    def _info(self, info: dict, done: np.ndarray, first: np.ndarray, sl: slice = slice(None)) -> dict:
        out: dict[str, Any] = {
            FIRST: first,
            STAT_SCORE: np.where(done, self.score[sl], 0.0),
            f"_{STAT_SCORE}": done.copy(),
            STAT_LENGTH: np.where(done, self.length[sl], 0),
            f"_{STAT_LENGTH}": done.copy(),
        }
        if "lives" in info:
            out["lives"] = np.asarray(info["lives"]).copy()
            out["_lives"] = np.ones(len(done), bool)
        return out

    def _drain(self) -> None:  # collect steps still running, so no pool is reset or closed mid-step
        for group in list(self.in_flight):
            self.recv(group)

    def close_extras(self, **kwargs: Any) -> None:
        self._drain()
        if self.video is not None:
            self.video.close()
        for pool in self.pools:
            pool.close()
        self.pools = []  # ale-py's threads stop when its pool is freed


def check_groups(num_envs: int, groups: int) -> None:
    if groups < 1 or num_envs % groups:
        raise ValueError(
            f"env groups={groups} must be >= 1 and divide num_envs={num_envs}; use groups=1 (step all envs "
            f"together) or a num_envs that is a multiple of {groups}."
        )
