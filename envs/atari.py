"""The Atari wrapper stack (design §1 table) as small single-env gymnasium wrappers, and its options.

Order, from the emulator up (each line wraps the one before it):

    ale-py AtariEnv(frameskip=1, sticky p, minimal actions, grayscale or RGB screen)
    NoopFireReset     up to `noop_max` no-op frames, then FIRE if needed, at every real game reset
    MaxAndSkip        repeat the action `frame_skip` frames, max over the last two screens
    Resize | KarpathyDiff   (84, 84) uint8 (INTER_AREA) | (6400,) float32 difference frame
    Flicker           blank the whole frame with probability p (POMDP)
    FrameStack        (k, 84, 84) uint8, channel-first
    WholeGame         the 108k-frame cap and the RAW score / length of whole games into `info`
    [VideoRecorder]   env 0 only: RGB screens of whole games to mp4
    EpisodicLife      train only: a life loss ends the episode; the next reset continues the game
    ClipReward        train only: sign(reward)

Everything that changes what a *game* is (cap, statistics) sits below `EpisodicLife`, and everything that
changes only the learning signal (life-loss ends, clipping) sits above `WholeGame`, so the statistics are
always the raw score and length of whole games. The same order is what the EnvPool adapter reproduces.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import gymnasium as gym
import numpy as np

Mode = Literal["train", "eval"]
STAT_SCORE = "game_score"  # info key: raw score of a finished whole game
STAT_LENGTH = "game_length"  # info key: its length in agent steps
FIRST = "first"  # vector-env info key: (N,) bool, this observation is the first of an episode


@dataclass(frozen=True)
class AtariOptions:
    """Every knob of the Atari protocol. Defaults are the protocol of design §1 (Machado et al. 2018 with
    the Mnih et al. 2015 preprocessing); `make(game, **options)` overrides single fields by name."""

    sticky: float = 0.25
    """Probability that the emulator repeats the previous action (Machado et al. 2018). 0.0 gives the
    deterministic Nature-2015 protocol."""
    noop_max: int = 30
    """At each real reset, 1..noop_max random no-op frames (one of them replaced by FIRE when the game
    needs it), as in Mnih et al. 2015 and EnvPool. 0 disables them."""
    fire_reset: bool = True
    """Press FIRE once after the no-ops on games whose action meanings contain FIRE (Breakout waits)."""
    frame_skip: int = 4
    """Emulator frames per agent step; the observation is the max over the last two (sprite flicker)."""
    frame_stack: int | None = 4
    """Number of stacked frames, channel-first. 1 or None: a single frame (N, 1, 84, 84) for recurrent
    agents."""
    screen_size: int = 84
    """Side of the square grayscale observation (cv2 INTER_AREA resize)."""
    episodic_life: bool | None = None
    """A life loss ends the episode (terminated=True) but not the game. None: on in train mode only."""
    clip_rewards: bool | None = None
    """Clip rewards to {-1, 0, 1}. None: on in train mode only. Never changes the reported score."""
    max_frames: int | None = 108_000
    """Emulator frames per whole game before `truncated` (30 minutes; 27,000 agent steps). None: no cap."""
    preprocess: Literal["nature", "karpathy"] = "nature"
    """"nature": 84x84 grayscale stack. "karpathy": Pong's 80x80 binarised difference frame, flattened to
    (6400,) float32 for an MLP (Karpathy 2016, "Pong from pixels"); `frame_stack` is ignored."""
    flicker: float = 0.0
    """Probability that a whole frame is blanked before stacking (Hausknecht & Stone 2015, DRQN)."""
    video_dir: str | None = None
    """Write env 0's whole games to mp4 in this folder (full-colour 210x160 RGB, one frame per step)."""
    video_every: int | None = None
    """Record one game of env 0 in every `video_every`. None: every game in eval mode, 1 in 100 in train."""
    mode: Mode = "train"
    """Set by make(): decides the None defaults above."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.sticky <= 1.0:
            raise ValueError(f"sticky={self.sticky} must be a probability in [0, 1] (0.0 = Nature-2015).")
        if not 0.0 <= self.flicker <= 1.0:
            raise ValueError(f"flicker={self.flicker} must be a probability in [0, 1].")
        if self.noop_max < 0 or self.frame_skip < 1 or self.screen_size < 1:
            raise ValueError("noop_max must be >= 0, frame_skip >= 1 and screen_size >= 1.")
        if self.frame_stack is not None and self.frame_stack < 1:
            raise ValueError(f"frame_stack={self.frame_stack}: use 1 or None for no stacking.")
        if self.preprocess not in ("nature", "karpathy"):
            raise ValueError(f"preprocess={self.preprocess!r}: choose 'nature' or 'karpathy'.")
        if self.video_every is not None and self.video_every < 1:
            raise ValueError(f"video_every={self.video_every} must be >= 1.")

    @property
    def use_episodic_life(self) -> bool:
        return self.mode == "train" if self.episodic_life is None else self.episodic_life

    @property
    def use_clip_rewards(self) -> bool:
        return self.mode == "train" if self.clip_rewards is None else self.clip_rewards

    @property
    def stack(self) -> int:
        return self.frame_stack or 1

    @property
    def max_steps(self) -> int | None:
        """The frame cap in agent steps, as EnvPool counts it."""
        return None if self.max_frames is None else max(1, self.max_frames // self.frame_skip)

    @property
    def video_period(self) -> int:
        if self.video_every is not None:
            return self.video_every
        return 1 if self.mode == "eval" else 100

    @classmethod
    def from_kwargs(cls, mode: Mode, options: dict[str, Any]) -> AtariOptions:
        """Build from make()'s **options, rejecting unknown names with the list of valid ones."""
        valid = [f.name for f in dataclasses.fields(cls) if f.name != "mode"]
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise ValueError(f"unknown Atari option(s) {unknown}; valid options are: {', '.join(valid)}.")
        return cls(mode=mode, **options)


# ---------------------------------------------------------------------------------------------- emulator


def ale_env(game_id: str, opts: AtariOptions) -> gym.Env:
    """The bare ALE env: one emulator frame per step, sticky actions and the minimal action set set
    explicitly (the v5 defaults skip 4 frames inside the emulator, which would defeat max-pooling)."""
    import ale_py

    gym.register_envs(ale_py)
    return gym.make(
        game_id,
        # Gray from the ALE palette, exactly as EnvPool; Karpathy's preprocessing needs the colours.
        obs_type="rgb" if opts.preprocess == "karpathy" else "grayscale",
        frameskip=1,
        repeat_action_probability=opts.sticky,
        full_action_space=False,
        max_num_frames_per_episode=None,  # our own cap (WholeGame) counts agent steps, like EnvPool
        disable_env_checker=True,
    )


def needs_fire(env: gym.Env) -> bool:
    return "FIRE" in env.unwrapped.get_action_meanings()


# ---------------------------------------------------------------------------------------------- wrappers


class NoopFireReset(gym.Wrapper):
    """At a real reset: a random number of no-op frames, then FIRE where needed (one frame each).

    Mnih et al. 2015 start each game with up to 30 no-ops so that a deterministic emulator does not give
    the same start. The count follows EnvPool exactly: uniform in 1..noop_max actions, the last of which
    is FIRE when `fire` is set, so both backends share one distribution."""

    def __init__(self, env: gym.Env, noop_max: int, fire: bool) -> None:
        super().__init__(env)
        self.noop_max, self.fire = noop_max, fire
        meanings = env.unwrapped.get_action_meanings()
        assert meanings[0] == "NOOP", meanings
        self.fire_action = meanings.index("FIRE") if fire else -1

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        obs, info = self.env.reset(**kwargs)
        n = int(self.np_random.integers(1, self.noop_max + 1)) if self.noop_max > 0 else int(self.fire)
        actions = [0] * (n - int(self.fire)) + ([self.fire_action] if self.fire else [])
        for a in actions:
            obs, _, terminated, truncated, info = self.env.step(a)
            if terminated or truncated:
                obs, info = self.env.reset()
        return obs, info


class MaxAndSkip(gym.Wrapper):
    """Repeat the action `skip` frames, sum the rewards, return the pixel-wise max of the last two frames:
    some Atari sprites are drawn only on odd or even frames (Mnih et al. 2015)."""

    def __init__(self, env: gym.Env, skip: int = 4) -> None:
        super().__init__(env)
        self.skip = skip

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        total, frames = 0.0, deque(maxlen=2)
        terminated = truncated = False
        info: dict = {}
        for _ in range(self.skip):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            frames.append(obs)
            if terminated or truncated:
                break
        obs = frames[-1] if len(frames) == 1 else np.maximum(frames[0], frames[1])
        return obs, total, terminated, truncated, info


class Resize(gym.ObservationWrapper):
    """(210, 160) grayscale -> (size, size) uint8 with cv2 INTER_AREA (area averaging, like EnvPool)."""

    def __init__(self, env: gym.Env, size: int = 84) -> None:
        super().__init__(env)
        self.size = size
        self.observation_space = gym.spaces.Box(0, 255, (size, size), np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return cv2.resize(observation, (self.size, self.size), interpolation=cv2.INTER_AREA)  # (84, 84)


def karpathy_frame(rgb: np.ndarray) -> np.ndarray:
    """Pong (210, 160, 3) uint8 -> (80, 80) float32 in {0, 1}: crop the playfield, keep every second
    pixel, erase the two background colours, set paddles and ball to 1 (Karpathy 2016)."""
    x = rgb[35:195:2, ::2, 0].astype(np.float32)  # (80, 80) red channel
    x[(x == 144) | (x == 109)] = 0.0
    return (x != 0).astype(np.float32)


class KarpathyDiff(gym.ObservationWrapper):
    """Observation = current frame - previous frame, flattened: motion is visible to an MLP in one input.
    At a reset the previous frame is the current one, so the first observation is all zeros."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (80 * 80,), np.float32)
        self._prev: np.ndarray | None = None

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict]:
        obs, info = self.env.reset(**kwargs)
        self._prev = karpathy_frame(obs)
        return np.zeros(80 * 80, np.float32), info

    def observation(self, observation: np.ndarray) -> np.ndarray:
        cur = karpathy_frame(observation)
        diff = (cur - self._prev).ravel()  # (6400,) float32 in {-1, 0, 1}
        self._prev = cur
        return diff


class Flicker(gym.ObservationWrapper):
    """Blank the whole frame with probability p: the flickering-Pong POMDP of Hausknecht & Stone 2015."""

    def __init__(self, env: gym.Env, p: float) -> None:
        super().__init__(env)
        self.p = p

    def observation(self, observation: np.ndarray) -> np.ndarray:
        if self.np_random.random() < self.p:
            return np.zeros_like(observation)
        return observation


class FrameStack(gym.Wrapper):
    """Stack the last k frames channel-first, (k, H, W) uint8; a reset fills the stack with its frame.
    Sits below EpisodicLife so a life-loss continuation keeps the history, as EnvPool does."""

    def __init__(self, env: gym.Env, k: int) -> None:
        super().__init__(env)
        self.k = k
        space = env.observation_space
        self.observation_space = gym.spaces.Box(0, 255, (k, *space.shape), np.uint8)
        self.frames: deque[np.ndarray] = deque(maxlen=k)

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict]:
        obs, info = self.env.reset(**kwargs)
        for _ in range(self.k):
            self.frames.append(obs)
        return np.stack(self.frames), info  # (k, 84, 84) uint8

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.frames.append(obs)
        return np.stack(self.frames), reward, terminated, truncated, info


class WholeGame(gym.Wrapper):
    """Counts whole games: truncates at `max_steps` agent steps, and at the end of a game writes its raw
    score and length into info[STAT_SCORE], info[STAT_LENGTH]. Sits below every wrapper that changes the
    learning signal, so these numbers are the ones papers report."""

    def __init__(self, env: gym.Env, max_steps: int | None = None) -> None:
        super().__init__(env)
        self.max_steps = max_steps
        self.score, self.length = 0.0, 0

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        self.score, self.length = 0.0, 0
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.score += float(reward)
        self.length += 1
        if self.max_steps is not None and self.length >= self.max_steps:
            truncated = True
        if terminated or truncated:
            info = {**info, STAT_SCORE: self.score, STAT_LENGTH: self.length}
        return obs, reward, terminated, truncated, info


class EpisodicLife(gym.Wrapper):
    """A life loss ends the training episode (terminated=True, so the value is not bootstrapped through a
    death; Mnih et al. 2015) but not the game: the following reset() is one NOOP step that continues the
    same game (as in OpenAI baselines), and only a real game over resets the emulator."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.lives = 0
        self.game_over = True

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = terminated or truncated
        lives = self.env.unwrapped.ale.lives()
        if 0 < lives < self.lives:
            terminated = True
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        if self.game_over or kwargs.get("seed") is not None:
            obs, info = self.env.reset(**kwargs)
        else:
            obs, _, terminated, truncated, info = self.env.step(0)  # continue the same game
            if terminated or truncated:  # the game ended during the no-op (rare): keep its statistics
                stats = {k: info[k] for k in (STAT_SCORE, STAT_LENGTH) if k in info}
                obs, info = self.env.reset(**kwargs)
                info = {**info, **stats}
        self.game_over = False
        self.lives = self.env.unwrapped.ale.lives()
        return obs, info


class ClipReward(gym.RewardWrapper):
    """sign(reward): one learning rate fits every game's score scale (Mnih et al. 2015)."""

    def reward(self, reward: float) -> float:
        return float(np.sign(reward))


Wrap = Callable[[gym.Env], gym.Env]


def wrap_atari(env: gym.Env, opts: AtariOptions, video: Wrap | None = None) -> gym.Env:
    """Apply the stack in the module docstring to a bare ALE env (see `ale_env`)."""
    env = NoopFireReset(env, opts.noop_max, opts.fire_reset and needs_fire(env))
    env = MaxAndSkip(env, opts.frame_skip)
    if opts.preprocess == "karpathy":
        env = KarpathyDiff(env)
    else:
        env = Resize(env, opts.screen_size)
        if opts.flicker > 0:
            env = Flicker(env, opts.flicker)
        env = FrameStack(env, opts.stack)
    env = WholeGame(env, opts.max_steps)
    if video is not None:  # above the cap, below EpisodicLife: one file per whole game
        env = video(env)
    if opts.use_episodic_life:
        env = EpisodicLife(env)
    if opts.use_clip_rewards:
        env = ClipReward(env)
    return env
