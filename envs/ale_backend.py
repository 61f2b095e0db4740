"""ale-py's own multi-threaded vector env (`ale_py.vector_env.AtariVectorEnv`) behind our vector-env
contract: the backend that needs nothing beyond ale-py, on every Python and platform ale-py supports.

Its C++ threads do the emulator work as the gymnasium stack does: sticky actions, frame skip with the
max over the last two frames, the ALE palette's grayscale, cv2 INTER_AREA resize, the frame stack, the
frame cap. `envs.pool.PoolVectorEnv` does life loss, clipping, whole-game statistics and the
first-of-episode flags, as for EnvPool. Where ale-py differs from our protocol, and what this adapter does:

- Reset frame stack: ale-py fills the stack with zeros, ours repeats the reset frame (as EnvPool does).
  `_obs` fills the zero frames of the first stack - 1 observations of each game with the oldest real one,
  so frames agree exactly (tests/envs).
- No-op starts: ale-py presses FIRE first and then takes its no-ops; ours takes 1..noop_max actions with
  FIRE last. We pass noop_max + 1, so with FIRE a game starts after 1..noop_max frames in both (ale-py's
  count of 1 is twice as likely); without FIRE (games that have none, or fire_reset=False) ale-py takes
  0..noop_max frames, ours 1..noop_max. noop_max=0 gives the same single FIRE (or nothing) in both.
- A step cut short inside the frame skip (game over, or the frame cap when it is not a multiple of the
  skip) returns the screens of the step's earlier frames, not the last two: only the final observation
  of a game differs, which a terminated transition never bootstraps from. The 108k-frame cap is a
  multiple of 4, so a capped game's last observation is exact.
- No screen for video: ale-py's vector env exposes no renderer, so `make` refuses video_dir here and
  backend="auto" picks a backend that can film.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from envs.atari import AtariOptions
from envs.pool import PoolVectorEnv


def rom_id(env_id: str) -> str:
    """A gymnasium ALE id ("ALE/SpaceInvaders-v5") -> ale-py's ROM id ("space_invaders")."""
    import ale_py

    gym.register_envs(ale_py)
    return gym.spec(env_id).kwargs["game"]


class AleVectorEnv(PoolVectorEnv):
    """ale-py AtariVectorEnv pools behind our vector-env contract (see the module docstring)."""

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        seed: int,
        opts: AtariOptions,
        *,
        groups: int = 1,
        num_threads: int | None = None,
    ) -> None:
        self.rom, self.opts = rom_id(env_id), opts
        self.since_reset = np.zeros(num_envs, np.int64)  # frames of the current game in each stack - 1
        self._seeded = False  # ale-py seeds from the OS until reset(seed): the first reset uses ours
        super().__init__(
            num_envs, seed, groups=groups, life_loss_ends=opts.use_episodic_life,
            clip_rewards=opts.use_clip_rewards, num_threads=num_threads,
        )  # fmt: skip

    def _build_pools(self, seed: int) -> list[Any]:
        from ale_py.vector_env import AtariVectorEnv

        opts, size = self.opts, self.num_envs // self.num_groups
        max_frames = opts.max_steps * opts.frame_skip if opts.max_steps is not None else 2**31 - 1
        pools = [
            AtariVectorEnv(
                self.rom,
                size,
                num_threads=self.threads_per_group,
                max_num_frames_per_episode=max_frames,
                repeat_action_probability=opts.sticky,
                full_action_space=False,
                img_height=opts.screen_size,
                img_width=opts.screen_size,
                grayscale=True,
                stack_num=opts.stack,
                frameskip=opts.frame_skip,
                maxpool=True,
                noop_max=opts.noop_max + 1,
                use_fire_reset=opts.fire_reset,
                episodic_life=False,
                life_loss_info=False,
                reward_clipping=False,
            )  # fmt: skip
            for _ in self.group_slices
        ]
        self.single_observation_space = pools[0].single_observation_space
        self.single_action_space = pools[0].single_action_space
        return pools

    def _reset_pools(self, seed: int | None) -> list[tuple[np.ndarray, dict]]:
        if seed is None and not self._seeded:
            seed = self.seed
        self._seeded = True
        return [
            pool.reset(seed=None if seed is None else seed + sl.start)
            for pool, sl in zip(self.pools, self.group_slices, strict=True)
        ]

    def _obs(self, obs: np.ndarray, sl: slice, new_game: np.ndarray) -> np.ndarray:
        """Fill the zeros ale-py stacks at a reset with the game's first frame, as our protocol does."""
        newest = self.opts.stack - 1  # index of the frame this step added
        since = self.since_reset[sl]  # a view: updated in place
        since[:] = np.where(new_game, 0, np.minimum(since + 1, newest))
        for row in np.flatnonzero(since < newest):
            oldest = newest - since[row]  # index of the game's first frame in this stack
            obs[row, :oldest] = obs[row, oldest]
        return obs
