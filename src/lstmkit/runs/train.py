"""``run_task``: train any task end to end into a run folder, through the one training loop.

The steps, the same for every task (``lstmkit.tasks``):

1. apply the ``[train]`` runtime settings and seed Python, NumPy and PyTorch;
2. ``task.prepare(config)``: data, network and objective (a config that cannot work fails here, with
   nothing written);
3. create the run folder and write the exact config (``RunFolder``);
4. ``Trainer.fit`` with the run's callbacks: progress bar, ``metrics.csv``, checkpoints (``best.pt`` and the
   resumable ``last.pt``), early stopping, TensorBoard, and ``KeepBest``, whose weights the model ends with;
5. on the main process: ``job.finish(run)`` evaluates on the test split and writes the evaluation files and
   the model folder; then ``metrics.json`` and the HTML report.

``run_task(..., resume=True)`` continues an interrupted run from ``checkpoints/last.pt``: the weights,
optimiser, schedule, data order, position, running sums, RNG states and callback states it held, so it ends
bit-identical to a run that was never interrupted (on the CPU). Under ``torch.distributed`` every process
trains its share of each batch and only rank 0 writes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch.distributed as dist

from lstmkit.training.callbacks import (Callback, Checkpoint, CSVLogger, EarlyStopping, KeepBest, ProgressBar, TensorBoard,
                               load_checkpoint)
from lstmkit.config import TrainConfig
from lstmkit.artifacts.model_folder import atomic_write_bytes
from lstmkit.runs.folder import RunFolder
from lstmkit.tasks import Task, task_named
from lstmkit.training.trainer import Trainer, apply_runtime, seed_everything

__all__ = ["RunResult", "run_task", "run_training", "run_callbacks", "write_report"]

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What a finished run produced."""

    run_dir: Path
    model_dir: Path
    metrics: dict[str, Any]


def run_callbacks(config: TrainConfig, run: RunFolder, rank: int) -> list[Callback]:
    """The callbacks of a run folder: progress, the epoch log, checkpoints, early stopping, TensorBoard."""
    callbacks: list[Callback] = [ProgressBar(config.progress), CSVLogger(run.metrics_csv),
                                 Checkpoint(run.checkpoints, config.monitor, config.checkpoint_every)]
    if config.patience:
        callbacks.append(EarlyStopping(config.monitor, config.patience))
    if config.tensorboard and rank == 0:
        if TensorBoard.available():
            callbacks.append(TensorBoard(run.tensorboard))
        else:
            log.debug("tensorboard is not installed; no event files are written")
    return callbacks


def write_report(run: RunFolder) -> None:
    """The HTML report, after everything else is saved: a failure here costs the report, not the run."""
    from lstmkit.report import write_report as write_html_report

    try:
        write_html_report(run.root)
    except Exception as exc:  # noqa: BLE001 - the run's results are saved; only the report is lost
        log.warning("the run finished, but its report could not be written: %s: %s (try: lstmkit report %s)",
                    type(exc).__name__, exc, run.root)


def run_task(config: Any, out_dir: str | Path, resume: bool = False, task: Task | None = None) -> RunResult:
    """Train ``config`` (a task's config; ``task`` defaults to the one its ``[model] task`` names) into the run
    folder ``out_dir`` and return the final metrics (see the module docstring)."""
    task = task or task_named(config.model.task)
    tc = config.train
    run = RunFolder(Path(out_dir))
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    state = None
    if resume:
        run.require_resumable()
        state = load_checkpoint(run.last_checkpoint)
    device = apply_runtime(tc)
    seed_everything(tc.seed)
    job = task.prepare(config)
    if not resume and rank == 0:
        run.create(task.dump_config(job.config))
    keep_best = KeepBest(tc.monitor)
    job.module.to(device)
    trainer = Trainer(job.module, job.objective, tc, [*run_callbacks(tc, run, rank), keep_best], device=device)
    if state is not None:
        trainer.load_state_dict(state, trainer.steps_per_epoch(len(job.train)))
    history = trainer.fit(job.train, job.val)
    if keep_best.weights is not None:
        job.module.load_state_dict(keep_best.weights)
    job.module.cpu().eval()
    metrics: dict[str, Any] = {}
    if rank == 0:
        metrics = job.finish(run)
        train_seconds = sum(float(row["seconds"]) for row in history)
        metrics.update({"best_epoch": keep_best.best_epoch, "epochs_run": len(history),
                        "train_seconds": round(train_seconds, 3),
                        "seconds_per_epoch": round(train_seconds / max(len(history), 1), 3)})
        atomic_write_bytes(run.metrics_json, json.dumps(metrics, indent=2).encode())
        if tc.report:
            write_report(run)
    return RunResult(run_dir=run.root, model_dir=run.model, metrics=metrics)


def run_training(config: Any, out_dir: str | Path, resume: bool = False) -> RunResult:
    """``run_task`` for a sequence model's ``lstmkit.config.Config`` (the name the Python API has had)."""
    return run_task(config, out_dir, resume=resume)
