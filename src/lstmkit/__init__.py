"""lstmkit: Long Short-Term Memory networks from raw sequences to a trained, evaluated, deployed model.

``from lstmkit import Model, LSTMClassifier, LSTMRegressor`` imports them on first use, so that
``import lstmkit`` stays light (no PyTorch until it is needed).

``lstmkit.load(folder)`` loads any trained model (a model folder, or the run folder holding one) as its
task's loaded form: ``predict`` and ``evaluate``, plus the task's own verbs (``translate``, ``generate``,
``forecast``, ...).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["load", "Model", "LSTMClassifier", "LSTMRegressor", "__version__"]

_LAZY = {"Model": "lstmkit.tasks.sequence_model", "LSTMClassifier": "lstmkit.estimators", "LSTMRegressor": "lstmkit.estimators"}


def load(path: Any) -> Any:
    """The trained model in ``path`` (a model folder or a run folder), every file checked against the folder's
    manifest; never unpickles.

    Example::

        model = lstmkit.load("runs/digits")        # or "runs/digits/model"
        model.predict(x)                           # (N, L, F) raw inputs -> class indices
        lstmkit.load("runs/dates").translate("3 March 2021").text
    """
    from lstmkit.tasks import load_trained

    return load_trained(path)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lstmkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
