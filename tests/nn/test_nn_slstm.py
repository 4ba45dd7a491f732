"""sLSTM: the stabilised recurrence against a plain NumPy one without stabiliser, stability, heads, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

from lstmkit.errors import ShapeError
from lstmkit.nn.slstm import SLSTMState, sLSTM, slstm_cell


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def dense_recurrent(weight_hh: np.ndarray, num_heads: int) -> np.ndarray:
    """The full (4H, H) recurrent matrix from the (4H, H / heads) diagonal blocks, written out."""
    rows, head_size = weight_hh.shape
    hidden = rows // 4
    dense = np.zeros((rows, hidden), dtype=weight_hh.dtype)
    for gate in range(4):
        for head in range(num_heads):
            units = slice(gate * hidden + head * head_size, gate * hidden + (head + 1) * head_size)
            dense[units, head * head_size : (head + 1) * head_size] = weight_hh[units]
    return dense


def numpy_slstm(x, module: sLSTM, initial=None, dtype=np.float64):
    """The paper's sLSTM without stabiliser: i = exp(i~), f = exp(f~) or sigmoid(f~), h = o c / n.

    ``initial`` holds unstabilised (h, c, n) per layer. Returns the last layer's outputs and each layer's
    final unstabilised (h, c, n).
    """
    hidden = module.hidden_size
    finals = []
    x = x.astype(dtype)
    for k in range(module.num_layers):
        w_ih, w_hh, bias = (
            getattr(module, f"{p}_l{k}").detach().numpy().astype(dtype) for p in ("weight_ih", "weight_hh", "bias")
        )
        r = dense_recurrent(w_hh, module.num_heads)
        batch = x.shape[1]
        h, c, n = (np.zeros((batch, hidden), dtype=dtype) for _ in range(3)) if initial is None else initial[k]
        outputs = []
        with np.errstate(over="ignore", invalid="ignore"):
            for x_t in x:
                a = x_t @ w_ih.T + h @ r.T + bias
                i = np.exp(a[:, :hidden])
                pre_f = a[:, hidden : 2 * hidden]
                f = np.exp(pre_f) if module.forget_gate == "exp" else sigmoid(pre_f)
                z = np.tanh(a[:, 2 * hidden : 3 * hidden])
                o = sigmoid(a[:, 3 * hidden :])
                c = f * c + i * z
                n = f * n + i
                h = o * c / n
                outputs.append(h)
        x = np.stack(outputs)
        finals.append((h, c, n))
    return x, finals


def make_slstm(seed: int, scale: float = 1.0, **config) -> sLSTM:
    torch.manual_seed(seed)
    module = sLSTM(**config, dtype=torch.float64)
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-scale, scale)  # every gate, the biases included, away from its initial value
    return module


@pytest.mark.parametrize("forget_gate", ["exp", "sigmoid"])
@pytest.mark.parametrize("num_heads", [1, 2])
def test_matches_unstabilised_numpy(forget_gate: str, num_heads: int) -> None:
    rnn = make_slstm(0, input_size=3, hidden_size=4, num_layers=2, num_heads=num_heads, forget_gate=forget_gate)
    x = torch.randn(5, 2, 3, dtype=torch.float64)  # (L, N, H_in)
    output, state = rnn(x)
    expected, finals = numpy_slstm(x.numpy(), rnn)

    np.testing.assert_allclose(output.detach().numpy(), expected, rtol=1e-10, atol=1e-12)
    for k, (h, c, n) in enumerate(finals):
        np.testing.assert_allclose(state.h[k].detach().numpy(), h, rtol=1e-10, atol=1e-12)
        # The states are the paper's ones scaled by exp(-m).
        scale = np.exp(state.m[k].detach().numpy())
        np.testing.assert_allclose(state.c[k].detach().numpy() * scale, c, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(state.n[k].detach().numpy() * scale, n, rtol=1e-10, atol=1e-12)
        assert bool((state.n[k] >= 1 - 1e-12).all()), "the stabilised normaliser stays >= 1"


def test_matches_unstabilised_numpy_from_a_state() -> None:
    rnn = make_slstm(1, input_size=2, hidden_size=4, num_layers=2, num_heads=2)
    x = torch.randn(3, 2, 2, dtype=torch.float64)
    shape = (2, 2, 4)
    h0, c0, m0 = (torch.randn(shape, dtype=torch.float64) for _ in range(3))
    n0 = torch.rand(shape, dtype=torch.float64) + 0.5
    output, _ = rnn(x, (h0, c0, n0, m0))
    initial = [(h0[k].numpy(), (c0[k] * m0[k].exp()).numpy(), (n0[k] * m0[k].exp()).numpy()) for k in range(2)]
    expected, _ = numpy_slstm(x.numpy(), rnn, initial)
    np.testing.assert_allclose(output.detach().numpy(), expected, rtol=1e-10, atol=1e-12)


def test_stabiliser_avoids_float32_overflow() -> None:
    """Pre-activations near 100 overflow exp in float32; the stabilised float32 module still matches float64."""
    torch.manual_seed(2)
    rnn = sLSTM(3, 4, forget_gate="exp")
    with torch.no_grad():
        rnn.bias_l0[:4] = 95.0  # i~ ~ 95: exp(95) = inf in float32
        rnn.bias_l0[4:8] = 30.0  # f~ ~ 30: the unstabilised c grows like exp(95 + 30 t)
    x = torch.randn(4, 2, 3)
    output, _ = rnn(x)

    naive, _ = numpy_slstm(x.numpy(), rnn, dtype=np.float32)
    assert not np.isfinite(naive).all(), "the test must be in the range where the unstabilised recurrence fails"
    expected, _ = numpy_slstm(x.numpy(), rnn, dtype=np.float64)
    assert np.isfinite(expected).all()
    np.testing.assert_allclose(output.detach().numpy(), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("forget_gate", ["exp", "sigmoid"])
def test_large_inputs_stay_finite(forget_gate: str) -> None:
    torch.manual_seed(3)
    rnn = sLSTM(3, 6, num_layers=2, num_heads=3, forget_gate=forget_gate)
    x = (torch.randn(20, 2, 3) * 50).requires_grad_()
    output, state = rnn(x)
    assert all(bool(t.isfinite().all()) for t in (output, *state))
    overflow = float(np.log(np.finfo(np.float32).max))  # 88.7
    assert float(state.m.detach().max()) > overflow, "the pre-activations must be large enough to overflow exp"
    output.sum().backward()
    assert bool(x.grad.isfinite().all())
    assert all(bool(p.grad.isfinite().all()) for p in rnn.parameters())


@pytest.mark.parametrize("forget_gate", ["exp", "sigmoid"])
def test_gradcheck(forget_gate: str) -> None:
    rnn = make_slstm(4, input_size=2, hidden_size=4, num_layers=2, num_heads=2, forget_gate=forget_gate)
    names = [name for name, _ in rnn.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in rnn.parameters())
    x = torch.randn(3, 1, 2, dtype=torch.float64, requires_grad=True)
    shape = (2, 1, 4)
    state = tuple(torch.randn(shape, dtype=torch.float64) for _ in range(4))
    state = (state[0], state[1], state[2].abs() + 0.5, state[3])
    state = tuple(s.requires_grad_() for s in state)

    def from_state(x, *args):
        output, final = torch.func.functional_call(rnn, dict(zip(names, args[4:])), (x, tuple(args[:4])))
        return output, *final

    def from_zeros(x):  # the first step from the empty state takes m_1 = log i_1, through an -inf
        output, final = rnn(x)
        return output, *final

    assert gradcheck(from_state, (x, *state, *params))
    assert gradcheck(from_zeros, (x,))


def test_heads_are_block_diagonal() -> None:
    rnn = make_slstm(5, input_size=3, hidden_size=6, num_heads=3)
    assert rnn.weight_hh_l0.shape == (24, 2), "only the diagonal blocks are parameters"

    # One step from a non-empty state: dh_t / dh_{t-1} is zero between heads and not within them.
    torch.manual_seed(6)
    xw_t = torch.randn(1, 24, dtype=torch.float64)
    c, m = torch.randn(1, 6, dtype=torch.float64), torch.randn(1, 6, dtype=torch.float64)
    n = torch.rand(1, 6, dtype=torch.float64) + 0.5

    def step(h):
        return slstm_cell(xw_t, SLSTMState(h, c, n, m), rnn.weight_hh_l0, num_heads=3).h

    jacobian = torch.autograd.functional.jacobian(step, torch.randn(1, 6, dtype=torch.float64))[0, :, 0]  # (6, 6)
    head = torch.arange(6) // 2
    same_head = head.unsqueeze(0) == head.unsqueeze(1)
    assert bool((jacobian[~same_head] == 0).all())
    assert bool((jacobian[same_head] != 0).all())

    dense = rnn.recurrent_matrix()
    assert dense.shape == (24, 6)
    assert bool((dense.view(4, 6, 6)[:, ~same_head] == 0).all())


def test_heads_equal_one_head_with_the_dense_block_diagonal_matrix() -> None:
    """The (4H, H / heads) layout means what the docstring says: num_heads=1 with recurrent_matrix() as weight_hh."""
    heads = make_slstm(7, input_size=3, hidden_size=6, num_heads=3, forget_gate="sigmoid")
    single = sLSTM(3, 6, num_heads=1, forget_gate="sigmoid", dtype=torch.float64)
    with torch.no_grad():
        single.weight_ih_l0.copy_(heads.weight_ih_l0)
        single.bias_l0.copy_(heads.bias_l0)
        single.weight_hh_l0.copy_(heads.recurrent_matrix(0))
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    for got, want in zip((heads(x)[0], *heads(x)[1]), (single(x)[0], *single(x)[1])):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_state_carries_on_and_batch_first() -> None:
    torch.manual_seed(8)
    rnn = sLSTM(2, 4, num_layers=2, num_heads=2)
    x = torch.randn(6, 3, 2)
    whole, final = rnn(x)
    first, state = rnn(x[:2])
    second, final_split = rnn(x[2:], state)
    torch.testing.assert_close(torch.cat([first, second]), whole)
    for got, want in zip(final_split, final):
        torch.testing.assert_close(got, want)
    assert isinstance(final, SLSTMState) and final.h.shape == (2, 3, 4)
    torch.testing.assert_close(whole[-1], final.h[-1])

    rnn.batch_first = True
    batch_major, _ = rnn(x.transpose(0, 1))
    torch.testing.assert_close(batch_major, whole.transpose(0, 1))


def test_parameters_and_initialisation() -> None:
    rnn = sLSTM(3, 4, num_layers=2, num_heads=2)
    shapes = {n: tuple(p.shape) for n, p in rnn.named_parameters()}
    assert shapes == {
        "weight_ih_l0": (16, 3), "weight_hh_l0": (16, 2), "bias_l0": (16,),
        "weight_ih_l1": (16, 4), "weight_hh_l1": (16, 2), "bias_l1": (16,),
    }  # fmt: skip
    assert torch.equal(rnn.bias_l0, torch.zeros(16)), "exp forget gate: f = 1 at the start"
    sigmoid_rnn = sLSTM(3, 4, forget_gate="sigmoid")
    assert torch.equal(sigmoid_rnn.bias_l0, torch.tensor([0.0] * 4 + [1.0] * 4 + [0.0] * 8))
    assert torch.equal(sLSTM(3, 4, forget_bias=-2.0).bias_l0[4:8], torch.full((4,), -2.0))
    for block in rnn.weight_hh_l0.detach().split(2):
        torch.testing.assert_close(block @ block.T, torch.eye(2))


# Errors: each names the thing, the expectation and what it got.


def test_error_heads_must_divide_hidden_size() -> None:
    with pytest.raises(ValueError, match=r"sLSTM: hidden_size: expected a multiple of num_heads=3, got 8"):
        sLSTM(2, 8, num_heads=3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"forget_gate": "relu"}, r"sLSTM: forget_gate: expected one of 'exp', 'sigmoid', got 'relu'"),
        ({"num_heads": 0}, r"sLSTM: num_heads: expected an integer >= 1, got 0"),
        ({"num_layers": 1.5}, r"sLSTM: num_layers: expected an integer >= 1, got 1\.5"),
        ({"batch_first": 1}, r"sLSTM: batch_first: expected True or False, got 1"),
        ({"forget_bias": "big"}, r"sLSTM: forget_bias: expected None or a real number, got 'big'"),
    ],
)
def test_error_constructor(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sLSTM(2, 4, **kwargs)


def test_error_input() -> None:
    rnn = sLSTM(3, 4)
    with pytest.raises(ShapeError, match=r"sLSTM: expected input of shape \(L, N, H_in\), got shape \(5, 3\)"):
        rnn(torch.randn(5, 3))
    message = r"sLSTM: expected input with 3 features \(last dimension\), got shape \(5, 2, 4\)"
    with pytest.raises(ShapeError, match=message):
        rnn(torch.randn(5, 2, 4))
    with pytest.raises(ShapeError, match=r"expected at least one time step"):
        rnn(torch.randn(0, 2, 3))
    message = r"expected input of dtype torch.float32 like the parameters, got torch.float64"
    with pytest.raises(ValueError, match=message):
        rnn(torch.randn(5, 2, 3, dtype=torch.float64))
    with pytest.raises(ShapeError, match=r"expected input of shape \(N, L, H_in\)"):
        sLSTM(3, 4, batch_first=True)(torch.randn(2, 5, 1, 3))


def test_error_state() -> None:
    rnn = sLSTM(3, 4, num_layers=2)
    x = torch.randn(5, 2, 3)
    good = torch.zeros(2, 2, 4)
    message = r"expected state to be a tuple \(h, c, n, m\) of four tensors, got tuple of length 2"
    with pytest.raises(TypeError, match=message):
        rnn(x, (good, good))
    message = r"expected state n of shape \(2, 2, 4\) \(num_layers, N, H\), got \(1, 2, 4\)"
    with pytest.raises(ShapeError, match=message):
        rnn(x, (good, good, torch.zeros(1, 2, 4), good))
