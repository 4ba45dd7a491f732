"""Every error a user of lstmkit.nn.LSTM can cause names the thing, the expectation and what it got."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from lstmkit.errors import ShapeError
from lstmkit.nn import LSTM


@pytest.fixture(params=["reference", "fused"])
def lstm(request) -> LSTM:
    return LSTM(28, 16, num_layers=2, bidirectional=True, impl=request.param)  # D * num_layers = 4


def test_wrong_feature_count(lstm: LSTM) -> None:
    expected = r"LSTM: expected input with 28 features \(last dimension\), got shape \(4, 8, 32\)"
    with pytest.raises(ShapeError, match=expected):
        lstm(torch.randn(4, 8, 32))


def test_wrong_feature_count_packed(lstm: LSTM) -> None:
    packed = pack_padded_sequence(torch.randn(5, 2, 3), [5, 2])
    with pytest.raises(ShapeError, match=r"expected input with 28 features .* got shape \(7, 3\)"):
        lstm(packed)


@pytest.mark.parametrize("shape", [(28,), (2, 3, 4, 28)])
def test_wrong_input_rank(lstm: LSTM, shape: tuple[int, ...]) -> None:
    with pytest.raises(ShapeError, match=r"expected input of shape \(L, N, H_in\) or unbatched \(L, H_in\), got shape"):
        lstm(torch.randn(shape))


def test_wrong_input_rank_batch_first() -> None:
    with pytest.raises(ShapeError, match=r"expected input of shape \(N, L, H_in\)"):
        LSTM(3, 4, batch_first=True)(torch.randn(2, 2, 2, 3))


def test_empty_sequence(lstm: LSTM) -> None:
    with pytest.raises(ShapeError, match=r"expected at least one time step, got input of shape \(0, 2, 28\)"):
        lstm(torch.randn(0, 2, 28))


def test_wrong_dtype(lstm: LSTM) -> None:
    with pytest.raises(ValueError, match=r"expected input of dtype torch.float32 .* got torch.float64"):
        lstm(torch.randn(5, 2, 28, dtype=torch.float64))


@pytest.mark.parametrize(
    ("lengths", "message"),
    [
        ([5, 6], r"expected every length in 1\.\.5 \(the padded sequence length L\), got lengths from 5 to 6"),
        ([0, 3], r"expected every length in 1\.\.5 .* got lengths from 0 to 3"),
        ([5, 3, 2], r"expected one length per sequence, shape \(2,\), got shape \(3,\)"),
        ([], r"expected one length per sequence, shape \(2,\), got shape \(0,\)"),
        (torch.tensor([[5, 3]]), r"expected one length per sequence, shape \(2,\), got shape \(1, 2\)"),
        (torch.tensor([5.0, 3.0]), r"expected integer lengths, got dtype torch.float32"),
        (["a", "b"], r"expected lengths as a list or 1-D tensor of 2 integers"),
    ],
    ids=["too-long", "zero", "too-many", "empty", "2-D", "float", "strings"],
)
def test_bad_lengths(lstm: LSTM, lengths, message: str) -> None:
    with pytest.raises(ShapeError, match=message):
        lstm(torch.randn(5, 2, 28), lengths=lengths)


def test_lengths_with_unbatched_input(lstm: LSTM) -> None:
    with pytest.raises(ShapeError, match=r"lengths needs a batched 3-D input, got unbatched input of shape \(5, 28\)"):
        lstm(torch.randn(5, 28), lengths=[3])


def test_lengths_with_packed_input(lstm: LSTM) -> None:
    packed = pack_padded_sequence(torch.randn(5, 2, 28), [5, 2])
    with pytest.raises(ValueError, match=r"lengths must be None for a PackedSequence input"):
        lstm(packed, lengths=[5, 2])


@pytest.mark.parametrize(
    ("h_shape", "c_shape", "message"),
    [
        ((2, 2, 16), (4, 2, 16), r"expected h_0 of shape \(4, 2, 16\) \(D\*num_layers, N, H_out\), got \(2, 2, 16\)"),
        ((4, 2, 16), (4, 3, 16), r"expected c_0 of shape \(4, 2, 16\) \(D\*num_layers, N, H_cell\), got \(4, 3, 16\)"),
        ((4, 16), (4, 16), r"expected h_0 of shape \(4, 2, 16\) .* got \(4, 16\)"),
    ],
)
def test_bad_initial_state(lstm: LSTM, h_shape, c_shape, message: str) -> None:
    with pytest.raises(ShapeError, match=message):
        lstm(torch.randn(5, 2, 28), (torch.zeros(h_shape), torch.zeros(c_shape)))


def test_bad_initial_state_unbatched(lstm: LSTM) -> None:
    with pytest.raises(ShapeError, match=r"expected h_0 of shape \(4, 16\) \(D\*num_layers, H_out\), got \(4, 1, 16\)"):
        lstm(torch.randn(5, 28), (torch.zeros(4, 1, 16), torch.zeros(4, 16)))


def test_bad_initial_state_packed(lstm: LSTM) -> None:
    packed = pack_padded_sequence(torch.randn(5, 2, 28), [5, 2])
    with pytest.raises(ShapeError, match=r"expected c_0 of shape \(4, 2, 16\)"):
        lstm(packed, (torch.zeros(4, 2, 16), torch.zeros(4, 2, 8)))


def test_initial_state_not_a_pair(lstm: LSTM) -> None:
    with pytest.raises(TypeError, match=r"expected hx to be a tuple \(h_0, c_0\) of two tensors, got Tensor"):
        lstm(torch.randn(5, 2, 28), torch.zeros(4, 2, 16))


@pytest.mark.parametrize("argument", ["gate_activation", "cell_activation", "hidden_activation"])
def test_unknown_activation(argument: str) -> None:
    with pytest.raises(ValueError, match=rf"LSTM: {argument}: expected one of 'sigmoid', .*'softsign', got 'swish'"):
        LSTM(3, 4, **{argument: "swish"})


def test_unknown_init() -> None:
    with pytest.raises(ValueError, match=r"LSTM: init: expected one of 'default', 'torch', got 'xavier'"):
        LSTM(3, 4, init="xavier")


def test_unknown_impl() -> None:
    with pytest.raises(ValueError, match=r"LSTM: impl: expected one of 'auto', 'reference', 'fused', 'fast', got 'cudnn'"):
        LSTM(3, 4, impl="cudnn")


def test_fused_with_relu() -> None:
    with pytest.raises(ValueError, match=r"impl='fused' .* got cell_activation='relu'. Use impl='auto' or 'reference'"):
        LSTM(3, 4, impl="fused", cell_activation="relu")


@pytest.mark.parametrize("proj_size", [4, 5, -1])
def test_bad_proj_size(proj_size: int) -> None:
    with pytest.raises(ValueError, match=r"LSTM: proj_size: expected .*got -?\d"):
        LSTM(3, 4, proj_size=proj_size)


@pytest.mark.parametrize("dropout", [-0.1, 1.5, "0.5", True])
def test_bad_dropout(dropout) -> None:
    with pytest.raises(ValueError, match=r"LSTM: dropout: expected a probability in \[0, 1\], got"):
        LSTM(3, 4, num_layers=2, dropout=dropout)


def test_dropout_with_one_layer_warns() -> None:
    with pytest.warns(UserWarning, match=r"dropout=0.5 acts between stacked layers only"):
        LSTM(3, 4, dropout=0.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(input_size=0), r"LSTM: input_size: expected an integer >= 1, got 0"),
        (dict(hidden_size=2.5), r"LSTM: hidden_size: expected an integer >= 1, got 2.5"),
        (dict(num_layers=0), r"LSTM: num_layers: expected an integer >= 1, got 0"),
        (dict(bias=1), r"LSTM: bias: expected True or False, got 1"),
        (dict(batch_first="yes"), r"LSTM: batch_first: expected True or False, got 'yes'"),
        (dict(forget_bias="1"), r"LSTM: forget_bias: expected a real number, got '1'"),
        (dict(chrono_init=2.5), r"LSTM: chrono_init: expected an integer >= 0, got 2.5"),
        (dict(chrono_init=2), r"LSTM: chrono_init: expected 0 \(off\) or a longest dependency T_max >= 3 steps, got 2"),
    ],
)
def test_bad_constructor_arguments(kwargs: dict, message: str) -> None:
    arguments = dict(input_size=3, hidden_size=4) | kwargs
    with pytest.raises(ValueError, match=message):
        LSTM(**arguments)
