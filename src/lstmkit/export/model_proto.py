"""A graph made into a checked ``onnx.ModelProto`` with lstmkit's opset, IR version and metadata; shared by the
seq2seq and frames exporters."""

from __future__ import annotations

import json
from typing import Any

import lstmkit
from lstmkit.export.graph import IR_VERSION, META_KEY, OPSET, GraphBuilder

__all__ = ["finish_model", "tensor_info"]


def tensor_info(name: str, dtype: str, dims: list[Any]) -> Any:
    """A graph input or output: ``dtype`` is ``"float"``, ``"int64"`` or ``"bool"``; ``dims`` ints or names."""
    from onnx import TensorProto, helper

    kinds = {"float": TensorProto.FLOAT, "int64": TensorProto.INT64, "bool": TensorProto.BOOL}
    return helper.make_tensor_value_info(name, kinds[dtype], dims)


def _port(info: Any) -> dict[str, Any]:
    """A graph input or output as JSON: name, dtype (``float32``, ``int64``, ``bool``) and shape (named
    dimensions by name)."""
    from onnx import TensorProto

    dtypes = {TensorProto.FLOAT: "float32", TensorProto.INT64: "int64", TensorProto.BOOL: "bool"}
    tensor = info.type.tensor_type
    return {"name": info.name, "dtype": dtypes[tensor.elem_type],
            "shape": [d.dim_param or d.dim_value for d in tensor.shape.dim]}


def finish_model(g: GraphBuilder, name: str, inputs: list[Any], outputs: list[Any], meta: dict[str, Any]) -> Any:
    """The ``ModelProto`` of ``g``'s nodes, with ``meta`` (plus the format, lstmkit's version and the graph's
    ``inputs`` and ``outputs``: name, dtype, shape) as its ``lstmkit`` metadata, checked with ``onnx.checker``
    (full check: shapes and types inferred)."""
    from onnx import checker, helper

    graph = helper.make_graph(g.nodes, name, inputs, outputs, g.initializers)
    proto = helper.make_model(graph, producer_name="lstmkit", producer_version=lstmkit.__version__,
                              opset_imports=[helper.make_opsetid("", OPSET)])
    proto.ir_version = IR_VERSION
    meta = {"format": "lstmkit-onnx", "lstmkit_version": lstmkit.__version__,
            "inputs": [_port(i) for i in inputs], "outputs": [_port(o) for o in outputs], **meta}
    helper.set_model_props(proto, {META_KEY: json.dumps(meta)})
    checker.check_model(proto, full_check=True)
    return proto
