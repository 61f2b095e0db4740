"""Gameplay video: full-colour RGB screens to mp4, at the emulator's resolution (210x160x3) for Atari and
at gymnasium's render size for classic control (CartPole 400x600x3).

Env 0 records whole games (one file per game, not per life) from the game's screen, not from the
preprocessed observation: in the gymnasium stack a wrapper below EpisodicLife reads `ale.getScreenRGB()`
(Atari) or `render()` (classic control, made with render_mode="rgb_array"); on EnvPool the adapter renders
its env 0 after each of its steps. All of them feed one `GameVideos`."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import imageio.v2 as imageio
import numpy as np


def mp4_writer(path: str | Path, fps: int = 30) -> Any:
    """An H.264 mp4 writer for (H, W, 3) uint8 frames (`append_data`, `close`). macro_block_size=1 keeps
    210x160 exact instead of letting ffmpeg pad it to a multiple of 16."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return imageio.get_writer(path, format="FFMPEG", fps=fps, codec="libx264", macro_block_size=1,
                              pixelformat="yuv444p")  # fmt: skip


def read_mp4(path: str | Path) -> np.ndarray:
    """Decode an mp4 to a (T, H, W, 3) uint8 array."""
    with imageio.get_reader(Path(path)) as r:
        return np.stack([np.asarray(f) for f in r])


class GameVideos:
    """Every `every`-th whole game of one env as `episode-{index:06d}-score-{raw score}.mp4` in `folder`:
    the reset screen, then one RGB screen per agent step (the frame after the action repeat). The env that
    owns the emulator feeds it: `VideoRecorder` in the gymnasium stack, `EnvPoolVectorEnv` for its env 0.
    `screen` is called only while a game is being recorded. Frames are encoded as they come (a capped game
    would be 2.7 GB of raw screens) into `.partial/episode-{index:06d}.mp4`, moved beside the others once the
    score is known; a game cut short by a reset, `close` or a kill leaves nothing in `folder` itself. A folder
    that already holds games (a resumed run) is continued, not overwritten."""

    def __init__(self, folder: str | Path, every: int = 1, fps: int = 30) -> None:
        self.folder, self.every, self.fps = Path(folder), every, fps
        shutil.rmtree(self.folder / ".partial", ignore_errors=True)  # what a killed run left half-written
        names = (re.match(r"episode-(\d+)-", p.name) for p in self.folder.glob("episode-*.mp4"))
        self.game = max((int(m.group(1)) for m in names if m), default=-1)  # index of the current game
        self.score = 0.0
        self.writer: Any = None  # open while a game is being recorded
        self.paths: list[Path] = []

    @property
    def recording(self) -> bool:
        return self.game % self.every == 0

    def _partial(self) -> Path:
        return self.folder / ".partial" / f"episode-{self.game:06d}.mp4"

    def close(self) -> None:
        """Stop filming; the video of an unfinished game is dropped."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
            self._partial().unlink(missing_ok=True)

    def new_game(self, screen: Callable[[], np.ndarray]) -> None:
        self.close()  # a reset before the game ended
        self.game += 1
        self.score = 0.0
        if self.recording:
            self.writer = mp4_writer(self._partial(), self.fps)
            self.writer.append_data(screen())

    def step(self, raw_reward: float, game_over: bool, screen: Callable[[], np.ndarray]) -> None:
        self.score += float(raw_reward)
        if self.writer is None:
            return
        self.writer.append_data(screen())
        if game_over:
            self.writer.close()
            self.writer = None
            path = self.folder / f"episode-{self.game:06d}-score-{self.score:g}.mp4"
            self.paths.append(self._partial().replace(path))


class VideoRecorder(gym.Wrapper):
    """`GameVideos` of a gymnasium env: an Atari env's screen straight from the emulator, any other env's
    from `render()`, so that one must be made with render_mode="rgb_array"."""

    def __init__(self, env: gym.Env, folder: str | Path, every: int = 1, fps: int = 30) -> None:
        super().__init__(env)
        ale = getattr(env.unwrapped, "ale", None)
        if ale is None and env.render_mode != "rgb_array":
            raise ValueError(f"VideoRecorder needs render_mode='rgb_array', not {env.render_mode!r}.")
        self._screen: Callable[[], np.ndarray] = ale.getScreenRGB if ale is not None else env.render
        self.videos = GameVideos(folder, every, fps)

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        obs, info = self.env.reset(**kwargs)
        self.videos.new_game(self._screen)
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.videos.step(float(reward), terminated or truncated, self._screen)
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        self.videos.close()
        super().close()
