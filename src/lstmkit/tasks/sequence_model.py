"""``Model``: a config, the network it builds and its preprocessing, with ``fit``, ``evaluate``, ``predict``.

This is the one training path: ``lstmkit train`` (``lstmkit.runs.train.run_training``) and the scikit-learn
estimators are thin layers over it. (The networks themselves live in ``lstmkit.models``.)

Example::

    model = Model.from_config("configs/digits.toml", overrides=["train.epochs=5"])
    model.fit((x_train, y_train), val=(x_val, y_val), callbacks=[EarlyStopping(patience=3)])
    model.evaluate((x_test, y_test))["accuracy"]
    model.predict(x_test[:3])            # class indices
    model.save("my-model")               # a model folder, as the CLI writes
    Model.load("my-model").predict_proba(x_test[:3])
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from lstmkit.training.callbacks import Callback, KeepBest
from lstmkit.config import Config, apply_overrides, config_from_dict, config_to_dict, load_config
from lstmkit.data.arrays import as_dataset
from lstmkit.data.base import ArrayDataset
from lstmkit.data.prepare import apply_standardizer
from lstmkit.data.transforms import Standardizer, check_finite
from lstmkit.errors import ConfigError, DataError
from lstmkit.models import InputSpec, build_model, model_objective
from lstmkit.training.trainer import Trainer, apply_runtime, predict_outputs, seed_everything

__all__ = ["Model", "DataLike"]

log = logging.getLogger(__name__)

DataLike = Any
"""An ``ArrayDataset``, or ``(x, y)`` / ``(x, y, lengths)`` with x a 3-D array or a list of 2-D arrays."""


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _dataset(data: DataLike, targets: str, what: str) -> ArrayDataset:
    if isinstance(data, ArrayDataset):
        return data
    if isinstance(data, tuple) and len(data) in (2, 3):
        return as_dataset(*data)
    raise DataError(f"{what}: expected an ArrayDataset or a tuple (x, y) or (x, y, lengths), "
                    f"got {type(data).__name__}")


class Model:
    """A trainable, savable LSTM model described by a ``Config``.

    The network is built on the first ``fit`` (or ``build``), when the data's shape is known.

    Attributes:
        config: the run config (``[data]`` normalisation, ``[model]`` network, ``[train]`` loop).
        module: the network, or None before it is built.
        spec: what the network was built for (features, outputs, length).
        label_names: class names (classifiers), or empty.
        standardizer: per-feature statistics fitted on the training inputs, or None.
        history: one row per epoch of the last ``fit``.
        best_epoch: the epoch whose weights the model holds after ``fit``.
    """

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or Config()
        self.objective = model_objective(self.config.model)
        self.module: torch.nn.Module | None = None
        self.spec: InputSpec | None = None
        self.label_names: list[str] = []
        self.standardizer: Standardizer | None = None
        self.history: list[dict[str, Any]] = []
        self.best_epoch = 0
        self.meta: dict[str, Any] = {}
        """The model folder's metadata after ``load`` (preprocessing such as a text vocabulary)."""
        self.trainer: Trainer | None = None

    @classmethod
    def from_config(cls, config: Config | str | Path | dict | None = None,
                    overrides: Iterable[str] = ()) -> Model:
        """A model from a ``Config``, a TOML path, nested dicts, or the defaults; ``overrides`` as ``--set``."""
        if isinstance(config, Config):
            return cls(config_from_dict(apply_overrides(config_to_dict(config), overrides)) if overrides else config)
        if isinstance(config, dict):
            return cls(config_from_dict(apply_overrides(config, overrides)))
        return cls(load_config(config, overrides))

    # ----------------------------------------------------------------------------------------------------

    def build(self, train: ArrayDataset, label_names: list[str] | None = None,
              image_shape: tuple[int, int] | None = None) -> torch.nn.Module:
        """Fit the preprocessing on ``train`` and build the network for its shape."""
        _, length, features = train.x.shape
        if train.targets == "classes":
            classes = int(train.y.max()) + 1
            self.label_names = list(label_names) if label_names else [str(i) for i in range(classes)]
            if classes > len(self.label_names):
                raise DataError(f"training labels: expected values in 0..{len(self.label_names) - 1}, got {classes - 1}")
            outputs = len(self.label_names)
        else:
            self.label_names = []
            outputs = 1 if train.y.ndim == 1 else int(train.y.shape[1])
        self.standardizer = (Standardizer().fit(train.x, train.step_mask()) if self.config.data.normalize
                             else None)
        self.spec = InputSpec(input_size=features, num_outputs=outputs,
                              sequence_length=length if train.lengths is None else None, image_shape=image_shape)
        seed_everything(self.config.train.seed)  # the weights, and the training that follows, start here
        try:
            module = build_model(self.config.model, self.spec)
        except RuntimeError as exc:  # e.g. weights too large to allocate
            raise ConfigError(f"config [model]: the network cannot be built ({_first_line(exc)})") from None
        self._probe(module, train)
        self.module = module
        return self.module

    def _probe(self, module: torch.nn.Module, train: ArrayDataset) -> None:
        """Run the new network on two training samples, so that a config that cannot work on this data's
        shape (pooling longer than the sequence, say) fails now, before any run folder is written."""
        sample = train.subset(slice(0, 2))
        x = torch.from_numpy(sample.x)
        lengths = None if sample.lengths is None else torch.from_numpy(sample.lengths)
        was_training = module.training
        module.eval()
        state = torch.get_rng_state()
        try:
            with torch.no_grad():
                module(x) if lengths is None else module(x, lengths=lengths)
        except (RuntimeError, ValueError) as exc:
            raise ConfigError(f"config [model]: the network cannot run on inputs of shape (N, "
                              f"{train.x.shape[1]}, {train.x.shape[2]}) ({_first_line(exc)})") from None
        finally:
            torch.set_rng_state(state)
            module.train(was_training)

    def fit(self, train: DataLike, val: DataLike | None = None, callbacks: Iterable[Callback] = (),
            label_names: list[str] | None = None, image_shape: tuple[int, int] | None = None,
            resume: dict[str, Any] | None = None) -> Model:
        """Train on ``train`` (raw inputs), choosing the best epoch on ``val``; returns ``self``.

        Training runs on ``[train] device`` (the GPU when there is one and it is ``"auto"``); the model comes
        back on the CPU, where ``predict``, ``evaluate`` and ``save`` run.

        Args:
            train: the training data; its preprocessing statistics are fitted here on the first call.
            val: validation data for choosing the best epoch and for early stopping.
            callbacks: extra ``lstmkit.training.callbacks`` (progress, logging, checkpoints, early stopping, ...).
            label_names: class names; default ``"0"``, ``"1"``, ...
            resume: a ``Trainer.state_dict()`` (``checkpoints/last.pt``) to continue from.
        """
        tc = self.config.train
        train, val = self.training_data(train, val, label_names, image_shape)
        device = apply_runtime(tc)
        keep_best = KeepBest(tc.monitor)
        self.module.to(device)
        self.trainer = Trainer(self.module, self.objective, tc, [*callbacks, keep_best], device=device)
        if resume is not None:
            self.trainer.load_state_dict(resume, self.trainer.steps_per_epoch(len(train)))
        self.history = self.trainer.fit(train, val)
        if keep_best.weights is not None:
            self.module.load_state_dict(keep_best.weights)
        self.best_epoch = keep_best.best_epoch
        self.module.cpu().eval()
        return self

    def training_data(self, train: DataLike, val: DataLike | None = None, label_names: list[str] | None = None,
                      image_shape: tuple[int, int] | None = None) -> tuple[ArrayDataset, ArrayDataset | None]:
        """Check raw training (and validation) data, build the network on the first call, and return both
        standardised as the network sees them."""
        train = _dataset(train, self.objective.targets, "fit train")
        val = None if val is None else _dataset(val, self.objective.targets, "fit val")
        if train.targets != self.objective.targets:
            raise ConfigError(f"the data has {train.targets} targets, but [model] task "
                              f"{self.config.model.task!r} with loss {self.config.model.loss!r} trains on "
                              f"{self.objective.targets}")
        for name, ds in (("training", train), ("validation", val)):
            if ds is not None:
                check_finite(ds.x, f"{name} inputs")
        if self.module is None:
            self.build(train, label_names, image_shape)
        return self._prepare_dataset(train), None if val is None else self._prepare_dataset(val)

    # ----------------------------------------------------------------------------------------------------

    def _require_built(self, what: str) -> torch.nn.Module:
        if self.module is None:
            raise DataError(f"Model.{what}: the model is not trained yet; call fit() or Model.load() first")
        return self.module

    def _prepare_dataset(self, ds: ArrayDataset) -> ArrayDataset:
        self._check_inputs(ds.x, "inputs")
        return apply_standardizer(ds, self.standardizer)

    def _check_inputs(self, x: np.ndarray, what: str) -> None:
        spec = self.spec
        length = spec.sequence_length
        expected = f"(N, {length if length is not None else 'L'}, {spec.input_size})"
        if x.ndim != 3 or x.shape[-1] != spec.input_size or (length is not None and x.shape[1] != length):
            raise DataError(f"model {what}: expected shape {expected}, got {tuple(x.shape)}")
        check_finite(x, f"model {what}")

    def outputs(self, x: DataLike, lengths: Any = None) -> torch.Tensor:
        """Raw network outputs (logits or values) for raw inputs."""
        module = self._require_built("predict")
        if isinstance(x, ArrayDataset):
            ds = x
        else:
            dummy = np.zeros(len(x), dtype=np.int64 if self.objective.targets == "classes" else np.float32)
            ds = as_dataset(x, dummy, lengths, targets=self.objective.targets)
        ds = self._prepare_dataset(ds)
        return predict_outputs(module, ds)

    def predict(self, x: DataLike, lengths: Any = None) -> np.ndarray:
        """Class indices ``(N,)`` for classifiers, values ``(N,)`` or ``(N, K)`` for regressors."""
        outputs = self.objective.predict(self.outputs(x, lengths))
        if self.objective.targets == "values" and outputs.dim() == 2 and outputs.shape[1] == 1:
            outputs = outputs[:, 0]
        return outputs.numpy()

    def predict_proba(self, x: DataLike, lengths: Any = None) -> np.ndarray:
        """Class probabilities ``(N, C)`` (classifiers only)."""
        if self.objective.targets != "classes":
            raise ConfigError(f"predict_proba: a {self.config.model.task} predicts values, not class probabilities")
        return torch.softmax(self.outputs(x, lengths), dim=-1).numpy()

    def evaluate(self, data: DataLike) -> dict[str, Any]:
        """Metrics on ``data`` (raw inputs): loss, accuracy, macro precision/recall/F1, confusion matrix for
        classifiers; loss, MAE, RMSE for regressors."""
        ds = _dataset(data, self.objective.targets, "evaluate")
        outputs = self.outputs(ds)
        return self.objective.evaluate(outputs.numpy(), ds.y, self.label_names)

    # ----------------------------------------------------------------------------------------------------

    def save(self, folder: str | Path, extra_meta: dict[str, Any] | None = None) -> Path:
        """Write a model folder (weights, config, metadata), loadable by ``Model.load`` and the CLI."""
        from lstmkit.artifacts.model_folder import save_model

        module = self._require_built("save")
        meta = {"targets": self.objective.targets, **(extra_meta or {})}
        return save_model(folder, module.cpu(), self.config, self.spec, self.label_names, self.standardizer,
                          extra_meta=meta)

    @classmethod
    def load(cls, folder: str | Path) -> Model:
        """Load a model folder written by ``save`` or by ``lstmkit train``."""
        from lstmkit.artifacts.model_folder import load_model

        return cls.from_loaded(load_model(folder))

    @classmethod
    def from_loaded(cls, loaded: Any) -> Model:
        """A ``Model`` around a ``LoadedModel`` that ``lstmkit.artifacts.model_folder.load_model`` returned."""
        model = cls(loaded.config)
        model.module = loaded.module
        meta = loaded.meta
        image_shape = meta.get("image_shape")
        model.spec = InputSpec(input_size=int(meta["input_size"]), num_outputs=int(meta["num_outputs"]),
                               sequence_length=meta.get("sequence_length"),
                               image_shape=tuple(image_shape) if image_shape else None)
        model.label_names = list(meta.get("label_names") or [])
        model.standardizer = loaded.standardizer
        model.meta = dict(meta)
        return model
