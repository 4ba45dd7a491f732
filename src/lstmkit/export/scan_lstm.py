r"""One LSTM layer direction as an ONNX ``Scan`` whose body is the cell in standard ops.

This is how the exporter writes the cells that the standard ONNX ``LSTM`` node cannot express exactly:
layer norm, a projection (``proj_size``), lstmkit's ``cell_clip`` and zoneout's evaluation-time mix (with
any of the others: peepholes, coupled gates, the six activations). The body is
:func:`lstmkit.nn.lstm_cell` in evaluation mode, op for op:

.. math::
    \begin{array}{ll}
        z_t = \mathrm{xw}_t + \mathrm{LN}_{hh}(h_{t-1} W_{hh}^T) & \text{(without layer norm: }
            \mathrm{xw}_t + h_{t-1} W_{hh}^T\text{)} \\
        (z_i | z_f | z_g | z_o) = z_t, \quad z_i \mathrel{+}= p_i \odot c_{t-1}, \quad
            z_f \mathrel{+}= p_f \odot c_{t-1} \\
        i_t = \sigma(z_i), \quad f_t = \sigma(z_f) \text{ (or } 1 - i_t \text{ with coupled gates)}, \quad
            g_t = \tanh(z_g) \\
        \tilde c_t = \mathrm{clip}(f_t \odot c_{t-1} + i_t \odot g_t, -v, v) \\
        o_t = \sigma(z_o + p_o \odot \tilde c_t), \quad
            \tilde h_t = \big(o_t \odot \tanh(\mathrm{LN}_c(\tilde c_t))\big) W_{hr}^T \\
        h'_t = \tilde h_t + p_h (h_{t-1} - \tilde h_t), \quad c'_t = \tilde c_t + p_c (c_{t-1} - \tilde c_t)
            \quad \text{(zoneout's expectation)} \\
        (h_t, c_t) = (h'_t, c'_t) \text{ where } t < \mathrm{length}, \text{ else } (h_{t-1}, c_{t-1}); \quad
            y_t = h'_t \text{ where } t < \mathrm{length}, \text{ else } 0
    \end{array}

where :math:`\mathrm{xw}_t` is the input half, computed for all steps at once outside the loop by
:func:`input_projection` (:math:`x_t W_{ih}^T + b_{ih} + b_{hh}`, or with layer norm
:math:`\mathrm{LN}_{ih}(x_t W_{ih}^T) + b_{ih} + b_{hh}`), every LN is ONNX ``LayerNormalization`` over the
last axis with :math:`\epsilon = 10^{-5}` (the two pre-activation norms with a gain and no shift), and each
term is present only when its option is. The reverse direction runs the same body over each sequence's real
steps reversed (``ReverseSequence`` with the lengths before and after the ``Scan``), so it starts at each
sequence's own last real step, as a packed sequence does; the padding stays in place and never reaches the
state.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
from torch import Tensor

from lstmkit.export.graph import GraphBuilder
from lstmkit.nn.layer import LayerWeights
from lstmkit.nn.options import LSTMOptions
from lstmkit.nn.variants import LAYER_NORM_EPS

__all__ = ["input_projection", "reverse_in_time", "scan_direction"]


def _array(tensor: Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy().astype(np.float32)


def _layer_norm(g: GraphBuilder, x: str, gain: Tensor, shift: Tensor | None = None) -> str:
    """``LayerNormalization`` over the last axis with the LSTM's epsilon; a zero shift when ``shift`` is None."""
    beta = np.zeros(gain.shape, np.float32) if shift is None else _array(shift)
    return g.op("LayerNormalization", [x, g.const(_array(gain), "ln_gain"), g.const(beta, "ln_shift")],
                axis=-1, epsilon=LAYER_NORM_EPS)


def _folded_bias(weights: LayerWeights) -> np.ndarray | None:
    if weights.bias_ih is None:
        return None
    return _array(weights.bias_ih + weights.bias_hh)


def input_projection(g: GraphBuilder, weights: LayerWeights, sequence: str) -> str:
    """The input half of every step's pre-activations, (L, N, F) -> (L, N, G*H), both biases folded in.

    :math:`x W_{ih}^T + b_{ih} + b_{hh}`, or with layer norm :math:`\\mathrm{LN}(x W_{ih}^T) + b_{ih} + b_{hh}`,
    as :func:`lstmkit.nn.layer.input_projection` computes it.
    """
    xw = g.op("MatMul", [sequence, g.const(_array(weights.weight_ih).T, "W_ih_t")])  # (L, N, G*H)
    if weights.ln_ih_weight is not None:
        xw = _layer_norm(g, xw, weights.ln_ih_weight)
    bias = _folded_bias(weights)
    return xw if bias is None else g.op("Add", [xw, g.const(bias, "b_ih_hh")])


def reverse_in_time(g: GraphBuilder, sequence: str, lengths: str) -> str:
    """Reverse the first ``lengths[n]`` steps of each sequence of ``sequence`` (L, N, ...); padding stays put.

    ``lengths`` is int64 (N,). Applied twice, it is the identity.
    """
    return g.op("ReverseSequence", [sequence, lengths], batch_axis=1, time_axis=0)


@contextlib.contextmanager
def _subgraph(g: GraphBuilder) -> Iterator[tuple[list, list]]:
    """Nodes and constants made with ``g`` inside the block go to the yielded (nodes, initializers) lists.

    The body shares ``g``'s name counter, so its names never shadow a name of the enclosing graph.
    """
    outer = g.nodes, g.initializers
    body: tuple[list, list] = ([], [])
    g.nodes, g.initializers = body
    try:
        yield body
    finally:
        g.nodes, g.initializers = outer


def _activation(g: GraphBuilder, name: str, x: str) -> str:
    from lstmkit.export.lstm_graph import ONNX_ACTIVATIONS

    return g.op(ONNX_ACTIVATIONS[name], [x])


def _cell_body(g: GraphBuilder, weights: LayerWeights, options: LSTMOptions, h_prev: str, c_prev: str, xw_t: str,
               valid_t: str) -> tuple[str, str, str]:
    """The body's nodes for one step (see the module docstring); returns (h_t, c_t, y_t)."""
    variants = options.variants
    recurrent = g.op("MatMul", [h_prev, g.const(_array(weights.weight_hh).T, "W_hh_t")])  # (N, G*H)
    if weights.ln_hh_weight is not None:
        recurrent = _layer_norm(g, recurrent, weights.ln_hh_weight)
    gates = g.op("Add", [xw_t, recurrent])  # (N, G*H)
    if variants.coupled_gates:
        pre_i, pre_g, pre_o = g.op("Split", [gates], outputs=3, axis=1)  # 3 x (N, H)
        pre_f = None
    else:
        pre_i, pre_f, pre_g, pre_o = g.op("Split", [gates], outputs=4, axis=1)  # 4 x (N, H)
    peephole = None if weights.weight_peephole is None else _array(weights.weight_peephole)  # (3 or 2, H)
    if peephole is not None:
        pre_i = g.op("Add", [pre_i, g.op("Mul", [g.const(peephole[0], "p_i"), c_prev])])
        if pre_f is not None:
            pre_f = g.op("Add", [pre_f, g.op("Mul", [g.const(peephole[1], "p_f"), c_prev])])
    input_gate = _activation(g, options.gate_activation, pre_i)
    if pre_f is None:
        forget_gate = g.op("Sub", [g.const(1.0), input_gate])
    else:
        forget_gate = _activation(g, options.gate_activation, pre_f)
    candidate = _activation(g, options.cell_activation, pre_g)
    c_next = g.op("Add", [g.op("Mul", [forget_gate, c_prev]), g.op("Mul", [input_gate, candidate])])  # (N, H)
    if variants.cell_clip is not None:
        c_next = g.op("Clip", [c_next, g.const(-variants.cell_clip), g.const(variants.cell_clip)])
    if peephole is not None:
        pre_o = g.op("Add", [pre_o, g.op("Mul", [g.const(peephole[-1], "p_o"), c_next])])  # sees c_t
    output_gate = _activation(g, options.gate_activation, pre_o)
    c_out = c_next
    if weights.ln_c_weight is not None:
        c_out = _layer_norm(g, c_next, weights.ln_c_weight, weights.ln_c_bias)
    h_next = g.op("Mul", [output_gate, _activation(g, options.hidden_activation, c_out)])  # (N, H)
    if weights.weight_hr is not None:
        h_next = g.op("MatMul", [h_next, g.const(_array(weights.weight_hr).T, "W_hr_t")])  # (N, H_out)
    keep_h, keep_c = variants.zoneout
    if keep_h > 0:
        h_next = g.op("Add", [h_next, g.op("Mul", [g.const(keep_h), g.op("Sub", [h_prev, h_next])])])
    if keep_c > 0:
        c_next = g.op("Add", [c_next, g.op("Mul", [g.const(keep_c), g.op("Sub", [c_prev, c_next])])])
    h_t = g.op("Where", [valid_t, h_next, h_prev])  # past the end the state is held
    c_t = g.op("Where", [valid_t, c_next, c_prev])
    y_t = g.op("Where", [valid_t, h_next, g.const(0.0)])  # and the output is zero
    return h_t, c_t, y_t


def scan_direction(g: GraphBuilder, weights: LayerWeights, options: LSTMOptions, xw: str, valid: str,
                   h0: str, c0: str) -> tuple[str, str, str]:
    """Run one layer in one direction as a ``Scan`` over ``xw`` (L, N, G*H) from :func:`input_projection`.

    Args:
        valid: bool (L, N, 1), true where step t is inside sequence n.
        h0, c0: initial states (N, H_out) and (N, H).

    Returns:
        (outputs (L, N, H_out), zero past each length; h_n (N, H_out); c_n (N, H)), the states of each
        sequence's last real step. For the reverse direction, reverse ``xw`` and the outputs with
        :func:`reverse_in_time` around this call.
    """
    from onnx import TensorProto, helper

    hidden, out = options.hidden_size, options.output_size
    gate_size = options.variants.num_gates * hidden
    h_prev, c_prev, xw_t, valid_t = (g._name(hint) for hint in ("h_prev", "c_prev", "xw_t", "valid_t"))
    with _subgraph(g) as (nodes, initializers):
        h_t, c_t, y_t = _cell_body(g, weights, options, h_prev, c_prev, xw_t, valid_t)
        # Body outputs must be produced by the body under their own names.
        h_t, c_t, y_t = (g.op("Identity", [name], outputs=[g._name(hint)])
                         for name, hint in ((h_t, "h_t"), (c_t, "c_t"), (y_t, "y_t")))
    float_info = lambda name, width: helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, width])
    body = helper.make_graph(
        nodes, g._name("lstm_cell"),
        [float_info(h_prev, out), float_info(c_prev, hidden), float_info(xw_t, gate_size),
         helper.make_tensor_value_info(valid_t, TensorProto.BOOL, [None, 1])],
        [float_info(h_t, out), float_info(c_t, hidden), float_info(y_t, out)],
        initializers,
    )
    h_n, c_n, y = g.op("Scan", [h0, c0, xw, valid], outputs=3, body=body, num_scan_inputs=2)
    return y, h_n, c_n
