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
from lstmkit.models.objectives import Objective, make_objective
from lstmkit.registry import Registry

__all__ = ["InputSpec", "register_model", "build_model", "available_models", "model_objective"]


@dataclass(frozen=True)
class InputSpec:
    """What a model is built for: features per step, fixed length (if any), outputs, image geometry."""

    input_size: int
    num_outputs: int
    sequence_length: int | None = None
    image_shape: tuple[int, int] | None = None


Builder = Callable[[ModelConfig, InputSpec], nn.Module]
_MODELS: Registry[Builder] = Registry("config [model] task", ConfigError)
_DEFAULT_LOSS: dict[str, str] = {}


def register_model(name: str, default_loss: str = "cross_entropy") -> Callable[[Builder], Builder]:
    """Decorator that registers a model builder under ``name``, trained with ``default_loss`` unless the
    config's ``[model] loss`` names another (see ``lstmkit.models.objectives``)."""
    _DEFAULT_LOSS[name] = default_loss
    return _MODELS.register(name)


def model_objective(config: ModelConfig) -> Objective:
    """The objective (loss and metrics) that trains ``config.task``."""
    _MODELS.get(config.task)  # an unknown task is reported by name
    loss = _DEFAULT_LOSS[config.task] if config.loss == "auto" else config.loss
    return make_objective(loss, config.label_smoothing)


def available_models() -> list[str]:
    return _MODELS.names()


def build_model(config: ModelConfig, spec: InputSpec) -> nn.Module:
    """Build the registered model ``config.task`` for data described by ``spec``."""
    return _MODELS.get(config.task)(config, spec)
