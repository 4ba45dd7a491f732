r"""Which of the three implementations of :class:`lstmkit.nn.LSTM` runs a call, and why: one function.

The three compute the same function (``tests/nn`` proves it, forward and backward):

============ ================================================================ ================================
backend      what it is                                                       runs
============ ================================================================ ================================
fused        PyTorch's LSTM kernel (oneDNN on CPU, cuDNN on GPU)              the vanilla LSTM only
fast         the C++ kernel of :mod:`lstmkit.nn.fast`, built on first use     every variant and activation
                                                                              it has code for; float32/64 CPU
triton       the Triton kernels of :mod:`lstmkit.nn.gpu` (Triton installed)   the same, on float32/64 CUDA
reference    the loop over :func:`lstmkit.nn.lstm_cell`                       everything; the truth
============ ================================================================ ================================

:func:`choose_backend` takes the module's options and what the call brings (the input's device and dtype,
variable lengths, training and autograd for a streaming step, a gate recording) and returns the backend
with the reason, so ``LSTM.forward``, ``LSTM.step``, :class:`lstmkit.nn.LSTMStream` and ``LSTM.backend``
all decide the same way in one place.

>>> import torch
>>> from lstmkit.nn import LSTMOptions
>>> from lstmkit.nn.backend import choose_backend
>>> choose_backend(LSTMOptions.create(3, 8), torch.zeros(2, 3)).name
'fused'
>>> choose_backend(LSTMOptions.create(3, 8, impl="reference"), torch.zeros(2, 3))
Backend(name='reference', reason="impl='reference'")
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

from . import fast as _fast
from . import gpu as _gpu
from .options import LSTMOptions

__all__ = ["Backend", "choose_backend", "takes_fused"]


class Backend(NamedTuple):
    """The implementation that runs a call: ``name`` is ``"fused"``, ``"fast"``, ``"triton"`` or
    ``"reference"``, and ``reason`` says why, in words (for logs, errors and benchmarks)."""

    name: str
    reason: str


def takes_fused(options: LSTMOptions) -> bool:
    """Whether the options ask for PyTorch's fused kernel: ``impl="fused"``, or ``"auto"`` for the vanilla LSTM."""
    return options.impl == "fused" or (options.impl == "auto" and options.is_vanilla)


def choose_backend(
    options: LSTMOptions,
    tensor: Tensor,
    *,
    lengths: bool = False,
    recording: bool = False,
    step: bool = False,
    training: bool = False,
    grad: bool = False,
    build: bool = True,
) -> Backend:
    """The backend of one call of an LSTM with ``options`` on ``tensor`` (its input, or a parameter).

    Args:
        options: the module's options.
        tensor: the input (or a parameter): its device and dtype decide whether the fast kernel can run.
        lengths: the batch has sequences of different lengths (``lengths`` or a packed input). On the CPU a
            vanilla ``impl="auto"`` module then runs the fast kernel, which masks finished sequences at about
            full-batch speed, where PyTorch's kernel runs packed batches without oneDNN, 2-9x slower
            (``bench/lengths.py``, BENCHMARKS.md); on other devices the fused kernel (cuDNN) stays.
        recording: the module's gates are being recorded (:func:`lstmkit.nn.record_gates`): the reference loop.
        step: choose for one streaming step (``LSTM.step``, :class:`lstmkit.nn.LSTMStream`) instead of a
            whole sequence. A step is ``"fast"`` (one C call) only in evaluation mode without autograd, and
            otherwise ``"reference"``; there is no fused step.
        training, grad: for a step: whether the module is in training mode, whether autograd is on.
        build: for a step: whether a vanilla module may build the fast kernel now (``LSTMStream`` may; an
            ``LSTM.step`` call never waits for a build: it loads the kernel if it is built already, else takes
            the reference step until it is loaded).

    Side effect: may build the fast kernel (a few seconds, once per machine) to know whether it is usable,
    as :func:`lstmkit.nn.fast.usable` does.
    """
    if step:
        return _choose_step(options, tensor, training, grad, build)
    if recording:
        return Backend("reference", "the gates are being recorded (lstmkit.nn.record_gates)")
    if takes_fused(options):
        if lengths and options.impl == "auto" and _fast.covers(options.activation_tuple) and _fast.usable(tensor):
            return Backend("fast", "variable lengths on the CPU: the fast kernel masks finished sequences, "
                                   "PyTorch's kernel runs packed batches without oneDNN")
        if options.impl == "fused":
            return Backend("fused", "impl='fused'")
        return Backend("fused", "the vanilla LSTM: PyTorch's kernel")
    if options.impl == "reference":
        return Backend("reference", "impl='reference'")
    if options.impl == "auto" and not _fast.covers(options.activation_tuple):
        return Backend("reference", f"an activation has no code in the fast kernel: {_activations(options)}")
    if tensor.device.type == "cuda":  # impl "auto" or "fast": the fast path of the GPU
        unusable = _gpu.unusable_reason(tensor)
        if unusable is not None:
            return Backend("reference", unusable)
        return Backend("triton", "a variant or activation cuDNN does not compute, on a CUDA tensor: the Triton kernels")
    unusable = _fast.unusable_reason(tensor)
    if unusable is not None:
        return Backend("reference", unusable)
    if options.impl == "fast":
        return Backend("fast", "impl='fast'")
    return Backend("fast", "a variant or activation PyTorch's kernel does not compute: the fast kernel")


def _choose_step(options: LSTMOptions, tensor: Tensor, training: bool, grad: bool, build: bool) -> Backend:
    if training:
        return Backend("reference", "training mode: the reference step draws the masks")
    if grad:
        return Backend("reference", "autograd is on: the reference step is differentiable")
    if options.impl == "reference":
        return Backend("reference", "impl='reference'")
    if not build and takes_fused(options) and not _fast.load_built():
        return Backend("reference", "the vanilla LSTM's step does not wait for the fast kernel to be built")
    if options.bidirectional:
        return Backend("reference", "bidirectional: the reverse direction cannot stream")
    if not _fast.covers(options.activation_tuple):
        return Backend("reference", f"an activation has no code in the fast kernel: {_activations(options)}")
    unusable = _fast.unusable_reason(tensor)
    if unusable is not None:
        return Backend("reference", unusable)
    return Backend("fast", "evaluation mode without autograd: one call into the fast kernel per step")


def _activations(options: LSTMOptions) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in options.activation_names.items())
