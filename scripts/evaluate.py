"""Evaluate a saved policy on the evaluation protocol and report it against reference scores.

    python scripts/evaluate.py RUN_DIR_OR_CHECKPOINT [--episodes N] [--seed S]

Plays N whole games (eval mode: no life-loss episodes, raw rewards, sticky actions as in training) with
seeds disjoint from training, then prints and writes eval.json and eval.md beside the run: mean, median,
std, a bootstrap 95% CI of the raw score, and the human-normalised score (Mnih et al. 2015 table).
"""

from __future__ import annotations

from typing import Any

from pixelrl import cli, evaluation


def main(argv: list[str] | None = None) -> dict[str, Any]:
    opts = cli.parse(evaluation.EvaluateOptions, argv, prog="evaluate.py", description=__doc__)
    with cli.one_line_errors():
        result = evaluation.evaluate(opts)
    print(result["markdown"])
    print(evaluation.summary_line(result))
    return result


if __name__ == "__main__":
    main()
