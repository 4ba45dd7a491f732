"""``run_training(config, out_dir)``: train a sequence model's recipe into a run folder.

The one runner of every task is ``lstmkit.runs.train.run_task``; this is the same call for a
``lstmkit.config.Config``, kept because it is the name the Python API has always had. See
``lstmkit.runs.folder`` for what the run folder holds.
"""

from __future__ import annotations

from pathlib import Path

from lstmkit.config import Config
from lstmkit.runs.train import RunResult, run_task

__all__ = ["RunResult", "run_training"]


def run_training(config: Config, out_dir: str | Path, resume: bool = False) -> RunResult:
    """Train ``config`` end to end into the run folder ``out_dir`` (``resume=True`` continues it)."""
    return run_task(config, out_dir, resume=resume)
