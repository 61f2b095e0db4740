"""Throughput and learning benchmarks, one subcommand each.

    python scripts/benchmark.py envs [--game Pong] [--backends sync,async,envpool,ale] [--num-envs auto]
    python scripts/benchmark.py throughput [--ppo-steps 4096] [--dqn-steps 2000] [--repeats 3]
    python scripts/benchmark.py levers [--device auto]
    python scripts/benchmark.py precision [--agent ppo] [--env CartPole-v1] [--frames 100000] [--seeds 3]
    python scripts/benchmark.py memory [--env CartPole-NoVel] [--agents ppo-lstm,ppo,drqn,dqn] [--seeds 3]
    python scripts/benchmark.py rss [--agent dqn] [--env Pong] [--buffer-size 20000] [--minutes 10]
    python scripts/benchmark.py learning --game Pong --agent ppo [--preset fast] [--sticky 0] [--target 20]
    python scripts/benchmark.py distributed [--pairs ppo:appo,dqn:apex] [--actors 1,2]   (the ray extra)

Each prints its figures and writes them under --out (docs by default) as JSON, markdown and a plot;
`python scripts/benchmark.py SUBCOMMAND --help` says what it measures.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import tyro

from pixelrl import benchmarks, cli, learning

Subcommand = (
    Annotated[benchmarks.Envs, tyro.conf.subcommand("envs")]
    | Annotated[benchmarks.Throughput, tyro.conf.subcommand("throughput")]
    | Annotated[benchmarks.Levers, tyro.conf.subcommand("levers")]
    | Annotated[benchmarks.Precision, tyro.conf.subcommand("precision")]
    | Annotated[benchmarks.Memory, tyro.conf.subcommand("memory")]
    | Annotated[benchmarks.Rss, tyro.conf.subcommand("rss")]
    | Annotated[learning.Learning, tyro.conf.subcommand("learning")]
    | Annotated[benchmarks.Distributed, tyro.conf.subcommand("distributed")]
)
RUN = {
    benchmarks.Envs: benchmarks.bench_envs,
    benchmarks.Throughput: benchmarks.bench_throughput,
    benchmarks.Levers: benchmarks.bench_levers,
    benchmarks.Precision: benchmarks.bench_precision,
    benchmarks.Memory: benchmarks.bench_memory,
    benchmarks.Rss: benchmarks.bench_rss,
    learning.Learning: learning.bench_learning,
    benchmarks.Distributed: benchmarks.bench_distributed,
}


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    opts = cli.parse(Subcommand, argv, prog="benchmark.py", description=__doc__)
    command = "python scripts/benchmark.py " + " ".join(argv)
    with cli.training_exits(command), cli.one_line_errors():  # a stopped learning row continues from here
        result = RUN[type(opts)](opts, command=command, progress=lambda line: print(line, flush=True))
    if isinstance(opts, benchmarks.Throughput):
        print(json.dumps(result))  # the summary, last
    return result


if __name__ == "__main__":
    main()
