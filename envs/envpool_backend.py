"""EnvPool as a gymnasium vector env with our exact semantics (optional: nothing imports envpool at load).

EnvPool runs the emulator, no-ops/FIRE, frame skip with max-pool, INTER_AREA resize and the frame stack in
C++ threads, exactly as the gymnasium stack does them (tests/envs: identical frames step by step). We run
it with episodic_life=False and reward_clip=False; `envs.pool.PoolVectorEnv` does life loss, clipping,
whole-game statistics and the first-of-episode flags. With `video`, env 0's pool also renders its screen
after each of its steps for `envs.video.GameVideos`, as the gymnasium stack's `VideoRecorder` does below
EpisodicLife: whole games, life-loss continuations included. Classic control runs here too.
"""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np

from envs.atari import AtariOptions
from envs.pool import PoolVectorEnv
from envs.video import GameVideos


def envpool_available() -> bool:
    try:
        import envpool  # noqa: F401
    except ImportError:
        return False
    return True


def atari_kwargs(opts: AtariOptions) -> dict[str, Any]:
    """Every EnvPool Atari option, set explicitly: its defaults differ from ours (design §6)."""
    return dict(
        repeat_action_probability=opts.sticky,
        full_action_space=False,
        # EnvPool takes 1..noop_max reset actions (FIRE last); it cannot take 0, so noop_max=0 becomes 1:
        # identical when FIRE is used, one extra no-op frame otherwise.
        noop_max=max(opts.noop_max, 1),
        use_fire_reset=opts.fire_reset,
        frame_skip=opts.frame_skip,
        stack_num=opts.stack,
        img_height=opts.screen_size,
        img_width=opts.screen_size,
        gray_scale=True,
        use_inter_area_resize=True,
        episodic_life=False,  # done by PoolVectorEnv
        reward_clip=False,
        zero_discount_on_life_loss=False,
        max_episode_steps=opts.max_steps or 2**31 - 1,
    )


class EnvPoolVectorEnv(PoolVectorEnv):
    """EnvPool gymnasium pools behind our vector-env contract (see `envs.pool.PoolVectorEnv`).
    `keep_obs` keeps only these observation entries (CartPole-NoVel)."""

    def __init__(
        self,
        task_id: str,
        num_envs: int,
        seed: int,
        *,
        groups: int = 1,
        life_loss_ends: bool = False,
        clip_rewards: bool = False,
        keep_obs: list[int] | None = None,
        num_threads: int | None = None,
        video: GameVideos | None = None,
        **pool_kwargs: Any,
    ) -> None:
        self.task_id, self.keep_obs, self.pool_kwargs = task_id, keep_obs, pool_kwargs
        super().__init__(
            num_envs, seed, groups=groups, life_loss_ends=life_loss_ends, clip_rewards=clip_rewards,
            num_threads=num_threads, video=video,
        )  # fmt: skip

    def _build_pools(self, seed: int) -> list[Any]:
        import envpool

        pools, size = [], self.num_envs // self.num_groups
        with warnings.catch_warnings():  # classic control: "Box low's precision lowered" from EnvPool
            warnings.simplefilter("ignore", UserWarning)
            for sl in self.group_slices:  # EnvPool seeds its env j with seed + j
                render = {"render_mode": "rgb_array"} if self.video is not None and sl.start == 0 else {}
                pool = envpool.make_gymnasium(
                    self.task_id, seed=seed + sl.start, num_envs=size, batch_size=size,
                    num_threads=self.threads_per_group, **self.pool_kwargs, **render,
                )  # fmt: skip
                pool.observation_space  # noqa: B018 (built lazily: warns here)
                pools.append(pool)
        space = pools[0].observation_space  # EnvPool reports the single-env space
        if self.keep_obs is not None:
            space = gym.spaces.Box(space.low[self.keep_obs], space.high[self.keep_obs], dtype=space.dtype)
        self.single_observation_space, self.single_action_space = space, pools[0].action_space
        return pools

    def _reset_pools(self, seed: int | None) -> list[tuple[np.ndarray, dict]]:
        """EnvPool seeds env i with seed + i only when it is built, so a seed rebuilds the pools."""
        if seed is not None:
            for pool in self.pools:
                pool.close()
            self.pools = self._build_pools(seed)
        return [pool.reset() for pool in self.pools]

    def _obs(self, obs: np.ndarray, sl: slice, new_game: np.ndarray) -> np.ndarray:
        return obs if self.keep_obs is None else obs[:, self.keep_obs]

    def _screen(self) -> np.ndarray:  # env 0's RGB screen, (210, 160, 3) uint8 on Atari
        return self.pools[0].render(env_ids=[0])[0]
