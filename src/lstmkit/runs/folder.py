"""``RunFolder``: the one owner of the file names of a training run.

Every task writes the same layout (files a task does not produce are simply absent)::

    config.toml              the exact config used
    metrics.csv              one row per epoch, appended and flushed as each epoch ends
    metrics.json             final metrics (test_*, best_epoch, epochs_run, train_seconds)
    evaluation.txt/.json     the test evaluation as text (and JSON where the task has a report)
    confusion_matrix.png     classifiers
    forecast.csv             forecasters: test forecasts beside the naive baselines (and forecast.png)
    attention.png            seq2seq: attention of a few test examples
    frames.png               frames: input, predicted and true frames of a few test sequences
    criterion.json           long-lag tasks judged by ``lstmkit longlag``
    checkpoints/best.pt      the best weights so far (written atomically)
    checkpoints/last.pt      the whole trainer state (written atomically): ``--resume`` continues from it
    tensorboard/             TensorBoard event files (when tensorboard is installed)
    report.html, report/     the HTML report
    model/                   the model folder (``lstmkit.artifacts.model_folder``)

Commands that take a model folder also take a run folder and use its ``model/``
(``resolve_model_folder``); commands that need a run folder refuse a model folder with a message that
says which folder to give (``resolve_run_folder``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lstmkit.errors import LstmkitError

__all__ = ["RunFolder", "resolve_model_folder", "resolve_run_folder"]

_MODEL_MARKERS = ("manifest.json", "model.safetensors", "meta.json")


@dataclass(frozen=True)
class RunFolder:
    """The paths of one run folder (nothing is created until ``create``)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    config = property(lambda self: self.root / "config.toml")
    metrics_csv = property(lambda self: self.root / "metrics.csv")
    metrics_json = property(lambda self: self.root / "metrics.json")
    evaluation_txt = property(lambda self: self.root / "evaluation.txt")
    evaluation_json = property(lambda self: self.root / "evaluation.json")
    confusion_matrix_png = property(lambda self: self.root / "confusion_matrix.png")
    forecast_csv = property(lambda self: self.root / "forecast.csv")
    attention_png = property(lambda self: self.root / "attention.png")
    frames_png = property(lambda self: self.root / "frames.png")
    criterion_json = property(lambda self: self.root / "criterion.json")
    checkpoints = property(lambda self: self.root / "checkpoints")
    best_checkpoint = property(lambda self: self.root / "checkpoints" / "best.pt")
    last_checkpoint = property(lambda self: self.root / "checkpoints" / "last.pt")
    tensorboard = property(lambda self: self.root / "tensorboard")
    report_html = property(lambda self: self.root / "report.html")
    report_assets = property(lambda self: self.root / "report")
    model = property(lambda self: self.root / "model")

    def create(self, config_toml: bytes) -> None:
        """Create the folder (refusing a non-empty one) and write the exact config into it."""
        from lstmkit.artifacts.model_folder import atomic_write_bytes

        if self.root.exists() and (not self.root.is_dir() or any(self.root.iterdir())):
            raise LstmkitError(f"run folder {self.root}: already exists and is not empty; choose another --out "
                               "(or continue it with --resume)")
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.config, config_toml)

    def require_resumable(self) -> None:
        """Refuse a folder that holds no run to continue, naming what is missing."""
        if is_model_folder(self.root):
            raise LstmkitError(f"train --resume {self.root}: this is a model folder; give the run folder that "
                               f"holds it ({self.root.parent})")
        missing = [str(path.relative_to(self.root)) for path in (self.config, self.last_checkpoint)
                   if not path.is_file()]
        if missing:
            raise LstmkitError(f"train --resume {self.root}: no {' and no '.join(missing)} to continue from "
                               "(expected a run folder written by lstmkit train)")


def is_model_folder(path: Path) -> bool:
    return path.is_dir() and all((path / name).exists() for name in _MODEL_MARKERS[1:])


def resolve_model_folder(path: str | Path) -> Path:
    """``path`` itself when it is a model folder; its ``model/`` when it is a run folder that holds one."""
    path = Path(path)
    if not is_model_folder(path) and is_model_folder(path / "model"):
        return path / "model"
    return path


def resolve_run_folder(path: str | Path, command: str) -> RunFolder:
    """The run folder ``path``; a model folder (``RUN/model``) is refused with a pointer to its run."""
    path = Path(path)
    if is_model_folder(path):
        hint = (f"give the run folder that holds it ({path.parent})" if (path.parent / "config.toml").is_file()
                else "give a run folder written by lstmkit train")
        raise LstmkitError(f"{command} {path}: expected a run folder, got a model folder; {hint}")
    if not path.is_dir():
        raise LstmkitError(f"{command} {path}: no such run folder")
    return RunFolder(path)
