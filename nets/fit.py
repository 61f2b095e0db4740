"""`fit`: the supervised training loop every backbone is first proven with.

Shuffled mini-batches, a validation pass per epoch, early stopping on validation loss that restores the
best weights, an optional learning-rate schedule, a progress bar and a returned history.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from nets.augment import Augment
from nets.device import resolve_device
from nets.losses import Loss, get_loss
from nets.optim import lr_factor, make_optimizer, set_lr

Data = tuple[torch.Tensor, torch.Tensor]
Metric = Callable[[torch.Tensor, torch.Tensor], float]


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return (logits.argmax(-1) == labels).float().mean().item()


@dataclass
class History:
    """Per-epoch record of a `fit` call."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_metrics: dict[str, list[float]] = field(default_factory=dict)
    lr: list[float] = field(default_factory=list)
    best_epoch: int = -1  # 0-based epoch whose weights the model holds at the end
    stopped_early: bool = False

    @property
    def epochs(self) -> int:
        return len(self.train_loss)

    def rows(self) -> list[dict[str, float]]:
        """One dict per epoch, ready for a metrics.jsonl."""
        rows = []
        for i in range(self.epochs):
            row = {"epoch": i + 1, "train_loss": self.train_loss[i], "lr": self.lr[i]}
            if self.val_loss:
                row["val_loss"] = self.val_loss[i]
            row.update({f"val_{k}": v[i] for k, v in self.val_metrics.items()})
            rows.append(row)
        return rows


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Data,
    loss: str | Loss = "cross_entropy",
    *,
    batch_size: int = 1024,
    metrics: dict[str, Metric] | None = None,
    device: str | torch.device = "auto",
) -> dict[str, float]:
    """Mean loss (and metrics) of `model` on `data`, in eval mode (dropout off, batch-norm running stats)."""
    loss_fn, dev = get_loss(loss), resolve_device(device)
    was_training = model.training
    model.eval()
    x, y = data
    outputs = torch.cat([model(x[i : i + batch_size].to(dev)) for i in range(0, len(x), batch_size)])
    y = y.to(dev)
    result = {"loss": loss_fn(outputs, y).item()}
    result.update({k: fn(outputs, y) for k, fn in (metrics or {}).items()})
    model.train(was_training)
    return result


def fit(
    model: nn.Module,
    train: Data,
    val: Data | None = None,
    *,
    loss: str | Loss = "cross_entropy",
    optimizer: str = "adam",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    batch_size: int = 64,
    epochs: int = 100,
    patience: int | None = 10,
    lr_schedule: str | Callable[[float], float] = "constant",
    augment: Augment | None = None,
    metrics: dict[str, Metric] | None = None,
    grad_clip: float | None = None,
    device: str | torch.device = "auto",
    seed: int = 0,
    progress: bool = True,
) -> History:
    """Train `model` (x -> prediction) on `train` = (x, y); early-stop on `val` loss after `patience` epochs
    without improvement and restore the best weights. Returns the `History`."""
    x_train, y_train = train
    if len(x_train) != len(y_train):
        raise ValueError(f"train inputs and targets differ in length: {len(x_train)} vs {len(y_train)}")
    if batch_size < 1 or epochs < 1:
        raise ValueError(f"batch_size and epochs must be >= 1, got batch_size={batch_size}, epochs={epochs}")
    dev = resolve_device(device)
    model.to(dev)
    loss_fn = get_loss(loss)
    opt = make_optimizer(optimizer, model.parameters(), lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = math.ceil(len(x_train) / batch_size)
    total_steps = steps_per_epoch * epochs

    history = History()
    best_loss, best_state, since_best = math.inf, None, 0
    bar = tqdm(range(epochs), desc="fit", unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        running, seen = 0.0, 0
        for i in range(steps_per_epoch):
            set_lr(opt, lr * lr_factor(lr_schedule, (epoch * steps_per_epoch + i) / total_steps))
            idx = order[i * batch_size : (i + 1) * batch_size]
            mb_x, mb_y = x_train[idx].to(dev), y_train[idx].to(dev)
            if augment is not None:
                mb_x = augment(mb_x)
            mb_loss = loss_fn(model(mb_x), mb_y)
            opt.zero_grad(set_to_none=True)
            mb_loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            running += mb_loss.item() * len(idx)
            seen += len(idx)
        history.train_loss.append(running / seen)
        history.lr.append(opt.param_groups[0]["lr"])

        if val is None:
            history.best_epoch = epoch
            bar.set_postfix(train_loss=f"{history.train_loss[-1]:.4f}")
            continue
        result = evaluate(model, val, loss_fn, metrics=metrics, device=dev)
        history.val_loss.append(result.pop("loss"))
        for k, v in result.items():
            history.val_metrics.setdefault(k, []).append(v)
        bar.set_postfix(train_loss=f"{history.train_loss[-1]:.4f}", val_loss=f"{history.val_loss[-1]:.4f}")
        if history.val_loss[-1] < best_loss:
            best_loss, since_best, history.best_epoch = history.val_loss[-1], 0, epoch
            best_state = copy.deepcopy(model.state_dict())
        else:
            since_best += 1
            if patience is not None and since_best >= patience:
                history.stopped_early = True
                break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    return history
