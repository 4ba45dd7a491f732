r"""int8 inference: ONNX Runtime's dynamic quantization of an exported graph set, judged on the test split.

Dynamic quantization stores every weight matrix as int8 with one scale per tensor and quantizes the
activations on the fly, per call: a float matrix product :math:`y = x W` becomes

.. math::  y \approx s_x s_W \, (q_x - z_x)(q_W) , \qquad q_W = \mathrm{round}(W / s_W),\;
           s_W = \max|W| / 127,

with :math:`s_x, z_x` taken from each input's range. ONNX Runtime rewrites the standard ``LSTM`` node into its
``DynamicQuantizeLSTM`` kernel (com.microsoft domain, int8 ``W`` and ``R``) and each ``MatMul`` into
``MatMulInteger``; everything else (the standardizer, softmax, masks, a ``Scan`` body) stays float32.

Because int8 cannot match PyTorch to 1e-4, a quantized set is judged by what it is for: its accuracy on the
model's own test split beside the float graph's, on the same rows, one sample per call. (The activations'
range is taken per call over the whole batch, so an int8 answer can change slightly with the requests that
share its micro-batch in ``lstmkit serve``, and ONNX Runtime's int8 LSTM rounds a little differently with
more than one thread; the float graphs' answers do neither.) ``quantize_graph_set`` refuses (nothing
is written) when the drop exceeds ``max_accuracy_drop`` points. Only classifiers have an accuracy to keep,
so other tasks are refused with a message.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit.export.errors import ExportError
from lstmkit.export.graph import META_KEY
from lstmkit.export.registry import ExportRequest, GraphSet

__all__ = ["QUANTIZABLE_TASKS", "QuantizationReport", "quantize_graph", "quantize_graph_set"]

log = logging.getLogger(__name__)

#: The ``[model] task`` values whose test accuracy judges a quantized export.
QUANTIZABLE_TASKS = ("classifier",)


@dataclass(frozen=True)
class QuantizationReport:
    """Test accuracy of the float32 and the int8 predict graph on the same rows of the model's test split."""

    data: str
    samples: int
    float_accuracy: float
    int8_accuracy: float

    @property
    def drop_points(self) -> float:
        """The accuracy lost, in percentage points (negative when int8 does better)."""
        return 100.0 * (self.float_accuracy - self.int8_accuracy)

    def describe(self) -> str:
        return (f"int8 accuracy {self.int8_accuracy:.4f} vs float32 {self.float_accuracy:.4f} on {self.data} "
                f"(test split, {self.samples} samples): change {-self.drop_points:+.2f} points")


def quantize_graph(proto: Any) -> Any:
    """``proto`` with int8 weights (ONNX Runtime's ``quantize_dynamic``, signed int8 weights, per tensor); its
    ``lstmkit`` metadata kept, with ``"quantized": "int8"`` added."""
    import json

    import onnx
    from onnx import helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="lstmkit-quantize-") as tmp:
        source, target = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(proto.SerializeToString())
        quiet = logging.getLogger()
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # its advice to run shape pre-processing first is printed on the root logger
        try:
            quantize_dynamic(source, target, weight_type=QuantType.QInt8)
        finally:
            quiet.setLevel(level)
        quantized = onnx.load(str(target))
    props = {p.key: p.value for p in quantized.metadata_props}
    meta = json.loads(props[META_KEY])
    meta["quantized"] = "int8"
    del quantized.metadata_props[:]
    helper.set_model_props(quantized, {**{k: v for k, v in props.items() if k != META_KEY}, META_KEY: json.dumps(meta)})
    return quantized


def _test_rows(request: ExportRequest) -> tuple[str, Any]:
    """The model's own test split, read as its run read it (no download)."""
    from lstmkit.artifacts.model_folder import load_model
    from lstmkit.data import load_source
    from lstmkit.errors import LstmkitError

    name = request.meta.get("data_name")
    if not name:
        raise ExportError("export --quantize: the model folder does not name its dataset, so the accuracy change "
                          "cannot be measured")
    if request.folder is None:
        raise ExportError("export --quantize: needs the model folder, to read its test split")
    config = load_model(request.folder).config
    try:
        source = load_source(name, download=False, config=config.data if name == config.data.name else None)
    except LstmkitError as exc:
        raise ExportError(f"export --quantize: the test split of {name} is needed to measure the accuracy change, "
                          f"and it did not load ({exc})") from None
    return name, source.test


def _accuracy(session: Any, rows: Any, batch: int = 1) -> float:
    """Accuracy of a predict graph on ``rows``, one sample per call by default: the activations' int8 range is
    taken per call, over the whole batch, so a sample's int8 answer depends on its batch-mates; alone, it is
    what a lone request gets."""
    n, length = rows.x.shape[:2]
    lengths = rows.lengths if rows.lengths is not None else np.full(n, length, dtype=np.int64)
    correct = 0
    for start in range(0, n, batch):
        probs = session.run(["probabilities"], {"input": np.ascontiguousarray(rows.x[start:start + batch], np.float32),
                                                "lengths": lengths[start:start + batch].astype(np.int64)})[0]
        correct += int((probs.argmax(-1) == rows.y[start:start + batch]).sum())
    return correct / n


def quantize_graph_set(request: ExportRequest, graph_set: GraphSet, max_accuracy_drop: float = 1.0,
                       ) -> tuple[GraphSet, QuantizationReport]:
    """Every graph of ``graph_set`` quantized to int8, and the accuracy change of the predict graph.

    Raises:
        ExportError: the task has no accuracy to judge by, the test split does not load, or the accuracy drops
            by more than ``max_accuracy_drop`` points (the report in the message).
    """
    from lstmkit.export.verify import ort_session

    task = request.meta.get("task")
    if task not in QUANTIZABLE_TASKS:
        raise ExportError(f"export --quantize int8: [model] task = {task!r} is not supported: the accuracy change on "
                          f"the test split judges a quantized model, and only {', '.join(QUANTIZABLE_TASKS)} "
                          "models have one")
    if not max_accuracy_drop >= 0:
        raise ExportError(f"export --max-accuracy-drop: expected points >= 0, got {max_accuracy_drop}")
    name, rows = _test_rows(request)
    quantized = {role: quantize_graph(proto) for role, proto in graph_set.graphs.items()}
    report = QuantizationReport(name, len(rows), _accuracy(ort_session(graph_set.graphs["predict"]), rows),
                                _accuracy(ort_session(quantized["predict"]), rows))
    if report.drop_points > max_accuracy_drop:
        raise ExportError(f"export --quantize int8: {report.describe()}, more than --max-accuracy-drop "
                          f"{max_accuracy_drop:g}; {request.target} was not written")
    return GraphSet(quantized, graph_set.checks, graph_set.side_files, graph_set.streaming_unsupported,
                    graph_set.tolerance_scale), report
