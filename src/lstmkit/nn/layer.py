"""The reference LSTM layers: the time loop over :func:`lstm_cell`, directions, lengths and stacking.

Everything here is plain PyTorch and works time-major, on a padded input of shape (L, N, H_in). The
module :class:`lstmkit.nn.LSTM` converts ``batch_first``, unbatched and packed inputs to that form.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor
from torch.nn import functional as F

from .cell import DEFAULT_ACTIVATIONS, CellActivations, lstm_cell


class LayerWeights(NamedTuple):
    """The parameters of one layer in one direction, as ``torch.nn.LSTM`` names them (without suffix)."""

    weight_ih: Tensor  # (4H, H_in)
    weight_hh: Tensor  # (4H, H_out)
    bias_ih: Tensor | None  # (4H,)
    bias_hh: Tensor | None  # (4H,)
    weight_hr: Tensor | None  # (H_out, H)


class TimeMasks(NamedTuple):
    """What variable lengths mean for the time loop.

    Attributes:
        valid: ``valid[t, b]`` is true while step ``t`` is inside sequence ``b``; shape (L, N, 1).
        reverse_index: reverses the first ``lengths[b]`` steps of each sequence ``b`` and leaves its
            padding in place; applying it twice is the identity. Shape (L, N, 1).
    """

    valid: Tensor
    reverse_index: Tensor


def time_masks(lengths: Tensor, seq_len: int) -> TimeMasks:
    """Build the masks for sequences of the given ``lengths`` (N,) padded to ``seq_len`` steps."""
    steps = torch.arange(seq_len, device=lengths.device).unsqueeze(1)  # (L, 1)
    lengths = lengths.unsqueeze(0)  # (1, N)
    valid = steps < lengths  # (L, N)
    reverse_index = torch.where(valid, lengths - 1 - steps, steps)  # (L, N)
    return TimeMasks(valid.unsqueeze(2), reverse_index.unsqueeze(2))


def run_direction(
    xw: Tensor,
    h0: Tensor,
    c0: Tensor,
    weights: LayerWeights,
    activations: CellActivations = DEFAULT_ACTIVATIONS,
    valid: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Run one layer forward in time over precomputed input projections.

    Args:
        xw: input projections with both biases folded in, shape (L, N, 4H).
        h0, c0: initial states, shapes (N, H_out) and (N, H).
        weights: the layer's parameters (only ``weight_hh`` and ``weight_hr`` are used here).
        activations: the cell's activations.
        valid: ``None`` when every sequence has L steps, else a bool mask (L, N, 1); past a sequence's
            end its state is held, so the final state is the one of its last real step.

    Returns:
        ``(outputs, h_n, c_n)``: outputs (L, N, H_out), with the held state (not zero) past each end, and
        the final states (N, H_out), (N, H).
    """
    h, c = h0, c0
    outputs = []
    # unbind, not xw[t]: indexing in the loop makes the backward pass quadratic in L.
    if valid is None:
        for xw_t in xw.unbind(0):
            h, c = lstm_cell(xw_t, h, c, weights.weight_hh, None, weights.weight_hr, activations)
            outputs.append(h)
    else:
        for xw_t, valid_t in zip(xw.unbind(0), valid.unbind(0)):
            h_next, c_next = lstm_cell(xw_t, h, c, weights.weight_hh, None, weights.weight_hr, activations)
            h = torch.where(valid_t, h_next, h)
            c = torch.where(valid_t, c_next, c)
            outputs.append(h)
    return torch.stack(outputs), h, c


def input_projection(x: Tensor, weights: LayerWeights) -> Tensor:
    """``W_ih x + b_ih + b_hh`` for every time step at once: (L, N, H_in) -> (L, N, 4H)."""
    bias = None
    if weights.bias_ih is not None:
        bias = weights.bias_ih + weights.bias_hh
    return F.linear(x, weights.weight_ih, bias)  # (L, N, 4H)


def reference_lstm(
    x: Tensor,
    h0: Tensor,
    c0: Tensor,
    layers: list[list[LayerWeights]],
    activations: CellActivations = DEFAULT_ACTIVATIONS,
    dropout: float = 0.0,
    training: bool = False,
    lengths: Tensor | None = None,
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """A stacked, optionally bidirectional LSTM over a time-major padded batch.

    Args:
        x: input, shape (L, N, H_in).
        h0, c0: initial states, shapes (D * num_layers, N, H_out) and (D * num_layers, N, H).
        layers: ``layers[k][d]`` holds the weights of layer ``k`` in direction ``d`` (0 forward, 1 reverse).
        activations: the cell's activations.
        dropout: probability of dropping each output of every layer but the last (training only).
        training: whether dropout is active.
        lengths: ``None`` when every sequence has L steps, else the length of each sequence, shape (N,),
            on ``x``'s device, values in 1..L.

    Returns:
        ``(output, (h_n, c_n))``: output (L, N, D * H_out), exactly zero past each sequence's end; h_n
        (D * num_layers, N, H_out) and c_n (D * num_layers, N, H) hold the states of each sequence's last
        real step (for the reverse direction, of its first step).
    """
    masks = None if lengths is None else time_masks(lengths, x.size(0))
    valid = None if masks is None else masks.valid
    num_directions = len(layers[0])
    h_n, c_n = [], []
    for k, directions in enumerate(layers):
        outputs = []
        for d, weights in enumerate(directions):
            state = k * num_directions + d
            xw = input_projection(x, weights)  # (L, N, 4H)
            if d == 1:
                xw = _reverse_in_time(xw, masks)
            out, h, c = run_direction(xw, h0[state], c0[state], weights, activations, valid)
            if d == 1:
                out = _reverse_in_time(out, masks)
            outputs.append(out)
            h_n.append(h)
            c_n.append(c)
        x = outputs[0] if num_directions == 1 else torch.cat(outputs, dim=2)  # (L, N, D * H_out)
        if valid is not None:
            x = torch.where(valid, x, 0.0)
        if dropout > 0 and training and k < len(layers) - 1:
            x = F.dropout(x, p=dropout, training=True)
    return x, (torch.stack(h_n), torch.stack(c_n))


def _reverse_in_time(seq: Tensor, masks: TimeMasks | None) -> Tensor:
    """Reverse the real steps of each sequence in ``seq`` (L, N, F); the padding stays where it is."""
    if masks is None:
        return seq.flip(0)
    return seq.gather(0, masks.reverse_index.expand_as(seq))  # (L, N, F)
