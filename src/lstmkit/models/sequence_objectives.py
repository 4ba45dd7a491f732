r"""Per-step objectives: one class per step (sequence tagging, language modelling), padding ignored.

Outputs are logits ``(N, L, C)``; targets are class indices ``(N, L)`` with ``IGNORE_INDEX`` (-100) on
padded steps. The loss is the cross-entropy averaged over the real steps only,

.. math::
    \mathcal{L} = -\frac{1}{|T|} \sum_{(n, t) \in T} \log \operatorname{softmax}(z_{n,t})[y_{n,t}],
    \qquad T = \{(n, t) : y_{n,t} \ne -100\},

and every metric counts real steps (tokens), not sequences:

- ``accuracy``: the fraction of tokens whose label is right;
- ``token_f1``: the micro-averaged F1 over the labels other than the outside label ``"O"``:
  ``P = TP / #predicted non-O``, ``R = TP / #gold non-O``, ``F1 = 2PR / (P + R)`` with ``TP`` the tokens
  whose gold label is not ``O`` and is predicted exactly. Without an ``O`` label every token counts and
  ``token_f1`` equals ``accuracy``. (It is a token-level score: a CoNLL entity-level F1 also requires the
  whole B-/I- span to match.)
- macro precision, recall and F1 with the per-class table and confusion matrix of ``lstmkit.evaluation.classification``;
- ``perplexity = exp(loss)`` and ``bits_per_token = loss / ln 2`` (bits per character for a char LM).

Registered as ``step_cross_entropy`` (tagger: headline ``token_f1``) and ``lm_cross_entropy`` (language
model: headline ``perplexity`` and ``bits_per_token``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from lstmkit.data.base import IGNORE_INDEX
from lstmkit.errors import ShapeError
from lstmkit.evaluation.classification import classification_report
from lstmkit.models.objectives import Objective, register_objective

__all__ = ["StepClassification", "token_f1", "OUTSIDE"]

OUTSIDE = "O"
"""The label of tokens outside every entity in BIO/IOB tagging schemes."""


def token_f1(y_true: np.ndarray, y_pred: np.ndarray, outside: int | None) -> dict[str, float]:
    """Micro precision, recall and F1 over tokens, leaving out the class ``outside`` (None: keep all).

    Args:
        y_true, y_pred: class indices of the real tokens, shape (T,).
        outside: the index of the outside label ``O``, or None.

    Returns:
        ``{"token_precision", "token_recall", "token_f1"}``; 0 where a denominator is 0.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if outside is None:
        gold = pred = np.ones_like(y_true, dtype=bool)
    else:
        gold, pred = y_true != outside, y_pred != outside
    tp = int(((y_true == y_pred) & gold).sum())
    precision = tp / int(pred.sum()) if pred.any() else 0.0
    recall = tp / int(gold.sum()) if gold.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"token_precision": precision, "token_recall": recall, "token_f1": f1}


class StepClassification(Objective):
    """Cross-entropy at every real step: logits (N, L, C) against class indices (N, L), -100 ignored."""

    targets = "classes"
    per_step = True
    monitor = "val_accuracy"

    def __init__(self, label_smoothing: float = 0.0, headline: tuple[str, ...] = ("token_f1",)) -> None:
        self.label_smoothing = label_smoothing
        self.headline = headline

    @staticmethod
    def _check(outputs: torch.Tensor, y: torch.Tensor) -> None:
        if outputs.dim() != 3 or y.dim() != 2 or tuple(outputs.shape[:2]) != tuple(y.shape):
            raise ShapeError(f"per-step objective: expected logits (N, L, C) and targets (N, L) with the same "
                             f"N and L, got {tuple(outputs.shape)} and {tuple(y.shape)}")

    def _loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), y.reshape(-1),  # (N * L, C), (N * L,)
                               ignore_index=IGNORE_INDEX, label_smoothing=self.label_smoothing)

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        self._check(outputs, y)
        real = y != IGNORE_INDEX
        correct = (outputs.detach().argmax(-1) == y) & real
        return self._loss(outputs, y), {"correct": float(correct.sum()), "tokens": float(real.sum())}

    def summarize(self, stats: dict[str, float], count: int) -> dict[str, float]:
        return {"accuracy": stats.get("correct", 0.0) / max(stats.get("tokens", 0.0), 1.0)}

    def evaluate(self, outputs: np.ndarray, y: np.ndarray, label_names: list[str]) -> dict[str, Any]:
        logits, target = torch.from_numpy(outputs), torch.from_numpy(y)
        self._check(logits, target)
        real = y != IGNORE_INDEX
        y_true, y_pred = y[real], outputs.argmax(-1)[real]
        loss = float(self._loss(logits, target))
        outside = label_names.index(OUTSIDE) if OUTSIDE in label_names else None
        return {"loss": loss, **classification_report(y_true, y_pred, label_names),
                **token_f1(y_true, y_pred, outside), "tokens": int(real.sum()),
                "perplexity": math.exp(min(loss, 700.0)), "bits_per_token": loss / math.log(2)}

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.argmax(-1)  # (N, L)


register_objective("step_cross_entropy", lambda smoothing: StepClassification(smoothing, ("token_f1",)))
register_objective("lm_cross_entropy",
                   lambda smoothing: StepClassification(smoothing, ("perplexity", "bits_per_token")))
