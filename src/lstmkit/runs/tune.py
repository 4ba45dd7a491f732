"""Hyperparameter search with Optuna: ``lstmkit tune CONFIG --trials N --space SPACE.toml``.

Each trial copies the base config, sets the keys drawn from the search space, prepares the recipe's task
(``lstmkit.tasks``: any task, seq2seq and frames included), trains it in the one training loop and scores
the best epoch on the validation split by the task's monitored metric.
A trial that trails the others' median at the same epoch is pruned (``MedianPruner``). The study lives
in a database: SQLite in the output folder by default, or any SQLAlchemy URL (``--storage``), so several
machines can work on one study. The best trial's config is written as a ready recipe, ``best.toml``.

A search space is TOML, one table per config key::

    [train.lr]
    low = 1e-4
    high = 1e-2
    log = true              # a float drawn on a log scale

    [model.hidden_size]
    low = 16
    high = 128
    step = 16               # integers when low, high (and step) are integers

    [model.bidirectional]
    choices = [true, false] # a categorical choice
"""

from __future__ import annotations

import copy
import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lstmkit.training.callbacks import Callback, KeepBest, Monitor
from lstmkit.config import config_to_dict, tomllib
from lstmkit.errors import ConfigError, LstmkitError

__all__ = ["SearchSpace", "load_space", "tune", "TuneResult"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dimension:
    """One searched key: a float or int range (``low``..``high``, optional ``log``/``step``) or ``choices``."""

    key: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] | None = None

    def suggest(self, trial: Any) -> Any:
        if self.choices is not None:
            return trial.suggest_categorical(self.key, list(self.choices))
        integers = all(isinstance(v, int) for v in (self.low, self.high, self.step) if v is not None)
        if integers:
            return trial.suggest_int(self.key, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(self.key, float(self.low), float(self.high), step=self.step, log=self.log)


SearchSpace = list[Dimension]


def _dimension(key: str, table: Any, where: str) -> Dimension:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} [{key}]: expected a table with low/high or choices, got {table!r}")
    unknown = sorted(set(table) - {"low", "high", "log", "step", "choices"})
    if unknown:
        raise ConfigError(f"{where} [{key}]: unknown setting {unknown[0]!r}; expected low, high, log, step or choices")
    if "choices" in table:
        choices = table["choices"]
        if not isinstance(choices, list) or not choices or len(table) > 1:
            raise ConfigError(f"{where} [{key}]: expected choices to be a non-empty list, alone in its table")
        return Dimension(key, choices=tuple(choices))
    low, high = table.get("low"), table.get("high")
    for name, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{where} [{key}]: expected {name} to be a finite number, got {value!r}")
    if not low < high:
        raise ConfigError(f"{where} [{key}]: expected low < high, got low {low!r} and high {high!r}")
    log_scale = table.get("log", False)
    if not isinstance(log_scale, bool):
        raise ConfigError(f"{where} [{key}]: expected log to be true or false, got {log_scale!r}")
    if log_scale and low <= 0:
        raise ConfigError(f"{where} [{key}]: a log scale needs low > 0, got {low!r}")
    return Dimension(key, low, high, log_scale, table.get("step"))


def load_space(path: str | Path, base: Any) -> SearchSpace:
    """Read a search space TOML (see the module docstring) and check each key against the config."""
    path = Path(path)
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"search space {path}: not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"search space {path}: cannot be read as TOML ({exc})") from None
    space: SearchSpace = []
    for section, keys in table.items():
        if section not in ("data", "model", "train") or not isinstance(keys, dict):
            raise ConfigError(f"search space {path}: expected tables [data.KEY], [model.KEY] or [train.KEY], "
                              f"got [{section}]")
        for key, spec in keys.items():
            space.append(_dimension(f"{section}.{key}", spec, f"search space {path}"))
    if not space:
        raise ConfigError(f"search space {path}: expected at least one key to search, got none")
    for dim in space:  # every key must exist in the config and accept the space's extreme values
        probe = dim.choices if dim.choices is not None else (dim.low, dim.high)
        for value in probe:
            _with(base, {dim.key: value}, f"search space {path} [{dim.key}]")
    return space


def _with(base: Any, values: dict[str, Any], where: str) -> Any:
    """``base`` (any task's config) with ``values`` set, as strictly as a recipe is loaded."""
    from lstmkit.tasks import task_named

    table = config_to_dict(base)
    for key, value in values.items():
        section, _, leaf = key.partition(".")
        if section not in table or leaf not in table[section] and leaf not in _fields(base, section):
            raise ConfigError(f"{where}: {key!r} is not a config key")
    try:
        return task_named(base.model.task).config_from_table(table, [f"{k}={_toml(v)}" for k, v in values.items()])
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _fields(config: Any, section: str) -> set[str]:
    import dataclasses

    return {f.name for f in dataclasses.fields(type(getattr(config, section)))}


def _toml(value: Any) -> str:
    import tomli_w

    return tomli_w.dumps({"v": value}).split("=", 1)[1].strip()


class _Pruning(Callback):
    """Report the monitored value after each epoch; raise ``TrialPruned`` when Optuna says so."""

    def __init__(self, trial: Any, monitor: Monitor) -> None:
        self.trial, self.monitor = trial, monitor

    def on_epoch_end(self, trainer: Any, epoch: int, row: dict[str, Any]) -> None:
        import optuna

        name, _ = self.monitor.resolve(trainer, row)
        self.trial.report(float(row[name]), epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch}: {name} {row[name]:.4f}")


@dataclass
class TuneResult:
    best_value: float
    best_params: dict[str, Any]
    best_config: Path
    trials: int
    pruned: int
    storage: str


def tune(base: Any, space: SearchSpace, trials: int, out_dir: str | Path, storage: str | None = None,
         study_name: str = "lstmkit") -> TuneResult:
    """Run ``trials`` trials of ``space`` around ``base`` (any task's config); write ``best.toml`` and
    ``trials.csv`` to ``out_dir``."""
    try:
        import optuna
    except ImportError:
        raise LstmkitError("tune needs Optuna: pip install 'lstmkit[tune]'") from None
    from lstmkit.tasks import task_named
    from lstmkit.training.trainer import Trainer, apply_runtime, seed_everything

    if trials < 1:
        raise ConfigError(f"tune --trials: expected a positive number, got {trials}")
    task = task_named(base.model.task)
    if getattr(base.data, "val_fraction", None) == 0:
        raise ConfigError("tune: expected [data] val_fraction > 0: trials are scored on the validation split")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    storage = storage or f"sqlite:///{(out_dir / 'study.db').resolve()}"
    monitor = Monitor(base.train.monitor)

    def prepare(config: Any) -> Any:
        seed_everything(config.train.seed)
        return task.prepare(config)

    probe = prepare(base)  # the data decides some keys (a text source's vocab_size); fail before any trial
    base = probe.config
    name = probe.objective.monitor if base.train.monitor == "auto" else base.train.monitor
    higher = probe.objective.higher_is_better(name)

    def objective(trial: Any) -> float:
        try:
            return run_trial(trial)
        except LstmkitError as exc:
            raise LstmkitError(f"tune: trial {trial.number} ({', '.join(f'{k}={v!r}' for k, v in trial.params.items())}) "
                            f"failed: {exc}") from None

    def run_trial(trial: Any) -> float:
        values = {dim.key: dim.suggest(trial) for dim in space}
        config = _with(base, values, f"trial {trial.number}")
        config.train.progress = False
        device = apply_runtime(config.train)
        job = prepare(config)
        keep_best = KeepBest(config.train.monitor)
        trainer = Trainer(job.module.to(device), job.objective, config.train,
                          [_Pruning(trial, monitor), keep_best], device=device)
        history = trainer.fit(job.train, job.val)
        best = [row for row in history if row["epoch"] == keep_best.best_epoch][0]
        key, _ = monitor.resolve(trainer, best)
        return float(best[key])

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(storage=storage, study_name=study_name, load_if_exists=True,
                                    direction="maximize" if higher else "minimize",
                                    sampler=optuna.samplers.TPESampler(seed=base.train.seed),
                                    pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1))
    except Exception as exc:  # storage URLs fail in many database-specific ways
        raise LstmkitError(f"tune --storage {storage}: cannot open the study ({exc})") from None
    # A failing trial ends the study with our one-line error; optuna would first log it with a traceback.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        study.optimize(objective, n_trials=trials, catch=())
    finally:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise LstmkitError(f"tune: none of the {len(study.trials)} trials completed (all pruned or failed)")
    best_config = _with(base, study.best_params, "best trial")
    best_config.train.progress = copy.copy(base.train.progress)
    (out_dir / "best.toml").write_bytes(task.dump_config(best_config))
    with open(out_dir / "trials.csv", "w", newline="") as fh:
        keys = [dim.key for dim in space]
        writer = csv.writer(fh)
        writer.writerow(["trial", "state", "value", *keys])
        for t in study.trials:
            writer.writerow([t.number, t.state.name.lower(), "" if t.value is None else t.value,
                             *(t.params.get(k, "") for k in keys)])
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    return TuneResult(best_value=float(study.best_value), best_params=dict(study.best_params),
                      best_config=out_dir / "best.toml", trials=len(study.trials), pruned=pruned, storage=storage)
