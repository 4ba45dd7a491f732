"""Writing an export: the task's exporter builds and verifies its graphs in memory, then every file of the
set is written to a temporary name and renamed, so a reader never sees half a set; reading an exported file's
metadata back."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit.artifacts.model_folder import LoadedModel, write_synced_temp
from lstmkit.export.errors import ExportError, ExportResult
from lstmkit.export.graph import META_KEY
from lstmkit.export.registry import ExportRequest, GraphSet, exporter_for

__all__ = ["export_onnx", "read_onnx_meta", "set_file_names"]

log = logging.getLogger(__name__)


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


def set_file_names(out_path: Path, graph_set: GraphSet) -> dict[str, Path]:
    """Where each graph (by role) and side file (by name) of ``graph_set`` goes for ``out_path``: the predict
    graph at ``out_path`` itself, a role ``R`` at ``NAME.R.onnx``, a side file ``S`` at ``NAME.S``."""
    stem = out_path.name.removesuffix(".onnx")
    paths = {role: out_path if role == "predict" else out_path.with_name(f"{stem}.{role}.onnx")
             for role in graph_set.graphs}
    paths.update({name: out_path.with_name(f"{stem}.{name}") for name in graph_set.side_files})
    return paths


def _stamp_file_names(proto: Any, graph_set: GraphSet, paths: dict[str, Path]) -> None:
    """Write the set's file names into a graph's ``lstmkit`` metadata (``files``, ``side_files``, ``step_file``)."""
    from onnx import helper

    props = {p.key: p.value for p in proto.metadata_props}
    meta = json.loads(props[META_KEY])
    meta["files"] = {role: paths[role].name for role in graph_set.graphs}
    meta["side_files"] = {name: paths[name].name for name in graph_set.side_files}
    meta["step_file"] = paths["step"].name if "step" in graph_set.graphs else None
    del proto.metadata_props[:]
    helper.set_model_props(proto, {**{k: v for k, v in props.items() if k != META_KEY}, META_KEY: json.dumps(meta)})


def export_onnx(
    model_dir: str | Path | LoadedModel,
    out_path: str | Path,
    *,
    tolerance: float = 1e-4,
    samples: np.ndarray | None = None,
    step: bool = True,
    quantize: str | None = None,
    max_accuracy_drop: float = 1.0,
) -> ExportResult:
    """Export a model folder (or the run folder holding one) to ONNX: verify in ONNX Runtime, then write.

    Args:
        model_dir: a model or run folder (or a classifier already loaded with ``load_model``).
        out_path: the predict graph's file, conventionally ``*.onnx``; the set's other files go beside it
            (``set_file_names``), e.g. the step graph as ``NAME.step.onnx``.
        tolerance: the largest absolute difference from PyTorch allowed in verification.
        samples: raw inputs to verify on; default: the model's dataset, else random inputs.
        step: also write the step graph (for streaming) when the model can stream.
        quantize: ``"int8"`` writes the set with int8 weights (``lstmkit.export.quantize``), once the float
            set is verified, judged by its accuracy on the model's own test split.
        max_accuracy_drop: with ``quantize``, the most test accuracy (in points) the int8 set may lose.

    Raises:
        ExportError: an option cannot export (naming it), or ONNX Runtime disagrees with PyTorch by more
            than ``tolerance`` (giving the difference), or int8 loses more than ``max_accuracy_drop``;
            nothing is written then.
    """
    out_path = Path(out_path)
    if quantize not in (None, "int8"):
        raise ExportError(f"export --quantize: expected 'int8', got {quantize!r}")
    if not out_path.parent.is_dir():
        raise ExportError(f"export: output folder {out_path.parent}: not found")
    if isinstance(model_dir, LoadedModel):
        from lstmkit.export.classifier_graph import export_classifier

        request = ExportRequest(None, model_dir.meta, tolerance, samples, step, str(out_path))
        graph_set = export_classifier(request, model_dir)
    else:
        from lstmkit.tasks import trained_task

        _, contents = trained_task(model_dir)
        request = ExportRequest(contents.folder, contents.meta, tolerance, samples, step, str(out_path))
        graph_set = exporter_for(contents.meta.get("task"))(request)
    worst = max(graph_set.checks.values())
    allowed = tolerance * graph_set.tolerance_scale
    if not worst <= allowed:  # every exporter refuses already; this keeps a new one honest (and refuses NaN)
        raise ExportError(f"export: ONNX Runtime and PyTorch disagree by {worst:.3g} (tolerance {allowed:g}); "
                          f"{out_path} was not written")
    report = None
    if quantize == "int8":
        from lstmkit.export.quantize import quantize_graph_set

        graph_set, report = quantize_graph_set(request, graph_set, max_accuracy_drop)
    paths = set_file_names(out_path, graph_set)
    pending = []
    for role, proto in graph_set.graphs.items():
        _stamp_file_names(proto, graph_set, paths)
        pending.append((paths[role], write_synced_temp(paths[role], proto.SerializeToString())))
    pending += [(paths[name], write_synced_temp(paths[name], data)) for name, data in graph_set.side_files.items()]
    for final, tmp in reversed(pending):  # the predict file last, so a predict file always has its set beside it
        os.replace(tmp, final)
    log.debug("export: wrote %s (max abs difference %.3g)", ", ".join(str(p) for p in paths.values()), worst)
    return ExportResult(out_path, paths.get("step"), worst, graph_set.checks, graph_set.streaming_unsupported,
                        paths, report)
