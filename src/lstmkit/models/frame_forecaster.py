r"""``ConvLSTMForecaster``: the encoding-forecasting ConvLSTM network of Shi et al. (2015) for frame sequences.

An encoder :class:`lstmkit.nn.ConvLSTM` reads the input frames; a forecaster ``ConvLSTM`` starts from the
encoder's final states (layer by layer) and runs ``K`` more steps without input, and a 1x1 convolution of
its hidden states gives each future frame. As in the paper, frames are first cut into ``patch`` x ``patch``
patches stacked as channels (a 64x64 frame becomes 16 channels of 16x16 with ``patch=4``), which keeps the
convolutions small; the outputs are put back together the same way.

Shapes: input (N, L_in, C, H, W) -> logits (N, K, C, H, W); ``torch.sigmoid`` of them are frames in 0..1.
H and W must be multiples of ``patch``.

Example::

    model = ConvLSTMForecaster(channels=1, hidden_channels=[32, 32], kernel_size=3, patch=4)
    logits = model(torch.rand(2, 10, 1, 64, 64), future=10)        # (2, 10, 1, 64, 64)
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from lstmkit.errors import ShapeError
from lstmkit.nn import ConvLSTM

__all__ = ["ConvLSTMForecaster"]


class ConvLSTMForecaster(nn.Module):
    """Encoder ConvLSTM -> forecaster ConvLSTM (same layers, no input) -> 1x1 convolution per future frame.

    Args:
        channels: channels C of each frame. Default: 1
        hidden_channels: channels of each ConvLSTM layer (the number of layers is its length). Default: [32, 32]
        kernel_size: odd kernel size of every ConvLSTM convolution. Default: 3
        patch: side of the square patches stacked into channels (1: none). Default: 4
    """

    def __init__(self, channels: int = 1, hidden_channels: Sequence[int] = (32, 32), kernel_size: int = 3,
                 patch: int = 4) -> None:
        super().__init__()
        hidden = list(hidden_channels)
        if not hidden:
            raise ValueError("ConvLSTMForecaster: hidden_channels: expected at least one layer, got none")
        self.channels, self.patch = channels, patch
        width = channels * patch * patch
        self.encoder = ConvLSTM(width, hidden, kernel_size, num_layers=len(hidden))
        self.forecaster = ConvLSTM(1, hidden, kernel_size, num_layers=len(hidden))
        self.head = nn.Conv2d(hidden[-1], width, kernel_size=1)

    def forward(self, frames: Tensor, future: int) -> Tensor:
        """Logits of the ``future`` frames after ``frames`` (N, L_in, C, H, W): (N, future, C, H, W)."""
        if frames.dim() != 5 or frames.size(2) != self.channels:
            raise ShapeError(f"ConvLSTMForecaster: expected frames of shape (N, L, {self.channels}, H, W), "
                             f"got {tuple(frames.shape)}")
        n, length, _, height, width = frames.shape
        if height % self.patch or width % self.patch:
            raise ShapeError(f"ConvLSTMForecaster: expected frame height and width divisible by patch={self.patch}, "
                             f"got {height}x{width}")
        patches = F.pixel_unshuffle(frames.flatten(0, 1), self.patch).unflatten(0, (n, length))  # (N, L, Cp², h, w)
        _, state = self.encoder(patches)
        h, w = patches.shape[-2:]
        silence = patches.new_zeros(n, future, 1, h, w)  # the forecaster has no input (Shi et al.)
        hidden, _ = self.forecaster(silence, state)  # (N, K, C_hid, h, w)
        logits = self.head(hidden.flatten(0, 1))  # (N*K, Cp², h, w)
        return F.pixel_shuffle(logits, self.patch).unflatten(0, (n, future))  # (N, K, C, H, W)
