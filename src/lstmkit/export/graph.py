"""A small builder over ``onnx.helper``: nodes with fresh output names, constants as initializers.

Every exporter writes its graphs with it, so node and initializer names never collide and the opset, the
IR version and the metadata key are set in one place.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["GraphBuilder", "IR_VERSION", "META_KEY", "OPSET"]

OPSET = 17
IR_VERSION = 8  # what ONNX Runtime releases since 1.12 read
META_KEY = "lstmkit"


class GraphBuilder:
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
