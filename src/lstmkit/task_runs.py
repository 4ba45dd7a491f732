"""Run folders for the tasks whose batches are not ``(x, y, lengths)``: ``seq2seq`` and ``frames``.

``lstmkit.trainer.Trainer`` feeds ``module(x, lengths=...)`` with float inputs ``(N, L, F)`` and hands the
outputs and ``y`` to an objective. A sequence-to-sequence model needs the target inside ``forward``
(teacher forcing) and integer token ids of two different lengths; a frame forecaster is trained on an
endless stream of generated sequences. Each therefore has its own focused loop (``lstmkit.seq2seq``,
``lstmkit.frames``), built from the same pieces as ``lstmkit train``: ``make_optimizer``,
``make_scheduler``, ``seed_everything``, ``CSVLogger``, atomic checkpoints, and the same run folder::

    config.toml   metrics.csv   metrics.json   evaluation.txt   checkpoints/best.pt   model/

``lstmkit train RECIPE`` looks at the recipe's ``[model] task`` (``recipe_task``) and hands recipes of
these tasks to their module (``TASK_MODULES``); each module has ``load_config(path, overrides)``,
``run(config, out_dir) -> metrics`` and ``summary(metrics) -> str``.
"""

from __future__ import annotations

import importlib
import logging
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterable, TypeVar

import tomli_w

from lstmkit.config import _build, apply_overrides, config_to_dict, read_toml
from lstmkit.errors import ConfigError, LstmkitError

# PyTorch comes in with the first run folder written, not with the import: `lstmkit train` looks up a
# recipe's task here before it checks its arguments, and a user error should answer at once.

__all__ = ["TASK_MODULES", "recipe_task", "task_module", "load_task_config", "dump_task_config",
           "start_run_dir", "EpochLog", "BestEpoch", "write_json"]

log = logging.getLogger(__name__)

TASK_MODULES = {"seq2seq": "lstmkit.seq2seq", "frames": "lstmkit.frames"}

C = TypeVar("C")


def recipe_task(recipe: str | Path | dict[str, Any] | None) -> str | None:
    """The ``[model] task`` a recipe names, unvalidated: ``recipe`` is its parsed tables (``read_toml``) or
    a TOML file (None when it names none or is unreadable)."""
    if recipe is None:
        return None
    try:
        table = recipe if isinstance(recipe, dict) else read_toml(recipe)
        task = table.get("model", {}).get("task")
    except (ConfigError, AttributeError):
        return None  # the regular loader reports the problem
    return task if isinstance(task, str) else None


def task_module(task: str) -> Any:
    """The training module of a task in ``TASK_MODULES``."""
    return importlib.import_module(TASK_MODULES[task])


def load_task_config(cls: type[C], path: str | Path | None, overrides: Iterable[str] = (),
                     table: dict[str, Any] | None = None) -> C:
    """Load a TOML file into the dataclass ``cls`` as strictly as ``lstmkit.config.load_config`` does:
    unknown keys and wrongly typed values are errors that name the key. ``table``: the file's tables
    already read (``lstmkit.config.read_toml``), so that a recipe is parsed once."""
    if table is None:
        table = read_toml(path) if path is not None else {}
    return _build(cls, apply_overrides(table, overrides), "")


def dump_task_config(config: Any) -> bytes:
    return tomli_w.dumps(config_to_dict(config)).encode()


def start_run_dir(out_dir: Path, config: Any) -> None:
    """Create the run folder (refusing a non-empty one) and write the exact config into it."""
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise LstmkitError(f"run folder {out_dir}: already exists and is not empty; choose another --out")
    from lstmkit.model_folder import atomic_write_bytes

    (out_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out_dir / "config.toml", dump_task_config(config))


def write_json(path: Path, data: Any) -> None:
    from lstmkit.model_folder import atomic_write_bytes

    atomic_write_bytes(path, json.dumps(data, indent=2).encode())


class EpochLog:
    """``metrics.csv`` through ``lstmkit.callbacks.CSVLogger``: one row per epoch, flushed and logged as it ends.

    CSVLogger reads only ``trainer.rank`` and ``trainer.position.history`` of the trainer it is given, so a
    focused loop passes this small stand-in.
    """

    def __init__(self, path: Path, epochs: int) -> None:
        self.epochs = epochs
        self.rows: list[dict[str, Any]] = []
        self._loop = SimpleNamespace(rank=0, position=SimpleNamespace(history=[]))
        from lstmkit.callbacks import CSVLogger

        self._logger = CSVLogger(path)
        self._logger.on_fit_start(self._loop)

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self._logger.on_epoch_end(self._loop, int(row["epoch"]), row)
        log.info("epoch %d/%d: %s", row["epoch"], self.epochs,
                 ", ".join(f"{k} {v:.4f}" for k, v in row.items() if isinstance(v, float) and k != "seconds"))


class BestEpoch:
    """The best epoch by one validation metric, its weights (also in ``checkpoints/best.pt``) and early stopping.

    Example::

        best = BestEpoch(out_dir / "checkpoints" / "best.pt", higher_is_better=True, patience=tc.patience)
        for epoch in ...:
            if best.update(epoch, row["val_exact_match"], model):
                break                      # no improvement for ``patience`` epochs
        model.load_state_dict(best.state)
    """

    def __init__(self, path: Path, higher_is_better: bool, patience: int = 0) -> None:
        self.path, self.higher, self.patience = Path(path), higher_is_better, patience
        self.value: float | None = None
        self.epoch, self.stale = 0, 0
        self.state: dict[str, Any] | None = None

    def update(self, epoch: int, value: float, model: Any) -> bool:
        """Record ``epoch``'s metric; keep and checkpoint the weights when it improves. True: stop now."""
        if self.value is None or (value > self.value if self.higher else value < self.value):
            self.value, self.epoch, self.stale = value, epoch, 0
            self.state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            from lstmkit.callbacks import save_checkpoint

            save_checkpoint(self.path, {"model": self.state, "epoch": epoch, "value": value})
            return False
        self.stale += 1
        if self.patience and self.stale >= self.patience:
            log.info("early stopping after epoch %d: no improvement for %d epochs", epoch, self.patience)
            return True
        return False
