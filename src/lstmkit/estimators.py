"""scikit-learn estimators: ``LSTMClassifier`` and ``LSTMRegressor``, thin layers over ``lstmkit.tasks.sequence_model.Model``.

They train through ``Model.fit`` (the path ``lstmkit train`` uses), so the same settings, seed and data
give the same weights as the CLI. Constructor arguments carry the names of the config keys
(``hidden_size``, ``layer_norm``, ``epochs``, ``lr``, ``val_fraction``, ...; see ``lstmkit.config``), with
two scikit-learn spellings: ``random_state`` is ``[train] seed`` and ``verbose`` is ``[train] progress``.

``X`` may be:

- a 3-D array ``(N, L, F)``: N sequences of L steps with F features each;
- a list of 2-D arrays ``(L_i, F)`` (or 1-D ``(L_i,)``) of different lengths, zero-padded with lengths;
- a 2-D array or a wide DataFrame ``(N, L)``: N univariate sequences, one column per step. This is what
  scikit-learn's own tools feed, so ``n_features_in_`` is then the number of columns, as scikit-learn
  counts it; for sequence inputs it is F, the features per step;
- a long-format DataFrame (one row per sample and step) when ``id_col`` is set: ``time_col`` orders the
  steps and ``feature_cols`` (default: every other column) are the features. Samples come in the order in
  which their ids first appear; a ``y`` Series indexed by id is aligned to them.

Example::

    from lstmkit import LSTMClassifier

    clf = LSTMClassifier(hidden_size=64, epochs=10, lr=3e-3).fit(x_train, labels)   # x (N, 8, 8)
    clf.predict(x_test[:3])          # labels, as given to fit (strings, any integers)
    clf.score(x_test, y_test)        # accuracy
    clf.save("my-model")             # a model folder, as ``lstmkit train`` writes
    LSTMClassifier.load("my-model").predict_proba(x_test[:3])
"""

from __future__ import annotations

import dataclasses
import json
import numbers
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data

from lstmkit.training.callbacks import Callback, ProgressBar
from lstmkit.config import Config, DataConfig, ModelConfig, TrainConfig, config_from_dict
from lstmkit.data.arrays import from_long_table, pad_sequences
from lstmkit.data.base import ArrayDataset
from lstmkit.data.transforms import split_train_val
from lstmkit.errors import ModelFolderError
from lstmkit.tasks.sequence_model import Model

__all__ = ["LSTMClassifier", "LSTMRegressor", "PARAMETER_KEYS", "EXCLUDED_KEYS"]

_DATA, _MODEL, _TRAIN = DataConfig(), ModelConfig(), TrainConfig()

RENAMED = {"random_state": ("train", "seed"), "verbose": ("train", "progress")}
"""Constructor arguments spelled the scikit-learn way, and the config key each one sets."""

EXCLUDED_KEYS = {
    # The data comes from fit(X, y): the keys that find, read or tokenise a source do not apply.
    "data": {"name", "data_dir", "download", "path", "length", "samples", "test_path", "test_fraction",
             "text_column", "label_column", "tokenizer", "lowercase", "max_vocab", "min_freq",
             # forecasting sources' keys (LSTMForecaster in lstmkit.tasks.forecasting takes those)
             "window", "horizon", "test_windows", "season", "log", "log_offset", "difference", "level", "pooled",
             "series", "time_column",
             "format", "id_column", "value_column",
             "input_scale",  # generated long-lag sources only
             # the audio-folder source's splits and front end (fit() takes feature frames)
             "split", "test_speakers", "features", "mel_bins", "num_ceps", "frame_length_ms", "frame_shift_ms",
             "cmn"},
    "model": {"task", "vocab_size", "embedding_size", "embedding_dropout"},  # the class decides the task; no text
    # no run folder (pass callbacks to fit() instead) and no test-window evaluation
    "train": {"checkpoint_every", "tensorboard", "report", "statistical"},
}
"""Config keys that are not constructor arguments, and why."""

ESTIMATOR_ONLY = {"id_col": None, "time_col": "time", "feature_cols": None}
"""Constructor arguments that describe the input table, not the run, and their defaults."""


class _LSTMEstimator(BaseEstimator):
    """What the classifier and the regressor share: parameters, input conversion, fit, save and load."""

    _task = ""

    def __init__(
        self,
        *,
        # [model]: the network (lstmkit.config.ModelConfig)
        hidden_size=_MODEL.hidden_size,
        num_layers=_MODEL.num_layers,
        bidirectional=_MODEL.bidirectional,
        dropout=_MODEL.dropout,
        proj_size=_MODEL.proj_size,
        gate_activation=_MODEL.gate_activation,
        cell_activation=_MODEL.cell_activation,
        hidden_activation=_MODEL.hidden_activation,
        forget_bias=_MODEL.forget_bias,
        init=_MODEL.init,
        chrono_init=_MODEL.chrono_init,
        peephole=_MODEL.peephole,
        coupled_gates=_MODEL.coupled_gates,
        layer_norm=_MODEL.layer_norm,
        recurrent_dropout=_MODEL.recurrent_dropout,
        zoneout=_MODEL.zoneout,
        weight_drop=_MODEL.weight_drop,
        cell_clip=_MODEL.cell_clip,
        residual=_MODEL.residual,
        merge_mode=_MODEL.merge_mode,
        conv=_MODEL.conv,
        conv_channels=tuple(_MODEL.conv_channels),
        conv_kernel=_MODEL.conv_kernel,
        pool=_MODEL.pool,
        readout=_MODEL.readout,
        head_hidden=_MODEL.head_hidden,
        head_dropout=_MODEL.head_dropout,
        loss=_MODEL.loss,
        label_smoothing=_MODEL.label_smoothing,
        architecture=_MODEL.architecture,
        fcn_filters=tuple(_MODEL.fcn_filters),
        fcn_kernels=tuple(_MODEL.fcn_kernels),
        shuffle_length=_MODEL.shuffle_length,
        shuffle_dropout=_MODEL.shuffle_dropout,
        # [train]: the loop (lstmkit.config.TrainConfig)
        epochs=_TRAIN.epochs,
        batch_size=_TRAIN.batch_size,
        optimizer=_TRAIN.optimizer,
        lr=_TRAIN.lr,
        momentum=_TRAIN.momentum,
        weight_decay=_TRAIN.weight_decay,
        schedule=_TRAIN.schedule,
        step_size=_TRAIN.step_size,
        gamma=_TRAIN.gamma,
        grad_clip=_TRAIN.grad_clip,
        patience=_TRAIN.patience,
        monitor=_TRAIN.monitor,
        random_state=_TRAIN.seed,
        device=_TRAIN.device,
        num_threads=_TRAIN.num_threads,
        verbose=int(_TRAIN.progress),
        deterministic=_TRAIN.deterministic,
        max_minutes=_TRAIN.max_minutes,
        budget_clock=_TRAIN.budget_clock,
        # [data]: preparation (lstmkit.config.DataConfig)
        val_fraction=_DATA.val_fraction,
        normalize=_DATA.normalize,
        # the input table
        id_col=ESTIMATOR_ONLY["id_col"],
        time_col=ESTIMATOR_ONLY["time_col"],
        feature_cols=ESTIMATOR_ONLY["feature_cols"],
    ):
        # scikit-learn's contract: __init__ stores each argument under its own name, and nothing else. The
        # arguments stay flat (get_params/set_params, grid searches); to_config gathers them into a Config, from
        # which the model builds its one LSTMOptions (lstmkit.models.classifier.lstm_options).
        arguments = dict(locals())
        del arguments["self"]
        for name, value in arguments.items():
            setattr(self, name, value)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags

    # ----------------------------------------------------------------------------------------------------
    # Parameters <-> Config

    def to_config(self) -> Config:
        """The ``Config`` these parameters describe (checked strictly, as a TOML file would be)."""
        tables: dict[str, dict[str, Any]] = {"data": {}, "model": {"task": self._task}, "train": {}}
        for param, (section, key) in PARAMETER_KEYS.items():
            value = getattr(self, param)
            if param == "random_state":
                value = _seed(value)
            elif param == "verbose":
                value = bool(value)
            tables[section][key] = _plain(value)
        return config_from_dict({k: {n: v for n, v in t.items() if v is not None} for k, t in tables.items()})

    @classmethod
    def from_config(cls, config: Config, **estimator_params: Any) -> _LSTMEstimator:
        """An unfitted estimator with the settings of ``config`` (e.g. a recipe from ``configs/``)."""
        if config.model.task != cls._task:
            raise ValueError(f"{cls.__name__}: expected a config with [model] task = {cls._task!r}, "
                             f"got {config.model.task!r}")
        params = {}
        for param, (section, key) in PARAMETER_KEYS.items():
            value = getattr(getattr(config, section), key)
            if param == "verbose":
                value = int(value)
            elif isinstance(value, list):
                value = tuple(value)
            params[param] = value
        return cls(**params, **estimator_params)

    # ----------------------------------------------------------------------------------------------------
    # Inputs

    def _sequences(self, X: Any, reset: bool) -> tuple[np.ndarray, np.ndarray | None, list[Any] | None]:
        """``X`` as ``(x (N, L, F) float32, lengths or None, ids or None)``; on ``reset`` (fit), records
        ``n_features_in_`` and ``input_format_``."""
        ids = None
        min_samples = 2 if reset and self.val_fraction else 1
        if self.id_col is not None and hasattr(X, "columns"):
            x, lengths, ids = from_long_table(X, self.id_col, self.time_col, self.feature_cols)
            fmt = "sequences"
        elif isinstance(X, (list, tuple)) and len(X) and _ragged(X):
            x, lengths = pad_sequences(X)
            fmt = "sequences"
        elif (X.ndim if hasattr(X, "ndim") else np.asarray(X).ndim) == 3:
            x = check_array(X, allow_nd=True, dtype=np.float32, ensure_min_samples=min_samples)
            lengths, fmt = None, "sequences"
        elif reset or self.input_format_ == "columns":
            x = validate_data(self, X, reset=reset, dtype=np.float32, ensure_min_samples=min_samples)
            x, lengths = x[:, :, None], None  # (N, L, 1): one column per step
            fmt = "columns"
        else:  # 2-D data for a model fitted on sequences: univariate sequences
            x = check_array(X, dtype=np.float32)[:, :, None]
            lengths, fmt = None, "sequences"
        if fmt == "sequences":
            if len(x) < min_samples:
                raise ValueError(f"{type(self).__name__}: expected at least {min_samples} sequences to fit "
                                 f"(with val_fraction={self.val_fraction}), got {len(x)} sample(s)")
            if reset:
                self.n_features_in_ = int(x.shape[2])
                if hasattr(self, "feature_names_in_"):
                    del self.feature_names_in_
            elif x.shape[2] != self.n_features_in_ and self.input_format_ == "sequences":
                raise ValueError(f"X has {x.shape[2]} features per step, but {type(self).__name__} is "
                                 f"expecting {self.n_features_in_} features per step as input")
        if reset:
            self.input_format_ = fmt
        return x, lengths, ids

    def _align(self, y: Any, ids: list[Any] | None) -> Any:
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        index = getattr(y, "index", None)
        if ids is not None and index is not None and len(y) == len(ids) and set(index) == set(ids):
            return y.loc[ids]
        return y

    # ----------------------------------------------------------------------------------------------------

    def _train(self, data: ArrayDataset, callbacks: Iterable[Callback], label_names: list[str] | None) -> None:
        """Hold out validation and train, as ``lstmkit.runs.train.run_training`` does with a source's training split."""
        config = self.to_config()
        train, val = split_train_val(data, config.data.val_fraction, config.train.seed)
        model = Model(config)
        model.fit(train, val, callbacks=[ProgressBar(config.train.progress), *callbacks], label_names=label_names)
        model.trainer = None  # the optimiser state is not needed after fit (and keeps the estimator picklable)
        self.model_ = model
        self.history_ = model.history
        self.best_epoch_ = model.best_epoch

    def _outputs_input(self, X: Any) -> tuple[np.ndarray, np.ndarray | None]:
        check_is_fitted(self)
        x, lengths, _ = self._sequences(X, reset=False)
        return x, lengths

    def save(self, path: str | Path) -> Path:
        """Write a model folder (the same as ``lstmkit train`` writes; ``lstmkit predict`` and ``serve`` read
        it); ``load`` gives back this estimator."""
        check_is_fitted(self)
        meta = {"class": type(self).__name__, "input_format": self.input_format_,
                "n_features_in": int(self.n_features_in_),
                "id_col": self.id_col, "time_col": self.time_col,
                "feature_cols": None if self.feature_cols is None else list(self.feature_cols)}
        if hasattr(self, "feature_names_in_"):
            meta["feature_names_in"] = [str(n) for n in self.feature_names_in_]
        meta.update(self._extra_meta())
        return self.model_.save(path, extra_meta={"estimator": meta})

    def _extra_meta(self) -> dict[str, Any]:
        return {}

    @classmethod
    def load(cls, path: str | Path) -> _LSTMEstimator:
        """A fitted estimator from a model folder written by ``save`` or by ``lstmkit train``."""
        from lstmkit.artifacts.model_folder import META

        model = Model.load(path)
        meta = json.loads((Path(path) / META).read_text(encoding="utf-8")).get("estimator") or {}
        if model.config.model.task != cls._task:
            raise ModelFolderError(f"model folder {path}: holds a {model.config.model.task!r} model; "
                                   f"{cls.__name__} loads {cls._task!r} models")
        table = {k: meta.get(k, default) for k, default in ESTIMATOR_ONLY.items()}
        if table["feature_cols"] is not None:
            table["feature_cols"] = tuple(table["feature_cols"])
        estimator = cls.from_config(model.config, **table)
        estimator.model_ = model  # history_ and best_epoch_ belong to a fit, and are not saved
        estimator.input_format_ = meta.get("input_format", "sequences")
        estimator.n_features_in_ = int(meta.get("n_features_in", model.spec.input_size))
        if "feature_names_in" in meta:
            estimator.feature_names_in_ = np.asarray(meta["feature_names_in"], dtype=object)
        estimator._restore(model, meta)
        return estimator

    def _restore(self, model: Model, meta: dict[str, Any]) -> None: ...


class LSTMClassifier(ClassifierMixin, _LSTMEstimator):
    """Classify sequences with an LSTM: a scikit-learn classifier over ``lstmkit.tasks.sequence_model.Model``.

    Labels may be any values ``np.unique`` can sort (strings, non-contiguous integers); they are mapped
    to class indices for training and back in ``predict``. The parameters are the config keys of
    ``[model]``, ``[train]`` and ``[data]`` (see the module docstring and ``lstmkit.config``).

    Attributes:
        classes_: the labels, sorted; ``predict_proba``'s columns follow this order.
        n_features_in_: columns of a 2-D X (one step each), or features per step of sequences.
        input_format_: ``"columns"`` (fitted on a 2-D X) or ``"sequences"``.
        model_: the trained ``lstmkit.tasks.sequence_model.Model``.
        history_: one row per epoch (losses, accuracies, learning rate, seconds).
        best_epoch_: the epoch whose weights the model holds (chosen on the validation split).
    """

    _task = "classifier"

    def fit(self, X: Any, y: Any, callbacks: Iterable[Callback] = ()) -> LSTMClassifier:
        """Train on ``X``, ``y``: ``val_fraction`` of it (stratified, by ``random_state``) picks the best
        epoch, as ``lstmkit train`` does; ``callbacks`` are extra ``lstmkit.training.callbacks``."""
        x, lengths, ids = self._sequences(X, reset=True)
        y = column_or_1d(self._align(y, ids), warn=True)
        check_classification_targets(y)
        self.classes_, indices = np.unique(y, return_inverse=True)
        data = ArrayDataset(x, indices.astype(np.int64), lengths, "classes")
        self._train(data, callbacks, [str(c) for c in self.classes_])
        return self

    def predict(self, X: Any) -> np.ndarray:
        """The label of each sequence, ``(N,)``."""
        x, lengths = self._outputs_input(X)
        return self.classes_[self.model_.predict(x, lengths)]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(N, len(classes_))``."""
        x, lengths = self._outputs_input(X)
        return self.model_.predict_proba(x, lengths)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Log class probabilities ``(N, len(classes_))``."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def _extra_meta(self) -> dict[str, Any]:
        return {"classes": self.classes_.tolist(), "classes_dtype": self.classes_.dtype.str}

    def _restore(self, model: Model, meta: dict[str, Any]) -> None:
        if "classes" in meta:
            self.classes_ = np.asarray(meta["classes"], dtype=np.dtype(meta["classes_dtype"]))
        elif "label_dtype" in model.meta:  # a folder from lstmkit train: the labels it learnt, indices of this type
            self.classes_ = np.arange(len(model.label_names)).astype(np.dtype(model.meta["label_dtype"]))
        else:  # a folder from an older lstmkit train, which did not record them: its label names
            self.classes_ = np.asarray(model.label_names)


class LSTMRegressor(RegressorMixin, _LSTMEstimator):
    """Predict real values from sequences with an LSTM: a scikit-learn regressor over ``lstmkit.tasks.sequence_model.Model``.

    ``y`` is ``(N,)`` or ``(N, K)`` (K outputs); ``loss`` is ``"mse"`` (the default, ``"auto"``), ``"mae"``
    or ``"huber"``. The targets are not rescaled: standardise them yourself (for instance with
    ``sklearn.compose.TransformedTargetRegressor``) when they are far from unit scale.

    Attributes: as ``LSTMClassifier``'s, without ``classes_``.
    """

    _task = "regressor"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True  # y (N, K)
        return tags

    def fit(self, X: Any, y: Any, callbacks: Iterable[Callback] = ()) -> LSTMRegressor:
        """Train on ``X``, ``y``: ``val_fraction`` of it (by ``random_state``) picks the best epoch;
        ``callbacks`` are extra ``lstmkit.training.callbacks``."""
        x, lengths, ids = self._sequences(X, reset=True)
        y = check_array(self._align(y, ids), ensure_2d=False, dtype=np.float32, input_name="y")
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        self._train(ArrayDataset(x, y, lengths, "values"), callbacks, None)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predicted values, ``(N,)`` (or ``(N, K)`` for K outputs), float64 as scikit-learn's regressors give."""
        x, lengths = self._outputs_input(X)
        return self.model_.predict(x, lengths).astype(np.float64)


# ------------------------------------------------------------------------------------------------------------


def _parameter_keys() -> dict[str, tuple[str, str]]:
    """Constructor argument -> (config section, key), generated from the config dataclasses so that the
    estimators follow every key the config gains (a new key must be a parameter or in EXCLUDED_KEYS;
    ``tests/test_estimators.py`` checks it)."""
    import inspect

    params = set(inspect.signature(_LSTMEstimator.__init__).parameters) - {"self"}
    keys: dict[str, tuple[str, str]] = {}
    for section, cls in (("data", DataConfig), ("model", ModelConfig), ("train", TrainConfig)):
        for f in dataclasses.fields(cls):
            if f.name in params:
                keys[f.name] = (section, f.name)
    keys.update(RENAMED)
    return keys


PARAMETER_KEYS = _parameter_keys()
"""Every constructor argument that sets a config key, and the key it sets."""


def _seed(random_state: Any) -> int:
    """``[train] seed`` for a scikit-learn ``random_state``: an int as it is; None or a RandomState draws one."""
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state)  # the config reports negatives
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def _plain(value: Any) -> Any:
    """NumPy scalars and tuples (as grid searches and ``clone`` hand them) as the plain types TOML has."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _ragged(sequences: list[Any] | tuple[Any, ...]) -> bool:
    """Whether a list holds sequences of different lengths (else it is an array, 2-D or 3-D)."""
    shapes = {np.shape(s) for s in sequences}
    return len(shapes) > 1
