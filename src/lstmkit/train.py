"""Training: backpropagation through time with an optimiser, a schedule, clipping and early stopping.

``run_training(config, out_dir)`` is the whole seed workflow in one call: load the data, build the model,
train it (``lstmkit.model.Model.fit``, the same path the Python API uses), keep the best epoch by the
validation metric, evaluate on the test split and save a self-contained model folder. The run folder::

    config.toml              the exact config used
    metrics.csv              one row per epoch, appended and flushed as each epoch ends
    checkpoints/best.pt      the best weights so far (written atomically)
    checkpoints/last.pt      the whole trainer state after the latest epoch, and every
                             [train] checkpoint_every batches (written atomically): resume continues from it
    tensorboard/             TensorBoard event files (when tensorboard is installed)
    report.html, report/     the HTML report: curves, evaluation, gate and cell-state views (lstmkit.report)
    metrics.json             final metrics (test_accuracy, test_precision_macro, ... or test_mae, test_rmse)
    evaluation.txt           classifiers: per-class table and confusion matrix as text
    confusion_matrix.png     classifiers
    forecast.csv, .png       forecasting sources: test forecasts beside the naive baselines
                             (``lstmkit.forecasting``)
    model/                   the saved model (see ``lstmkit.model_folder``)

``run_training(config, out_dir, resume=True)`` continues a run that was interrupted (killed, out of
power): it reloads ``checkpoints/last.pt`` and ends exactly where an uninterrupted run would have.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch.distributed as dist

from lstmkit.callbacks import (Callback, Checkpoint, CSVLogger, EarlyStopping, ProgressBar, TensorBoard,
                               load_checkpoint)
from lstmkit.config import Config, dump_config
from lstmkit.data.base import SourceData
from lstmkit.data.prepare import load_splits
from lstmkit.errors import ConfigError, LstmkitError
from lstmkit.evaluate import format_classification_report
from lstmkit.model import Model
from lstmkit.model_folder import atomic_write_bytes
from lstmkit.trainer import make_optimizer, make_scheduler, resolve_device, seed_everything
from lstmkit.viz import plot_confusion_matrix

__all__ = ["RunResult", "run_training", "apply_source_settings", "resolve_device", "seed_everything",
           "make_optimizer", "make_scheduler"]

log = logging.getLogger(__name__)

LAST_CHECKPOINT = Path("checkpoints") / "last.pt"
MAX_PLOTTED_CLASSES = 40
"""Above this many classes (a character LM's vocabulary) the confusion matrix is written as text only."""


@dataclass
class RunResult:
    """What a finished run produced."""

    run_dir: Path
    model_dir: Path
    metrics: dict[str, Any]


def _prepare_run_dir(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise LstmkitError(f"run folder {out_dir}: already exists and is not empty; choose another --out "
                           "(or continue it with --resume)")
    (out_dir / "checkpoints").mkdir(parents=True, exist_ok=True)


def _run_callbacks(config: Config, out_dir: Path, rank: int) -> list[Callback]:
    tc = config.train
    callbacks: list[Callback] = [ProgressBar(tc.progress), CSVLogger(out_dir / "metrics.csv"),
                                 Checkpoint(out_dir / "checkpoints", tc.monitor, tc.checkpoint_every)]
    if tc.patience:
        callbacks.append(EarlyStopping(tc.monitor, tc.patience))
    if tc.tensorboard and rank == 0:
        if TensorBoard.available():
            callbacks.append(TensorBoard(out_dir / "tensorboard"))
        else:
            log.debug("tensorboard is not installed; no event files are written")
    return callbacks


def _write_evaluation(model: Model, config: Config, source: SourceData, out_dir: Path) -> dict[str, Any]:
    """Test-split metrics, plus the per-class report and confusion matrix for classifiers."""
    if source.forecast is not None:  # forecasting sources: LSTM vs naive baselines, forecast.csv and .png
        from lstmkit.forecasting import write_forecast_evaluation

        return write_forecast_evaluation(model, config, source, out_dir)
    report = model.evaluate(source.test)
    if model.objective.targets == "classes":
        (out_dir / "evaluation.txt").write_text(format_classification_report(report) + "\n")
        if len(model.label_names) <= MAX_PLOTTED_CLASSES:
            plot_confusion_matrix(report["confusion_matrix"], model.label_names, out_dir / "confusion_matrix.png",
                                  title=f"{config.data.name}: test confusion matrix")
        metrics = {"test_accuracy": report["accuracy"], "test_precision_macro": report["precision_macro"],
                   "test_recall_macro": report["recall_macro"], "test_f1_macro": report["f1_macro"]}
    else:
        metrics = {"test_mae": report["mae"], "test_rmse": report["rmse"]}
        (out_dir / "evaluation.txt").write_text(
            f"test MAE {report['mae']:.6g}   test RMSE {report['rmse']:.6g}   ({len(source.test)} samples)\n")
    metrics.update({f"test_{key}": report[key] for key in model.objective.headline})
    (out_dir / "evaluation.json").write_text(json.dumps(report, indent=2))
    return {**metrics, "test_loss": report["loss"]}


def _write_report(out_dir: Path) -> None:
    """The HTML report, after everything else is saved: a failure here costs the report, not the run."""
    from lstmkit.report import write_report

    try:
        write_report(out_dir)
    except Exception as exc:  # noqa: BLE001 - the run's results are saved; only the report is lost
        log.warning("the run finished, but its report could not be written: %s: %s (try: lstmkit report %s)",
                    type(exc).__name__, exc, out_dir)


def apply_source_settings(config: Config, source: SourceData) -> Config:
    """``config`` with the ``[model]`` keys that the data decides (``source.model_settings``, such as a text
    source's ``vocab_size``) filled in where the config leaves them unset (0); a different value is an error."""
    changes = {}
    for key, value in source.model_settings.items():
        current = getattr(config.model, key)
        if current in (0, None):
            changes[key] = value
        elif current != value:
            raise ConfigError(f"config [model] {key}: the data source {source.name!r} gives {value}, got {current}; "
                              f"leave it unset (0) to take the data's")
    return dataclasses.replace(config, model=dataclasses.replace(config.model, **changes)) if changes else config


def run_training(config: Config, out_dir: str | Path, resume: bool = False) -> RunResult:
    """Train ``config`` end to end into the run folder ``out_dir`` and return the final metrics.

    With ``resume=True``, ``out_dir`` is an interrupted run: training continues from its
    ``checkpoints/last.pt`` with the model, optimiser, schedule, RNG states and data order it held.
    Under ``torch.distributed`` every process trains its share and only rank 0 writes the run folder.
    """
    tc = config.train
    out_dir = Path(out_dir)
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    state = None
    if resume:
        last = out_dir / LAST_CHECKPOINT
        if not last.is_file():
            raise LstmkitError(f"resume {out_dir}: no {LAST_CHECKPOINT} to continue from "
                               "(expected a run folder written by lstmkit train)")
        state = load_checkpoint(last)
    seed_everything(tc.seed)
    source, train, val = load_splits(config.data, tc.seed)
    config = apply_source_settings(config, source)
    model = Model(config)
    # Build (and try) the network before the run folder exists: a config that cannot work on this data
    # fails with nothing written.
    model.build(train, source.label_names, source.image_shape)
    if not resume and rank == 0:
        _prepare_run_dir(out_dir)
        dump_config(config, out_dir / "config.toml")

    model.fit(train, val, callbacks=_run_callbacks(config, out_dir, rank), label_names=source.label_names,
              image_shape=source.image_shape, resume=state)
    history = model.history
    epochs_run = len(history)
    train_seconds = sum(float(row["seconds"]) for row in history)
    metrics = {}
    model_dir = out_dir / "model"
    if rank == 0:
        metrics = _write_evaluation(model, config, source, out_dir)
        metrics.update({"best_epoch": model.best_epoch, "epochs_run": epochs_run,
                        "train_seconds": round(train_seconds, 3),
                        "seconds_per_epoch": round(train_seconds / max(epochs_run, 1), 3)})
        extra = {} if source.forecast is None else {"forecast": source.forecast.to_meta()}
        if source.label_names:  # the labels it learnt are indices into label_names, of this integer type
            extra["label_dtype"] = train.y.dtype.str
        model.save(model_dir, extra_meta={**source.meta, "data_name": config.data.name,
                                          "pixel_max": source.pixel_max, **extra})
        atomic_write_bytes(out_dir / "metrics.json", json.dumps(metrics, indent=2).encode())
        if tc.report:
            _write_report(out_dir)
    return RunResult(run_dir=out_dir, model_dir=model_dir, metrics=metrics)


