"""ConvLSTM: golden values from a plain NumPy convolution, parity with torch.nn.LSTM, the cell as reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.autograd import gradcheck

from lstmkit.errors import ShapeError
from lstmkit.nn.convlstm import ConvLSTM, ConvLSTMCell


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def conv_same(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """'Same' 2-D cross-correlation written out: x (C, H, W), weight (O, C, kH, kW) -> (O, H, W)."""
    out_channels, _, kh, kw = weight.shape
    _, height, width = x.shape
    padded = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2)))
    out = np.zeros((out_channels, height, width))
    for o in range(out_channels):
        for y in range(height):
            for x_ in range(width):
                out[o, y, x_] = np.sum(weight[o] * padded[:, y : y + kh, x_ : x_ + kw])
    return out


def golden_sequence(frames, weight, bias, peepholes=None):
    """Shi et al.'s equations for one sequence of frames (L, C_in, H, W), gate by gate."""
    hidden = weight.shape[0] // 4
    _, _, height, width = frames.shape
    h, c = np.zeros((hidden, height, width)), np.zeros((hidden, height, width))
    outputs = []
    for x in frames:
        z = conv_same(np.concatenate([x, h]), weight) + bias[:, None, None]
        pre_i, pre_f, pre_g, pre_o = np.split(z, 4)
        if peepholes is not None:
            pre_i = pre_i + peepholes[0] * c
            pre_f = pre_f + peepholes[1] * c
        c = sigmoid(pre_f) * c + sigmoid(pre_i) * np.tanh(pre_g)
        if peepholes is not None:
            pre_o = pre_o + peepholes[2] * c
        h = sigmoid(pre_o) * np.tanh(c)
        outputs.append(h)
    return np.stack(outputs), h, c


@pytest.mark.parametrize("peephole", [False, True])
@pytest.mark.parametrize("steps", [1, 2])
def test_matches_numpy_convolution(steps: int, peephole: bool) -> None:
    torch.manual_seed(0)
    rnn = ConvLSTM(1, 2, kernel_size=3, peephole=peephole, dtype=torch.float64)
    cell = rnn.cells[0]
    with torch.no_grad():
        cell.weight.mul_(4.0)  # make the 'same' padding and every gate matter
        cell.bias.uniform_(-1, 1)
        if peephole:
            for w in (cell.weight_ci, cell.weight_cf, cell.weight_co):
                w.uniform_(-2, 2)
    frames = torch.randn(2, steps, 1, 3, 3, dtype=torch.float64)  # (N, L, C_in, H, W)
    output, (h_n, c_n) = rnn(frames)
    assert output.shape == (2, steps, 2, 3, 3) and h_n.shape == c_n.shape == (1, 2, 2, 3, 3)

    weight, bias = cell.weight.detach().numpy(), cell.bias.detach().numpy()
    peepholes = None
    if peephole:
        peepholes = [w.detach().numpy() for w in (cell.weight_ci, cell.weight_cf, cell.weight_co)]
    for b in range(2):
        outputs, h, c = golden_sequence(frames[b].numpy(), weight, bias, peepholes)
        np.testing.assert_allclose(output[b].detach().numpy(), outputs, rtol=0, atol=1e-12)
        np.testing.assert_allclose(h_n[0, b].detach().numpy(), h, rtol=0, atol=1e-12)
        np.testing.assert_allclose(c_n[0, b].detach().numpy(), c, rtol=0, atol=1e-12)


def test_cell_matches_numpy_for_one_step_from_a_state() -> None:
    torch.manual_seed(1)
    cell = ConvLSTMCell(1, 1, kernel_size=3, dtype=torch.float64)
    x, h0, c0 = (torch.randn(1, 1, 3, 3, dtype=torch.float64) for _ in range(3))
    h1, c1 = cell(x, (h0, c0))
    z = conv_same(np.concatenate([x[0].numpy(), h0[0].numpy()]), cell.weight.detach().numpy())
    z += cell.bias.detach().numpy()[:, None, None]
    i, f, g, o = sigmoid(z[0]), sigmoid(z[1]), np.tanh(z[2]), sigmoid(z[3])
    c_expected = f * c0[0, 0].numpy() + i * g
    np.testing.assert_allclose(c1[0, 0].detach().numpy(), c_expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(h1[0, 0].detach().numpy(), o * np.tanh(c_expected), rtol=0, atol=1e-12)


@pytest.mark.parametrize("batch_first", [True, False])
def test_1x1_kernel_on_1x1_frames_equals_torch_lstm(batch_first: bool) -> None:
    """With a 1x1 kernel on 1x1 frames every convolution is a matrix product: a ConvLSTM is an LSTM."""
    torch.manual_seed(2)
    theirs = nn.LSTM(3, 4, num_layers=2, batch_first=batch_first)
    ours = ConvLSTM(3, 4, kernel_size=1, num_layers=2, batch_first=batch_first)
    with torch.no_grad():
        for k, cell in enumerate(ours.cells):
            w_ih, w_hh = getattr(theirs, f"weight_ih_l{k}"), getattr(theirs, f"weight_hh_l{k}")
            cell.weight.copy_(torch.cat([w_ih, w_hh], dim=1)[:, :, None, None])  # (4H, C + H, 1, 1)
            cell.bias.copy_(getattr(theirs, f"bias_ih_l{k}") + getattr(theirs, f"bias_hh_l{k}"))

    x = torch.randn(2, 5, 3) if batch_first else torch.randn(5, 2, 3)
    h0, c0 = torch.randn(2, 2, 4), torch.randn(2, 2, 4)
    x_theirs, x_ours = x.clone().requires_grad_(), x[..., None, None].clone().requires_grad_()
    out_theirs, (h_theirs, c_theirs) = theirs(x_theirs, (h0, c0))
    out_ours, (h_ours, c_ours) = ours(x_ours, (h0[..., None, None], c0[..., None, None]))
    torch.testing.assert_close(out_ours[..., 0, 0], out_theirs)
    torch.testing.assert_close(h_ours[..., 0, 0], h_theirs)
    torch.testing.assert_close(c_ours[..., 0, 0], c_theirs)

    weights = torch.randn_like(out_theirs)
    (out_theirs * weights).sum().backward()
    (out_ours[..., 0, 0] * weights).sum().backward()
    torch.testing.assert_close(x_ours.grad[..., 0, 0], x_theirs.grad)
    for k, cell in enumerate(ours.cells):
        w_grad = torch.cat([getattr(theirs, f"weight_ih_l{k}").grad, getattr(theirs, f"weight_hh_l{k}").grad], 1)
        torch.testing.assert_close(cell.weight.grad[:, :, 0, 0], w_grad)
        torch.testing.assert_close(cell.bias.grad, getattr(theirs, f"bias_ih_l{k}").grad)


def test_layer_equals_stepping_the_cells() -> None:
    """The layer's split convolutions (input half once, recurrent half per step) against the cell's one conv."""
    torch.manual_seed(3)
    rnn = ConvLSTM(2, [3, 2], kernel_size=(3, 5), num_layers=2, peephole=True, batch_first=False)
    with torch.no_grad():
        for cell in rnn.cells:
            for w in (cell.weight_ci, cell.weight_cf, cell.weight_co):
                w.uniform_(-1, 1)
    frames = torch.randn(4, 2, 2, 3, 6, requires_grad=True)  # (L, N, C_in, H, W), not square
    output, (h_n, c_n) = rnn(frames)
    r = torch.randn_like(output)
    grads = torch.autograd.grad((output * r).sum(), [frames, *rnn.parameters()])

    x = frames
    for k, cell in enumerate(rnn.cells):
        state = None
        outputs = []
        for x_t in x.unbind(0):
            state = cell(x_t, state)
            outputs.append(state[0])
        x = torch.stack(outputs)
        torch.testing.assert_close(h_n[k], state[0])
        torch.testing.assert_close(c_n[k], state[1])
    torch.testing.assert_close(output, x)
    reference_grads = torch.autograd.grad((x * r).sum(), [frames, *rnn.parameters()])
    for got, want in zip(grads, reference_grads):
        torch.testing.assert_close(got, want)


def test_gradcheck() -> None:
    torch.manual_seed(4)
    rnn = ConvLSTM(1, 2, kernel_size=3, peephole=True, dtype=torch.float64)
    with torch.no_grad():
        for w in (rnn.cells[0].weight_ci, rnn.cells[0].weight_cf, rnn.cells[0].weight_co):
            w.uniform_(-1, 1)
    names = [name for name, _ in rnn.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in rnn.parameters())
    frames = torch.randn(1, 2, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(1, 1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(1, 1, 2, 3, 3, dtype=torch.float64, requires_grad=True)

    def fn(frames, h0, c0, *params):
        output, (h_n, c_n) = torch.func.functional_call(rnn, dict(zip(names, params)), (frames, (h0, c0)))
        return output, c_n

    assert gradcheck(fn, (frames, h0, c0, *params))


def test_shapes_with_equal_and_different_channels() -> None:
    frames = torch.randn(2, 3, 1, 4, 5)  # (N, L, C_in, H, W)
    output, (h_n, c_n) = ConvLSTM(1, 3, kernel_size=3, num_layers=2)(frames)
    assert output.shape == (2, 3, 3, 4, 5)
    assert h_n.shape == c_n.shape == (2, 2, 3, 4, 5)

    rnn = ConvLSTM(1, [6, 3, 2], kernel_size=3, num_layers=3)
    assert [cell.weight.shape for cell in rnn.cells] == [(24, 7, 3, 3), (12, 9, 3, 3), (8, 5, 3, 3)]
    output, (h_n, c_n) = rnn(frames)
    assert output.shape == (2, 3, 2, 4, 5)
    assert isinstance(h_n, tuple) and [h.shape for h in h_n] == [(2, 6, 4, 5), (2, 3, 4, 5), (2, 2, 4, 5)]
    assert [c.shape for c in c_n] == [(2, 6, 4, 5), (2, 3, 4, 5), (2, 2, 4, 5)]
    torch.testing.assert_close(output[:, -1], h_n[-1])

    time_major, (h_tm, _) = ConvLSTM(1, 3, kernel_size=1, batch_first=False)(frames.transpose(0, 1))
    assert time_major.shape == (3, 2, 3, 4, 5) and h_tm.shape == (1, 2, 3, 4, 5)


def test_initial_state_carries_on() -> None:
    """Two calls with the state handed over equal one call on the whole sequence, in both state forms."""
    torch.manual_seed(5)
    frames = torch.randn(2, 5, 1, 3, 3)
    for channels in (2, [3, 2]):
        rnn = ConvLSTM(1, channels, kernel_size=3, num_layers=2)
        whole, (h_whole, c_whole) = rnn(frames)
        first, state = rnn(frames[:, :2])
        second, (h_n, c_n) = rnn(frames[:, 2:], state)
        torch.testing.assert_close(torch.cat([first, second], dim=1), whole)
        for got, want in zip((*h_n, *c_n), (*h_whole, *c_whole)):
            torch.testing.assert_close(got, want)
    rnn = ConvLSTM(1, 2, kernel_size=3, num_layers=2)
    _, (h, c) = rnn(frames[:, :2])
    as_lists, _ = rnn(frames[:, 2:], (list(h), list(c)))
    stacked, _ = rnn(frames[:, 2:], (h, c))
    torch.testing.assert_close(as_lists, stacked)


def test_parameters() -> None:
    plain = ConvLSTMCell(2, 3, kernel_size=(1, 3), bias=False)
    assert dict((n, tuple(p.shape)) for n, p in plain.named_parameters()) == {"weight": (12, 5, 1, 3)}
    assert plain.padding == (0, 1)
    assert plain.weight_ih.shape == (12, 2, 1, 3) and plain.weight_hh.shape == (12, 3, 1, 3)
    cell = ConvLSTMCell(2, 3, kernel_size=3, peephole=True, forget_bias=0.5)
    shapes = {n: tuple(p.shape) for n, p in cell.named_parameters()}
    assert shapes == {
        "weight": (12, 5, 3, 3), "bias": (12,), "weight_ci": (3, 1, 1), "weight_cf": (3, 1, 1), "weight_co": (3, 1, 1),
    }  # fmt: skip
    assert torch.equal(cell.bias, torch.tensor([0.0] * 3 + [0.5] * 3 + [0.0] * 6))
    assert bool((cell.weight_ci == 0).all())
    bound = 1 / np.sqrt(5 * 9)
    assert 0.5 * bound < float(cell.weight.detach().abs().max()) <= bound


# Errors: each names the thing, the expectation and what it got.


@pytest.mark.parametrize("kernel_size", [2, (3, 4), 0, (3,), 3.0])
def test_error_kernel_size(kernel_size) -> None:
    message = r"ConvLSTMCell: kernel_size: expected an odd integer >= 1 or a pair of them \(kH, kW\)"
    with pytest.raises(ValueError, match=message):
        ConvLSTMCell(1, 2, kernel_size)
    with pytest.raises(ValueError, match=message):
        ConvLSTM(1, 2, kernel_size)


def test_error_hidden_channels() -> None:
    message = r"ConvLSTM: hidden_channels: expected an int or a list of num_layers=3 ints, got a list of 2"
    with pytest.raises(ValueError, match=message):
        ConvLSTM(1, [4, 2], 3, num_layers=3)
    with pytest.raises(ValueError, match=r"ConvLSTM: hidden_channels\[1\]: expected an integer >= 1, got 0"):
        ConvLSTM(1, [4, 0], 3, num_layers=2)
    with pytest.raises(ValueError, match=r"ConvLSTMCell: hidden_channels: expected an integer >= 1, got -1"):
        ConvLSTMCell(1, -1, 3)


@pytest.mark.parametrize("batch_first", [True, False])
def test_error_input_rank(batch_first: bool) -> None:
    layout = r"\(N, L, C_in, H, W\)" if batch_first else r"\(L, N, C_in, H, W\)"
    with pytest.raises(ShapeError, match=rf"ConvLSTM: expected input of shape {layout}, got shape \(2, 1, 3, 3\)"):
        ConvLSTM(1, 2, 3, batch_first=batch_first)(torch.randn(2, 1, 3, 3))


def test_error_input_channels() -> None:
    message = r"expected input with 1 channels \(C_in, dimension 2\), got shape \(2, 3, 2, 4, 4\)"
    with pytest.raises(ShapeError, match=message):
        ConvLSTM(1, 2, 3)(torch.randn(2, 3, 2, 4, 4))
    with pytest.raises(ShapeError, match=r"ConvLSTMCell: expected input with 1 channels \(C_in, dimension 1\)"):
        ConvLSTMCell(1, 2, 3)(torch.randn(2, 2, 4, 4))


def test_error_state_shape() -> None:
    rnn = ConvLSTM(1, 2, 3, num_layers=2)
    good = torch.zeros(2, 2, 2, 4, 4)
    message = r"expected c_0 of shape \(2, 2, 2, 4, 4\) \(num_layers, N, C_hid, H, W\), got \(2, 2, 2, 4, 5\)"
    with pytest.raises(ShapeError, match=message):
        rnn(torch.randn(2, 3, 1, 4, 4), (good, torch.zeros(2, 2, 2, 4, 5)))
    message = r"expected h_0\[1\] of shape \(2, 2, 4, 4\) \(N, C_hid, H, W\), got \(2, 3, 4, 4\)"
    with pytest.raises(ShapeError, match=message):
        rnn(torch.randn(2, 3, 1, 4, 4), ([good[0], torch.zeros(2, 3, 4, 4)], good))
    message = (
        r"expected h_0 as a list of 2 tensors, one per layer, because the layers have different "
        r"hidden_channels \(4, 2\); got one tensor"
    )
    with pytest.raises(TypeError, match=message):
        ConvLSTM(1, [4, 2], 3, num_layers=2)(torch.randn(2, 3, 1, 4, 4), (good, good))
    message = r"ConvLSTMCell: expected h_0 of shape \(2, 2, 4, 4\) \(N, C_hid, H, W\), got \(2, 2, 3, 3\)"
    with pytest.raises(ShapeError, match=message):
        ConvLSTMCell(1, 2, 3)(torch.randn(2, 1, 4, 4), (torch.zeros(2, 2, 3, 3), torch.zeros(2, 2, 4, 4)))


def test_error_dtype() -> None:
    message = r"ConvLSTM: expected input of dtype torch.float32 like the parameters, got torch.float64"
    with pytest.raises(ValueError, match=message):
        ConvLSTM(1, 2, 3)(torch.randn(1, 2, 1, 3, 3, dtype=torch.float64))
