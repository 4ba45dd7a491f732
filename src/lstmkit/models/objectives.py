"""Objectives: what a task model is trained to minimise and how its predictions are judged.

An objective turns the model's raw outputs into a loss, running training statistics and final metrics.

- ``classification``: cross-entropy on logits ``(N, C)``,
  ``loss = -mean_n log softmax(z_n)[y_n]`` (with optional label smoothing); metrics are accuracy and the
  macro precision/recall/F1 of ``lstmkit.evaluation.classification``.
- ``regression``: the mean over samples and outputs of a pointwise loss on ``(N, K)`` outputs:
  ``mse = mean (ŷ - y)^2``, ``mae = mean |ŷ - y|``, ``huber = mean h(ŷ - y)`` with
  ``h(e) = e^2 / 2`` for ``|e| <= 1`` and ``|e| - 1/2`` beyond; metrics are MAE and RMSE.

Example::

    objective = make_objective("cross_entropy")
    loss, stats = objective.loss(logits, y)      # stats: sums to average over an epoch
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from lstmkit.evaluation.classification import classification_report

__all__ = ["Objective", "Classification", "Regression", "make_objective", "register_objective", "LOSSES"]

LOSSES = ("cross_entropy", "mse", "mae", "huber")


class Objective:
    """The loss and metrics of one kind of task; subclasses fill in the details."""

    targets: str
    """``"classes"`` or ``"values"``: the kind of ``ArrayDataset`` targets it trains on."""
    monitor: str
    """The validation metric that picks the best epoch by default."""
    per_step: bool = False
    """Whether the model answers at every step, ``(N, L, ...)``, rather than once per sequence."""
    headline: tuple[str, ...] = ()
    """Keys of ``evaluate``'s report that a run also writes into ``metrics.json`` as ``test_<key>``, beside
    the accuracy and macro scores (classes) or MAE and RMSE (values)."""

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """The batch loss to back-propagate, and statistics summed over the batch (e.g. correct count)."""
        raise NotImplementedError

    def step(self, network: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of one training batch and its summed statistics. For the sequence objectives a batch is
        ``(x, y, lengths)`` (``lstmkit.training.trainer.TensorBatches``) and the network maps ``x`` to outputs; a task
        whose batches hold something else (token pairs, frames) overrides this."""
        x, y, lengths = batch
        outputs = network(x) if lengths is None else network(x, lengths=lengths)
        return self.loss(outputs, y)

    def validate(self, module: nn.Module, data: Any, batch_size: int, device: torch.device) -> dict[str, float]:
        """Validation metrics of ``module`` (in eval mode, without gradients) on ``data``: here the loss and
        the running metrics that training reports, on an ``ArrayDataset``."""
        from lstmkit.training.trainer import predict_outputs

        outputs = predict_outputs(module, data, batch_size=batch_size, device=device)
        loss, stats = self.loss(outputs, torch.from_numpy(data.y))
        return {"loss": float(loss), **self.summarize(stats, len(data))}

    def output_width(self, num_outputs: int, input_size: int) -> int:
        """The size of the model's last output dimension, for a model built with ``InputSpec(input_size,
        num_outputs)``: its classes or values."""
        return num_outputs

    def higher_is_better(self, metric: str) -> bool:
        """Whether a larger value of the row's ``metric`` (``val_accuracy``, ``train_loss``, ...) is better."""
        return metric.endswith("accuracy")

    def summarize(self, stats: dict[str, float], count: int) -> dict[str, float]:
        """Epoch metrics from statistics summed over ``count`` samples (without the loss)."""
        raise NotImplementedError

    def evaluate(self, outputs: np.ndarray, y: np.ndarray, label_names: list[str]) -> dict[str, Any]:
        """Final metrics of outputs against targets on a whole split."""
        raise NotImplementedError

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        """What the user gets from raw outputs: class indices, or values."""
        raise NotImplementedError


class Classification(Objective):
    """Cross-entropy on logits (N, C) against class indices (N,)."""

    targets = "classes"
    monitor = "val_accuracy"

    def __init__(self, label_smoothing: float = 0.0) -> None:
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        loss = self.criterion(outputs, y)
        return loss, {"correct": float((outputs.argmax(-1) == y).sum())}

    def summarize(self, stats: dict[str, float], count: int) -> dict[str, float]:
        return {"accuracy": stats.get("correct", 0.0) / max(count, 1)}

    def evaluate(self, outputs: np.ndarray, y: np.ndarray, label_names: list[str]) -> dict[str, Any]:
        report = classification_report(y, outputs.argmax(-1), label_names)
        loss = float(self.criterion(torch.from_numpy(outputs), torch.from_numpy(y)))
        return {"loss": loss, **report}

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.argmax(-1)


class Regression(Objective):
    """A pointwise loss (MSE, MAE or Huber) on outputs (N, K) against values (N,) or (N, K)."""

    targets = "values"
    monitor = "val_loss"

    def __init__(self, loss: str = "mse") -> None:
        self.name = loss
        self.criterion = {"mse": nn.MSELoss(), "mae": nn.L1Loss(), "huber": nn.HuberLoss()}[loss]

    @staticmethod
    def _match(outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return outputs.squeeze(-1) if y.dim() == 1 and outputs.dim() == 2 and outputs.shape[-1] == 1 else outputs

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        outputs = self._match(outputs, y)
        error = (outputs.detach() - y).reshape(len(y), -1)  # (N, K)
        stats = {"abs_error": float(error.abs().mean(-1).sum()), "sq_error": float(error.pow(2).mean(-1).sum())}
        return self.criterion(outputs, y), stats

    def summarize(self, stats: dict[str, float], count: int) -> dict[str, float]:
        n = max(count, 1)
        return {"mae": stats.get("abs_error", 0.0) / n, "rmse": (stats.get("sq_error", 0.0) / n) ** 0.5}

    def evaluate(self, outputs: np.ndarray, y: np.ndarray, label_names: list[str]) -> dict[str, Any]:
        predicted = self._match(torch.from_numpy(outputs), torch.from_numpy(y))
        target = torch.from_numpy(y)
        error = (predicted - target).double()
        return {
            "loss": float(self.criterion(predicted, target)),
            "mse": float(error.pow(2).mean()),
            "mae": float(error.abs().mean()),
            "rmse": float(error.pow(2).mean().sqrt()),
        }

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs


_REGISTERED: dict[str, Callable[[float], Objective]] = {}


def register_objective(name: str, factory: Callable[[float], Objective]) -> None:
    """Make ``make_objective(name, label_smoothing)`` return ``factory(label_smoothing)``: an objective that a
    task model names as its ``default_loss`` (see ``lstmkit.models.sequence_objectives``)."""
    if name in LOSSES or name in _REGISTERED:
        raise ValueError(f"objective {name!r} is already registered")
    _REGISTERED[name] = factory


def make_objective(loss: str, label_smoothing: float = 0.0) -> Objective:
    """The objective for a ``[model] loss`` name (one of ``LOSSES``, or one given to ``register_objective``)."""
    if loss in _REGISTERED:
        return _REGISTERED[loss](label_smoothing)
    if loss == "cross_entropy":
        return Classification(label_smoothing)
    if loss in ("mse", "mae", "huber"):
        return Regression(loss)
    raise ValueError(f"unknown loss {loss!r}; expected one of {', '.join([*LOSSES, *_REGISTERED])}")
