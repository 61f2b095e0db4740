"""Train a backbone from nets/ on scikit-learn's bundled 8x8 digits: the supervised core's demo.

    python scripts/supervised.py --net mlp|cnn|lstm [--seed 0] [--run-dir runs/digits-mlp]

The same `nets.fit` trains all three: an MLP on the 64 pixels, an IMPALA-style CNN on the image as
uint8 pixels, and an LSTM reading the image row by row (8 steps of 8 pixels). Writes config.json,
metrics.jsonl and curve.png to the run directory; the last printed line is one JSON object.
"""

from __future__ import annotations

import json

from pixelrl import cli, supervised


def main(argv: list[str] | None = None) -> dict[str, float]:
    cfg = cli.parse(supervised.SupervisedConfig, argv, prog="supervised.py", description=__doc__)
    with cli.one_line_errors():
        result = supervised.train_digits(cfg)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
