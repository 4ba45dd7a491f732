"""Callbacks for ``Trainer.fit``: progress, metric logs, checkpoints, early stopping, LR schedules, user hooks.

Each callback owns one concern. A run folder uses ``ProgressBar``, ``CSVLogger``, ``Checkpoint`` and
``EarlyStopping`` (and ``TensorBoard`` when it is installed); a notebook user picks any of them::

    model.fit(train, val=val, callbacks=[EarlyStopping("val_loss", patience=3),
                                         LambdaCallback(on_epoch_end=lambda epoch, row: print(row))])

Callbacks whose state matters after a resume (best value so far, epochs without improvement) keep it in
``state_dict`` so that ``Trainer.load_state_dict`` restores it.
"""

from __future__ import annotations

import copy
import csv
import logging
import math
import os
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from lstmkit.training import checkpoints as checkpoint_format
from lstmkit.artifacts.model_folder import atomic_write_bytes
from lstmkit.artifacts.safe_files import remove_stale_temporaries
from lstmkit.training.trainer import Callback, Trainer

__all__ = ["Callback", "ProgressBar", "CSVLogger", "Checkpoint", "EarlyStopping", "TensorBoard",
           "LambdaCallback", "LearningRateSchedule", "Monitor", "KeepBest", "save_checkpoint", "load_checkpoint"]

log = logging.getLogger(__name__)


class Monitor:
    """Which epoch is best: the value of ``name`` in the epoch's row, higher or lower is better.

    ``name = "auto"`` picks the objective's own (``val_accuracy`` for classifiers, ``val_loss`` otherwise);
    without a validation split the best epoch is the one with the lowest training loss.
    """

    def __init__(self, name: str = "auto") -> None:
        self.name = name

    def resolve(self, trainer: Trainer, row: dict[str, Any]) -> tuple[str, bool]:
        name = trainer.objective.monitor if self.name == "auto" else self.name
        if not any(key.startswith("val_") for key in row):
            return "train_loss", False
        if name not in row:
            from lstmkit.errors import ConfigError

            metrics = ", ".join(k for k in row if k.startswith("val_"))
            raise ConfigError(f"config [train] monitor: expected one of {metrics}, got {name!r}")
        return name, trainer.objective.higher_is_better(name)

    def improved(self, trainer: Trainer, row: dict[str, Any], best: float | None) -> tuple[bool, float]:
        """Whether ``row`` beats ``best``, and its value of the monitored metric."""
        name, higher = self.resolve(trainer, row)
        value = float(row[name])
        if best is None:
            return True, value
        return (value > best if higher else value < best), value


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` atomically (a kill leaves the old file or the new one) and without pickle.

    The file is safetensors with a JSON skeleton (``lstmkit.training.checkpoints``): loading it never runs code.
    """
    path = Path(path)
    data = checkpoint_format.dumps(payload)
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:  # e.g. a full disk: the temporary is gone, the previous checkpoint is intact
        raise checkpoint_format.CheckpointError(
            f"checkpoint {path}: cannot write it ({exc.strerror or exc}); the previous checkpoint, if any, is "
            "kept") from None


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint``; tensors land on ``device``.

    Raises:
        CheckpointError: an old pickle (``torch.save``) checkpoint, which is refused without being unpickled,
            or a file that is not a valid checkpoint.
    """
    import stat

    path = Path(path)
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):  # a FIFO would block the read forever
            raise checkpoint_format.CheckpointError(f"checkpoint {path}: expected a regular file, got "
                                                    f"{'a folder' if stat.S_ISDIR(mode) else 'a special file'}")
        data = path.read_bytes()
    except OSError as exc:
        raise checkpoint_format.CheckpointError(f"checkpoint {path}: cannot read it ({exc.strerror or exc})") from None
    payload = checkpoint_format.loads(data, str(path), device)
    if not isinstance(payload, dict):
        raise checkpoint_format.CheckpointError(f"checkpoint {path}: expected a dict payload, got "
                                                f"{type(payload).__name__}")
    return payload


class ProgressBar(Callback):
    """A tqdm bar per epoch with the running loss and metrics."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.bar: Any = None

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        self._open(trainer, epoch, 0)

    def _open(self, trainer: Trainer, epoch: int, initial: int) -> None:
        total = len(trainer.position.order.split(trainer.config.batch_size))
        self.bar = tqdm(desc=f"epoch {epoch}/{trainer.config.epochs}", total=total, initial=initial,
                        unit="batch", disable=not self.enabled or trainer.rank != 0, leave=True,
                        dynamic_ncols=True)

    def on_batch_end(self, trainer: Trainer, step: int, logs: dict[str, float]) -> None:
        if self.bar is None:  # resumed mid-epoch
            self._open(trainer, trainer.position.epoch, step - 1)
        self.bar.update()
        self.bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items()}, refresh=False)

    def on_epoch_end(self, trainer: Trainer, epoch: int, row: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.4f}" for k, v in row.items()
                                  if isinstance(v, float) and k not in ("lr", "seconds")}, refresh=False)
            self.bar.close()
            self.bar = None
        if not self.enabled and trainer.rank == 0:
            log.info("epoch %d/%d: %s", epoch, trainer.config.epochs,
                     ", ".join(f"{k} {v:.4f}" for k, v in row.items() if isinstance(v, float)))


class CSVLogger(Callback):
    """One row per epoch in ``path``, flushed as each epoch ends; on resume, rows after it are dropped."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.fields: list[str] | None = None

    def on_fit_start(self, trainer: Trainer) -> None:
        # Rewrite the file from the trainer's history: after a resume it holds exactly the finished epochs.
        history = trainer.position.history
        self.fields = list(history[0]) if history else None
        if trainer.rank == 0:
            with open(self.path, "w", newline="") as fh:
                if history:
                    writer = csv.DictWriter(fh, fieldnames=self.fields)
                    writer.writeheader()
                    writer.writerows(history)

    def on_epoch_end(self, trainer: Trainer, epoch: int, row: dict[str, Any]) -> None:
        if trainer.rank != 0:
            return
        new_file = self.fields is None
        self.fields = self.fields or list(row)
        with open(self.path, "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.fields)
            if new_file:
                writer.writeheader()
            writer.writerow(row)


class Checkpoint(Callback):
    """``best.pt`` (weights of the best epoch) and ``last.pt`` (the whole trainer state, for resume).

    ``last.pt`` is written at the end of every epoch and, with ``every_steps > 0``, every that many
    batches; each write is atomic. Only rank 0 writes.
    """

    def __init__(self, folder: str | Path, monitor: str = "auto", every_steps: int = 0) -> None:
        self.folder = Path(folder)
        self.monitor = Monitor(monitor)
        self.every_steps = every_steps
        self.best: float | None = None
        self.best_epoch = 0

    def on_fit_start(self, trainer: Trainer) -> None:
        if trainer.rank == 0:  # temporaries of writes that a kill or a full disk interrupted
            for path in remove_stale_temporaries(self.folder):
                log.info("removed %s, left by an interrupted checkpoint write", path)

    def on_batch_end(self, trainer: Trainer, step: int, logs: dict[str, float]) -> None:
        if self.every_steps and step % self.every_steps == 0 and trainer.rank == 0:
            save_checkpoint(self.folder / "last.pt", trainer.state_dict())

    def on_epoch_end(self, trainer: Trainer, epoch: int, row: dict[str, Any]) -> None:
        improved, value = self.monitor.improved(trainer, row, self.best)
        if improved:
            self.best, self.best_epoch = value, epoch
            if trainer.rank == 0:
                save_checkpoint(self.folder / "best.pt", {"model": trainer.module.state_dict(), "epoch": epoch,
                                                          "value": value})
        if trainer.rank == 0:
            save_checkpoint(self.folder / "last.pt", trainer.state_dict())

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]


class KeepBest(Callback):
    """Keep a copy of the weights of the best epoch by ``monitor``, to restore when training ends."""

    def __init__(self, monitor: str = "auto") -> None:
        self.monitor = Monitor(monitor)
        self.best: float | None = None
        self.best_epoch = 0
        self.weights: dict[str, torch.Tensor] | None = None

    def on_epoch_end(self, trainer: Trainer, epoch: int, row: dict[str, Any]) -> None:
        improved, value = self.monitor.improved(trainer, row, self.best)
        if improved:
            self.best, self.best_epoch = value, epoch
            self.weights = copy.deepcopy(trainer.module.state_dict())

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "weights": self.weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch, self.weights = state["best"], state["best_epoch"], state["weights"]


class EarlyStopping(Callback):
    """Stop when the monitored metric has not improved for ``patience`` epochs."""

    def __init__(self, monitor: str = "auto", patience: int = 5) -> None:
        self.monitor = Monitor(monitor)
        self.patience = patience
        self.best: float | None = None
        self.stale = 0

    def on_epoch_end(self, trainer: Trainer, epoch: int, row: dict[str, Any]) -> None:
        improved, value = self.monitor.improved(trainer, row, self.best)
        if improved:
            self.best, self.stale = value, 0
            return
        self.stale += 1
        if self.patience and self.stale >= self.patience:
            log.info("early stopping after epoch %d: no improvement for %d epochs", epoch, self.patience)
            trainer.stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "stale": self.stale}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.stale = state["best"], state["stale"]


class TensorBoard(Callback):
    """TensorBoard event files in ``log_dir``: every numeric column of each epoch's row, by epoch.

    Needs the ``tensorboard`` package; ``TensorBoard.available()`` says whether it is installed.
    """

    def __init__(self, log_dir: str | Path) -> None:
        self.log_dir = Path(log_dir)
        self.writer: Any = None

    @staticmethod
    def available() -> bool:
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            return False
        return True

    def on_fit_start(self, trainer: Trainer) -> None:
        if trainer.rank == 0:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.log_dir))

    def on_epoch_end(self, trainer: Trainer, epoch: int, row: dict[str, Any]) -> None:
        if self.writer is None:
            return
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)) and math.isfinite(value):
                split, _, metric = key.partition("_")
                tag = f"{metric}/{split}" if split in ("train", "val") else key
                self.writer.add_scalar(tag, value, epoch)
        self.writer.flush()

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class LambdaCallback(Callback):
    """Call user functions: ``on_epoch_end(epoch, row)`` and ``on_batch_end(step, logs)``."""

    def __init__(self, on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
                 on_batch_end: Callable[[int, dict[str, float]], None] | None = None) -> None:
        self._epoch, self._batch = on_epoch_end, on_batch_end

    def on_epoch_end(self, trainer: Trainer, epoch: int, row: dict[str, Any]) -> None:
        if self._epoch is not None:
            self._epoch(epoch, row)

    def on_batch_end(self, trainer: Trainer, step: int, logs: dict[str, float]) -> None:
        if self._batch is not None:
            self._batch(step, logs)


class LearningRateSchedule(Callback):
    """Set the learning rate at the start of each epoch to ``schedule(epoch, lr)`` (epochs count from 1).

    It replaces whatever the per-batch ``[train] schedule`` set; keep that ``constant`` when using this.
    """

    def __init__(self, schedule: Callable[[int, float], float]) -> None:
        self.schedule = schedule

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        for group in trainer.optimizer.param_groups:
            group["lr"] = float(self.schedule(epoch, group["lr"]))
