"""Runs: the run folder (``folder``), training any task into one (``train.run_task``) and hyperparameter
search over any task's recipe (``tune``)."""

from lstmkit.runs.folder import RunFolder, resolve_model_folder, resolve_run_folder

__all__ = ["RunFolder", "resolve_model_folder", "resolve_run_folder"]
