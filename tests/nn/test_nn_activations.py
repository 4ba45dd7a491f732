"""The activation registry, and the runnable example in the LSTM docstring."""

from __future__ import annotations

import doctest

import pytest
import torch

import lstmkit.nn.lstm
from lstmkit.nn import ACTIVATIONS
from lstmkit.nn.activations import get_activation

X = torch.tensor([-4.0, -2.5, -1.0, 0.0, 0.5, 2.5, 4.0])


def test_registry_names() -> None:
    assert set(ACTIVATIONS) == {"sigmoid", "hard_sigmoid", "tanh", "relu", "elu", "softsign"}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sigmoid", [0.0179862, 0.0758582, 0.2689414, 0.5, 0.6224593, 0.9241418, 0.9820138]),
        ("hard_sigmoid", [0.0, 0.0, 0.3, 0.5, 0.6, 1.0, 1.0]),  # ONNX: clamp(0.2 x + 0.5, 0, 1)
        ("tanh", [-0.9993293, -0.9866143, -0.7615942, 0.0, 0.4621172, 0.9866143, 0.9993293]),
        ("relu", [0.0, 0.0, 0.0, 0.0, 0.5, 2.5, 4.0]),
        ("elu", [-0.9816844, -0.9179150, -0.6321206, 0.0, 0.5, 2.5, 4.0]),
        ("softsign", [-0.8, -0.7142857, -0.5, 0.0, 0.3333333, 0.7142857, 0.8]),
    ],
)
def test_activation_values(name: str, expected: list[float]) -> None:
    assert torch.allclose(get_activation(name)(X), torch.tensor(expected), atol=1e-6)


def test_unknown_activation() -> None:
    message = r"unknown activation 'gelu': expected one of 'sigmoid', 'hard_sigmoid', .*'softsign'"
    with pytest.raises(ValueError, match=message):
        get_activation("gelu")


def test_lstm_docstring_example_runs() -> None:
    results = doctest.testmod(lstmkit.nn.lstm, raise_on_error=False)
    assert results.attempted > 0
    assert results.failed == 0
