"""Train a backbone from nets/ on scikit-learn's bundled 8x8 digits: the supervised core's demo.

The same `nets.fit` trains all three: an MLP on the 64 pixels, an IMPALA-style CNN on the image as
uint8 pixels, and an LSTM reading the image row by row (8 steps of 8 pixels). Writes config.json,
metrics.jsonl and curve.png to the run directory.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

import nets
from agents.common import check_config
from pixelrl.logger import RunLogger
from pixelrl.plots import plot_supervised


@dataclass(frozen=True)
class SupervisedConfig:
    net: Literal["mlp", "cnn", "lstm"] = "mlp"
    """Backbone: mlp (64 pixels), cnn (IMPALA-style on 1x8x8 uint8 images), lstm (8 rows of 8 pixels)."""
    seed: int = 0
    """Seed of the 70/15/15 split, the initial weights and the mini-batch order."""
    epochs: int = 150
    """Upper bound on epochs; early stopping usually ends sooner."""
    patience: int = 20
    """Epochs without a better validation loss before stopping (the best weights are restored)."""
    batch_size: int = 64
    """Mini-batch size."""
    lr: float = 2e-3
    """Adam learning rate at the start of the cosine schedule."""
    weight_decay: float = 1e-4
    """L2 penalty on the weights (Adam's coupled form)."""
    dropout: float = 0.2
    """Dropout before the classifier (MLP hidden layers, CNN dense layer)."""
    augment: bool = True
    """Random 1-pixel shifts of training images (cnn only; digits must not be flipped)."""
    run_dir: Path | None = None
    """Where to write config.json, metrics.jsonl and curve.png (default runs/digits-<net>-s<seed>)."""
    wandb: Literal["auto", "online", "offline", "off"] = "off"
    """Weights & Biases: auto = online when logged in, else offline."""
    device: str = "auto"
    """cpu, cuda or auto."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        check_config(
            self,
            positive=("epochs", "batch_size", "lr"),
            non_negative=("seed", "patience", "weight_decay"),
            unit=("dropout",),
        )


def load_digits_split(seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The 1,797 digits of scikit-learn, split 70/15/15 (stratified) with a fixed seed."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)  # x: (1797, 64) floats in 0..16
    x_train, x_rest, y_train, y_rest = train_test_split(x, y, test_size=0.3, random_state=seed, stratify=y)
    x_val, x_test, y_val, y_test = train_test_split(
        x_rest, y_rest, test_size=0.5, random_state=seed, stratify=y_rest
    )
    return {"train": (x_train, y_train), "val": (x_val, y_val), "test": (x_test, y_test)}


def as_inputs(net: str, x: np.ndarray) -> torch.Tensor:
    """Shape the 64 pixel intensities (0..16) for each backbone."""
    if net == "cnn":  # pixels as the Atari nets see them: uint8 images, scaled inside the network
        return torch.from_numpy(np.round(x * (255 / 16)).astype(np.uint8)).view(-1, 1, 8, 8)
    scaled = torch.from_numpy(x / 16.0).float()
    return scaled.view(-1, 8, 8) if net == "lstm" else scaled  # lstm: (B, T=8 rows, 8 pixels)


def build_model(cfg: SupervisedConfig) -> nets.BackboneWithHead:
    if cfg.net == "mlp":
        backbone = nets.MLP((64,), hidden=(256, 256), dropout=cfg.dropout)
    elif cfg.net == "cnn":
        backbone = nets.ImpalaCNN((1, 8, 8), channels=(32, 64), out_dim=256, dropout=cfg.dropout)
    else:
        backbone = nets.LSTMCore(nets.MLP((8,), hidden=(64,)), hidden_size=128)
    head = nets.CategoricalPolicyHead(backbone.out_dim, 10)  # logits over the 10 digits
    return nets.BackboneWithHead(backbone, head, sequence=cfg.net == "lstm")


def train_digits(cfg: SupervisedConfig) -> dict[str, float]:
    """Fit, test and log one backbone; returns the test figures."""
    nets.seed_everything(cfg.seed)
    run_dir = cfg.run_dir or Path("runs") / f"digits-{cfg.net}-s{cfg.seed}"
    raw = load_digits_split(cfg.seed)
    split = {k: (as_inputs(cfg.net, x), torch.from_numpy(y)) for k, (x, y) in raw.items()}
    model = build_model(cfg)
    augment = (lambda mb_x: nets.random_shift(mb_x, pad=1)) if cfg.augment and cfg.net == "cnn" else None

    config = {"script": "supervised", **asdict(cfg), "run_dir": str(run_dir)}
    with RunLogger(run_dir, config, wandb_mode=cfg.wandb, step_metric="epoch") as logger:
        start = time.perf_counter()
        history = nets.fit(
            model, split["train"], split["val"],
            loss="cross_entropy", optimizer="adam", lr=cfg.lr, weight_decay=cfg.weight_decay,
            batch_size=cfg.batch_size, epochs=cfg.epochs, patience=cfg.patience, lr_schedule="cosine",
            augment=augment, metrics={"accuracy": nets.accuracy}, device=cfg.device, seed=cfg.seed,
            progress=cfg.progress,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        for row in history.rows():
            logger.log(row)
        test = nets.evaluate(model, split["test"], "cross_entropy", metrics={"accuracy": nets.accuracy},
                             device=cfg.device)  # fmt: skip
        result = {
            "net": cfg.net,
            "test_accuracy": round(test["accuracy"], 4),
            "test_loss": round(test["loss"], 4),
            "best_epoch": history.best_epoch + 1,
            "epochs_run": history.epochs,
            "train_seconds": round(seconds, 1),
            "parameters": sum(p.numel() for p in model.parameters()),
        }
        logger.log(
            {
                "epoch": history.epochs,
                "test_accuracy": result["test_accuracy"],
                "test_loss": result["test_loss"],
            }
        )
        curve = plot_supervised(history, run_dir / "curve.png", title=f"digits, {cfg.net}")
        logger.log_image(curve, history.epochs, "charts/curve")
    return result | {"run_dir": str(run_dir)}
