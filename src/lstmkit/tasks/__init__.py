"""The task protocol: one registry entry per kind of model, and everything else derived from it.

A ``Task`` supplies, for its recipes:

- its config (``load_config``: strict TOML plus ``--set`` overrides; ``dump_config``);
- its data, network and objective, prepared as a ``Job`` (``prepare``): training ``Batches`` (or an
  ``ArrayDataset``), what validation judges, the ``nn.Module`` and the ``Objective`` whose ``step`` is the
  batch loss and whose ``validate`` gives the epoch's validation metrics;
- its test evaluation and model folder (``Job.finish``), written into the run folder;
- the schema of its models' inputs and outputs (``schema``), from which export and serving follow;
- its loaded form (``load``): the object ``lstmkit.load(folder)`` returns, with ``predict``, ``evaluate``
  and the task's own verbs.

One loop (``lstmkit.training.trainer.Trainer``) trains every task, driven by ``lstmkit.runs.train.run_task``, so
every task gets resume, data parallelism, early stopping, checkpoints, TensorBoard and the report. A
recipe's ``[model] task`` picks its entry (``task_named``); the names that no entry claims are the
sequence models of ``lstmkit.models`` (classifier, regressor, text, tagger, language models), which the
``sequence`` entry serves. To add a task, write one module that registers a ``Task`` (see
``lstmkit/tasks/template.py``), a recipe in ``configs/`` and its tests. A task whose module needs PyTorch may
keep its config classes in a light ``<task>_config.py`` (``TASK_CONFIGS``), as seq2seq and frames do, so that
``lstmkit train`` refuses a bad recipe before the heavy import.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from lstmkit.errors import LstmkitError

__all__ = ["Task", "Job", "Evaluation", "evaluate_trained", "trained_schema", "predict_trained", "trained_task", "register_task", "task_named", "load_trained", "table_task", "load_recipe", "TASK_MODULES"]

TASK_MODULES = {"seq2seq": "lstmkit.tasks.seq2seq", "frames": "lstmkit.tasks.frames"}
TASK_CONFIGS = {"seq2seq": "lstmkit.tasks.seq2seq_config", "frames": "lstmkit.tasks.frames_config"}
"""Where a task whose module needs PyTorch keeps its config (``config_from_table``), light to import, so that a
recipe is checked before anything heavy is imported (``recipe_config``)."""
"""The modules of the tasks ``lstmkit train`` knows by name, each imported on its first lookup (so that
``import lstmkit`` and a user error stay light); every other name is a sequence model
(``lstmkit.tasks.sequence``, light to import)."""

_TASKS: dict[str, Task] = {}
_FALLBACK = "sequence"


@dataclass
class Job:
    """One prepared training run of a task.

    Attributes:
        config: the task's config (with anything the data decided filled in).
        module: the network, built and seeded.
        objective: the loss, running metrics and validation of the task.
        train: the training ``Batches`` (or ``ArrayDataset``).
        val: what ``objective.validate`` judges each epoch, or None.
        finish: ``finish(run_folder) -> metrics``: evaluate the trained module on the test split, write the
            evaluation files and the model folder; called on the main process only, with the best weights
            loaded and the module on the CPU.
    """

    config: Any
    module: Any
    objective: Any
    train: Any
    val: Any
    finish: Callable[[Any], dict[str, Any]]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Evaluation:
    """A trained model's metrics on a split: ``report`` (JSON-ready, with ``data`` and ``split``), ``text``
    (what ``lstmkit evaluate`` prints) and, for classifiers, the confusion matrix with its class names."""

    report: dict[str, Any]
    text: str
    confusion: tuple[Any, list[str]] | None = None


class Task:
    """A kind of model; subclasses register one instance with ``@register_task``."""

    name: str = ""
    gate_views: bool = False
    """Whether the run report shows gate and cell-state views of test samples (``lstmkit.report``)."""
    predicts_files = False
    """Whether ``lstmkit predict`` reads this task's inputs from files (sequences, images, texts)."""
    verbs: str = ""
    """How a user asks this task's models for answers, for messages (``lstmkit translate MODEL TEXT``)."""

    def config_from_table(self, table: dict[str, Any], overrides: Iterable[str] = ()) -> Any:
        """The task's strict config from parsed TOML tables and ``--set`` overrides."""
        raise NotImplementedError

    def load_config(self, path: str | Path | None, overrides: Iterable[str] = ()) -> Any:
        from lstmkit.config import read_toml

        return self.config_from_table(read_toml(path) if path is not None else {}, overrides)

    def dump_config(self, config: Any) -> bytes:
        """The exact config as TOML bytes (written into the run folder and the model folder)."""
        import tomli_w

        from lstmkit.config import config_to_dict

        return tomli_w.dumps(config_to_dict(config)).encode()

    def prepare(self, config: Any) -> Job:
        raise NotImplementedError

    def load(self, folder: Path) -> Any:
        """The trained model in ``folder`` ready for use (``lstmkit.load`` calls this)."""
        raise NotImplementedError

    def predict_inputs(self, folder: Path, sources: list[str], texts: list[str], invert: bool = False) -> list[dict]:
        """Answers on a user's raw inputs: files (``-`` for stdin) and texts, one JSON-ready record per
        sample (``input``, ``index`` and the answer). Tasks whose models do not read files refuse."""
        raise LstmkitError(f"predict {folder}: a [model] task = {self.name!r} model does not read input files; "
                           f"use {self.verbs.replace('MODEL', str(folder))}")

    def schema(self, meta: dict[str, Any], config: Any) -> Any:
        """The inputs and outputs (``lstmkit.tasks.schema.Schema``) of a model with this metadata and config."""
        raise NotImplementedError

    def evaluate(self, folder: Path, split: str = "test", data: str | None = None, data_dir: Path | None = None,
                 download: bool = True) -> Evaluation:
        """The trained model's metrics on its dataset's ``split`` (``"test"`` or ``"train"``), the data made or
        read as the run made it; ``data`` names another data source where the task can read one."""
        raise NotImplementedError

    def summary(self, metrics: dict[str, Any]) -> str:
        """What ``lstmkit train`` prints after the evaluation: the test metrics and the training time."""
        lines = [f"{key} {value:.4f}" for key, value in metrics.items()
                 if key.startswith("test_") and key != "test_loss" and isinstance(value, (int, float))]
        lines.append(f"train_seconds {metrics['train_seconds']:.1f} ({metrics['epochs_run']} epochs)")
        return "\n".join(lines)


def register_task(*names: str) -> Callable[[type[Task]], type[Task]]:
    """Class decorator: register one instance of the task under each of ``names`` (``[model] task`` values)."""

    def decorate(cls: type[Task]) -> type[Task]:
        task = cls()
        task.name = names[0]
        for name in names:
            if name in _TASKS:
                raise ValueError(f"task {name!r} is already registered")
            _TASKS[name] = task
        return cls

    return decorate


def task_named(name: str | None) -> Task:
    """The task that trains recipes whose ``[model] task`` is ``name``."""
    name = name or ""
    if name not in _TASKS and name in TASK_MODULES:
        importlib.import_module(TASK_MODULES[name])
    if _FALLBACK not in _TASKS:
        importlib.import_module("lstmkit.tasks.sequence")
    return _TASKS.get(name, _TASKS[_FALLBACK])


def table_task(table: dict[str, Any], overrides: Iterable[str] = ()) -> Task:
    """The task of parsed recipe tables, by their ``[model] task`` (after ``--set model.task=...``)."""
    from lstmkit.config import apply_overrides

    model = apply_overrides(table, [o for o in overrides if o.strip().startswith("model.task")]).get("model", {})
    name = model.get("task") if isinstance(model, dict) else None
    return task_named(name if isinstance(name, str) else None)


def recipe_config(table: dict[str, Any], overrides: Iterable[str] = ()) -> Any:
    """The strict config of parsed recipe tables, checked without importing PyTorch: the task's light config
    module (``TASK_CONFIGS``) or, for the sequence models, ``lstmkit.config``. Equal to what the task's own
    ``config_from_table`` gives."""
    from lstmkit.config import apply_overrides, config_from_dict

    model = apply_overrides(table, [o for o in overrides if o.strip().startswith("model.task")]).get("model", {})
    name = model.get("task") if isinstance(model, dict) else None
    if name in _TASKS:  # registered (a task module already imported, or a task added from outside)
        return _TASKS[name].config_from_table(table, overrides)
    if name in TASK_CONFIGS:
        return importlib.import_module(TASK_CONFIGS[name]).config_from_table(table, overrides)
    return config_from_dict(apply_overrides(table, overrides))


def load_recipe(path: str | Path, overrides: Iterable[str] = ()) -> tuple[Task, Any]:
    """The task of a TOML recipe and its strict config, the file parsed once."""
    from lstmkit.config import read_toml

    table = read_toml(path)
    task = table_task(table, overrides)
    return task, task.config_from_table(table, overrides)


def load_trained(path: str | Path) -> Any:
    """The trained model in a model folder (or the run folder holding one), loaded by the task that wrote it
    (the folder's ``meta.json`` names it)."""
    task, contents = trained_task(path)
    return task.load(contents.folder)


def evaluate_trained(path: str | Path, split: str = "test", data: str | None = None, data_dir: Path | None = None,
                     download: bool = True) -> Evaluation:
    """``Task.evaluate`` of the task that wrote the model folder (or the run folder holding one) at ``path``."""
    task, contents = trained_task(path)
    return task.evaluate(contents.folder, split=split, data=data, data_dir=data_dir, download=download)


def metrics_text(title: str, report: dict[str, Any]) -> str:
    """``title`` and one ``name value`` line per number of ``report``."""
    lines = [title]
    for key, value in report.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            lines.append(f"{key:<24}{value:.6g}")
    return "\n".join(lines)


def trained_schema(path: str | Path) -> Any:
    """The ``Schema`` of the trained model at ``path`` (a model or run folder), from its task."""
    task, contents = trained_task(path)
    return task.schema(contents.meta, task.config_from_table(_toml(contents)))


def _toml(contents: Any) -> dict[str, Any]:
    from lstmkit.config import tomllib
    from lstmkit.errors import ModelFolderError

    try:
        return tomllib.loads(contents.config_text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise ModelFolderError(f"model folder {contents.folder}: config.toml is not valid ({exc})") from None


def predict_trained(path: str | Path, sources: list[str], texts: list[str] = (), invert: bool = False) -> list[dict]:
    """``Task.predict_inputs`` of the task that wrote the model folder (or the run folder holding one)."""
    task, contents = trained_task(path)
    return task.predict_inputs(contents.folder, list(sources), list(texts), invert=invert)


def trained_task(path: str | Path) -> tuple[Task, Any]:
    """The task that wrote the model folder at ``path`` (or the run folder holding one), which ``meta.json``
    names, and the folder's checked contents (``lstmkit.artifacts.model_folder.FolderContents``)."""
    folder = _existing_folder(path)  # before the heavy import below
    from lstmkit.artifacts.model_folder import read_model_folder

    contents = read_model_folder(folder)
    name = contents.meta.get("task")
    return task_named(name if isinstance(name, str) else None), contents


def _existing_folder(path: str | Path) -> Path:
    """``path`` (or its ``model/``), refused at once when there is no such folder: before PyTorch is imported,
    so that a mistyped path answers in well under a second."""
    from lstmkit.errors import ModelFolderError
    from lstmkit.runs.folder import resolve_model_folder

    folder = resolve_model_folder(path)
    if not folder.is_dir():
        raise ModelFolderError(f"model folder {folder}: not found (expected a folder holding model.safetensors, "
                               "config.toml, meta.json, manifest.json, or the run folder holding one)")
    return folder
