"""lstmkit: Long Short-Term Memory networks from raw sequences to a trained, evaluated, deployed model.

``from lstmkit import Model, LSTMClassifier, LSTMRegressor`` imports them on first use, so that
``import lstmkit`` stays light (no PyTorch until it is needed).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["Model", "LSTMClassifier", "LSTMRegressor", "__version__"]

_LAZY = {"Model": "lstmkit.model", "LSTMClassifier": "lstmkit.estimators", "LSTMRegressor": "lstmkit.estimators"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lstmkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
