"""The LSTM stack of an ``lstmkit.nn.LSTM`` as ONNX nodes: a standard ``LSTM`` node per layer where it is
exact, else a ``Scan`` over the cell written in standard ops (``scan_lstm``).

The standard ``LSTM`` node computes the cell exactly with any of the six activations (its ``activations``
attribute), peepholes (its ``P`` input, in ONNX's order ``[p_i, p_o, p_f]``), coupled gates (its
``input_forget`` attribute), both directions and ``sequence_lens``. It cannot express layer norm, a
projection (``proj_size``), lstmkit's ``cell_clip`` (ONNX's ``clip`` clips every activation's input and
carries the unclipped cell state on, which is another function) or zoneout's evaluation-time mix; an LSTM
with any of those runs every layer as ``scan_lstm.scan_direction``. Between layers, residual stacking and
the merge modes (``concat``, ``sum``, ``mean``) are plain ``Add``/``Concat``/``ReduceSum`` nodes on either
kind of layer. Recurrent dropout and weight drop are the identity in evaluation and export as nothing;
``forget_bias`` and ``chrono_init`` only set initial values, which the exported weights carry.

The weights are reordered from PyTorch's gate order (i, f, g, o) to ONNX's (i, o, f, c) for the node; with
coupled gates (weights i, g, o) the node gets a zero forget block, which ``input_forget`` ignores. Steps past a
sequence's length never reach its state and hold zeros in the outputs, on both paths.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from lstmkit.export.graph import GraphBuilder
from lstmkit.export.scan_lstm import input_projection, reverse_in_time, scan_direction
from lstmkit.nn.layer import LayerWeights
from lstmkit.nn.options import LSTMOptions
from lstmkit.nn.variants import Variants

__all__ = ["ONNX_ACTIVATIONS", "lstm_node_is_exact", "lstm_refusals", "lstm_stack"]

#: lstmkit activation name -> ONNX op type, both as an ``LSTM`` node's ``activations`` entry and as the
#: ``Scan`` body's op (ONNX's defaults for alpha and beta are ours: HardSigmoid 0.2 and 0.5, Elu 1.0).
ONNX_ACTIVATIONS = {
    "sigmoid": "Sigmoid",
    "hard_sigmoid": "HardSigmoid",
    "tanh": "Tanh",
    "relu": "Relu",
    "elu": "Elu",
    "softsign": "Softsign",
}

# The variant options this writer knows (all of lstmkit.nn.variants.Variants today); a variant added later
# is refused until the writer learns it, so a new option never exports silently wrong.
_EXPORTED_VARIANTS = frozenset(
    {"peephole", "coupled_gates", "layer_norm", "recurrent_dropout", "zoneout", "weight_drop", "cell_clip",
     "residual", "merge_mode"})
# The parameter kinds this writer reads (the fields of lstmkit.nn.layer.LayerWeights today).
_EXPORTED_PARAMETERS = frozenset(
    {"weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr", "weight_peephole", "ln_ih_weight",
     "ln_hh_weight", "ln_c_weight", "ln_c_bias"})
# torch gate blocks (i, f, g, o) in ONNX's order (i, o, f, c)
_ONNX_GATE_ORDER = (0, 3, 1, 2)
_INT64 = 7


def lstm_refusals(lstm: nn.Module, named: set[str] = frozenset()) -> list[str]:
    """What of ``lstm``'s options the ONNX writer cannot express (empty when it exports).

    Every option of ``lstmkit.nn.LSTM`` exports today; what is refused is what the writer was not written
    for: an activation added to ``lstmkit.nn.ACTIVATIONS`` by the user (ONNX has no op for it), and a variant
    or parameter kind added to the engine after this writer. ``named`` holds variant keys already named by
    the caller (through a ``[model]`` key), named once.
    """
    refusals = []
    structure = lstm.structure
    options = structure.options
    for key, value in options.variants.active().items():
        if key not in _EXPORTED_VARIANTS and key not in named:
            refusals.append(f"LSTM variant {key}={value!r}")
    for attribute, value in options.activation_names.items():
        if value not in ONNX_ACTIVATIONS:
            refusals.append(f"{attribute} = {value!r} (the ONNX exporter maps {', '.join(ONNX_ACTIVATIONS)})")
    for names in (names for directions in structure.names for names in directions):
        for kind, name in names._asdict().items():
            if name is not None and kind not in _EXPORTED_PARAMETERS:
                refusals.append(f"LSTM parameter {name}")
    return refusals


def lstm_node_is_exact(options: LSTMOptions) -> bool:
    """Whether the standard ONNX ``LSTM`` node computes this LSTM's layers exactly in evaluation mode.

    It does unless the cell has layer norm, a projection, ``cell_clip`` or zoneout (see the module docstring).
    """
    variants: Variants = options.variants
    return (not variants.layer_norm and options.proj_size == 0 and variants.cell_clip is None
            and variants.zoneout == (0.0, 0.0))


def _array(tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy().astype(np.float32)


def _torch_gates_to_onnx(weight: np.ndarray, hidden: int, coupled: bool = False) -> np.ndarray:
    """Reorder the gate blocks along axis 0 from PyTorch's (i, f, g, o) to ONNX's (i, o, f, c).

    With ``coupled`` the blocks are (i, g, o) and the forget block is zero (``input_forget`` ignores it).
    """
    blocks = [weight[k * hidden:(k + 1) * hidden] for k in range(len(weight) // hidden)]
    if coupled:
        blocks = [blocks[0], np.zeros_like(blocks[0]), blocks[1], blocks[2]]
    return np.concatenate([blocks[k] for k in _ONNX_GATE_ORDER], axis=0)


def _onnx_lstm_weights(options: LSTMOptions, directions: tuple[LayerWeights, ...]
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """W (D, 4H, in), R (D, 4H, H), B (D, 8H) and P (D, 3H) or None of one layer, in ONNX's layout."""
    hidden = options.hidden_size
    coupled = options.variants.coupled_gates
    ws, rs, bs, ps = [], [], [], []
    for weights in directions:  # forward, then reverse
        ws.append(_torch_gates_to_onnx(_array(weights.weight_ih), hidden, coupled))
        rs.append(_torch_gates_to_onnx(_array(weights.weight_hh), hidden, coupled))
        if weights.bias_ih is None:
            bs.append(np.zeros(8 * hidden, np.float32))
        else:
            bs.append(np.concatenate([_torch_gates_to_onnx(_array(weights.bias_ih), hidden, coupled),
                                      _torch_gates_to_onnx(_array(weights.bias_hh), hidden, coupled)]))
        if weights.weight_peephole is not None:
            peephole = _array(weights.weight_peephole)  # rows (p_i, p_f, p_o), or (p_i, p_o) when coupled
            p_i, p_o = peephole[0], peephole[-1]
            p_f = np.zeros_like(p_i) if coupled else peephole[1]
            ps.append(np.concatenate([p_i, p_o, p_f]))  # ONNX's order
    return np.stack(ws), np.stack(rs), np.stack(bs), np.stack(ps) if ps else None


def _lstm_node_layer(g: GraphBuilder, options: LSTMOptions, k: int, directions: tuple[LayerWeights, ...],
                     sequence: str, sequence_lens: str, initial: tuple[str, str] | None
                     ) -> tuple[list[str], str, str]:
    """One layer as an ONNX ``LSTM`` node: ([each direction's outputs (L, N, H)], y_h (D, N, H), y_c)."""
    num_directions = len(directions)
    activations = [ONNX_ACTIVATIONS[name] for name in options.activation_tuple] * num_directions
    w, r, b, p = _onnx_lstm_weights(options, directions)
    inputs = [sequence, g.const(w, f"W_l{k}"), g.const(r, f"R_l{k}"), g.const(b, f"B_l{k}"), sequence_lens]
    inputs += list(initial) if initial is not None else ["", ""]
    if p is not None:
        inputs.append(g.const(p, f"P_l{k}"))
    while inputs[-1] == "":
        inputs.pop()
    attributes = {"input_forget": 1} if options.variants.coupled_gates else {}
    y, y_h, y_c = g.op("LSTM", inputs, outputs=3, hidden_size=options.hidden_size, activations=activations,
                       direction="bidirectional" if num_directions == 2 else "forward", **attributes)
    if num_directions == 1:
        return [g.op("Squeeze", [y, g.ints([1])])], y_h, y_c  # (L, N, H)
    forward, reverse = g.op("Split", [y], outputs=2, axis=1)  # 2 x (L, 1, N, H)
    return [g.op("Squeeze", [forward, g.ints([1])]), g.op("Squeeze", [reverse, g.ints([1])])], y_h, y_c


def _scan_layer(g: GraphBuilder, options: LSTMOptions, directions: tuple[LayerWeights, ...], sequence: str,
                lengths: str, valid: str, initial: tuple[str, str]) -> tuple[list[str], str, str]:
    """One layer as one ``Scan`` per direction: ([each direction's outputs (L, N, H_out)], h_n (D, N, H_out), c_n)."""
    outputs, h_n, c_n = [], [], []
    for d, weights in enumerate(directions):
        xw = input_projection(g, weights, sequence)  # (L, N, G*H)
        if d == 1:
            xw = reverse_in_time(g, xw, lengths)
        pick = g.ints([d])
        h0 = g.op("Squeeze", [g.op("Gather", [initial[0], pick], axis=0), g.ints([0])])  # (N, H_out)
        c0 = g.op("Squeeze", [g.op("Gather", [initial[1], pick], axis=0), g.ints([0])])  # (N, H)
        y, h, c = scan_direction(g, weights, options, xw, valid, h0, c0)
        outputs.append(reverse_in_time(g, y, lengths) if d == 1 else y)
        h_n.append(g.op("Unsqueeze", [h, g.ints([0])]))
        c_n.append(g.op("Unsqueeze", [c, g.ints([0])]))
    if len(directions) == 1:
        return outputs, h_n[0], c_n[0]
    return outputs, g.op("Concat", h_n, axis=0), g.op("Concat", c_n, axis=0)


def _zero_states(g: GraphBuilder, sequence: str, rows: int, width: int) -> str:
    """Zeros (rows, N, width), N being ``sequence``'s size along axis 1."""
    from onnx import helper

    batch = g.op("Shape", [sequence], start=1, end=2)
    shape = g.op("Concat", [g.ints([rows]), batch, g.ints([width])], axis=0)
    return g.op("ConstantOfShape", [shape], value=helper.make_tensor("zero", 1, [1], [0.0]))


def _merge(g: GraphBuilder, outputs: list[str], merge_mode: str) -> str:
    """Combine the per-direction outputs (each (L, N, H_out)) as ``lstmkit.nn.layer.merge_directions`` does."""
    if len(outputs) == 1:
        return outputs[0]
    if merge_mode == "concat":
        return g.op("Concat", outputs, axis=-1)  # (L, N, 2 * H_out)
    total = g.op("Add", outputs)  # (L, N, H_out)
    return total if merge_mode == "sum" else g.op("Mul", [g.const(0.5), total])


def lstm_stack(g: GraphBuilder, lstm: nn.Module, sequence: str, sequence_lens: str,
               initial: tuple[str, str] | None = None, *, scan: bool = False) -> tuple[str, list[str], list[str]]:
    """The stacked LSTM on ``sequence`` (L, N, F), time-major, as ``lstm`` computes it in evaluation mode.

    Each layer is an ONNX ``LSTM`` node where that is exact (``lstm_node_is_exact``), else a ``Scan`` per
    direction; residual stacking and the merge of the two directions follow each layer as ``lstm`` does them.
    Check ``lstm_refusals(lstm)`` first: it lists what cannot be written.

    Args:
        g: the graph builder to add the nodes to.
        lstm: an ``lstmkit.nn.LSTM``.
        sequence: float32 (L, N, F), F = ``lstm.input_size``; the steps past each length may hold anything.
        sequence_lens: int32 (N,) lengths, each in 1..L; steps past them neither change the state nor hold
            output.
        initial: names of (h0, c0), shapes (num_layers * D, N, H_out) and (num_layers * D, N, H), in
            PyTorch's layer-major layout (H_out is ``proj_size`` when there is a projection, else H); zeros
            when None.
        scan: run every layer as a ``Scan`` even where the ``LSTM`` node is exact (to cross-check the two).

    Returns:
        (outputs (L, N, D * H_out) of the top layer, or (L, N, H_out) with ``merge_mode`` ``sum``/``mean``,
        zero past each length; each layer's final h (D, N, H_out); each layer's final c (D, N, H)), the
        final states being those of each sequence's last real step (of its first step for the reverse
        direction), as ``lstm`` returns them.
    """
    structure = lstm.structure
    options = structure.options
    variants = options.variants
    num_directions = options.num_directions
    use_node = not scan and lstm_node_is_exact(options)
    lengths = valid = None
    if not use_node:
        lengths = g.op("Cast", [sequence_lens], to=_INT64)  # (N,) as ReverseSequence wants it
        valid = g.op("Unsqueeze", [g.op("Transpose", [g.time_mask(lengths, sequence, 0)]), g.ints([2])])  # (L, N, 1)
        if initial is None:
            rows = options.num_layers * num_directions
            initial = (_zero_states(g, sequence, rows, options.output_size),
                       _zero_states(g, sequence, rows, options.hidden_size))
    final_h, final_c = [], []
    for k, directions in enumerate(structure.layers):
        layer_initial = None
        if initial is not None:
            start, end = g.ints([k * num_directions]), g.ints([(k + 1) * num_directions])
            layer_initial = (g.op("Slice", [initial[0], start, end]), g.op("Slice", [initial[1], start, end]))
        if use_node:
            outputs, h_n, c_n = _lstm_node_layer(g, options, k, directions, sequence, sequence_lens, layer_initial)
        else:
            outputs, h_n, c_n = _scan_layer(g, options, directions, sequence, lengths, valid, layer_initial)
        final_h.append(h_n)
        final_c.append(c_n)
        y = _merge(g, outputs, variants.merge_mode)  # zero past each length: every output is
        if variants.residual and k > 0:
            y = g.op("Add", [y, sequence])  # the layer's input is the layer below's output: zero there too
        sequence = y
    return sequence, final_h, final_c
