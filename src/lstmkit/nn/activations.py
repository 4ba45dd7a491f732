"""The activation functions an LSTM cell may use, by name.

``ACTIVATIONS`` maps each name to an element-wise function ``Tensor -> Tensor``. The names follow ONNX's
LSTM operator where it has one (``hard_sigmoid`` is ONNX's ``HardSigmoid`` with its defaults
``alpha=0.2, beta=0.5``, which is also Keras' definition), so a model converts to ONNX without renaming.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor
from torch.nn import functional as F

Activation = Callable[[Tensor], Tensor]


def hard_sigmoid(x: Tensor) -> Tensor:
    """ONNX ``HardSigmoid`` with its default slope and offset: ``clamp(0.2 * x + 0.5, 0, 1)``."""
    return torch.clamp(0.2 * x + 0.5, min=0.0, max=1.0)


ACTIVATIONS: dict[str, Activation] = {
    "sigmoid": torch.sigmoid,
    "hard_sigmoid": hard_sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "elu": F.elu,
    "softsign": F.softsign,
}


def get_activation(name: str) -> Activation:
    """Return the activation function registered as ``name``.

    Raises:
        ValueError: ``name`` is not in :data:`ACTIVATIONS`; the message lists the allowed names.
    """
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        allowed = ", ".join(repr(n) for n in ACTIVATIONS)
        raise ValueError(f"unknown activation {name!r}: expected one of {allowed}") from None
