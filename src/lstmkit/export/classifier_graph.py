"""The classifier's graphs: raw values (N, L, F) and lengths in, probabilities and logits out.

The standardizer is folded in front, the conv front end masks the steps past each length before every
convolution, the LSTM stack is ``lstm_graph.lstm_stack``, and the ``last``/``mean``/``max`` readouts mask
the padding.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
from torch import nn

import lstmkit
from lstmkit.artifacts.model_folder import LoadedModel
from lstmkit.config import ModelConfig
from lstmkit.export.common import dense_head, standardized
from lstmkit.export.errors import ExportError
from lstmkit.export.graph import IR_VERSION, META_KEY, OPSET, GraphBuilder
from lstmkit.export.lstm_graph import lstm_refusals, lstm_stack
from lstmkit.export.registry import ExportRequest, GraphSet, register_exporter
from lstmkit.export.verify import verify_onnx

__all__ = ["TOLERANCE", "build_onnx_graphs", "build_verified_graphs", "check_exportable", "classifier_graph",
           "export_classifier", "merge_final_states_graph", "sequence_network", "sequence_outputs"]

TOLERANCE = 1e-4

# The [model] keys this exporter was written for. Any other key (a variant added later, say) with a value
# other than its default is refused, so a new option never exports silently wrong.
_KNOWN_MODEL_KEYS = {
    "task", "hidden_size", "num_layers", "bidirectional", "dropout", "proj_size", "gate_activation",
    "cell_activation", "hidden_activation", "forget_bias", "init", "chrono_init", "conv", "conv_channels", "conv_kernel",
    "pool", "readout", "head_hidden", "head_dropout", "loss", "label_smoothing",
    # the LSTM variants (lstm_graph writes each; lstm_refusals names what it cannot)
    "peephole", "coupled_gates", "layer_norm", "recurrent_dropout", "zoneout", "weight_drop", "cell_clip", "residual",
    "merge_mode",
    # [model] architecture = "lstm-fcn" / "mlstm-fcn" (lstm_fcn_graph)
    "architecture", "shuffle_length", "shuffle_dropout", "fcn_filters", "fcn_kernels",
}


def _model_config_refusals(config: ModelConfig) -> list[str]:
    refusals = []
    for f in dataclasses.fields(config):
        if f.name in _KNOWN_MODEL_KEYS:
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        value = getattr(config, f.name)
        if value != default:
            refusals.append(f"[model] {f.name} = {value!r} (an option the ONNX exporter does not know)")
    return refusals


def check_exportable(model: LoadedModel, task: str = "classifier") -> None:
    """Raise an ``ExportError`` naming every option of ``model`` (a ``SequenceClassifier`` of ``[model] task =
    task``) that the ONNX exporter cannot write."""
    from lstmkit.models.classifier import ConvFrontEnd, SequenceClassifier
    from lstmkit.models.lstm_fcn import LSTMFCN, FCNBranch, SqueezeExcite
    from lstmkit.nn import LSTM

    config = model.config.model
    architecture = getattr(config, "architecture", "lstm")
    networks = {"lstm": SequenceClassifier, "lstm-fcn": LSTMFCN, "mlstm-fcn": LSTMFCN}
    if config.task != task or type(model.module) is not networks.get(architecture):
        raise ExportError(f"export: [model] task = {config.task!r} with architecture = {architecture!r} is not "
                          f"supported by the ONNX exporter (supported: {task!r} with {sorted(networks)})")
    refusals = _model_config_refusals(config)
    known_modules = (SequenceClassifier, ConvFrontEnd, LSTM, nn.Sequential, nn.Linear, nn.ReLU, nn.Dropout,
                     nn.Conv1d, nn.Conv2d, nn.MaxPool1d, nn.MaxPool2d,
                     LSTMFCN, FCNBranch, SqueezeExcite, nn.ModuleList, nn.BatchNorm1d, nn.Identity)
    for name, sub in model.module.named_modules():
        if type(sub) not in known_modules:
            refusals.append(f"module {name or 'model'} of type {type(sub).__name__}")
    named = {r.split()[1] for r in refusals if r.startswith("[model] ")}
    refusals += lstm_refusals(model.module.lstm, named)
    if refusals:
        raise ExportError("export: cannot export to ONNX: unsupported " + "; ".join(refusals))


def _front_end(g: GraphBuilder, front: nn.Module, x: str, lengths: str) -> tuple[str, str]:
    """The conv front end on (N, L, F) with masking; returns (N, L', F') and the lengths after pooling."""
    y = g.op("Transpose", [x], perm=[0, 2, 1]) if front.kind == "conv1d" else g.op("Unsqueeze", [x, g.ints([1])])
    current = lengths
    for layer in front.layers:
        if isinstance(layer, (nn.Conv1d, nn.Conv2d)):
            real = g.op("Cast", [g.time_mask(current, y, 2)], to=1)  # (N, T) float
            axes = [1] if front.kind == "conv1d" else [1, 3]
            y = g.op("Mul", [y, g.op("Unsqueeze", [real, g.ints(axes)])])
            inputs = [y, g.const(layer.weight.detach().cpu().numpy(), "conv_weight")]
            if layer.bias is not None:
                inputs.append(g.const(layer.bias.detach().cpu().numpy(), "conv_bias"))
            y = g.op("Conv", inputs, kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
                     pads=list(layer.padding) * 2, dilations=list(layer.dilation), group=layer.groups)
        elif isinstance(layer, nn.ReLU):
            y = g.op("Relu", [y])
        elif isinstance(layer, (nn.MaxPool1d, nn.MaxPool2d)):
            dims = 1 if front.kind == "conv1d" else 2
            size = layer.kernel_size if isinstance(layer.kernel_size, tuple) else (layer.kernel_size,) * dims
            stride = layer.stride if isinstance(layer.stride, tuple) else (layer.stride,) * dims
            y = g.op("MaxPool", [y], kernel_shape=list(size), strides=list(stride))
            current = g.op("Div", [current, g.const(front.pool, dtype=np.int64)])  # floor for lengths >= 0
        else:  # pragma: no cover - check_exportable refuses other modules
            raise ExportError(f"export: unsupported front-end layer {type(layer).__name__}")
    final = g.op("Max", [current, g.const(1, dtype=np.int64)])
    if front.kind == "conv1d":
        return g.op("Transpose", [y], perm=[0, 2, 1]), final  # (N, L', C)
    y = g.op("Transpose", [y], perm=[0, 2, 1, 3])  # (N, L', C, F')
    return g.op("Reshape", [y, g.ints([0, 0, -1])]), final  # (N, L', C * F')


def sequence_outputs(g: GraphBuilder, model: LoadedModel, step: bool, input_name: str = "input"
                     ) -> tuple[list[Any], str, list[str], list[str]]:
    """The network of a ``SequenceClassifier`` (classifier or regressor) as nodes on raw inputs: (the graph
    inputs ``input_name`` (N, L, F), ``lengths`` and with ``step`` ``h0``, ``c0``; its outputs before any softmax,
    (N, C) or with ``step`` (N, L, C); each layer's final h; each layer's final c)."""
    from onnx import TensorProto, helper

    module = model.module
    lstm = module.lstm
    inputs = [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", "L", module.input_size]),
              helper.make_tensor_value_info("lengths", TensorProto.INT64, ["N"])]
    if step:  # h is proj_size wide with a projection
        inputs += [helper.make_tensor_value_info(f"{state}0", TensorProto.FLOAT, [lstm.num_layers, "N", width])
                   for state, width in (("h", lstm.output_size), ("c", lstm.hidden_size))]
    x = standardized(g, input_name, model.standardizer)
    return (inputs, *sequence_network(g, module, x, "lengths", ("h0", "c0") if step else None))


def sequence_network(g: GraphBuilder, module: nn.Module, x: str, lengths: str, initial: tuple[str, str] | None
                     ) -> tuple[str, list[str], list[str]]:
    """A ``SequenceClassifier`` on standardised inputs ``x`` (N, L, F) with ``lengths`` int64 (N,): (its outputs
    before any softmax, (N, C), or with ``initial`` states (h0, c0) after every step (N, L, C); each layer's
    final h; each layer's final c)."""
    from lstmkit.models.lstm_fcn import LSTMFCN

    if isinstance(module, LSTMFCN):  # not causal: no step graph (initial is None)
        from lstmkit.export.lstm_fcn_graph import lstm_fcn_network

        return lstm_fcn_network(g, module, x, lengths), [], []
    lstm = module.lstm
    if module.front is not None:
        x, lengths = _front_end(g, module.front, x, lengths)
    sequence_lens = g.op("Cast", [lengths], to=6)  # int32, as the LSTM operator wants
    sequence = g.op("Transpose", [x], perm=[1, 0, 2])  # (L, N, F)
    sequence, final_h, final_c = lstm_stack(g, lstm, sequence, sequence_lens, initial)
    y_h = final_h[-1]
    outputs_seq = g.op("Transpose", [sequence], perm=[1, 0, 2])  # (N, L, D * H)
    if initial is not None:
        return dense_head(g, module.head, outputs_seq, rank=3), final_h, final_c  # (N, L, C)
    if module.readout == "last":
        summary = merge_final_states_graph(g, y_h, lstm.variants.merge_mode)  # (N, D * H_out) or (N, H_out)
    else:
        real = g.op("Unsqueeze", [g.time_mask(lengths, outputs_seq, 1), g.ints([2])])  # (N, L, 1) bool
        if module.readout == "mean":
            weights = g.op("Cast", [real], to=1)
            total = g.op("ReduceSum", [g.op("Mul", [outputs_seq, weights]), g.ints([1])], keepdims=0)
            count = g.op("Max", [g.op("ReduceSum", [weights, g.ints([1])], keepdims=0), g.const([1.0])])
            summary = g.op("Div", [total, count])
        else:
            masked = g.op("Where", [real, outputs_seq, g.const([-np.inf])])
            summary = g.op("ReduceMax", [masked], axes=[1], keepdims=0)
    return dense_head(g, module.head, summary, rank=2), final_h, final_c  # (N, C)


def merge_final_states_graph(g: GraphBuilder, y_h: str, merge_mode: str) -> str:
    """The top layer's final h (D, N, H_out) as the classifier's ``last`` readout: the directions merged
    as the LSTM merges its outputs (``SequenceClassifier._merge_final_states``)."""
    if merge_mode == "concat":  # also the one direction of a unidirectional LSTM
        return g.op("Reshape", [g.op("Transpose", [y_h], perm=[1, 0, 2]), g.ints([0, -1])])  # (N, D * H_out)
    total = g.op("ReduceSum", [y_h, g.ints([0])], keepdims=0)  # (N, H_out)
    return total if merge_mode == "sum" else g.op("Div", [total, g.const(2.0)])


def classifier_graph(model: LoadedModel, step: bool) -> Any:
    """The classifier's predict graph, or with ``step`` its step graph (see ``lstmkit.export``)."""
    from onnx import TensorProto, helper

    g = GraphBuilder()
    inputs, logits, final_h, final_c = sequence_outputs(g, model, step)
    lstm = model.module.lstm
    state_widths = {"h": lstm.output_size, "c": lstm.hidden_size}  # h is proj_size wide with a projection
    g.op("Identity", [logits], outputs=["logits"])
    g.op("Softmax", [logits], outputs=["probabilities"], axis=-1)
    classes = len(model.label_names)
    out_dims = ["N", "L", classes] if step else ["N", classes]
    outputs = [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, out_dims),
               helper.make_tensor_value_info("logits", TensorProto.FLOAT, out_dims)]
    if step:
        g.op("Concat", final_h, outputs=["h_n"], axis=0)
        g.op("Concat", final_c, outputs=["c_n"], axis=0)
        outputs += [helper.make_tensor_value_info(f"{state}_n", TensorProto.FLOAT, [lstm.num_layers, "N", width])
                    for state, width in state_widths.items()]
    return helper.make_graph(g.nodes, "lstmkit_step" if step else "lstmkit_predict", inputs, outputs, g.initializers)


def _onnx_meta(model: LoadedModel, kind: str, step_file: str | None) -> dict[str, Any]:
    module = model.module
    lstm = module.lstm
    return {
        "format": "lstmkit-onnx",
        "graph": kind,
        "lstmkit_version": lstmkit.__version__,
        "task": model.config.model.task,
        "input_size": module.input_size,
        "sequence_length": model.meta.get("sequence_length"),
        "min_length": module.min_length(),
        "label_names": model.label_names,
        "num_layers": lstm.num_layers,
        "hidden_size": lstm.hidden_size,
        "output_size": lstm.output_size,  # the width of h0/h_n in the step graph (proj_size, if set)
        "standardizer_in_graph": model.standardizer is not None,
        "streaming_unsupported": model.streaming_unsupported_reason(),
        "step_file": step_file,
        "data_name": model.meta.get("data_name"),
    }


def build_onnx_graphs(model: LoadedModel, step_file: str | None = None) -> tuple[Any, Any | None]:
    """The predict graph and, for a model that can stream, the step graph, as ``onnx.ModelProto``.

    Raises:
        ExportError: ``model`` has an option the exporter cannot write (see ``check_exportable``).
    """
    from onnx import checker, helper

    check_exportable(model)
    model.module.eval()
    streamable = model.streaming_unsupported_reason() is None
    protos = []
    for kind in ("predict", "step"):
        if kind == "step" and not streamable:
            protos.append(None)
            continue
        proto = helper.make_model(classifier_graph(model, step=kind == "step"), producer_name="lstmkit",
                                  producer_version=lstmkit.__version__,
                                  opset_imports=[helper.make_opsetid("", OPSET)])
        proto.ir_version = IR_VERSION
        meta = _onnx_meta(model, kind, step_file if streamable else None)
        helper.set_model_props(proto, {META_KEY: json.dumps(meta)})
        checker.check_model(proto, full_check=True)
        protos.append(proto)
    return protos[0], protos[1]


def build_verified_graphs(
    model: LoadedModel,
    *,
    tolerance: float = TOLERANCE,
    samples: np.ndarray | None = None,
    step: bool = True,
    step_file: str | None = None,
    target: str = "the graph",
) -> tuple[Any, Any | None, dict[str, float]]:
    """``build_onnx_graphs`` then ``verify_onnx``, in memory: (predict graph, step graph or None, checks).

    Raises:
        ExportError: as ``export_onnx``; ``target`` names what was not written.
    """
    predict_proto, step_proto = build_onnx_graphs(model, step_file=step_file if step else None)
    if not step:
        step_proto = None
        predict_proto = _without_step_file(predict_proto)
    checks = verify_onnx(model, predict_proto, step_proto, samples)
    worst_check = max(checks, key=checks.get)
    worst = checks[worst_check]
    if not worst <= tolerance:  # also refuses NaN
        raise ExportError(
            f"export: ONNX Runtime and PyTorch disagree: max abs difference {worst:.3g} in the {worst_check} check "
            f"exceeds the tolerance {tolerance:g} (checks: "
            + ", ".join(f"{k} {v:.3g}" for k, v in checks.items()) + f"); {target} was not written"
        )
    return predict_proto, step_proto, checks


@register_exporter("classifier")
def export_classifier(request: ExportRequest, model: LoadedModel | None = None) -> GraphSet:
    """The classifier's predict graph and, where it can stream and ``request.step``, its step graph."""
    from lstmkit.artifacts.model_folder import load_model

    model = model if model is not None else load_model(request.folder)
    predict, step, checks = build_verified_graphs(model, tolerance=request.tolerance, samples=request.samples,
                                                  step=request.step, step_file="step", target=request.target)
    graphs = {"predict": predict} if step is None else {"predict": predict, "step": step}
    reason = model.streaming_unsupported_reason() or (None if request.step else "not asked for")
    return GraphSet(graphs, checks, streaming_unsupported=reason)


def _without_step_file(proto: Any) -> Any:
    from onnx import helper

    props = {p.key: p.value for p in proto.metadata_props}
    meta = json.loads(props[META_KEY])
    meta["step_file"] = None
    del proto.metadata_props[:]
    helper.set_model_props(proto, {META_KEY: json.dumps(meta)})
    return proto
