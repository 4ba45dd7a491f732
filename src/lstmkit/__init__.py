"""lstmkit: Long Short-Term Memory networks from raw sequences to a trained, evaluated, deployed model."""

__version__ = "0.1.0"
