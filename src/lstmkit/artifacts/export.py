"""ONNX export of a model folder, verified in ONNX Runtime before the file is written.

``export_onnx(model_dir, out_path)`` writes one or two ONNX files:

``out_path`` (the *predict graph*)
    inputs ``input`` float32 (N, L, F) of raw values, as the data source gives them, and ``lengths``
    int64 (N,), each in 1..L; outputs ``probabilities`` and ``logits``, float32 (N, C). N and L are
    dynamic. Steps past a sequence's length are ignored, whatever they hold: the LSTM operator gets the
    lengths as its ``sequence_lens``, the conv front end zeroes them before every convolution, and the
    ``mean``/``max`` readouts mask them.

``out_path`` with the suffix ``.step.onnx`` (the *step graph*, only for models that can stream)
    inputs ``input`` (N, L, F), ``lengths`` (N,), ``h0`` (num_layers, N, H) and ``c0`` (num_layers, N, H);
    outputs ``probabilities`` and ``logits`` (N, L, C) after every step (the top layer's h_t through
    the head; steps past a length hold nothing useful), and the states ``h_n``, ``c_n`` after each
    sequence's last real step. Feeding ``h_n``, ``c_n`` back as the next call's ``h0``, ``c0`` continues
    the streams: this is what ``lstmkit serve`` runs for streaming sessions.

The model folder's standardizer is folded into both graphs (``(x - mean) / std`` in front), so they take
the same raw inputs as ``LoadedModel.predict_proba``. Each file carries ``lstmkit`` metadata (label names,
input size, the standardizer's presence, the step file's name) in its ``metadata_props``.

The graphs are written with ``onnx.helper``, not traced: each LSTM layer is one standard ONNX ``LSTM``
node (weights reordered from PyTorch's gate order i, f, g, o to ONNX's i, o, f, c), and its activations
are the node's ``activations`` attribute, so every activation of ``lstmkit.nn.ACTIVATIONS`` exports.
Anything the exporter does not know (a task other than ``classifier``, a ``[model]`` key it was not written
for, a variant, ``proj_size``, which the ONNX operator lacks) is refused with an ``ExportError`` that
names it.

Before anything is written, ONNX Runtime runs the graphs against PyTorch on real inputs (samples of the
model's dataset when it loads without a download, else random inputs with the training statistics):
a full-length batch, a padded batch of random lengths compared with each sequence run alone, and for the
step graph a stream fed in chunks. The largest absolute difference of probabilities and logits must be
at most ``tolerance`` (1e-4), or nothing is written. Files are written to a temporary name and renamed.

Example::

    result = export_onnx("runs/digits/model", "digits.onnx")
    result.max_abs_diff      # e.g. 4.8e-07
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import lstmkit
from lstmkit.config import ModelConfig
from lstmkit.errors import LstmkitError
from lstmkit.artifacts.model_folder import LoadedModel, load_model, write_synced_temp

__all__ = [
    "ExportError",
    "ExportResult",
    "ONNX_ACTIVATIONS",
    "build_onnx_graphs",
    "build_verified_graphs",
    "check_exportable",
    "export_onnx",
    "read_onnx_meta",
    "step_path_for",
]

log = logging.getLogger(__name__)

OPSET = 17
META_KEY = "lstmkit"
TOLERANCE = 1e-4

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

# The [model] keys this exporter was written for. Any other key (a variant added later, say) with a value
# other than its default is refused, so a new option never exports silently wrong.
_KNOWN_MODEL_KEYS = {
    "task", "hidden_size", "num_layers", "bidirectional", "dropout", "proj_size", "gate_activation",
    "cell_activation", "hidden_activation", "forget_bias", "init", "chrono_init", "conv", "conv_channels", "conv_kernel",
    "pool", "readout", "head_hidden", "head_dropout", "loss", "label_smoothing",
}
_LSTM_PARAMETER_KINDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
# torch gate blocks (i, f, g, o) in ONNX's order (i, o, f, c)
_ONNX_GATE_ORDER = (0, 3, 1, 2)


class ExportError(LstmkitError):
    """A model cannot be exported, or its exported graph disagrees with PyTorch."""


@dataclass
class ExportResult:
    """What ``export_onnx`` wrote and how closely ONNX Runtime matched PyTorch."""

    path: Path
    step_path: Path | None
    max_abs_diff: float
    checks: dict[str, float]
    """The max abs difference of each check: ``fixed_length``, ``variable_length`` and ``step``."""
    streaming_unsupported: str | None
    """Why no step graph was written (None when one was)."""


def step_path_for(path: str | Path) -> Path:
    """The step graph's file next to a predict graph: ``digits.onnx`` -> ``digits.step.onnx``."""
    path = Path(path)
    stem = path.name[: -len(".onnx")] if path.name.endswith(".onnx") else path.name
    return path.with_name(f"{stem}.step.onnx")


# --------------------------------------------------------------------------------------------------------
# What can export


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


def check_exportable(model: LoadedModel) -> None:
    """Raise an ``ExportError`` naming every option of ``model`` that the ONNX exporter cannot write."""
    from lstmkit.models.classifier import ConvFrontEnd, SequenceClassifier
    from lstmkit.nn import LSTM

    config = model.config.model
    if config.task != "classifier" or type(model.module) is not SequenceClassifier:
        raise ExportError(f"export: [model] task = {config.task!r} is not supported by the ONNX exporter "
                          "(supported: 'classifier')")
    refusals = _model_config_refusals(config)
    known_modules = (SequenceClassifier, ConvFrontEnd, LSTM, nn.Sequential, nn.Linear, nn.ReLU, nn.Dropout,
                     nn.Conv1d, nn.Conv2d, nn.MaxPool1d, nn.MaxPool2d)
    for name, sub in model.module.named_modules():
        if type(sub) not in known_modules:
            refusals.append(f"module {name or 'model'} of type {type(sub).__name__}")
    structure = model.module.lstm.structure
    options = structure.options
    named = {r.split()[1] for r in refusals if r.startswith("[model] ")}
    for key, value in options.variants.active().items():
        if key not in named:  # a variant set through a [model] key is named once, above
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
    if refusals:
        raise ExportError("export: cannot export to ONNX: unsupported " + "; ".join(refusals))


# --------------------------------------------------------------------------------------------------------
# Graph building


class _Graph:
    """A tiny builder over ``onnx.helper``: nodes with fresh output names, constants as initializers."""

    def __init__(self) -> None:
        from onnx import helper

        self.helper = helper
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, value: Any, name: str = "const", dtype: Any = np.float32) -> str:
        from onnx import numpy_helper

        out = self._name(name)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), out))
        return out

    def ints(self, values: Any, name: str = "ints") -> str:
        return self.const(values, name, np.int64)

    def op(self, op_type: str, inputs: list[str], outputs: int | list[str] = 1, **attrs: Any) -> Any:
        names = outputs if isinstance(outputs, list) else [self._name(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(self.helper.make_node(op_type, inputs, names, name=self._name(op_type), **attrs))
        return names[0] if len(names) == 1 else names

    def time_mask(self, lengths: str, tensor: str, time_axis: int) -> str:
        """Bool (N, T): step t of sequence n is real, T being ``tensor``'s size along ``time_axis``."""
        steps = self.op("Shape", [tensor], start=time_axis, end=time_axis + 1)  # (1,)
        limit = self.op("Squeeze", [steps, self.ints([0])])
        positions = self.op("Range", [self.const(0, dtype=np.int64), limit, self.const(1, dtype=np.int64)])  # (T,)
        return self.op("Less", [self.op("Unsqueeze", [positions, self.ints([0])]),
                                self.op("Unsqueeze", [lengths, self.ints([1])])])  # (N, T)


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


def _front_end(g: _Graph, front: nn.Module, x: str, lengths: str) -> tuple[str, str]:
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


def _head(g: _Graph, head: nn.Sequential, x: str, rank: int) -> str:
    for layer in head:
        if isinstance(layer, nn.Linear):
            weight = layer.weight.detach().cpu().numpy()
            if rank == 2:
                x = g.op("Gemm", [x, g.const(weight, "head_weight"), g.const(layer.bias.detach().cpu().numpy(), "head_bias")],
                         transB=1)
            else:
                x = g.op("Add", [g.op("MatMul", [x, g.const(weight.T, "head_weight_t")]),
                                 g.const(layer.bias.detach().cpu().numpy(), "head_bias")])
        elif isinstance(layer, nn.ReLU):
            x = g.op("Relu", [x])
        elif isinstance(layer, nn.Dropout):
            continue  # the identity in evaluation
        else:  # pragma: no cover - check_exportable refuses other modules
            raise ExportError(f"export: unsupported head layer {type(layer).__name__}")
    return x


def _graph(model: LoadedModel, step: bool) -> Any:
    from onnx import TensorProto, helper

    module = model.module
    lstm = module.lstm
    g = _Graph()
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", "L", module.input_size]),
              helper.make_tensor_value_info("lengths", TensorProto.INT64, ["N"])]
    x, lengths = "input", "lengths"
    standardizer = model.standardizer
    if standardizer is not None:
        x = g.op("Div", [g.op("Sub", [x, g.const(standardizer.mean.astype(np.float32), "mean")]),
                         g.const(standardizer.std.astype(np.float32), "std")])
    if module.front is not None:
        x, lengths = _front_end(g, module.front, x, lengths)
    sequence_lens = g.op("Cast", [lengths], to=6)  # int32, as the LSTM operator wants
    directions = 2 if lstm.bidirectional else 1
    activations = [ONNX_ACTIVATIONS[lstm.gate_activation], ONNX_ACTIVATIONS[lstm.cell_activation],
                   ONNX_ACTIVATIONS[lstm.hidden_activation]] * directions
    hidden = lstm.hidden_size
    if step:
        inputs += [helper.make_tensor_value_info(name, TensorProto.FLOAT, [lstm.num_layers, "N", hidden])
                   for name in ("h0", "c0")]
    sequence = g.op("Transpose", [x], perm=[1, 0, 2])  # (L, N, F)
    final_h, final_c = [], []
    y = y_h = ""
    for k in range(lstm.num_layers):
        w, r, b = _onnx_lstm_weights(lstm, k)
        lstm_inputs = [sequence, g.const(w, f"W_l{k}"), g.const(r, f"R_l{k}"), g.const(b, f"B_l{k}"), sequence_lens]
        if step:
            start, end = g.ints([k]), g.ints([k + 1])
            lstm_inputs += [g.op("Slice", ["h0", start, end]), g.op("Slice", ["c0", start, end])]  # (1, N, H)
        y, y_h, y_c = g.op("LSTM", lstm_inputs, outputs=3, hidden_size=hidden, activations=activations,
                           direction="bidirectional" if lstm.bidirectional else "forward")
        final_h.append(y_h)
        final_c.append(y_c)
        y = g.op("Transpose", [y], perm=[0, 2, 1, 3])  # (L, N, D, H)
        sequence = g.op("Reshape", [y, g.ints([0, 0, -1])])  # (L, N, D * H)
    outputs_seq = g.op("Transpose", [sequence], perm=[1, 0, 2])  # (N, L, D * H)
    if step:
        logits = _head(g, module.head, outputs_seq, rank=3)  # (N, L, C)
    else:
        if module.readout == "last":
            summary = g.op("Reshape", [g.op("Transpose", [y_h], perm=[1, 0, 2]), g.ints([0, -1])])  # (N, D * H)
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
        logits = _head(g, module.head, summary, rank=2)  # (N, C)
    g.op("Identity", [logits], outputs=["logits"])
    g.op("Softmax", [logits], outputs=["probabilities"], axis=-1)
    classes = len(model.label_names)
    out_dims = ["N", "L", classes] if step else ["N", classes]
    outputs = [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, out_dims),
               helper.make_tensor_value_info("logits", TensorProto.FLOAT, out_dims)]
    if step:
        g.op("Concat", final_h, outputs=["h_n"], axis=0)
        g.op("Concat", final_c, outputs=["c_n"], axis=0)
        outputs += [helper.make_tensor_value_info(name, TensorProto.FLOAT, [lstm.num_layers, "N", hidden])
                    for name in ("h_n", "c_n")]
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
        "min_length": module.front.min_length() if module.front is not None else 1,
        "label_names": model.label_names,
        "num_layers": lstm.num_layers,
        "hidden_size": lstm.hidden_size,
        "standardizer_in_graph": model.standardizer is not None,
        "streaming_unsupported": module.streaming_unsupported_reason(),
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
    streamable = model.module.streaming_unsupported_reason() is None
    protos = []
    for kind in ("predict", "step"):
        if kind == "step" and not streamable:
            protos.append(None)
            continue
        proto = helper.make_model(_graph(model, step=kind == "step"), producer_name="lstmkit",
                                  producer_version=lstmkit.__version__,
                                  opset_imports=[helper.make_opsetid("", OPSET)])
        proto.ir_version = 8  # what ONNX Runtime releases since 1.12 read
        meta = _onnx_meta(model, kind, step_file if streamable else None)
        helper.set_model_props(proto, {META_KEY: json.dumps(meta)})
        checker.check_model(proto, full_check=True)
        protos.append(proto)
    return protos[0], protos[1]


def read_onnx_meta(path: str | Path) -> dict[str, Any]:
    """The ``lstmkit`` metadata of an exported file (without loading its weights into a session)."""
    import onnx

    path = Path(path)
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except (OSError, ValueError, onnx.onnx_cpp2py_export.checker.ValidationError) as exc:  # type: ignore[attr-defined]
        raise ExportError(f"ONNX file {path}: cannot be read ({exc})") from None
    except Exception as exc:  # protobuf's DecodeError has no stable import path
        raise ExportError(f"ONNX file {path}: cannot be read ({type(exc).__name__}: {exc})") from None
    props = {p.key: p.value for p in proto.metadata_props}
    if META_KEY not in props:
        raise ExportError(f"ONNX file {path}: expected a file written by `lstmkit export` (with lstmkit metadata), "
                          "got one without")
    return json.loads(props[META_KEY])


# --------------------------------------------------------------------------------------------------------
# Verification


def _verification_inputs(model: LoadedModel, samples: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """Raw inputs (N, L, F): ``samples``, else the dataset's first test samples, else random ones."""
    length, features = model.input_shape
    if samples is not None:
        return np.ascontiguousarray(samples, dtype=np.float32)
    name = model.meta.get("data_name")
    if name:
        try:
            from lstmkit.data import load_source

            x = load_source(name, download=False).test.x[:24]
            if x.ndim == 3 and x.shape[-1] == features:
                return np.ascontiguousarray(x, dtype=np.float32)
        except LstmkitError as exc:
            log.info("export: verifying on random inputs (the dataset %s did not load: %s)", name, exc)
    standardizer = model.standardizer
    mean = standardizer.mean if standardizer is not None else np.zeros(features)
    std = standardizer.std if standardizer is not None else np.ones(features)
    steps = length if length is not None else 12
    return (mean + std * rng.standard_normal((24, steps, features))).astype(np.float32)


def standardize(model: LoadedModel, raw: np.ndarray) -> torch.Tensor:
    """Raw inputs (N, L, F) of any length L, standardised as in training, as a float32 tensor."""
    x = np.asarray(raw, dtype=np.float32)
    standardizer = model.standardizer
    if standardizer is not None:
        x = standardizer.transform(x)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def _ort_session(proto: Any) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


@torch.no_grad()
def verify_onnx(model: LoadedModel, predict_proto: Any, step_proto: Any | None,
                samples: np.ndarray | None = None, seed: int = 0) -> dict[str, float]:
    """Run the graphs in ONNX Runtime and PyTorch on the same inputs; the max abs difference of each check.

    Checks: ``fixed_length`` (a full batch), ``variable_length`` (a batch padded with garbage past random
    lengths, against each sequence run alone in PyTorch: this also proves that padding does not leak) and,
    with a step graph, ``step`` (streams fed in uneven chunks, carrying the state, against the per-step
    outputs and final state of one PyTorch pass).
    """
    module = model.module.eval()
    rng = np.random.default_rng(seed)
    x = _verification_inputs(model, samples, rng)
    n, length, _ = x.shape
    min_length = module.front.min_length() if module.front is not None else 1
    if length < min_length:
        raise ExportError(f"export: verification inputs have {length} steps; this model needs at least {min_length}")

    def torch_logits(raw: np.ndarray) -> np.ndarray:
        return module(standardize(model, raw)).numpy()

    def both(logits: np.ndarray) -> np.ndarray:
        return np.concatenate([torch.softmax(torch.from_numpy(logits), -1).numpy(), logits], axis=-1)

    checks = {}
    session = _ort_session(predict_proto)
    full = np.full(n, length, dtype=np.int64)
    probs, logits = session.run(["probabilities", "logits"], {"input": x, "lengths": full})
    checks["fixed_length"] = _max_diff(np.concatenate([probs, logits], -1), both(torch_logits(x)))

    # A few distinct lengths (each new shape costs PyTorch's oneDNN kernel a setup), the full one included.
    choices = np.unique([length, min_length, max(min_length, length // 2), max(min_length, length - 1)])
    lengths = rng.choice(choices, size=n)
    lengths[0] = length
    padded = x.copy()
    for i, steps in enumerate(lengths):
        padded[i, steps:] = rng.normal(0.0, 1e3, size=padded[i, steps:].shape)  # garbage that must not leak
    probs, logits = session.run(["probabilities", "logits"], {"input": padded, "lengths": lengths.astype(np.int64)})
    alone = np.zeros_like(logits)
    for steps in np.unique(lengths):  # sequences of one length together: no padding, so each as if alone
        rows = np.flatnonzero(lengths == steps)
        alone[rows] = torch_logits(x[rows, :steps])
    checks["variable_length"] = _max_diff(np.concatenate([probs, logits], -1), both(alone))

    if step_proto is not None:
        # Streams fed in the chunks [0, 1), [1, 3), [3, L), each ending at its own length (at least 4 steps,
        # so that every stream takes part in every chunk), with garbage past the end.
        step = _ort_session(step_proto)
        ends = np.maximum(lengths, min(4, length))
        stream = x.copy()
        for i, steps in enumerate(ends):
            stream[i, steps:] = rng.normal(0.0, 1e3, size=stream[i, steps:].shape)
        inputs = standardize(model, x)
        expected = both(module.forward_steps(inputs).numpy())  # (N, L, 2C): causal, so prefix outputs
        _, (want_h, want_c) = module.lstm(inputs, lengths=torch.from_numpy(ends))
        h, c = (np.zeros((module.lstm.num_layers, n, module.lstm.hidden_size), np.float32) for _ in range(2))
        worst = 0.0
        bounds = sorted({0, min(1, length), min(3, length), length})
        for start, stop in zip(bounds[:-1], bounds[1:]):
            chunk_lengths = np.minimum(ends - start, stop - start).astype(np.int64)
            probs, logits, h, c = step.run(["probabilities", "logits", "h_n", "c_n"], {
                "input": np.ascontiguousarray(stream[:, start:stop]), "lengths": chunk_lengths, "h0": h, "c0": c})
            got = np.concatenate([probs, logits], -1)
            for i, real in enumerate(chunk_lengths):
                worst = max(worst, _max_diff(got[i, :real], expected[i, start:start + real]))
        checks["step"] = max(worst, _max_diff(h, want_h.numpy()), _max_diff(c, want_c.numpy()))
    return checks


# --------------------------------------------------------------------------------------------------------
# The export


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


def export_onnx(
    model_dir: str | Path | LoadedModel,
    out_path: str | Path,
    *,
    tolerance: float = TOLERANCE,
    samples: np.ndarray | None = None,
    step: bool = True,
) -> ExportResult:
    """Export a model folder to ONNX, verify it in ONNX Runtime, then write it (see the module docstring).

    Args:
        model_dir: a model folder (or a model already loaded with ``load_model``).
        out_path: the predict graph's file, conventionally ``*.onnx``; the step graph goes next to it as
            ``step_path_for(out_path)`` (``NAME.step.onnx``) when the model can stream and ``step`` is true.
        tolerance: the largest absolute difference of probabilities and logits allowed between ONNX
            Runtime and PyTorch.
        samples: raw inputs (N, L, F) to verify on; default: the model's dataset, else random inputs.
        step: also write the step graph (for streaming) when the model can stream.

    Raises:
        ExportError: an option cannot export (naming it), or ONNX Runtime disagrees with PyTorch by more
            than ``tolerance`` (giving the difference); nothing is written then.
    """
    model = model_dir if isinstance(model_dir, LoadedModel) else load_model(model_dir)
    out_path = Path(out_path)
    if not out_path.parent.is_dir():
        raise ExportError(f"export: output folder {out_path.parent}: not found")
    step_path = step_path_for(out_path)
    predict_proto, step_proto, checks = build_verified_graphs(
        model, tolerance=tolerance, samples=samples, step=step, step_file=step_path.name, target=str(out_path))
    worst = max(checks.values())
    pending = [(out_path, write_synced_temp(out_path, predict_proto.SerializeToString()))]
    if step_proto is not None:
        pending.append((step_path, write_synced_temp(step_path, step_proto.SerializeToString())))
    for final, tmp in reversed(pending):  # the step file first, so a predict file always has its step file
        os.replace(tmp, final)
    log.debug("export: wrote %s%s (max abs difference %.3g)", out_path,
             f" and {step_path}" if step_proto is not None else "", worst)
    return ExportResult(out_path, step_path if step_proto is not None else None, worst, checks,
                        model.module.streaming_unsupported_reason() or (None if step else "not asked for"))


def _without_step_file(proto: Any) -> Any:
    from onnx import helper

    props = {p.key: p.value for p in proto.metadata_props}
    meta = json.loads(props[META_KEY])
    meta["step_file"] = None
    del proto.metadata_props[:]
    helper.set_model_props(proto, {META_KEY: json.dumps(meta)})
    return proto
