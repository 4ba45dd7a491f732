r"""Next-symbol sets: at every step, which of the input's symbols may come next (multi-label, per step).

The model of the 1997 LSTM paper's Experiment 1 (the embedded Reber grammar): one-hot symbols in, one
sigmoid unit per symbol out at every step, trained towards 1 for each symbol the grammar allows next and 0
for the others.

- ``next-symbols``: ``NextSymbolModel``, an LSTM over the one-hot inputs ``(N, L, K)`` and a linear layer at
  every step giving ``K`` logits, one per input symbol: ``(N, L, K) -> (N, L, K)``.
- ``next_symbol_bce``: ``NextSymbolSets``, the objective. Targets ``(N, L)`` hold at each step the bitmask
  :math:`m_{n,t} = \sum_{k \in S_{n,t}} 2^k` of the set :math:`S_{n,t}` of possible next symbols, 0 on
  padded steps. With :math:`b_{n,t,k}` bit k of :math:`m_{n,t}` and :math:`T` the real steps,

  .. math::
      \mathcal{L} = -\frac{1}{K |T|} \sum_{(n, t) \in T} \sum_k b_{n,t,k} \log \sigma(z_{n,t,k})
                    + (1 - b_{n,t,k}) \log (1 - \sigma(z_{n,t,k})).

  A step is right when its :math:`|S_{n,t}|` possible symbols get the most active outputs
  (``step_accuracy``); ``string_accuracy`` counts the sequences with every step right. ``mae`` and ``rmse``
  compare :math:`\sigma(z)` with the bits on the real steps. ``predict`` gives :math:`\sigma(z)`, ``(N, L, K)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lstmkit.config import ModelConfig
from lstmkit.errors import ConfigError, ShapeError
from lstmkit.models.classifier import lstm_options
from lstmkit.models.objectives import Objective, register_objective
from lstmkit.models.registry import InputSpec, register_model
from lstmkit.nn import LSTM

__all__ = ["NextSymbolModel", "NextSymbolSets"]


class NextSymbolModel(nn.Module):
    """An LSTM and a linear layer at every step: ``forward(x (N, L, K), lengths=None) -> logits (N, L, K)``."""

    def __init__(self, config: ModelConfig, spec: InputSpec) -> None:
        super().__init__()
        if config.bidirectional:
            raise ConfigError("config [model] bidirectional: next-symbols predicts from the symbols so far; "
                              "expected false, got true")
        self.input_size = spec.input_size
        self.lstm = LSTM.from_options(lstm_options(config, spec.input_size))
        self.head = nn.Linear(self.lstm.output_size, spec.input_size)  # one output per input symbol

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ShapeError(f"NextSymbolModel: expected input of shape (N, L, {self.input_size}), got {tuple(x.shape)}")
        output, _ = self.lstm(x, lengths=lengths)  # (N, L, H_out)
        return self.head(output)  # (N, L, K)


def _bits(masks: torch.Tensor, width: int) -> torch.Tensor:
    """Bitmasks ``(N, L)`` to 0/1 floats ``(N, L, width)``."""
    return ((masks.long().unsqueeze(-1) >> torch.arange(width, device=masks.device)) & 1).float()


def _steps_right(logits: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """Whether the possible symbols (bits) get the most active outputs, per step: ``(N, L)`` bool."""
    lowest_allowed = logits.masked_fill(bits == 0, float("inf")).amin(-1)
    highest_other = logits.masked_fill(bits == 1, float("-inf")).amax(-1)
    return lowest_allowed > highest_other


class NextSymbolSets(Objective):
    """Per-step binary cross-entropy of logits (N, L, K) against next-symbol bitmasks (N, L), 0 = padding."""

    targets = "values"
    per_step = True
    monitor = "val_loss"
    headline = ("step_accuracy", "string_accuracy")

    @staticmethod
    def _check(outputs: torch.Tensor, y: torch.Tensor) -> None:
        if outputs.dim() != 3 or y.dim() != 2 or tuple(outputs.shape[:2]) != tuple(y.shape):
            raise ShapeError(f"next-symbol objective: expected logits (N, L, K) and bitmasks (N, L) with the same "
                             f"N and L, got {tuple(outputs.shape)} and {tuple(y.shape)}")

    def _parts(self, outputs: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        self._check(outputs, y)
        real = y > 0  # (N, L)
        bits = _bits(y, outputs.shape[-1])  # (N, L, K)
        losses = F.binary_cross_entropy_with_logits(outputs, bits, reduction="none").sum(-1)  # (N, L)
        loss = (losses * real).sum() / (real.sum().clamp(min=1) * outputs.shape[-1])
        return loss, bits, real

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        loss, bits, real = self._parts(outputs, y)
        right = _steps_right(outputs.detach(), bits) & real
        return loss, {"right": float(right.sum()), "steps": float(real.sum())}

    def summarize(self, stats: dict[str, float], count: int) -> dict[str, float]:
        return {"step_accuracy": stats.get("right", 0.0) / max(stats.get("steps", 0.0), 1.0)}

    def evaluate(self, outputs: np.ndarray, y: np.ndarray, label_names: list[str]) -> dict[str, Any]:
        logits, target = torch.from_numpy(outputs), torch.from_numpy(y)
        loss, bits, real = self._parts(logits, target)
        right = _steps_right(logits, bits)
        error = (torch.sigmoid(logits) - bits)[real].double()  # (T, K)
        return {"loss": float(loss), "mae": float(error.abs().mean()), "rmse": float(error.pow(2).mean().sqrt()),
                "step_accuracy": float(right[real].double().mean()),
                "string_accuracy": float((right | ~real).all(-1).double().mean()), "steps": int(real.sum())}

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(outputs)  # (N, L, K)

    def output_width(self, num_outputs: int, input_size: int) -> int:
        return input_size  # one probability per input symbol


register_objective("next_symbol_bce", lambda smoothing: NextSymbolSets())


@register_model("next-symbols", default_loss="next_symbol_bce")
def build_next_symbol_model(config: ModelConfig, spec: InputSpec) -> nn.Module:
    """Per-step multi-label next-symbol prediction; see ``NextSymbolModel``."""
    return NextSymbolModel(config, spec)
