"""Watch a trained agent play: records whole games to mp4 (and shows them live when a display exists).

    python scripts/watch.py RUN_DIR_OR_CHECKPOINT [--episodes N]

The agent is rebuilt from the checkpoint alone. Videos are full-colour at the emulator's resolution,
one file per game with the raw score in its name, under RUN_DIR/videos/watch-<time>/.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import tyro

import envs
from envs.video import read_mp4
from scripts.evaluate import load_agent, play_games


@dataclass(frozen=True)
class WatchArgs:
    target: tyro.conf.Positional[Path]
    """A run directory (uses checkpoints/best, else latest) or a .safetensors checkpoint."""
    episodes: int = 3
    """Games to record."""
    seed: int = 0
    """Seed of the games (offset from training seeds)."""
    checkpoint: str = "best"
    """Which checkpoint of a run directory: best or latest."""
    out: Path | None = None
    """Folder for the mp4 files (default RUN_DIR/videos/watch-<time>)."""
    live: bool | None = None
    """Show the games in a window after recording (default: when a display exists)."""
    device: str = "auto"
    """cpu, cuda or auto."""


def show_live(paths: list[Path], fps: int = 30) -> None:
    """Replay the recorded games in a matplotlib window (works with any GUI backend present)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.axis("off")
    image = None
    for path in paths:
        for frame in read_mp4(path):
            if not plt.fignum_exists(fig.number):
                return
            if image is None:
                image = ax.imshow(frame)
            image.set_data(frame)
            ax.set_title(path.stem)
            plt.pause(1 / fps)
    plt.close(fig)


def main(args: WatchArgs) -> list[Path]:
    agent, meta = load_agent(args.target, args.checkpoint, args.device)
    if envs.resolve(meta["game"]).kind != "atari":
        raise SystemExit(f"error: {meta['game']} has no emulator screen to record; watch needs an Atari game")
    run_dir = Path(args.target) if Path(args.target).is_dir() else Path(meta["checkpoint"]).parent.parent
    out = args.out or run_dir / "videos" / f"watch-{time.strftime('%Y%m%d-%H%M%S')}"
    options = meta.get("env_options", {})
    games = play_games(
        agent, meta["game"], args.episodes, seed=args.seed, num_envs=1, video_dir=out, **options
    )
    paths = sorted(out.glob("*.mp4"))
    for game, path in zip(games, paths, strict=False):
        print(f"score {game['score']:>7g}  length {game['length']:>6}  {path}")
    live = args.live if args.live is not None else bool(os.environ.get("DISPLAY"))
    if live:
        show_live(paths)
    print(json.dumps({"videos": [str(p) for p in paths], "scores": [g["score"] for g in games]}))
    return paths


if __name__ == "__main__":
    main(tyro.cli(WatchArgs))
