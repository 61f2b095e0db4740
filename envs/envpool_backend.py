"""EnvPool as a gymnasium vector env with our exact semantics (optional: nothing imports envpool at load).

EnvPool runs the emulator, no-ops/FIRE, frame skip with max-pool, INTER_AREA resize and the frame stack in
C++ threads. We run it with episodic_life=False and reward_clip=False and do, in this thin adapter, what
the gymnasium stack does in `WholeGame`, `EpisodicLife` and `ClipReward`: whole-game statistics from the
raw reward, terminated=True at a life loss followed by one NOOP continuation step (reported like a reset
step: reward 0), and clipping. EnvPool autoresets in NEXT_STEP mode like gymnasium, so boundaries agree.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from envs.atari import STAT_LENGTH, STAT_SCORE, AtariOptions


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
        episodic_life=False,  # done here, see the module docstring
        reward_clip=False,
        zero_discount_on_life_loss=False,
        max_episode_steps=opts.max_steps or 2**31 - 1,
    )


class EnvPoolVectorEnv(gym.vector.VectorEnv):
    """Adapter from an EnvPool gymnasium pool to our vector-env contract (see module docstring)."""

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        task_id: str,
        num_envs: int,
        seed: int,
        *,
        life_loss_ends: bool = False,
        clip_rewards: bool = False,
        keep_obs: list[int] | None = None,
        num_threads: int | None = None,
        **pool_kwargs: Any,
    ) -> None:
        self.num_envs, self.seed = num_envs, seed
        self.life_loss_ends, self.clip_rewards, self.keep_obs = life_loss_ends, clip_rewards, keep_obs
        threads = num_threads or min(num_envs, os.cpu_count() or 1)
        self._pool_args = dict(task_id=task_id, num_envs=num_envs, batch_size=num_envs, num_threads=threads)
        self._pool_args.update(pool_kwargs)
        self.pool = self._build_pool(seed)
        space = self.pool.observation_space  # EnvPool reports the single-env space
        if keep_obs is not None:
            space = gym.spaces.Box(space.low[keep_obs], space.high[keep_obs], dtype=space.dtype)
        self.single_observation_space = space
        self.single_action_space = self.pool.action_space
        self.observation_space = batch_space(space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.score = np.zeros(num_envs, np.float64)  # raw score of the current game
        self.length = np.zeros(num_envs, np.int64)  # its agent steps
        self.lives = np.zeros(num_envs, np.int64)
        self.pool_done = np.zeros(num_envs, bool)  # EnvPool resets these envs on the next step
        self.continuing = np.zeros(num_envs, bool)  # the next step is a life-loss continuation

    def _build_pool(self, seed: int) -> Any:
        import envpool

        with warnings.catch_warnings():  # classic control: "Box low's precision lowered" from EnvPool
            warnings.simplefilter("ignore", UserWarning)
            pool = envpool.make_gymnasium(seed=seed, **self._pool_args)
            pool.observation_space  # noqa: B018 (built lazily: warns here)
        return pool

    def _obs(self, obs: np.ndarray) -> np.ndarray:
        return obs if self.keep_obs is None else obs[:, self.keep_obs]

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        """EnvPool seeds env i with seed + i when it is built, so a seed rebuilds the pool (as gymnasium,
        reset(seed=s) then repeats the same games); without one, the pool's random streams go on."""
        if seed is not None:
            self.pool.close()
            self.pool, self.seed = self._build_pool(seed), seed
        obs, info = self.pool.reset()
        self.score[:], self.length[:], self.pool_done[:], self.continuing[:] = 0.0, 0, False, False
        self.lives = np.asarray(info.get("lives", np.zeros(self.num_envs)), np.int64).copy()
        return self._obs(obs), self._info(info, np.zeros(self.num_envs, bool))

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        actions = np.array(actions, copy=True)
        cont = self.continuing.copy()
        actions[cont] = 0  # the life-loss continuation is a NOOP, as in the gymnasium stack
        obs, reward, terminated, truncated, info = self.pool.step(actions)
        raw = np.asarray(info.get("reward", reward), np.float64)  # unclipped game reward
        fresh = self.pool_done  # EnvPool reset these envs in this step: reward 0, new game
        self.score[fresh], self.length[fresh] = 0.0, 0
        self.score[~fresh] += raw[~fresh]
        self.length[~fresh] += 1
        done = (terminated | truncated) & ~fresh
        lives = np.asarray(info.get("lives", np.zeros(self.num_envs)), np.int64)
        life_lost = self.life_loss_ends & (lives > 0) & (lives < self.lives) & ~done & ~cont & ~fresh
        self.lives = lives.copy()

        reward = np.sign(raw) if self.clip_rewards else raw.copy()
        reward[cont | fresh] = 0.0  # both are reset steps for the agent
        terminated = np.asarray(terminated, bool) | life_lost
        info_out = self._info(info, done)
        self.pool_done, self.continuing = done, life_lost
        return self._obs(obs), reward.astype(np.float32), terminated, np.asarray(truncated, bool), info_out

    def _info(self, info: dict, done: np.ndarray) -> dict:
        out: dict[str, Any] = {
            STAT_SCORE: np.where(done, self.score, 0.0),
            f"_{STAT_SCORE}": done.copy(),
            STAT_LENGTH: np.where(done, self.length, 0),
            f"_{STAT_LENGTH}": done.copy(),
        }
        if "lives" in info:
            out["lives"] = np.asarray(info["lives"]).copy()
            out["_lives"] = np.ones(self.num_envs, bool)
        return out

    def close_extras(self, **kwargs: Any) -> None:
        self.pool.close()
