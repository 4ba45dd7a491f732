"""Conversions to and from torch.nn.LSTM and Keras' LSTM weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lstmkit.errors import ShapeError
from lstmkit.nn import LSTM, from_keras_weights, from_torch, to_keras_weights, to_torch

KERAS_ACTIVATIONS = {
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
    "hard_sigmoid": lambda z: np.clip(0.2 * z + 0.5, 0.0, 1.0),  # Keras 2's, which is ONNX's
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0.0),
}


def keras_lstm(x, kernel, recurrent_kernel, bias, activation="tanh", recurrent_activation="sigmoid"):
    """Keras' LSTM layer written out: x (N, L, H_in), gate blocks i, f, c, o; returns (N, L, H), h, c."""
    act, rec = KERAS_ACTIVATIONS[activation], KERAS_ACTIVATIONS[recurrent_activation]
    size = recurrent_kernel.shape[0]
    h = np.zeros((x.shape[0], size))
    c = np.zeros((x.shape[0], size))
    outputs = []
    for t in range(x.shape[1]):
        z = x[:, t] @ kernel + h @ recurrent_kernel + (0.0 if bias is None else bias)
        i, f = rec(z[:, :size]), rec(z[:, size : 2 * size])
        candidate, o = act(z[:, 2 * size : 3 * size]), rec(z[:, 3 * size :])
        c = f * c + i * candidate
        h = o * act(c)
        outputs.append(h)
    return np.stack(outputs, axis=1), h, c


def hand_built_weights(with_bias: bool = True):
    """Small, readable arrays: H_in = 2, H = 2, so 4H = 8 columns in Keras' order i, f, c, o."""
    kernel = (np.arange(16, dtype=np.float64).reshape(2, 8) - 7.5) / 8.0
    recurrent_kernel = np.array(
        [[0.5, -0.3, 0.2, 0.1, -0.4, 0.6, 0.3, -0.2], [-0.1, 0.2, 0.7, -0.5, 0.3, -0.6, 0.1, 0.4]]
    )
    bias = np.array([0.1, -0.1, 1.0, 1.0, 0.0, 0.2, -0.3, 0.05]) if with_bias else None
    return kernel, recurrent_kernel, bias


X = np.array([[[1.0, -0.5], [0.3, 2.0], [-1.2, 0.4]], [[0.0, 0.8], [-0.7, -0.1], [1.5, 1.1]]])  # (N, L, H_in)


@pytest.mark.parametrize(
    ("activation", "recurrent_activation", "with_bias"),
    [("tanh", "sigmoid", True), ("relu", "hard_sigmoid", True), ("tanh", "sigmoid", False)],
)
def test_from_keras_weights_matches_keras_equations(activation, recurrent_activation, with_bias) -> None:
    kernel, recurrent_kernel, bias = hand_built_weights(with_bias)
    lstm = from_keras_weights(
        kernel, recurrent_kernel, bias, activation=activation, recurrent_activation=recurrent_activation
    )
    assert lstm.batch_first and lstm.bias == with_bias and lstm.weight_ih_l0.dtype == torch.float64
    assert (lstm.input_size, lstm.hidden_size) == (2, 2)
    assert (lstm.cell_activation, lstm.hidden_activation, lstm.gate_activation) == (
        activation, activation, recurrent_activation,
    )  # fmt: skip
    if with_bias:
        assert torch.equal(lstm.bias_hh_l0, torch.zeros(8, dtype=torch.float64))
    output, (h_n, c_n) = lstm(torch.from_numpy(X))
    expected, h, c = keras_lstm(X, kernel, recurrent_kernel, bias, activation, recurrent_activation)
    np.testing.assert_allclose(output.detach().numpy(), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(h_n[0].detach().numpy(), h, rtol=0, atol=1e-12)
    np.testing.assert_allclose(c_n[0].detach().numpy(), c, rtol=0, atol=1e-12)


def test_to_keras_weights_matches_keras_equations() -> None:
    torch.manual_seed(0)
    lstm = LSTM(
        2, 3, init="torch", batch_first=True, dtype=torch.float64, cell_activation="relu", hidden_activation="relu"
    )
    weights = to_keras_weights(lstm)
    assert weights.kernel.shape == (2, 12) and weights.recurrent_kernel.shape == (3, 12) and weights.bias.shape == (12,)
    expected, _, _ = keras_lstm(X, *weights, activation="relu")
    np.testing.assert_allclose(lstm(torch.from_numpy(X))[0].detach().numpy(), expected, rtol=0, atol=1e-12)


def test_keras_round_trip() -> None:
    kernel, recurrent_kernel, bias = hand_built_weights()
    back = to_keras_weights(from_keras_weights(kernel, recurrent_kernel, bias))
    for original, converted in zip((kernel, recurrent_kernel, bias), back):
        assert np.array_equal(original, converted)
    no_bias = to_keras_weights(from_keras_weights(kernel, recurrent_kernel, None))
    assert no_bias.bias is None


def test_from_keras_weights_accepts_float32_and_tensors() -> None:
    kernel, recurrent_kernel, bias = (a.astype(np.float32) for a in hand_built_weights())
    assert from_keras_weights(kernel, recurrent_kernel, bias).weight_hh_l0.dtype == torch.float32
    lstm = from_keras_weights(torch.from_numpy(kernel), recurrent_kernel, bias, batch_first=False, dtype=torch.float64)
    assert not lstm.batch_first and lstm.weight_ih_l0.dtype == torch.float64


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ((np.zeros((2, 8)), np.zeros((2, 6)), None), r"expected recurrent_kernel of shape \(H, 4H\), got \(2, 6\)"),
        ((np.zeros((2, 12)), np.zeros((2, 8)), None), r"expected kernel of shape \(H_in, 8\) .* got \(2, 12\)"),
        ((np.zeros((2, 8)), np.zeros((2, 8)), np.zeros(6)), r"expected bias of shape \(8,\) .* got \(6,\)"),
    ],
)
def test_from_keras_weights_bad_shapes(arrays, message: str) -> None:
    with pytest.raises(ShapeError, match=rf"from_keras_weights: {message}"):
        from_keras_weights(*arrays)


def test_from_keras_weights_bad_activation() -> None:
    with pytest.raises(ValueError, match=r"from_keras_weights: activation: expected one of 'sigmoid', .* got 'linear'"):
        from_keras_weights(*hand_built_weights(), activation="linear")


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        (dict(num_layers=2), r"num_layers=2"),
        (dict(bidirectional=True), r"bidirectional=True"),
        (dict(proj_size=1), r"proj_size=1"),
        (dict(peephole=True), r"peephole=True"),
        (dict(hidden_activation="relu"), r"cell_activation='tanh' with hidden_activation='relu'"),
    ],
)
def test_to_keras_weights_refuses_what_keras_cannot_express(kwargs: dict, named: str) -> None:
    with pytest.raises(ValueError, match=rf"to_keras_weights: expected one unidirectional layer .* got {named}"):
        to_keras_weights(LSTM(2, 3, **kwargs))


def test_from_torch_and_to_torch_functions() -> None:
    torch.manual_seed(1)
    theirs = nn.LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2).eval()
    ours = from_torch(theirs)
    assert isinstance(ours, LSTM) and ours.fused and not ours.training
    x = torch.randn(5, 2, 3)
    assert torch.equal(ours(x)[0], theirs(x)[0])
    back = to_torch(ours)
    assert isinstance(back, nn.LSTM)
    for name, value in theirs.state_dict().items():
        assert torch.equal(back.state_dict()[name], value)
    assert not from_torch(theirs, impl="reference").fused


def test_to_torch_function_type_errors() -> None:
    with pytest.raises(TypeError, match=r"to_torch: expected a lstmkit.nn.LSTM, got LSTM"):
        to_torch(nn.LSTM(2, 3))
    with pytest.raises(TypeError, match=r"LSTM.from_torch: expected a torch.nn.LSTM, got LSTM"):
        from_torch(LSTM(2, 3))
    with pytest.raises(ValueError, match=r"LSTM.to_torch: .*zoneout=\(0.1, 0.1\)"):
        to_torch(LSTM(2, 3, zoneout=0.1))


@pytest.mark.parametrize(("activation", "recurrent_activation"), [("tanh", "sigmoid"), ("relu", "sigmoid")])
def test_against_real_keras(activation: str, recurrent_activation: str) -> None:
    """Only where TensorFlow is installed (not in the project's environment): a real Keras layer."""
    keras = pytest.importorskip("tensorflow").keras
    kernel, recurrent_kernel, bias = hand_built_weights()
    layer = keras.layers.LSTM(
        2, activation=activation, recurrent_activation=recurrent_activation, return_sequences=True, return_state=True
    )
    layer.build((None, None, 2))
    layer.set_weights([kernel.astype(np.float32), recurrent_kernel.astype(np.float32), bias.astype(np.float32)])
    output, h, c = (np.asarray(t) for t in layer(X.astype(np.float32)))
    lstm = from_keras_weights(
        kernel, recurrent_kernel, bias, activation=activation, recurrent_activation=recurrent_activation
    )
    ours, (h_n, c_n) = lstm(torch.from_numpy(X))
    np.testing.assert_allclose(ours.detach().numpy(), output, atol=1e-5)
    np.testing.assert_allclose(h_n[0].detach().numpy(), h, atol=1e-5)
    np.testing.assert_allclose(c_n[0].detach().numpy(), c, atol=1e-5)
    for mine, theirs in zip(to_keras_weights(lstm), layer.get_weights()):
        np.testing.assert_allclose(mine, theirs, atol=1e-7)
