r"""The GPU path for the LSTM variants: cuBLAS products and two Triton kernels per step, with their own backward.

PyTorch's fused kernel (cuDNN) computes the vanilla LSTM only; on a GPU every variant used to run the
reference loop, a dozen kernel launches per step forward and as many backward. Here each step is one
recurrent product and one fused element-wise Triton kernel, forward and backward
(:mod:`lstmkit.nn.gpu.recurrence`, :mod:`lstmkit.nn.gpu.kernels`). It covers what the CPU kernel covers:
every variant, every activation of :data:`lstmkit.nn.fast.ACTIVATION_CODES`, ``proj_size``, lengths, both
directions, stacking; float32 and float64 CUDA tensors.

Triton is an optional dependency (``pip install lstmkit[gpu]``; the CUDA builds of PyTorch bring it). This
package imports it only when a call runs the path; :func:`unusable_reason` says why a call cannot.
"""

from __future__ import annotations

import importlib.util

import torch
from torch import Tensor

__all__ = ["available", "gpu_lstm", "unusable_reason", "usable"]

_DTYPES = (torch.float32, torch.float64)


def available() -> bool:
    """Whether Triton is installed (it is not imported here)."""
    return importlib.util.find_spec("triton") is not None


def unusable_reason(tensor: Tensor) -> str | None:
    """Why a call on ``tensor`` (its input, or a parameter) cannot run the GPU path, or ``None`` when it can."""
    if tensor.device.type != "cuda":
        return f"the GPU path runs on CUDA tensors, got a tensor on {tensor.device}"
    if tensor.dtype not in _DTYPES:
        return f"the GPU path computes float32 and float64, got {tensor.dtype}"
    if torch.is_autocast_enabled("cuda"):
        return "the GPU path does not run under autocast"
    if not available():
        return "the GPU path needs Triton, which is not installed (pip install 'lstmkit[gpu]')"
    return None


def usable(tensor: Tensor) -> bool:
    """Whether a call on ``tensor`` can run the GPU path (:func:`unusable_reason` is ``None``)."""
    return unusable_reason(tensor) is None


def gpu_lstm(*args, **kwargs):
    """:func:`lstmkit.nn.gpu.recurrence.gpu_lstm`, importing Triton on the first call."""
    from .recurrence import gpu_lstm as run

    return run(*args, **kwargs)
