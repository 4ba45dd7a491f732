"""The reference cell and loop: golden values from the gate equations, and float64 gradient checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck
from torch.func import functional_call

from lstmkit.nn import LSTM, CellActivations, lstm_cell


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0.0)


def hard_sigmoid(z: np.ndarray) -> np.ndarray:
    return np.clip(0.2 * z + 0.5, 0.0, 1.0)


def golden_step(x, h, c, w_ih, w_hh, b_ih, b_hh, cell_fn, hidden_fn, w_hr=None, gate_fn=sigmoid):
    """One LSTM step for one sequence, written from the equations in NumPy, gate by gate."""
    size = c.shape[0]
    z = w_ih @ x + b_ih + w_hh @ h + b_hh
    i = gate_fn(z[0:size])
    f = gate_fn(z[size : 2 * size])
    g = cell_fn(z[2 * size : 3 * size])
    o = gate_fn(z[3 * size : 4 * size])
    c_next = f * c + i * g
    h_next = o * hidden_fn(c_next)
    if w_hr is not None:
        h_next = w_hr @ h_next
    return h_next, c_next, z[2 * size : 3 * size]


def numpy_params(module: LSTM) -> tuple[np.ndarray, ...]:
    """(weight_ih, weight_hh, bias_ih, bias_hh) of layer 0 as NumPy arrays."""
    names = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
    return tuple(getattr(module, name).detach().numpy() for name in names)


def softsign(z: np.ndarray) -> np.ndarray:
    return z / (1.0 + np.abs(z))


@pytest.mark.parametrize("steps", [1, 2])
def test_relu_lstm_matches_hand_computation(steps: int) -> None:
    torch.manual_seed(0)
    lstm = LSTM(2, 3, cell_activation="relu", hidden_activation="relu", init="torch", dtype=torch.float64)
    assert not lstm.fused
    with torch.no_grad():
        for p in lstm.parameters():
            p.mul_(3.0)  # large enough that relu clips some candidates and some cell states
    x = torch.randn(steps, 2, 2, dtype=torch.float64)  # (L, N, H_in)
    output, (h_n, c_n) = lstm(x)

    w = numpy_params(lstm)
    clipped = 0
    for b in range(2):
        h, c = np.zeros(3), np.zeros(3)
        for t in range(steps):
            h, c, pre_g = golden_step(x[t, b].numpy(), h, c, *w, relu, relu)
            clipped += int((pre_g < 0).sum())
            np.testing.assert_allclose(output[t, b].detach().numpy(), h, rtol=0, atol=1e-12)
        np.testing.assert_allclose(h_n[0, b].detach().numpy(), h, rtol=0, atol=1e-12)
        np.testing.assert_allclose(c_n[0, b].detach().numpy(), c, rtol=0, atol=1e-12)
    assert clipped > 0, "the golden data must exercise relu's clipping"


def test_each_activation_applies_where_it_belongs() -> None:
    torch.manual_seed(1)
    lstm = LSTM(
        2, 3, gate_activation="hard_sigmoid", cell_activation="relu", hidden_activation="softsign",
        init="torch", dtype=torch.float64,
    )  # fmt: skip
    x = torch.randn(2, 1, 2, dtype=torch.float64)  # (L, N, H_in)
    output, (h_n, c_n) = lstm(x)

    w = numpy_params(lstm)
    h, c = np.zeros(3), np.zeros(3)
    for t in range(2):
        h, c, _ = golden_step(x[t, 0].numpy(), h, c, *w, relu, softsign, gate_fn=hard_sigmoid)
        np.testing.assert_allclose(output[t, 0].detach().numpy(), h, rtol=0, atol=1e-12)
    np.testing.assert_allclose(c_n[0, 0].detach().numpy(), c, rtol=0, atol=1e-12)


def test_lstm_cell_matches_hand_computation_with_projection() -> None:
    gen = torch.Generator().manual_seed(1)
    size, out_size, in_size = 4, 2, 3
    w_ih = torch.randn(4 * size, in_size, generator=gen, dtype=torch.float64)
    w_hh = torch.randn(4 * size, out_size, generator=gen, dtype=torch.float64)
    b_ih = torch.randn(4 * size, generator=gen, dtype=torch.float64)
    b_hh = torch.randn(4 * size, generator=gen, dtype=torch.float64)
    w_hr = torch.randn(out_size, size, generator=gen, dtype=torch.float64)
    x = torch.randn(2, in_size, generator=gen, dtype=torch.float64)
    h = torch.randn(2, out_size, generator=gen, dtype=torch.float64)
    c = torch.randn(2, size, generator=gen, dtype=torch.float64)

    xw = x @ w_ih.T + b_ih  # bias_hh passed separately, not folded
    h_next, c_next = lstm_cell(xw, h, c, w_hh, b_hh, w_hr, CellActivations(cell=torch.relu, hidden=torch.relu))

    for b in range(2):
        args = [a.numpy() for a in (x[b], h[b], c[b], w_ih, w_hh, b_ih, b_hh)]
        h_expected, c_expected, _ = golden_step(*args, relu, relu, w_hr=w_hr.numpy())
        np.testing.assert_allclose(h_next[b].numpy(), h_expected, rtol=0, atol=1e-12)
        np.testing.assert_allclose(c_next[b].numpy(), c_expected, rtol=0, atol=1e-12)


def gradcheck_module(lstm: LSTM, seq_len: int, batch: int, lengths=None) -> None:
    names, params = zip(*lstm.named_parameters())
    gen = torch.Generator().manual_seed(3)
    states = lstm.num_layers * lstm.num_directions
    x = torch.randn(seq_len, batch, lstm.input_size, generator=gen, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(states, batch, lstm.output_size, generator=gen, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(states, batch, lstm.hidden_size, generator=gen, dtype=torch.float64, requires_grad=True)

    def function(x, h0, c0, *params):
        output, (h_n, c_n) = functional_call(lstm, dict(zip(names, params)), (x, (h0, c0)), {"lengths": lengths})
        return output, h_n, c_n

    assert gradcheck(function, (x, h0, c0, *params))


def test_gradcheck_reference_bidirectional_projection_lengths() -> None:
    torch.manual_seed(4)
    lstm = LSTM(2, 3, num_layers=2, bidirectional=True, proj_size=2, impl="reference", dtype=torch.float64)
    gradcheck_module(lstm, seq_len=3, batch=3, lengths=[3, 1, 2])


@pytest.mark.parametrize(
    "activations",
    [
        dict(cell_activation="relu", hidden_activation="relu"),
        dict(gate_activation="hard_sigmoid", cell_activation="elu", hidden_activation="softsign"),
    ],
    ids=["relu", "hard_sigmoid-elu-softsign"],
)
def test_gradcheck_other_activations(activations: dict) -> None:
    torch.manual_seed(5)
    lstm = LSTM(2, 3, bidirectional=True, init="torch", dtype=torch.float64, **activations)
    assert not lstm.fused
    gradcheck_module(lstm, seq_len=3, batch=2, lengths=[3, 2])


def test_time_loop_does_not_index_steps() -> None:
    """The loop must iterate xw.unbind(0): indexing xw[t] adds a SelectBackward per step, each of which
    materialises a full-size zero gradient and makes the backward pass quadratic in L."""
    lstm = LSTM(2, 3, impl="reference")
    output, _ = lstm(torch.randn(10, 1, 2))
    seen, stack, node_types = set(), [output.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        node_types.add(type(node).__name__)
        stack.extend(next_fn for next_fn, _ in node.next_functions)
    assert "UnbindBackward0" in node_types
    assert not any(name.startswith("SelectBackward") for name in node_types)
