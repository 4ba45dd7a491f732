"""Run folders: what one training run writes, and the one function that runs any task into one."""

from lstmkit.runs.folder import RunFolder, resolve_model_folder, resolve_run_folder

__all__ = ["RunFolder", "resolve_model_folder", "resolve_run_folder"]
