"""Writing an export: build, verify, then write atomically; reading an exported file's metadata."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit.artifacts.model_folder import LoadedModel, load_model, write_synced_temp
from lstmkit.export.classifier_graph import build_onnx_graphs
from lstmkit.export.errors import ExportError, ExportResult, step_path_for
from lstmkit.export.graph import META_KEY
from lstmkit.export.verify import verify_onnx

__all__ = ["TOLERANCE", "build_verified_graphs", "export_onnx", "read_onnx_meta"]

log = logging.getLogger(__name__)

TOLERANCE = 1e-4


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
