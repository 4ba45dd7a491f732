"""LSTM-FCN and MLSTM-FCN (``lstmkit.models.lstm_fcn``) as ONNX nodes: standardised (N, L, F) and lengths in,
the head's outputs (N, C) out, as the module computes them in evaluation mode::

    LSTM branch:  x masked past each length -> (N, F, L) -> zero-padded and cut to T -> (F, N, T), F steps
                  -> lstm_stack -> the top layer's final h, directions merged        (N, D * H_out)
    FCN branch:   per block: mask past each length -> Conv (pads (k-1)//2 before, k//2 after: "same")
                  -> BatchNormalization (running statistics) -> Relu [-> squeeze-and-excitation]
                  -> the mean over the real steps                                    (N, C_last)
    head:         Concat -> the dense head                                           (N, C)

Squeeze-and-excitation: ``u * Sigmoid(ReLU(mean_t u W_1^T) W_2^T)``, the mean over the real steps. Dropout
is the identity in evaluation.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from lstmkit.export.common import dense_head
from lstmkit.export.graph import GraphBuilder
from lstmkit.export.lstm_graph import lstm_stack

__all__ = ["lstm_fcn_network"]


def lstm_fcn_network(g: GraphBuilder, module: nn.Module, x: str, lengths: str) -> str:
    """An ``LSTMFCN`` on standardised ``x`` (N, L, F) with ``lengths`` int64 (N,), each in 1..L: its outputs
    (N, C) before any softmax."""
    real_steps = g.op("Cast", [g.time_mask(lengths, x, 1)], to=1)  # (N, L) float
    memory = _lstm_branch(g, module, g.op("Mul", [x, g.op("Unsqueeze", [real_steps, g.ints([2])])]))
    features = _fcn_branch(g, module.fcn, g.op("Transpose", [x], perm=[0, 2, 1]),
                           g.op("Unsqueeze", [real_steps, g.ints([1])]))  # (N, F, L), mask (N, 1, L)
    return dense_head(g, module.head, g.op("Concat", [memory, features], axis=1), rank=2)


def _lstm_branch(g: GraphBuilder, module: nn.Module, masked: str) -> str:
    """The dimension-shuffled LSTM on ``masked`` (N, L, F), zero past each length: (N, D * H_out)."""
    from lstmkit.export.classifier_graph import merge_final_states_graph

    t = module.shuffle_length
    shuffled = g.op("Transpose", [masked], perm=[0, 2, 1])  # (N, F, L)
    padded = g.op("Pad", [shuffled, g.ints([0, 0, 0, 0, 0, t])])  # (N, F, L + T): at least T steps
    cut = g.op("Slice", [padded, g.ints([0]), g.ints([t]), g.ints([2])])  # (N, F, T)
    sequence = g.op("Transpose", [cut], perm=[1, 0, 2])  # (F, N, T): F steps of T values
    batch = g.op("Shape", [masked], start=0, end=1)  # (1,)
    every_step = g.op("Expand", [g.const([module.input_size], dtype=np.int32), batch])  # (N,) int32, all F
    _, final_h, _ = lstm_stack(g, module.lstm, sequence, every_step)
    return merge_final_states_graph(g, final_h[-1], module.lstm.variants.merge_mode)


def _fcn_branch(g: GraphBuilder, fcn: nn.Module, y: str, real: str) -> str:
    """The convolution blocks on ``y`` (N, F, L) with the real steps ``real`` (N, 1, L) as 0/1: (N, C_last)."""
    from lstmkit.models.lstm_fcn import SqueezeExcite

    for conv, norm, excite in zip(fcn.convs, fcn.norms, fcn.excites):
        y = g.op("Mul", [y, real])  # the padding must not reach the real steps through the kernels
        kernel = conv.kernel_size[0]
        y = g.op("Conv", [y, g.const(conv.weight.detach().cpu().numpy(), "fcn_weight"),
                          g.const(conv.bias.detach().cpu().numpy(), "fcn_bias")],
                 kernel_shape=[kernel], pads=[(kernel - 1) // 2, kernel // 2])
        y = g.op("BatchNormalization", [y, *(g.const(_bn_parameter(norm, name), f"bn_{name}")
                                             for name in ("weight", "bias", "running_mean", "running_var"))],
                 epsilon=float(norm.eps))
        y = g.op("Relu", [y])
        if isinstance(excite, SqueezeExcite):
            squeezed = _masked_mean(g, y, real)  # (N, C)
            hidden = g.op("Relu", [g.op("MatMul", [squeezed, g.const(excite.reduce.weight.detach().cpu().numpy().T,
                                                                     "se_reduce_t")])])
            scale = g.op("Sigmoid", [g.op("MatMul", [hidden, g.const(excite.expand.weight.detach().cpu().numpy().T,
                                                                     "se_expand_t")])])
            y = g.op("Mul", [y, g.op("Unsqueeze", [scale, g.ints([2])])])
    return _masked_mean(g, y, real)


def _masked_mean(g: GraphBuilder, y: str, real: str) -> str:
    """The mean of ``y`` (N, C, L) over the real steps ``real`` (N, 1, L): (N, C)."""
    total = g.op("ReduceSum", [g.op("Mul", [y, real]), g.ints([2])], keepdims=0)
    count = g.op("Max", [g.op("ReduceSum", [real, g.ints([2])], keepdims=0), g.const([1.0])])  # (N, 1)
    return g.op("Div", [total, count])


def _bn_parameter(norm: nn.BatchNorm1d, name: str) -> np.ndarray:
    """A batch norm's scale, shift or running statistic (1 and 0 for the scale and shift without ``affine``)."""
    value = getattr(norm, name)
    if value is None:
        return np.full(norm.num_features, 1.0 if name == "weight" else 0.0, dtype=np.float32)
    return value.detach().cpu().numpy().astype(np.float32)
