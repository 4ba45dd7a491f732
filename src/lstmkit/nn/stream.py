r"""Streaming inference: an LSTM advanced one time step per call, with its state kept between calls.

:meth:`lstmkit.nn.LSTM.step` is the general API (any batch, training or evaluation, autograd; state in,
new state out); without autograd it runs the same kernel, but checks its arguments and allocates the new
tensors at every call (:mod:`lstmkit.nn.fast_step`). :class:`LSTMStream` is the inference path: the state,
the output and the kernel's scratch memory are allocated once, and each :meth:`LSTMStream.step` is one C
call (:class:`lstmkit.nn.fast.StepPlan`) that runs every layer. Where the fast kernel cannot be built, it
runs the reference step instead (same results, slower).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..errors import ShapeError
from . import fast as _fast
from . import layer as _layer
from .backend import choose_backend

if TYPE_CHECKING:
    from .lstm import LSTM


class LSTMStream:
    r"""The evaluation-mode function of a unidirectional :class:`~lstmkit.nn.LSTM`, one step per call.

    Made by :meth:`lstmkit.nn.LSTM.stream`. Each :meth:`step` computes what ``lstm.eval()`` computes at the
    next time step of a sequence (within float rounding): every layer, variant and activation, with
    zoneout as its expectation and the dropout-like variants off. Nothing is differentiable.

    The stream reads the module's parameters where they are, so in-place updates (an optimiser step,
    ``load_state_dict``) show at the next step; after ``.to()`` or anything else that replaces them, make a
    new stream.

    Args:
        lstm: the module, unidirectional.
        batch_size: N, the number of sequences advanced together, or ``None`` for one unbatched sequence
            (inputs (H_in,), outputs (H_out,)).

    Attributes:
        backend: ``"fast"`` (one C call per step) or ``"reference"`` (the kernel could not be built, or the
            parameters are not float32/float64 on the CPU); ``backend_reason`` says why
            (:func:`lstmkit.nn.backend.choose_backend`).

    Examples::

        >>> import torch
        >>> from lstmkit.nn import LSTM
        >>> lstm = LSTM(3, 8, num_layers=2, peephole=True).eval()
        >>> stream = lstm.stream()
        >>> x = torch.randn(5, 3)  # (L, H_in), one sequence
        >>> outputs = torch.stack([stream.step(x_t).clone() for x_t in x])
        >>> torch.allclose(outputs, lstm(x)[0], atol=1e-6)
        True
    """

    def __init__(self, lstm: LSTM, batch_size: int | None = None) -> None:
        if lstm.bidirectional:
            raise ValueError(
                "LSTM.stream: expected a unidirectional LSTM, got bidirectional=True; the reverse direction "
                "starts at the end of the sequence, which a stream has not reached yet"
            )
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"LSTM.stream: batch_size: expected None (unbatched) or an integer >= 1, got {batch_size!r}")
        self._lstm = lstm
        self._batched = batch_size is not None
        n = batch_size or 1
        weight = lstm.weight_ih_l0
        self.dtype = weight.dtype
        self._input_shape = (n, lstm.input_size) if self._batched else (lstm.input_size,)
        factory = {"dtype": weight.dtype, "device": weight.device}
        self._h = torch.zeros(lstm.num_layers, n, lstm.output_size, **factory)
        self._c = torch.zeros(lstm.num_layers, n, lstm.hidden_size, **factory)
        self._y = torch.zeros(n, lstm.output_size, **factory)
        self._output = self._y if self._batched else self._y[0]
        self._plan = None
        structure = lstm.structure
        backend = choose_backend(structure.options, weight, step=True)  # evaluation mode, no autograd
        if backend.name == "fast":
            self._plan = _fast.StepPlan(structure.layers, structure.activations, structure.options.variants, n)
            self._plan.bind(self._h, self._c, self._y)
        self.backend = backend.name
        self.backend_reason = backend.reason

    @property
    def state(self) -> tuple[Tensor, Tensor]:
        """``(h, c)``: the current state, shapes (num_layers, N, H_out) and (num_layers, N, H_cell), or without
        N when unbatched; views of the stream's buffers (clone them to keep a snapshot)."""
        if self._batched:
            return self._h, self._c
        return self._h[:, 0], self._c[:, 0]

    def reset(self, state: tuple[Tensor, Tensor] | None = None) -> None:
        """Start a new sequence: zero state, or ``state`` shaped like :attr:`state` (copied in)."""
        if state is None:
            self._h.zero_()
            self._c.zero_()
            return
        h, c = state
        for name, given, buffer in (("h", h, self.state[0]), ("c", c, self.state[1])):
            if not isinstance(given, Tensor) or given.shape != buffer.shape:
                shape = tuple(given.shape) if isinstance(given, Tensor) else type(given).__name__
                raise ShapeError(f"LSTMStream.reset: expected {name} of shape {tuple(buffer.shape)}, got {shape}")
        with torch.no_grad():
            self.state[0].copy_(h)
            self.state[1].copy_(c)

    def step(self, x_t: Tensor) -> Tensor:
        """Advance by one step: ``x_t`` of shape (N, H_in), or (H_in,) unbatched; returns the last layer's
        output, (N, H_out) or (H_out,), as a view of a buffer that the next step overwrites."""
        plan = self._plan
        if plan is not None and x_t.dtype is self.dtype and x_t.shape == self._input_shape and x_t.is_contiguous():
            plan.run(x_t)
            return self._output
        return self._slow_step(x_t)

    def _slow_step(self, x_t: Tensor) -> Tensor:
        if not isinstance(x_t, Tensor):
            raise TypeError(f"LSTMStream.step: expected x_t to be a Tensor, got {type(x_t).__name__}")
        if x_t.shape != self._input_shape:
            raise ShapeError(f"LSTMStream.step: expected x_t of shape {self._input_shape}, got {tuple(x_t.shape)}")
        if x_t.dtype != self.dtype:
            raise ValueError(f"LSTMStream.step: expected x_t of dtype {self.dtype}, got {x_t.dtype}")
        x = x_t.reshape(self._y.size(0), -1)  # (N, H_in)
        if self._plan is not None:
            self._plan.run(x.contiguous())
            return self._output
        structure = self._lstm.structure
        with torch.no_grad():
            y, (h, c) = _layer.step_lstm(
                x, self._h, self._c, structure.layers, structure.activations, variants=structure.options.variants
            )
            self._h.copy_(h)
            self._c.copy_(c)
            self._y.copy_(y)
        return self._output
