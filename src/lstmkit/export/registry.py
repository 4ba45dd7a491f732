"""Which exporter writes a trained model: one entry per ``[model] task`` (``meta.json``'s ``task``).

An exporter turns a model folder into a ``GraphSet``: the ONNX graphs of the model, each under a *role*,
already verified in ONNX Runtime against PyTorch, plus any side files a caller needs (a tokenizer, say).
``lstmkit.export.writer.export_onnx`` writes a set beside the file the user names:

=============  ===========================  ================================================================
role           file (for ``--out m.onnx``)  what it is
=============  ===========================  ================================================================
``predict``    ``m.onnx``                   the main graph: whole inputs in, answers out (every task has one)
any other      ``m.ROLE.onnx``              e.g. ``step`` (streaming), ``decoder_step`` (seq2seq decoding)
side file      ``m.NAME``                   e.g. ``m.tokenizer.json``
=============  ===========================  ================================================================

Every graph's ``lstmkit`` metadata names the set's files (``files``: role -> file name, ``side_files``), so
a reader of any one file finds the others. A new task's exporter is one function registered here::

    @register_exporter("regressor")
    def export_regressor(request: ExportRequest) -> GraphSet: ...
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit.export.errors import ExportError

__all__ = ["EXPORTER_MODULES", "ExportRequest", "Exporter", "GraphSet", "exporter_for", "register_exporter"]


@dataclass
class ExportRequest:
    """What the user asked of an export."""

    folder: Path | None
    """The model folder (already resolved from a run folder); None for a model handed over already loaded."""
    meta: dict[str, Any]
    """The folder's ``meta.json``."""
    tolerance: float = 1e-4
    """The largest absolute difference from PyTorch allowed in verification."""
    samples: np.ndarray | None = None
    """Raw inputs to verify on (the task decides their meaning), or None for the task's own choice."""
    step: bool = True
    """Also write the streaming step graph, where the model can stream."""
    target: str = "the graph"
    """What is not written when verification fails, for the message (the output file)."""


@dataclass
class GraphSet:
    """An exporter's verified graphs (role -> ``onnx.ModelProto``, ``predict`` first), the max abs difference of
    each verification check, side files (name -> bytes) and why there is no step graph (None if there is one,
    or the task never streams)."""

    graphs: dict[str, Any]
    checks: dict[str, float]
    side_files: dict[str, bytes] = field(default_factory=dict)
    streaming_unsupported: str | None = None
    tolerance_scale: float = 1.0
    """The checks are held against the tolerance times this (a forecaster's: its largest forecast's magnitude,
    as its forecasts are on the series' own scale)."""


Exporter = Callable[[ExportRequest], GraphSet]

_EXPORTERS: dict[str, Exporter] = {}

#: ``[model] task`` -> the module that registers its exporter, imported on first use.
EXPORTER_MODULES: dict[str, str] = {
    "classifier": "lstmkit.export.classifier_graph",
    "regressor": "lstmkit.export.regressor_graph",
    "forecaster": "lstmkit.export.forecaster_graph",
    "text-classifier": "lstmkit.export.text_graph",
    "tagger": "lstmkit.export.text_graph",
    "char-lm": "lstmkit.export.text_graph",
    "next-symbols": "lstmkit.export.next_symbols_graph",
    "seq2seq": "lstmkit.export.seq2seq_graph",
    "frames": "lstmkit.export.frames_graph",
}


def register_exporter(*tasks: str) -> Callable[[Exporter], Exporter]:
    """Decorator: ``fn`` exports the models of each ``[model] task`` in ``tasks``."""

    def decorate(fn: Exporter) -> Exporter:
        for task in tasks:
            _EXPORTERS[task] = fn
        return fn

    return decorate


def exporter_for(task: str | None) -> Exporter:
    """The exporter of ``[model] task = task`` models.

    Raises:
        ExportError: no exporter is known for ``task``, naming those that are.
    """
    if task not in _EXPORTERS and task in EXPORTER_MODULES:
        importlib.import_module(EXPORTER_MODULES[task])
    if task not in _EXPORTERS:
        known = sorted(set(_EXPORTERS) | set(EXPORTER_MODULES))
        raise ExportError(f"export: [model] task = {task!r} is not supported by the ONNX exporter "
                          f"(supported: {', '.join(repr(k) for k in known)})")
    return _EXPORTERS[task]
