"""Watch a trained agent play: records whole games to mp4 (and shows them live when a display exists).

    python scripts/watch.py RUN_DIR_OR_CHECKPOINT [--episodes N]

The agent is rebuilt from the checkpoint alone. Every game the suite trains on is filmed: Atari in
full colour at the emulator's resolution (210x160), classic control at gymnasium's render size (CartPole
400x600). One file per game with the raw score in its name, under RUN_DIR/videos/watch-<time>/.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from pixelrl import cli, evaluation


def show_live(paths: list[Path], fps: int = 30) -> None:
    """Replay the recorded games in a matplotlib window (works with any GUI backend present)."""
    import matplotlib.pyplot as plt

    from envs.video import read_mp4

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


def main(argv: list[str] | None = None) -> list[Path]:
    opts = cli.parse(evaluation.WatchOptions, argv, prog="watch.py", description=__doc__)
    with cli.one_line_errors():
        games, paths = evaluation.record_games(opts, stamp=time.strftime("%Y%m%d-%H%M%S"))
    for game, path in zip(games, paths, strict=False):
        print(f"score {game['score']:>7g}  length {game['length']:>6}  {path}")
    if opts.live if opts.live is not None else bool(os.environ.get("DISPLAY")):
        show_live(paths)
    print(json.dumps({"videos": [str(p) for p in paths], "scores": [g["score"] for g in games]}))
    return paths


if __name__ == "__main__":
    main()
