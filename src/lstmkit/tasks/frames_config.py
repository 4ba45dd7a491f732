"""The config of the ``frames`` task (frame forecasting recipes): its tables, strictly typed and checked.

Kept apart from ``lstmkit.tasks.frames`` (the task, which needs PyTorch) so that ``lstmkit train`` checks a
recipe and its ``--set`` overrides before anything heavy is imported: a wrong key answers at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Literal

from lstmkit.config import TrainConfig, apply_overrides, build_config
from lstmkit.errors import ConfigError

__all__ = ["FramesConfig", "FramesDataConfig", "FramesModelConfig", "config_from_table"]


@dataclass
class FramesDataConfig:
    """``[data]`` of a frames recipe: the Moving-digits generator."""

    source: Literal["digits", "mnist", "fashion-mnist"] = "digits"
    """Digit images: the bundled 8x8 digits, or MNIST / Fashion-MNIST when their files are here."""
    frame_size: int = field(default=64, metadata={"min": 0, "exclusive": True})
    """Side of each square frame, in pixels."""
    digit_size: int = field(default=16, metadata={"min": 0, "exclusive": True})
    """Side of each digit drawn into a frame, in pixels."""
    num_digits: int = field(default=2, metadata={"min": 0, "exclusive": True})
    """Digits moving in each sequence."""
    speed: float = field(default=3.0, metadata={"min": 0})
    """Pixels per frame."""
    input_frames: int = field(default=10, metadata={"min": 0, "exclusive": True})
    """Frames the model sees."""
    output_frames: int = field(default=10, metadata={"min": 0, "exclusive": True})
    """Frames it forecasts after them."""
    samples: int = field(default=1024, metadata={"min": 0, "exclusive": True})
    """Fresh training sequences per epoch."""
    val_samples: int = field(default=64, metadata={"min": 0, "exclusive": True})
    """Validation sequences (fixed, drawn once)."""
    test_samples: int = field(default=256, metadata={"min": 0, "exclusive": True})
    """Test sequences (fixed, drawn once)."""


@dataclass
class FramesModelConfig:
    """``[model]`` of a frames recipe (see ``lstmkit.models.frame_forecaster.ConvLSTMForecaster``)."""

    task: Literal["frames"] = "frames"
    """Always ``frames``: it picks this kind of recipe."""
    hidden_channels: list[int] = field(default_factory=lambda: [32, 32])
    """Hidden channels of each stacked ConvLSTM layer (one layer per entry)."""
    kernel_size: int = field(default=3, metadata={"min": 0, "exclusive": True})
    """Side of the ConvLSTM kernels (odd)."""
    patch: int = field(default=4, metadata={"min": 0, "exclusive": True})
    """Side of the square patches stacked into channels before the ConvLSTMs (Shi et al.)."""
    head: Literal["pixels", "warp"] = "warp"
    """``pixels``: the forecaster draws each frame (Shi et al.); ``warp``: it moves the previous frame's pixels
    with a kernel per patch (see ``lstmkit.models.frame_forecaster``)."""
    warp_kernel: int = field(default=7, metadata={"min": 0, "exclusive": True})
    """Side of the ``warp`` head's kernels: odd, at least 2 * speed + 1 to follow the motion."""
    loss: Literal["bce", "mse"] = "bce"
    """Per-pixel loss: binary cross-entropy or mean squared error."""


@dataclass
class FramesConfig:
    """A frames run: ``[data]``, ``[model]`` and ``[train]`` (the regular ``TrainConfig``; an epoch is
    ``data.samples`` fresh sequences; the best epoch is the lowest validation MSE)."""

    data: FramesDataConfig = field(default_factory=FramesDataConfig)
    model: FramesModelConfig = field(default_factory=FramesModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def config_from_table(table: dict[str, Any], overrides: Iterable[str] = ()) -> FramesConfig:
    """A strict ``FramesConfig`` from parsed TOML tables: unknown keys and wrong types name the key."""
    config = build_config(FramesConfig, apply_overrides(table, overrides))
    d, m = config.data, config.model
    if d.frame_size % m.patch:
        raise ConfigError(f"config [model] patch: expected a divisor of [data] frame_size ({d.frame_size}), "
                          f"got {m.patch}")
    if d.digit_size >= d.frame_size:
        raise ConfigError(f"config [data] digit_size: expected less than frame_size ({d.frame_size}), "
                          f"got {d.digit_size}")
    if not m.hidden_channels or min(m.hidden_channels) < 1:
        raise ConfigError(f"config [model] hidden_channels: expected a non-empty list of positive integers, "
                          f"got {m.hidden_channels}")
    if m.kernel_size % 2 == 0:
        raise ConfigError(f"config [model] kernel_size: expected an odd integer, got {m.kernel_size}")
    if m.warp_kernel % 2 == 0:
        raise ConfigError(f"config [model] warp_kernel: expected an odd integer, got {m.warp_kernel}")
    return config
