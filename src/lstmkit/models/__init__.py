"""Task models, their objectives and their registry."""

from lstmkit.models.registry import InputSpec, available_models, build_model, model_objective, register_model
from lstmkit.models import classifier as _classifier  # noqa: F401  (registers "classifier" and "regressor")
from lstmkit.models import text as _text  # noqa: F401  (registers "text-classifier", "tagger" and "char-lm")
from lstmkit.models import rnn as _rnn  # noqa: F401  (registers "rnn-classifier" and "rnn-regressor")
from lstmkit.models import forecaster as _forecaster  # noqa: F401  (registers "forecaster")
from lstmkit.models import next_symbols as _next_symbols  # noqa: F401  (registers "next-symbols")
from lstmkit.models.classifier import SequenceClassifier
from lstmkit.models.objectives import Objective, make_objective

__all__ = ["InputSpec", "Objective", "SequenceClassifier", "available_models", "build_model", "make_objective",
           "model_objective", "register_model"]
