"""Training: backpropagation through time with an optimiser, a schedule, clipping and early stopping.

``run_training(config, out_dir)`` is the whole seed workflow in one call: prepare the data, build the model,
train it, keep the best checkpoint by the validation metric, evaluate on the test split and save a
self-contained model folder. The run folder it writes::

    config.toml              the exact config used
    metrics.csv              one row per epoch, appended and flushed as each epoch ends
    checkpoints/best.pt      the best weights so far (written atomically)
    checkpoints/last.pt      model, optimiser and schedule after the latest epoch (written atomically)
    metrics.json             final metrics (test_accuracy, test_precision_macro, ...)
    evaluation.txt           per-class table and confusion matrix as text
    confusion_matrix.png
    model/                   the saved model (see ``lstmkit.model_folder``)
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from lstmkit.config import Config, TrainConfig, dump_config
from lstmkit.data.prepare import PreparedData, prepare_data
from lstmkit.errors import ConfigError, LstmkitError
from lstmkit.evaluate import classification_report, format_classification_report, predict_logits
from lstmkit.model_folder import atomic_write_bytes, save_model
from lstmkit.models import InputSpec, build_model
from lstmkit.viz import plot_confusion_matrix

__all__ = ["RunResult", "run_training", "resolve_device", "seed_everything", "make_optimizer", "make_scheduler", "train_epoch"]

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What a finished run produced."""

    run_dir: Path
    model_dir: Path
    metrics: dict[str, Any]


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available, else the CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError('config [train] device: "cuda" was asked for, but PyTorch sees no CUDA device')
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch so a run on the CPU repeats exactly."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_optimizer(params: Any, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig,
                   steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler:
    """A schedule stepped once per batch: constant, cosine decay, step decay or one-cycle."""
    total = config.epochs * steps_per_epoch
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_size * steps_per_epoch,
                                               gamma=config.gamma)
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def _save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _loss_and_accuracy(module: nn.Module, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor,
                       batch_size: int, device: torch.device) -> tuple[float, float]:
    logits = predict_logits(module, x, batch_size=max(batch_size, 256), device=device)
    return float(loss_fn(logits, y)), float((logits.argmax(-1) == y).float().mean())


def train_epoch(module: nn.Module, optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler,
                loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int,
                generator: torch.Generator, grad_clip: float, bar: Any = None) -> tuple[float, float]:
    """One pass over ``(x, y)`` in shuffled mini-batches: forward, BPTT, clip, step. Returns mean loss, accuracy."""
    module.train()
    order = torch.randperm(len(y), generator=generator).to(x.device)
    total_loss, correct, seen = 0.0, 0, 0
    for batch in order.split(batch_size):
        xb, yb = x[batch], y[batch]
        logits = module(xb)  # (B, C)
        loss = loss_fn(logits, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(module.parameters(), grad_clip)
        optimizer.step()
        scheduler.step()
        total_loss += float(loss.detach()) * len(batch)
        correct += int((logits.argmax(-1) == yb).sum())
        seen += len(batch)
        if bar is not None:
            bar.update()
            bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}", refresh=False)
    return total_loss / seen, correct / seen


def _prepare_run_dir(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise LstmkitError(f"run folder {out_dir}: already exists and is not empty; choose another --out")
    (out_dir / "checkpoints").mkdir(parents=True, exist_ok=True)


def run_training(config: Config, out_dir: str | Path, data: PreparedData | None = None) -> RunResult:
    """Train ``config`` end to end into the run folder ``out_dir`` and return the final metrics."""
    tc = config.train
    device = resolve_device(tc.device)
    if tc.num_threads:
        torch.set_num_threads(tc.num_threads)
    seed_everything(tc.seed)
    data = data if data is not None else prepare_data(config.data, tc.seed)
    out_dir = Path(out_dir)
    _prepare_run_dir(out_dir)
    dump_config(config, out_dir / "config.toml")

    _, length, features = data.train.x.shape
    spec = InputSpec(input_size=features, num_outputs=len(data.label_names), sequence_length=length,
                     image_shape=data.source.image_shape)
    torch.manual_seed(tc.seed)
    module = build_model(config.model, spec).to(device)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.model.label_smoothing)
    x_train = torch.from_numpy(data.train.x).to(device)
    y_train = torch.from_numpy(data.train.y).to(device)
    steps_per_epoch = math.ceil(len(y_train) / tc.batch_size)
    optimizer = make_optimizer(module.parameters(), tc)
    scheduler = make_scheduler(optimizer, tc, steps_per_epoch)
    shuffle = torch.Generator().manual_seed(tc.seed)

    val = None
    if data.val is not None:
        val = (torch.from_numpy(data.val.x), torch.from_numpy(data.val.y))
    # Without a validation split the best epoch is the one with the lowest training loss.
    higher_is_better = tc.monitor == "val_accuracy" or val is None
    best_value, best_epoch, stale = -math.inf if higher_is_better else math.inf, 0, 0
    fields = ["epoch", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds"]
    started = time.perf_counter()
    with open(out_dir / "metrics.csv", "w", newline="") as metrics_file:
        writer = csv.DictWriter(metrics_file, fieldnames=fields)
        writer.writeheader()
        for epoch in range(1, tc.epochs + 1):
            epoch_start = time.perf_counter()
            lr = optimizer.param_groups[0]["lr"]
            bar = tqdm(desc=f"epoch {epoch}/{tc.epochs}", total=steps_per_epoch, unit="batch",
                       disable=not tc.progress, leave=True, dynamic_ncols=True)
            train_loss, train_accuracy = train_epoch(module, optimizer, scheduler, loss_fn, x_train, y_train,
                                                     tc.batch_size, shuffle, tc.grad_clip, bar)
            row: dict[str, Any] = {"epoch": epoch, "lr": lr, "train_loss": train_loss,
                                   "train_accuracy": train_accuracy, "val_loss": "", "val_accuracy": ""}
            if val is not None:
                row["val_loss"], row["val_accuracy"] = _loss_and_accuracy(module, loss_fn, *val, tc.batch_size, device)
                bar.set_postfix(loss=f"{row['train_loss']:.4f}", acc=f"{row['train_accuracy']:.4f}",
                                val_loss=f"{row['val_loss']:.4f}", val_acc=f"{row['val_accuracy']:.4f}")
            bar.close()
            row["seconds"] = round(time.perf_counter() - epoch_start, 3)
            writer.writerow(row)
            metrics_file.flush()
            if not tc.progress:
                log.info("epoch %d/%d: %s", epoch, tc.epochs,
                         ", ".join(f"{k} {v:.4f}" for k, v in row.items() if isinstance(v, float)))

            value = row[tc.monitor] if val is not None else -row["train_loss"]
            improved = value > best_value if higher_is_better else value < best_value
            if improved:
                best_value, best_epoch, stale = value, epoch, 0
                _save_checkpoint(out_dir / "checkpoints" / "best.pt",
                                 {"model": module.state_dict(), "epoch": epoch, "monitor": tc.monitor, "value": value})
            else:
                stale += 1
            _save_checkpoint(out_dir / "checkpoints" / "last.pt",
                             {"model": module.state_dict(), "optimizer": optimizer.state_dict(),
                              "scheduler": scheduler.state_dict(), "epoch": epoch})
            if tc.patience and stale >= tc.patience:
                log.info("early stopping after epoch %d: %s has not improved for %d epochs",
                         epoch, tc.monitor, tc.patience)
                break
    train_seconds = time.perf_counter() - started

    best = torch.load(out_dir / "checkpoints" / "best.pt", map_location=device, weights_only=True)
    module.load_state_dict(best["model"])
    test_x, test_y = torch.from_numpy(data.test.x), torch.from_numpy(data.test.y)
    logits = predict_logits(module, test_x, batch_size=512, device=device)
    report = classification_report(test_y.numpy(), logits.argmax(-1).numpy(), data.label_names)
    metrics = {
        "test_accuracy": report["accuracy"],
        "test_precision_macro": report["precision_macro"],
        "test_recall_macro": report["recall_macro"],
        "test_f1_macro": report["f1_macro"],
        "test_loss": float(loss_fn(logits, test_y)),
        "best_epoch": best_epoch,
        "epochs_run": epoch,
        "train_seconds": round(train_seconds, 3),
        "seconds_per_epoch": round(train_seconds / epoch, 3),
    }
    (out_dir / "evaluation.txt").write_text(format_classification_report(report) + "\n")
    (out_dir / "evaluation.json").write_text(json.dumps(report, indent=2))
    plot_confusion_matrix(report["confusion_matrix"], data.label_names, out_dir / "confusion_matrix.png",
                          title=f"{config.data.name}: test confusion matrix")
    model_dir = save_model(out_dir / "model", module.cpu(), config, spec, data.label_names, data.standardizer,
                           extra_meta={"data_name": config.data.name, "pixel_max": data.source.pixel_max})
    atomic_write_bytes(out_dir / "metrics.json", json.dumps(metrics, indent=2).encode())
    return RunResult(run_dir=out_dir, model_dir=model_dir, metrics=metrics)
