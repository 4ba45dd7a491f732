r"""``ConvLSTMForecaster``: the encoding-forecasting ConvLSTM network of Shi et al. (2015) for frame sequences.

An encoder :class:`lstmkit.nn.ConvLSTM` reads the input frames; a forecaster ``ConvLSTM`` starts from the
encoder's final states (layer by layer) and runs ``K`` more steps. As in the paper, frames are first cut into
``patch`` x ``patch`` patches stacked as channels (a 64x64 frame becomes 64 channels of 8x8 with
``patch=8``), which keeps the convolutions small. Two heads turn the forecaster's hidden states into frames:

- ``head="pixels"`` (Shi et al.): the forecaster has no input, and a 1x1 convolution of its hidden state
  gives each future frame's pixels through a sigmoid (the patches are put back together the same way).
- ``head="warp"`` (the dynamic-filter / CDNA idea of De Brabandere et al. 2016 and Finn et al. 2016): the
  forecaster reads the previous frame (the last input frame, then its own predictions), and a 1x1
  convolution of its hidden state gives, for every patch, a ``warp_kernel`` x ``warp_kernel`` kernel
  (softmax-normalised, so it is a weighted average of the neighbourhood). Each pixel of the next frame is
  the previous frame's neighbourhood around it weighted by its patch's kernel:

  .. math::
      \hat{x}_{t+1}(p) = \sum_{\delta} k_{t+1}(\lfloor p / \text{patch} \rfloor, \delta)\,
                         \hat{x}_t(p + \delta), \qquad \sum_\delta k = 1,\ k \ge 0.

  A kernel with all its weight on one offset moves the patch's content by that offset, so the network has
  to learn where things move, not how digits look; the predicted frame keeps the input's strokes (and its
  black background exactly black). ``warp_kernel`` must cover the largest per-frame motion
  (7: up to 3 pixels in each direction).

Shapes: input (N, L_in, C, H, W) in 0..1 -> predicted frames (N, K, C, H, W) in 0..1.
H and W must be multiples of ``patch``.

Example::

    model = ConvLSTMForecaster(channels=1, hidden_channels=[32, 32], kernel_size=3, patch=8, head="warp")
    frames = model(torch.rand(2, 10, 1, 64, 64), future=10)        # (2, 10, 1, 64, 64), in 0..1
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from lstmkit.errors import ShapeError
from lstmkit.nn import ConvLSTM

__all__ = ["ConvLSTMForecaster", "HEADS"]

HEADS = ("pixels", "warp")


class ConvLSTMForecaster(nn.Module):
    """Encoder ConvLSTM -> forecaster ConvLSTM -> a head that makes each future frame (see the module docstring).

    Args:
        channels: channels C of each frame. Default: 1
        hidden_channels: channels of each ConvLSTM layer (the number of layers is its length). Default: [32, 32]
        kernel_size: odd kernel size of every ConvLSTM convolution. Default: 3
        patch: side of the square patches stacked into channels (1: none). Default: 4
        head: ``"pixels"`` (a 1x1 convolution gives the pixels) or ``"warp"`` (per-patch kernels move the
            previous frame's pixels). Default: ``"pixels"``
        warp_kernel: odd side of the ``"warp"`` head's kernels. Default: 7
    """

    def __init__(self, channels: int = 1, hidden_channels: Sequence[int] = (32, 32), kernel_size: int = 3,
                 patch: int = 4, head: str = "pixels", warp_kernel: int = 7) -> None:
        super().__init__()
        hidden = list(hidden_channels)
        if not hidden:
            raise ValueError("ConvLSTMForecaster: hidden_channels: expected at least one layer, got none")
        if head not in HEADS:
            raise ValueError(f"ConvLSTMForecaster: head: expected one of {', '.join(HEADS)}, got {head!r}")
        if warp_kernel < 1 or warp_kernel % 2 == 0:
            raise ValueError(f"ConvLSTMForecaster: warp_kernel: expected an odd integer >= 1, got {warp_kernel}")
        self.channels, self.patch, self.head_kind, self.warp_kernel = channels, patch, head, warp_kernel
        width = channels * patch * patch
        self.encoder = ConvLSTM(width, hidden, kernel_size, num_layers=len(hidden))
        # The pixel head's forecaster has no input (Shi et al.); the warp head's reads the previous frame.
        self.forecaster = ConvLSTM(1 if head == "pixels" else width, hidden, kernel_size, num_layers=len(hidden))
        self.head = nn.Conv2d(hidden[-1], width if head == "pixels" else warp_kernel**2, kernel_size=1)

    def forward(self, frames: Tensor, future: int) -> Tensor:
        """The ``future`` frames (N, future, C, H, W) in 0..1 after ``frames`` (N, L_in, C, H, W)."""
        if frames.dim() != 5 or frames.size(2) != self.channels:
            raise ShapeError(f"ConvLSTMForecaster: expected frames of shape (N, L, {self.channels}, H, W), "
                             f"got {tuple(frames.shape)}")
        n, length, _, height, width = frames.shape
        if height % self.patch or width % self.patch:
            raise ShapeError(f"ConvLSTMForecaster: expected frame height and width divisible by patch={self.patch}, "
                             f"got {height}x{width}")
        patches = F.pixel_unshuffle(frames.flatten(0, 1), self.patch).unflatten(0, (n, length))  # (N, L, Cp², h, w)
        _, state = self.encoder(patches)
        if self.head_kind == "warp":
            return self._warp_forward(frames[:, -1], state, future)
        h, w = patches.shape[-2:]
        silence = patches.new_zeros(n, future, 1, h, w)  # the forecaster has no input (Shi et al.)
        hidden, _ = self.forecaster(silence, state)  # (N, K, C_hid, h, w)
        logits = self.head(hidden.flatten(0, 1))  # (N*K, Cp², h, w)
        return torch.sigmoid(F.pixel_shuffle(logits, self.patch).unflatten(0, (n, future)))  # (N, K, C, H, W)

    def _warp_forward(self, last: Tensor, state, future: int) -> Tensor:
        """Roll the forecaster ``future`` steps from the last input frame ``last`` (N, C, H, W)."""
        frame, outputs = last, []
        for _ in range(future):
            x = F.pixel_unshuffle(frame, self.patch).unsqueeze(1)  # (N, 1, Cp², h, w)
            hidden, state = self.forecaster(x, state)
            kernels = self.head(hidden[:, 0]).softmax(dim=1)  # (N, k², h, w), each patch's kernel sums to 1
            frame = warp(frame, kernels, self.patch)
            outputs.append(frame)
        return torch.stack(outputs, dim=1)  # (N, K, C, H, W)


def warp(frame: Tensor, kernels: Tensor, patch: int) -> Tensor:
    r"""Each pixel of ``frame`` (N, C, H, W) replaced by its k x k neighbourhood weighted by its patch's kernel.

    ``kernels`` (N, k², H / patch, W / patch): one kernel per ``patch`` x ``patch`` patch, flattened row by
    row (entry ``i * k + j`` weighs the pixel ``i - k // 2`` rows and ``j - k // 2`` columns away); outside
    the frame counts as 0. A one-hot kernel at entry ``i * k + j`` shifts the patch's content by
    ``(k // 2 - i, k // 2 - j)``. Every channel is moved by the same kernels.

    The reference form is ``F.unfold(frame, k, padding=k // 2)`` (every pixel's neighbourhood, k² values per
    pixel) times the patch's kernel, summed; here each patch with a margin of ``k // 2`` is cut out once and
    the patches are convolved with their own kernels in one grouped convolution, which is 4x faster on a CPU
    (tests/test_frames.py holds the two to the same values and gradients).
    """
    n, c, height, width = frame.shape
    k = int(round(kernels.size(1) ** 0.5))
    h, w = kernels.shape[-2:]
    if k * k != kernels.size(1) or k % 2 == 0 or (h * patch, w * patch) != (height, width):
        raise ShapeError(f"warp: expected kernels of shape (N, k², {height // patch}, {width // patch}) with k odd, "
                         f"got {tuple(kernels.shape)}")
    r, side = k // 2, patch + 2 * (k // 2)
    tiles = F.unfold(F.pad(frame, (r, r, r, r)), side, stride=patch)  # (N, C * side², h * w)
    tiles = tiles.view(n, c, side, side, h * w).permute(0, 4, 1, 2, 3).reshape(1, n * h * w * c, side, side)
    weight = kernels.permute(0, 2, 3, 1).reshape(n * h * w, 1, k, k)  # one kernel per patch
    if c > 1:
        weight = weight.repeat_interleave(c, dim=0)  # the same for each channel of the patch
    moved = F.conv2d(tiles, weight, groups=n * h * w * c)  # (1, N * h * w * C, p, p)
    return moved.view(n, h, w, c, patch, patch).permute(0, 3, 1, 4, 2, 5).reshape(n, c, height, width)
