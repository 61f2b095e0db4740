"""Gameplay video: full-colour RGB screens at the emulator's resolution (210x160x3) to mp4.

The recorder sits inside env 0's wrapper stack below EpisodicLife, so one file is one whole game, and it
reads the screen from the emulator (`ale.getScreenRGB()`), not from the preprocessed observation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import imageio.v2 as imageio
import numpy as np


def write_mp4(frames: Sequence[np.ndarray], path: str | Path, fps: int = 30) -> Path:
    """Write (H, W, 3) uint8 frames to an H.264 mp4. macro_block_size=1 keeps 210x160 exact instead of
    letting ffmpeg pad it to a multiple of 16."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with imageio.get_writer(path, fps=fps, codec="libx264", macro_block_size=1, pixelformat="yuv444p") as w:
        for frame in frames:
            w.append_data(np.asarray(frame, dtype=np.uint8))
    return path


def read_mp4(path: str | Path) -> np.ndarray:
    """Decode an mp4 to a (T, H, W, 3) uint8 array."""
    with imageio.get_reader(Path(path)) as r:
        return np.stack([np.asarray(f) for f in r])


class VideoRecorder(gym.Wrapper):
    """Record every `every`-th whole game as `episode-{index:06d}-score-{raw score}.mp4` in `folder`,
    one RGB screen per agent step (the frame after the action repeat) plus the reset screen."""

    def __init__(self, env: gym.Env, folder: str | Path, every: int = 1, fps: int = 30) -> None:
        super().__init__(env)
        self.folder, self.every, self.fps = Path(folder), every, fps
        self.game = -1  # index of the current game
        self.score = 0.0
        self.frames: list[np.ndarray] = []
        self.paths: list[Path] = []

    @property
    def recording(self) -> bool:
        return self.game % self.every == 0

    def _grab(self) -> None:
        if self.recording:
            self.frames.append(self.env.unwrapped.ale.getScreenRGB())  # (210, 160, 3) uint8

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        obs, info = self.env.reset(**kwargs)
        self.game += 1
        self.score, self.frames = 0.0, []
        self._grab()
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.score += float(reward)
        self._grab()
        if (terminated or truncated) and self.recording and self.frames:
            name = f"episode-{self.game:06d}-score-{self.score:g}.mp4"
            self.paths.append(write_mp4(self.frames, self.folder / name, self.fps))
            self.frames = []
        return obs, reward, terminated, truncated, info
