"""What export raises and returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lstmkit.errors import LstmkitError

__all__ = ["ExportError", "ExportResult", "step_path_for"]


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
    paths: dict[str, Path] = field(default_factory=dict)
    """Every file written: each graph by role (``predict``, ``step``, ...) and each side file by name."""
    quantization: Any = None
    """With ``quantize="int8"``, the ``lstmkit.export.quantize.QuantizationReport`` (test accuracy, both ways)."""


def step_path_for(path: str | Path) -> Path:
    """The step graph's file next to a predict graph: ``digits.onnx`` -> ``digits.step.onnx``."""
    path = Path(path)
    stem = path.name[: -len(".onnx")] if path.name.endswith(".onnx") else path.name
    return path.with_name(f"{stem}.step.onnx")
