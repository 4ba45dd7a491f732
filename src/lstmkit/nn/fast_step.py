r"""``LSTM.step``'s fast path: checked and planned once per module and state layout, then one C call per step.

:meth:`lstmkit.nn.LSTM.step` validates its arguments, chooses a backend (:func:`lstmkit.nn.backend.choose_backend`)
and reads the parameters: several microseconds of Python per call, more than the step itself costs at batch 1.
Once a call has taken the fast kernel, the module keeps a :class:`FastStep`. Every later call in evaluation
mode without autograd asks it first; it answers for a call that matches what was checked already, and
declines (``None``) anything else, which then takes ``LSTM.step``'s full path, with its errors:

* the module: the same parameter tensors at the same memory (``load_state_dict``, an optimiser or any other
  in-place update keeps them; ``.to()``, assigning a new parameter or ``torch.func.functional_call`` does
  not, and the next full call plans again), no CPU autocast;
* the input: a ``Tensor`` of the parameters' dtype on the CPU, (N, H_in) or (H_in,) (each shape is planned
  at its first call);
* the state: ``None`` (zeros), or a tuple of two tensors of that dtype on the CPU, shaped for that input.

The answer is the kernel's :math:`(h_t, (h, c))` for the step (:class:`lstmkit.nn.fast.StepPlan.step_into`):
new output tensors written directly by the kernel, the given state only read. Non-contiguous inputs or states
are copied first.

Where the time goes. At batch 1 and H = 128 the kernel's step takes about 4.5 us, and ``torch.empty_like``
takes 0.75 us per tensor, so three fresh outputs alone would cost half a stream step. The outputs are
therefore cut from blocks: one ``torch.empty`` of ``K`` slots per output and one ``unbind`` give ``K`` steps'
tensors at about half that time each. Each returned tensor is a view of its block's slot and owns that slot
alone (no two answers share memory); a kept tensor keeps its block alive, which is why a block holds at most
16 slots and ``_BLOCK_BYTES`` (``K = 1``, plain tensors, for outputs larger than that): a state kept while its
block-mates are dropped pins at most 16 times its size, 32 KiB. ``clone()`` a state to store it compactly
(``torch.save`` of a view writes its whole block).

The state a call returns is remembered with its pointers; when the next call is given that same tuple (the
loop ``h_t, state = lstm.step(x_t, state)``) only its pointers and contiguity are checked again, not its
types, dtypes, devices and shapes, which cannot change without moving the memory or the strides.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from . import fast as _fast

if TYPE_CHECKING:
    from .lstm import LSTM

_data_ptr = Tensor.data_ptr
_is_autocast_enabled = torch.is_autocast_enabled
_MAX_LAYOUTS = 64  # input shapes planned per module


_BLOCK_BYTES = 32 * 1024  # the most memory one block of output slots takes
_BLOCK_SLOTS = 16  # the most slots (steps) one block holds: 0.49x empty_like's time per tensor (32: 0.46x, 8: 0.64x)


class _Layout:
    """What one input shape implies: the batch size, the state's shapes, and the pool of output slots
    (``free``: (h, c, y) triples, each tensor a view of its own slot in a block; see the module)."""

    __slots__ = ("batch_size", "c_shape", "dtype", "free", "h_shape", "slots", "y_shape")

    def __init__(self, batch_size: int, h_shape: tuple[int, ...], c_shape: tuple[int, ...],
                 y_shape: tuple[int, ...], dtype: torch.dtype) -> None:  # fmt: skip
        self.batch_size, self.dtype = batch_size, dtype
        self.h_shape, self.c_shape, self.y_shape = torch.Size(h_shape), torch.Size(c_shape), torch.Size(y_shape)
        largest = max(math.prod(h_shape), math.prod(c_shape), math.prod(y_shape), 1) * dtype.itemsize
        self.slots = max(1, min(_BLOCK_SLOTS, _BLOCK_BYTES // largest))
        self.free: list[tuple[Tensor, Tensor, Tensor]] = []

    def refill(self) -> tuple[Tensor, Tensor, Tensor]:
        """A new block of output slots: returns one (h, c, y) triple and leaves the others in ``free``."""
        k, dtype = self.slots, self.dtype
        if k == 1:
            return (torch.empty(self.h_shape, dtype=dtype), torch.empty(self.c_shape, dtype=dtype),
                    torch.empty(self.y_shape, dtype=dtype))  # fmt: skip
        triples = list(zip(torch.empty((k, *self.h_shape), dtype=dtype).unbind(0),
                           torch.empty((k, *self.c_shape), dtype=dtype).unbind(0),
                           torch.empty((k, *self.y_shape), dtype=dtype).unbind(0)))  # fmt: skip
        first = triples.pop()
        self.free = triples  # a new list: a thread popping from the old one keeps what it popped
        return first


class FastStep:
    """The fast path of one module's ``step`` (see the module docstring); made by ``LSTM.step``.

    Holds no reference to the module, only to its parameter table and the parameters' memory, so that a
    module can be collected while its ``FastStep`` is cached by it.

    Args:
        lstm: a unidirectional :class:`~lstmkit.nn.LSTM` whose step the fast kernel computes (its
            activations have codes in the kernel; float32 or float64 parameters on the CPU), with the kernel
            loaded.
    """

    def __init__(self, lstm: LSTM) -> None:
        structure = lstm.structure
        self._parameters = lstm._parameters  # the module's own table: what it reads its parameters from
        self._pointers = tuple(0 if p is None else p.data_ptr() for p in self._parameters.values())
        #: Whether the plan reads the parameters' own memory. A non-contiguous parameter is copied into the
        #: plan, which then would not see in-place updates: such a plan serves one call and is not kept.
        self.reusable = all(p is not None and p.is_contiguous() for p in self._parameters.values())
        self._plan = _fast.StepPlan(structure.layers, structure.activations, structure.options.variants, 1)
        self.dtype = lstm.weight_ih_l0.dtype
        self._input_size = lstm.input_size
        self._h_size = (lstm.num_layers, lstm.output_size)
        self._c_size = (lstm.num_layers, lstm.hidden_size)
        self._layouts: dict[torch.Size, _Layout] = {}
        self._last: tuple = (None, None, 0, 0)  # (state, layout, h pointer, c pointer) of the last answer
        self._call, self._address, self._pack = self._plan.into_function, self._plan.address, _fast.STEP_INTO.pack

    def current(self) -> bool:
        """Whether the plan still reads the module's parameters: the same tensors, at the same memory."""
        try:
            return self.reusable and tuple(map(_data_ptr, self._parameters.values())) == self._pointers
        except TypeError:  # a parameter was set to None
            return False

    def __call__(self, x_t: Tensor, state: tuple[Tensor, Tensor] | None) -> tuple[Tensor, tuple[Tensor, Tensor]] | None:
        """``LSTM.step(x_t, state)`` for a call in evaluation mode without autograd (the caller checks those),
        or ``None`` when this call is not one the plan was made for."""
        if type(x_t) is not Tensor or x_t.dtype is not self.dtype or not x_t.is_cpu or _is_autocast_enabled("cpu"):
            return None
        layout = self._layouts.get(x_t.shape) or self._plan_layout(x_t.shape)
        if layout is None:
            return None
        try:
            if tuple(map(_data_ptr, self._parameters.values())) != self._pointers:
                return None
        except TypeError:  # a parameter was set to None
            return None
        if state is None:
            h_in = c_in = 0
        else:
            last = self._last  # (state, layout, h pointer, c pointer) of the previous answer, read once
            h, c = state if type(state) is tuple and len(state) == 2 else (None, None)
            if state is last[0] and layout is last[1]:  # the state this plan returned: only memory can move
                h_in, c_in = _data_ptr(h), _data_ptr(c)
                if h_in != last[2] or c_in != last[3] or not (h.is_contiguous() and c.is_contiguous()):
                    h_in, c_in, h, c = self._state_pointers(h, c, layout)
            else:
                h_in, c_in, h, c = self._state_pointers(h, c, layout)
            if h_in is None:
                return None
        if not x_t.is_contiguous():
            x_t = x_t.contiguous()
        try:
            h_n, c_n, h_t = layout.free.pop()
        except IndexError:
            h_n, c_n, h_t = layout.refill()
        h_out, c_out = _data_ptr(h_n), _data_ptr(c_n)
        self._call(self._pack(self._address, layout.batch_size, _data_ptr(x_t), _data_ptr(h_t), h_in, c_in,
                              h_out, c_out))  # fmt: skip
        answer = (h_n, c_n)
        self._last = (answer, layout, h_out, c_out)
        return h_t, answer

    def _state_pointers(self, h: object, c: object, layout: _Layout) -> tuple:
        """``(h pointer, c pointer, h, c)`` of a state given as two tensors of the plan's dtype on the CPU,
        shaped as ``layout`` says (copied when not contiguous), or ``(None, None, h, c)`` for anything else."""
        dtype = self.dtype
        if (
            type(h) is not Tensor or type(c) is not Tensor or h.dtype is not dtype or c.dtype is not dtype
            or h.shape != layout.h_shape or c.shape != layout.c_shape or not (h.is_cpu and c.is_cpu)
        ):  # fmt: skip
            return None, None, h, c
        if not h.is_contiguous():
            h = h.contiguous()  # returned, so that it lives until the call is done
        if not c.is_contiguous():
            c = c.contiguous()
        return _data_ptr(h), _data_ptr(c), h, c

    def run(self, x: Tensor, h0: Tensor, c0: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """The step for ``LSTM.step``'s full path, its arguments validated: ``x`` (N, H_in) and the state
        (num_layers, N, H_out), (num_layers, N, H) of the plan's dtype on the CPU; returns ``(h_t, (h, c))``."""
        x, h0, c0 = x.contiguous(), h0.contiguous(), c0.contiguous()
        h_n, c_n, h_t = torch.empty_like(h0), torch.empty_like(c0), x.new_empty((x.size(0), self._h_size[1]))
        self._plan.step_into(x, (h0, c0), h_n, c_n, h_t)
        return h_t, (h_n, c_n)

    def _plan_layout(self, shape: torch.Size) -> _Layout | None:
        """The layout of an input of ``shape``, (N, H_in) with N >= 1 or (H_in,), kept; ``None`` for any other."""
        if len(shape) not in (1, 2) or shape[-1] != self._input_size or (len(shape) == 2 and shape[0] < 1):
            return None
        batch = () if len(shape) == 1 else (shape[0],)
        (layers, p), (_, h) = self._h_size, self._c_size
        layout = _Layout(shape[0] if batch else 1, (layers, *batch, p), (layers, *batch, h), (*batch, p), self.dtype)
        if len(self._layouts) >= _MAX_LAYOUTS:  # a server steps ever-changing batch sizes: keep the recent ones
            self._layouts.clear()
        self._layouts[shape] = layout
        return layout
