"""The registry of task models: a name in ``[model] task`` maps to a builder.

A builder takes the ``[model]`` table and an ``InputSpec`` (what the data looks like) and returns an
``nn.Module`` whose ``forward(x, lengths=None)`` maps a batch ``(N, L, F)`` to outputs. See
``lstmkit/models/template.py`` for how to add one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from lstmkit.config import ModelConfig
from lstmkit.errors import ConfigError

__all__ = ["InputSpec", "register_model", "build_model", "available_models"]


@dataclass(frozen=True)
class InputSpec:
    """What a model is built for: features per step, fixed length (if any), outputs, image geometry."""

    input_size: int
    num_outputs: int
    sequence_length: int | None = None
    image_shape: tuple[int, int] | None = None


Builder = Callable[[ModelConfig, InputSpec], nn.Module]
_MODELS: dict[str, Builder] = {}


def register_model(name: str) -> Callable[[Builder], Builder]:
    """Decorator that registers a model builder under ``name``."""

    def decorate(builder: Builder) -> Builder:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = builder
        return builder

    return decorate


def available_models() -> list[str]:
    return sorted(_MODELS)


def build_model(config: ModelConfig, spec: InputSpec) -> nn.Module:
    """Build the registered model ``config.task`` for data described by ``spec``."""
    try:
        builder = _MODELS[config.task]
    except KeyError:
        raise ConfigError(
            f"config [model] task: expected one of {', '.join(available_models())}, got {config.task!r}"
        ) from None
    return builder(config, spec)
