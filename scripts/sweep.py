"""Run a grid of training runs, agents x games x seeds, as Ray Tune trials of our own training loop.

    python scripts/sweep.py --agents ppo,dqn --games Pong,Breakout --seeds 3 [--frames N] [--out DIR]
                            [--address HOST:PORT] [--cpus-per-trial C] [--gpus-per-trial G]

Each trial is one ordinary run directory, <out>/runs/<agent>-<game>-s<seed> (config, metrics,
checkpoints, videos), that train.py --resume, watch.py and evaluate.py use. A local Ray starts on this
machine unless --address or RAY_ADDRESS names a cluster. Run the same command again to continue a stopped
sweep: finished trials are not rerun. At the end every run is evaluated into one report, <out>/report
(eval.md, eval.json, eval.png): per game, and aggregated over seeds and games (IQM with bootstrap
intervals). Needs the ray extra: pip install '.[ray]'. docs/distributed.md has the details.
"""

from __future__ import annotations

from typing import Any

from pixelrl import cli, compare, sweep


def main(argv: list[str] | None = None) -> dict[str, Any]:
    opts = cli.parse(sweep.SweepOptions, argv, prog="sweep.py", description=__doc__)
    with cli.one_line_errors():
        result = sweep.run_sweep(opts)
    print(result["markdown"])
    print(compare.summary_line(result))
    return result


if __name__ == "__main__":
    main()
