"""The inputs and outputs a trained model declares: the basis of export and serving.

Each task describes its models' ports once (``Task.schema``); a port has a name, an element type, a shape
with named dimensions (``N`` batch, ``L`` steps, ``F`` features, ``C`` classes, ...; a number where the
model fixes it) and a one-line meaning. Example, for the digits classifier::

    inputs:  sequences float32 (N, 8, 8)     raw values of each step, as the data source gives them
    outputs: probabilities float32 (N, 10)   class probabilities, labels 0..9
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Port", "Schema"]


@dataclass(frozen=True)
class Port:
    """One input or output of a model."""

    name: str
    dtype: str
    """``float32``, ``float64``, ``int64`` or ``string``."""
    shape: tuple[int | str, ...]
    description: str


@dataclass(frozen=True)
class Schema:
    """A model's inputs and outputs, with the class names of a classifier's outputs."""

    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]
    labels: tuple[str, ...] = ()
    verb: str = "predict"
    """What a user asks of the model, and the service's endpoint for it: ``predict`` (``/v1/predict``),
    ``forecast`` (``/v1/forecast``) or ``generate`` (``/v1/generate``)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"inputs": [...], "outputs": [...], "labels": [...], "verb": ...}``, shapes as lists."""
        return {"inputs": [{**asdict(p), "shape": list(p.shape)} for p in self.inputs],
                "outputs": [{**asdict(p), "shape": list(p.shape)} for p in self.outputs],
                "labels": list(self.labels), "verb": self.verb}

    def describe(self) -> str:
        """One line per port, as in the module docstring."""
        def line(port: Port) -> str:
            shape = ", ".join(str(d) for d in port.shape)
            return f"{port.name} {port.dtype} ({shape})  {port.description}"

        return "\n".join([*(f"inputs:  {line(p)}" for p in self.inputs),
                          *(f"outputs: {line(p)}" for p in self.outputs)])
