"""The fused LSTM path: PyTorch's own kernel (oneDNN on CPU, cuDNN on CUDA), called as ``torch.nn.LSTM`` does.

It computes the vanilla LSTM only (sigmoid gates, tanh cell and hidden activations). The flat weight
list is, for each layer and then each direction, ``weight_ih, weight_hh[, bias_ih, bias_hh][, weight_hr]``;
the kernel infers the projection from the list's length.
"""

from __future__ import annotations

from torch import Tensor, _VF
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence


def fused_lstm_packed(
    input: PackedSequence,
    hx: tuple[Tensor, Tensor],
    flat_weights: list[Tensor],
    has_biases: bool,
    num_layers: int,
    dropout: float,
    training: bool,
    bidirectional: bool,
) -> tuple[PackedSequence, tuple[Tensor, Tensor]]:
    """Run the kernel on a packed batch; ``hx`` and the returned states are in the caller's batch order."""
    h0, c0 = hx
    if input.sorted_indices is not None:
        h0 = h0.index_select(1, input.sorted_indices)
        c0 = c0.index_select(1, input.sorted_indices)
    output, h_n, c_n = _VF.lstm(
        input.data,
        input.batch_sizes,
        (h0, c0),
        flat_weights,
        has_biases,
        num_layers,
        dropout,
        training,
        bidirectional,
    )
    if input.unsorted_indices is not None:
        h_n = h_n.index_select(1, input.unsorted_indices)
        c_n = c_n.index_select(1, input.unsorted_indices)
    packed = PackedSequence(output, input.batch_sizes, input.sorted_indices, input.unsorted_indices)
    return packed, (h_n, c_n)


def fused_lstm(
    input: Tensor,
    hx: tuple[Tensor, Tensor],
    flat_weights: list[Tensor],
    has_biases: bool,
    num_layers: int,
    dropout: float,
    training: bool,
    bidirectional: bool,
    batch_first: bool,
    lengths: Tensor | None = None,
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """Run the kernel on a padded batch, (L, N, H_in) or with ``batch_first`` (N, L, H_in).

    With ``lengths`` (a CPU int64 tensor of shape (N,)) the batch is packed, run and padded back to L
    steps, so outputs past each sequence's end are zero and the final states are those of its last step.
    """
    if lengths is None:
        output, h_n, c_n = _VF.lstm(
            input, hx, flat_weights, has_biases, num_layers, dropout, training, bidirectional, batch_first
        )
        return output, (h_n, c_n)
    seq_len = input.size(1 if batch_first else 0)
    packed = pack_padded_sequence(input, lengths, batch_first=batch_first, enforce_sorted=False)
    packed_output, hidden = fused_lstm_packed(
        packed, hx, flat_weights, has_biases, num_layers, dropout, training, bidirectional
    )
    output, _ = pad_packed_sequence(packed_output, batch_first=batch_first, total_length=seq_len)
    return output, hidden
