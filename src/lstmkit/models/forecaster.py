"""Forecaster: a window of W past points of S series in, the next H points of every series out.

It is the sequence regressor's network (an LSTM stack, a readout and a dense head) with K = H * S outputs,
read step-major (output ``h * S + s`` is series s at step h + 1)::

    x (N, W, S) --> LSTM --> h at the last step (N, H_out) --> Linear --> (N, H * S)

It is trained on scaled points (``lstmkit.data.windows``) with MSE (or ``loss = "mae"``) and evaluated
against naive and seasonal-naive forecasts on the original scale (``lstmkit.tasks.forecast_evaluation``).
"""

from __future__ import annotations

from torch import nn

from lstmkit.config import ModelConfig
from lstmkit.errors import ConfigError
from lstmkit.models.classifier import SequenceClassifier
from lstmkit.models.registry import InputSpec, register_model

__all__ = ["build_forecaster"]


@register_model("forecaster", default_loss="mse")
def build_forecaster(config: ModelConfig, spec: InputSpec) -> nn.Module:
    """A direct multi-step forecaster: ``forward(x (N, W, S)) -> (N, H * S)`` with ``spec.num_outputs = H * S``."""
    if config.architecture != "lstm":
        raise ConfigError(f'config [model] architecture: the forecaster is the "lstm" architecture (its output '
                          f'depends on the steps in order); got "{config.architecture}", which is for classifiers '
                          "and regressors")
    return SequenceClassifier(config, spec)
