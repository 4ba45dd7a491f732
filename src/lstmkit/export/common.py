"""Pieces every task's exporter shares: ports from the task's schema, the standardizer and the dense head as
nodes, the bidirectional merge, the model proto with its metadata, the tolerance check.

A graph's inputs and outputs follow the ports its task declares (``lstmkit.tasks.schema``): the same names
and element types, the named dimensions kept symbolic and the fixed ones fixed.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from torch import nn

import lstmkit
from lstmkit.export.errors import ExportError
from lstmkit.export.graph import IR_VERSION, META_KEY, OPSET, GraphBuilder
from lstmkit.tasks.schema import Port

__all__ = ["check_tolerance", "declared_schema", "dense_head", "garbage_values", "graph_meta", "model_proto",
           "port_info", "standardized", "state_ports"]

_ONNX_TYPES = {"float32": 1, "float64": 11, "int64": 7, "int32": 6}  # TensorProto.FLOAT, DOUBLE, INT64, INT32


def port_info(port: Port, name: str | None = None) -> Any:
    """The ``ValueInfoProto`` of a declared port (``name`` renames it, e.g. for a step graph's ``h0``)."""
    from onnx import helper

    if port.dtype not in _ONNX_TYPES:
        raise ExportError(f"export: port {port.name!r} of type {port.dtype} has no ONNX tensor type")
    return helper.make_tensor_value_info(name or port.name, _ONNX_TYPES[port.dtype], list(port.shape))


def state_ports(lstm: nn.Module) -> tuple[list[Port], list[Port]]:
    """The step graph's extra inputs (``h0``, ``c0``) and outputs (``h_n``, ``c_n``): (layers, N, H_out) for h
    (``proj_size`` wide when the LSTM projects), (layers, N, H) for c."""
    widths = {"h": lstm.output_size, "c": lstm.hidden_size}
    inputs = [Port(f"{s}0", "float32", (lstm.num_layers, "N", w), f"the LSTM's {s} state per layer, zeros at a "
                   "stream's start") for s, w in widths.items()]
    outputs = [Port(f"{s}_n", "float32", (lstm.num_layers, "N", w), f"the LSTM's {s} state after each stream's "
                    "last real step") for s, w in widths.items()]
    return inputs, outputs


def standardized(g: GraphBuilder, x: str, standardizer: Any) -> str:
    """``(x - mean) / std`` with the training statistics folded in, or ``x`` when there are none."""
    if standardizer is None:
        return x
    return g.op("Div", [g.op("Sub", [x, g.const(np.asarray(standardizer.mean, np.float32), "mean")]),
                        g.const(np.asarray(standardizer.std, np.float32), "std")])


def dense_head(g: GraphBuilder, head: nn.Module, x: str, rank: int) -> str:
    """``nn.Linear``/``nn.ReLU``/``nn.Dropout`` layers (one, or an ``nn.Sequential``) on ``x`` of ``rank`` 2
    (N, F) or 3 (N, L, F)."""
    for layer in (head if isinstance(head, nn.Sequential) else [head]):
        if isinstance(layer, nn.Linear):
            weight = layer.weight.detach().cpu().numpy()
            bias = g.const(layer.bias.detach().cpu().numpy(), "head_bias")
            if rank == 2:
                x = g.op("Gemm", [x, g.const(weight, "head_weight"), bias], transB=1)
            else:
                x = g.op("Add", [g.op("MatMul", [x, g.const(weight.T, "head_weight_t")]), bias])
        elif isinstance(layer, nn.ReLU):
            x = g.op("Relu", [x])
        elif isinstance(layer, nn.Dropout):
            continue  # the identity in evaluation
        else:
            raise ExportError(f"export: cannot export the head layer {type(layer).__name__}")
    return x


def model_proto(graph: Any, meta: dict[str, Any]) -> Any:
    """``graph`` as a checked ``ModelProto`` at lstmkit's opset, with ``meta`` as its ``lstmkit`` metadata."""
    from onnx import checker, helper

    proto = helper.make_model(graph, producer_name="lstmkit", producer_version=lstmkit.__version__,
                              opset_imports=[helper.make_opsetid("", OPSET)])
    proto.ir_version = IR_VERSION
    helper.set_model_props(proto, {META_KEY: json.dumps({"format": "lstmkit-onnx",
                                                         "lstmkit_version": lstmkit.__version__, **meta})})
    checker.check_model(proto, full_check=True)
    return proto


def check_tolerance(checks: dict[str, float], tolerance: float, target: str) -> None:
    """Raise an ``ExportError`` when a check's max abs difference exceeds ``tolerance`` (or is NaN)."""
    worst_check = max(checks, key=lambda k: np.inf if np.isnan(checks[k]) else checks[k])
    worst = checks[worst_check]
    if not worst <= tolerance:
        raise ExportError(
            f"export: ONNX Runtime and PyTorch disagree: max abs difference {worst:.3g} in the {worst_check} check "
            f"exceeds the tolerance {tolerance:g} (checks: "
            + ", ".join(f"{k} {v:.3g}" for k, v in checks.items()) + f"); {target} was not written")


def declared_schema(model: Any) -> Any:
    """The ``Schema`` that ``model``'s task declares for it (``Task.schema``)."""
    from lstmkit.tasks import task_named

    return task_named(model.meta.get("task")).schema(model.meta, model.config)


def _port_dict(port: Any) -> dict[str, Any]:
    """A ``Port`` or an ONNX ``ValueInfoProto`` as JSON: name, dtype, shape (named dimensions as names)."""
    if isinstance(port, Port):
        return {"name": port.name, "dtype": port.dtype, "shape": list(port.shape), "description": port.description}
    dtypes = {code: name for name, code in _ONNX_TYPES.items()}
    tensor = port.type.tensor_type
    return {"name": port.name, "dtype": dtypes[tensor.elem_type],
            "shape": [d.dim_param or d.dim_value for d in tensor.shape.dim], "description": port.doc_string}


def graph_meta(model: Any, kind: str, inputs: list[Any], outputs: list[Any], lstm: nn.Module,
               streaming_unsupported: str | None, **extra: Any) -> dict[str, Any]:
    """The ``lstmkit`` metadata of one graph: the task, the graph's role, its ports as declared, the labels and
    the LSTM's state sizes (for a server holding streams), and ``extra``."""
    return {
        "graph": kind,
        "task": model.config.model.task,
        "verb": declared_schema(model).verb,
        "inputs": [_port_dict(p) for p in inputs],
        "outputs": [_port_dict(p) for p in outputs],
        "input_size": model.meta.get("input_size"),
        "sequence_length": model.meta.get("sequence_length"),
        "label_names": list(model.meta.get("label_names") or []),
        "num_layers": lstm.num_layers,
        "hidden_size": lstm.hidden_size,
        "output_size": lstm.output_size,  # the width of h0/h_n in a step graph (proj_size, if set)
        "streaming_unsupported": streaming_unsupported,
        "data_name": model.meta.get("data_name"),
        **extra,
    }


def garbage_values(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Large random values for the padding of a verification batch: they must not reach any answer."""
    return rng.normal(0.0, 1e3, size=shape).astype(np.float32)


def verified_set(request: Any, build: Any, probe: Any, lstm: nn.Module, features: Any, rng: np.random.Generator,
                 streaming_unsupported: str | None, side_files: dict[str, bytes] | None = None) -> Any:
    """A task's ``GraphSet``, verified: ``build(step)`` writes the predict graph (``step=False``) and, where the
    model streams (``streaming_unsupported`` is None) and ``request.step``, the step graph; ``probe(per_step)``
    says how to feed them (``lstmkit.export.parity``). Checks: the full and garbage-padded batches,
    ``onnx.reference`` where it runs, the chunked streams against the LSTM's final states on ``features(raw)``.

    Raises:
        ExportError: a check exceeds ``request.tolerance``.
    """
    import torch

    from lstmkit.export.parity import (
        reference_check,
        state_shape,
        stream_check,
        whole_checks,
    )
    from lstmkit.export.registry import GraphSet

    predict = build(False)
    checks = whole_checks(predict, probe(False), rng)
    reference = reference_check(predict, probe(False))
    if reference is not None:
        checks["reference"] = reference
    graphs = {"predict": predict}
    if request.step and streaming_unsupported is None:
        graphs["step"] = build(True)

        @torch.no_grad()
        def final_state(raw: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            _, (h, c) = lstm(features(raw), lengths=torch.from_numpy(ends))
            return h.numpy(), c.numpy()

        checks["step"] = stream_check(graphs["step"], probe(True), state_shape(lstm), final_state, rng)
    check_tolerance(checks, request.tolerance, request.target)
    return GraphSet(graphs, checks, side_files=side_files or {},
                    streaming_unsupported=streaming_unsupported or (None if request.step else "not asked for"))
