"""Task models and their registry."""

from lstmkit.models.registry import InputSpec, available_models, build_model, register_model
from lstmkit.models import classifier as _classifier  # noqa: F401  (registers "classifier")
from lstmkit.models.classifier import SequenceClassifier

__all__ = ["InputSpec", "SequenceClassifier", "available_models", "build_model", "register_model"]
