"""The LSTM stack of an ``lstmkit.nn.LSTM`` as ONNX nodes: one standard ``LSTM`` node per layer.

The weights are reordered from PyTorch's gate order (i, f, g, o) to ONNX's (i, o, f, c); the activations are
the node's ``activations`` attribute, so every activation of ``lstmkit.nn.ACTIVATIONS`` exports; lengths are
the node's ``sequence_lens``, so steps past a sequence's end never reach its state.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from lstmkit.export.graph import GraphBuilder

__all__ = ["ONNX_ACTIVATIONS", "lstm_refusals", "lstm_stack"]

#: lstmkit activation name -> ONNX LSTM ``activations`` name (ONNX's defaults for alpha and beta are ours:
#: HardSigmoid 0.2 and 0.5, Elu 1.0).
ONNX_ACTIVATIONS = {
    "sigmoid": "Sigmoid",
    "hard_sigmoid": "HardSigmoid",
    "tanh": "Tanh",
    "relu": "Relu",
    "elu": "Elu",
    "softsign": "Softsign",
}

_LSTM_PARAMETER_KINDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
# torch gate blocks (i, f, g, o) in ONNX's order (i, o, f, c)
_ONNX_GATE_ORDER = (0, 3, 1, 2)


def lstm_refusals(lstm: nn.Module, named: set[str] = frozenset()) -> list[str]:
    """What of ``lstm``'s options the ONNX writer cannot express (empty when it exports).

    ``named`` holds variant keys already named by the caller (through a ``[model]`` key), named once.
    """
    refusals = []
    structure = lstm.structure
    options = structure.options
    for key, value in options.variants.active().items():
        if key not in named:
            refusals.append(f"LSTM variant {key}={value!r}")
    if options.proj_size:
        refusals.append(f"[model] proj_size = {options.proj_size} (the ONNX LSTM operator has no projection)")
    if not options.bias:
        refusals.append("LSTM bias=False")
    for attribute, value in options.activation_names.items():
        if value not in ONNX_ACTIVATIONS:
            refusals.append(f"{attribute} = {value!r} (the ONNX exporter maps {', '.join(ONNX_ACTIVATIONS)})")
    for names in (names for directions in structure.names for names in directions):
        for kind, name in names._asdict().items():
            if name is not None and kind not in _LSTM_PARAMETER_KINDS and kind != "weight_hr":
                refusals.append(f"LSTM parameter {name}")
    return refusals


def _torch_gates_to_onnx(weight: np.ndarray, hidden: int) -> np.ndarray:
    """Reorder the gate blocks along axis 0 from PyTorch's (i, f, g, o) to ONNX's (i, o, f, c)."""
    blocks = [weight[k * hidden:(k + 1) * hidden] for k in range(4)]
    return np.concatenate([blocks[k] for k in _ONNX_GATE_ORDER], axis=0)


def _onnx_lstm_weights(lstm: nn.Module, layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """W (D, 4H, in), R (D, 4H, H) and B (D, 8H) of one layer, in ONNX's layout."""
    structure = lstm.structure
    hidden = structure.options.hidden_size
    ws, rs, bs = [], [], []
    for weights in structure.layers[layer]:  # forward, then reverse
        get = lambda tensor: tensor.detach().cpu().numpy().astype(np.float32)  # noqa: E731
        ws.append(_torch_gates_to_onnx(get(weights.weight_ih), hidden))
        rs.append(_torch_gates_to_onnx(get(weights.weight_hh), hidden))
        bs.append(np.concatenate([_torch_gates_to_onnx(get(weights.bias_ih), hidden),
                                  _torch_gates_to_onnx(get(weights.bias_hh), hidden)]))
    return np.stack(ws), np.stack(rs), np.stack(bs)


def lstm_stack(g: GraphBuilder, lstm: nn.Module, sequence: str, sequence_lens: str,
               initial: tuple[str, str] | None = None) -> tuple[str, list[str], list[str]]:
    """The stacked LSTM on ``sequence`` (L, N, F), time-major.

    Args:
        sequence_lens: int32 (N,) lengths; steps past them neither change the state nor hold output.
        initial: names of (h0, c0), each (num_layers * D, N, H) in PyTorch's layer-major layout; zeros when None.

    Returns:
        (outputs (L, N, D * H) of the top layer, each layer's final h (D, N, H), each layer's final c).
    """
    directions = 2 if lstm.bidirectional else 1
    activations = [ONNX_ACTIVATIONS[lstm.gate_activation], ONNX_ACTIVATIONS[lstm.cell_activation],
                   ONNX_ACTIVATIONS[lstm.hidden_activation]] * directions
    hidden = lstm.hidden_size
    final_h, final_c = [], []
    for k in range(lstm.num_layers):
        w, r, b = _onnx_lstm_weights(lstm, k)
        inputs = [sequence, g.const(w, f"W_l{k}"), g.const(r, f"R_l{k}"), g.const(b, f"B_l{k}"), sequence_lens]
        if initial is not None:
            start, end = g.ints([k * directions]), g.ints([(k + 1) * directions])
            inputs += [g.op("Slice", [initial[0], start, end]), g.op("Slice", [initial[1], start, end])]
        y, y_h, y_c = g.op("LSTM", inputs, outputs=3, hidden_size=hidden, activations=activations,
                           direction="bidirectional" if lstm.bidirectional else "forward")
        final_h.append(y_h)
        final_c.append(y_c)
        y = g.op("Transpose", [y], perm=[0, 2, 1, 3])  # (L, N, D, H)
        sequence = g.op("Reshape", [y, g.ints([0, 0, -1])])  # (L, N, D * H)
    return sequence, final_h, final_c

