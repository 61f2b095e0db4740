"""Train an agent from the command line into a run directory.

    python scripts/train.py AGENT --env GAME [--preset NAME] [--frames N] [--seed S] [--run-dir DIR]
    python scripts/train.py AGENT --resume RUN_DIR

Every field of the agent's Config is an option (see `--help`); its defaults come from the agent's preset
for the game's family (Atari or classic control), or from the preset named by --preset (`--help` lists
each agent's presets and what they change). Writes config.json, metrics.jsonl, checkpoints/ (latest
and best), videos/ and curve.png. Ctrl-C or a kill saves a checkpoint; --resume continues from it.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from pixelrl import cli
from pixelrl.training import Trainer


def main(argv: list[str] | None = None) -> dict[str, Any]:
    spec, run, cfg = cli.parse_train(sys.argv[1:] if argv is None else argv, __doc__)
    with cli.one_line_errors():  # bad input is refused before any training
        trainer = Trainer(spec, run, cfg)
        session = trainer.restore()
    with cli.training_exits(f"python scripts/train.py {spec.name} --resume {trainer.run_dir}"):
        trainer.loop(session)
        summary = trainer.finish(session)
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
