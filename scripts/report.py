"""Summarise a run directory for the docs: the figures a reader asks first, read from metrics.jsonl.

    python scripts/report.py runs/<run> [--out docs/ppo_pong]   # writes <out>_summary.json, <out>_curve.png
    python scripts/report.py runs/<run> --out docs/ppo_pong --compare runs/<other> ...   # + <out>_runs.png

Prints a markdown table: frames, agent steps, wall time, training speed, first and last 20 training games
(raw score), and every evaluation. Wall time runs from the first to the last logged line (a resumed run's
pause counts too).
"""

from __future__ import annotations

from typing import Any

from pixelrl import cli, report


def main(argv: list[str] | None = None) -> dict[str, Any]:
    opts = cli.parse(report.ReportOptions, argv, prog="report.py", description=__doc__)
    with cli.one_line_errors():
        summary, written = report.report(opts)
    print(report.markdown(summary))
    for path in written:
        print(f"wrote {path}")
    return summary


if __name__ == "__main__":
    main()
