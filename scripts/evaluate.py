"""Evaluate saved policies on the evaluation protocol against baselines, with statistics over runs and games.

    python scripts/evaluate.py RUN [RUN ...] [--baselines random,human,dqn2015,sb3] [--episodes N]
                               [--table nature2015|human57] [--epsilon E] [--out DIR]

Plays N whole games per run (eval mode: no life-loss episodes, raw scores, each run's own sticky-action
setting) with seeds disjoint from training. Runs that share agent, game and protocol are grouped as seeds.
For each game: mean, median, std and a bootstrap 95% CI of the raw score and the human-normalised score,
for every group and baseline: random (played here, cached beside the runs), human and DQN (published),
sb3 (Stable-Baselines3 runs trained with `train.py sb3-ppo|sb3-dqn|sb3-a2c`, given or found beside the
runs). Over runs and games: IQM, median, mean and optimality gap with stratified bootstrap CIs, the
probability of improvement between agents, and performance profiles (Agarwal et al. 2021). Writes
eval.json and eval.md beside each run, and the combined eval.json, eval.md, eval.png (score bars) and
eval_profiles.png into --out (default: the run directory for one run, else the runs' common folder).
"""

from __future__ import annotations

from typing import Any

from pixelrl import cli, compare


def main(argv: list[str] | None = None) -> dict[str, Any]:
    opts = cli.parse(compare.EvaluateOptions, argv, prog="evaluate.py", description=__doc__)
    with cli.one_line_errors():
        result = compare.evaluate(opts)
    print(result["markdown"])
    print(compare.summary_line(result))
    return result


if __name__ == "__main__":
    main()
