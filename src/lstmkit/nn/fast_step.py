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
fresh output tensors written directly by the kernel, the given state only read, nothing else allocated.
Non-contiguous inputs or states are copied first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from . import fast as _fast

if TYPE_CHECKING:
    from .lstm import LSTM

_data_ptr = Tensor.data_ptr
_empty_like = torch.empty_like
_is_autocast_enabled = torch.is_autocast_enabled
_MAX_LAYOUTS = 64  # input shapes planned per module


class _Layout:
    """What one input shape implies: the batch size, the state's shapes, and templates of the outputs for
    ``torch.empty_like`` (the fastest way to allocate a tensor from Python; the new tensors are contiguous)."""

    __slots__ = ("batch_size", "c", "c_shape", "h", "h_shape", "y")

    def __init__(self, batch_size: int, h: Tensor, c: Tensor, y: Tensor) -> None:
        self.batch_size, self.h, self.c, self.y = batch_size, h, c, y
        self.h_shape, self.c_shape = h.shape, c.shape


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
        dtype = self.dtype
        if type(x_t) is not Tensor or x_t.dtype is not dtype or not x_t.is_cpu or _is_autocast_enabled("cpu"):
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
            if type(state) is not tuple or len(state) != 2:
                return None
            h, c = state
            if (
                type(h) is not Tensor or type(c) is not Tensor or h.dtype is not dtype or c.dtype is not dtype
                or h.shape != layout.h_shape or c.shape != layout.c_shape or not (h.is_cpu and c.is_cpu)
            ):  # fmt: skip
                return None
            if not h.is_contiguous():
                h = h.contiguous()  # kept in h until the call is done
            if not c.is_contiguous():
                c = c.contiguous()
            h_in, c_in = _data_ptr(h), _data_ptr(c)
        if not x_t.is_contiguous():
            x_t = x_t.contiguous()
        h_n, c_n, h_t = _empty_like(layout.h), _empty_like(layout.c), _empty_like(layout.y)
        self._call(self._pack(self._address, layout.batch_size, _data_ptr(x_t), _data_ptr(h_t), h_in, c_in,
                              _data_ptr(h_n), _data_ptr(c_n)))  # fmt: skip
        return h_t, (h_n, c_n)

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
        scalar = torch.empty((), dtype=self.dtype)  # the templates are views of it: shape and dtype, no memory
        layout = _Layout(
            batch_size=shape[0] if batch else 1,
            h=scalar.expand((layers, *batch, p)),
            c=scalar.expand((layers, *batch, h)),
            y=scalar.expand((*batch, p)),
        )
        if len(self._layouts) >= _MAX_LAYOUTS:  # a server steps ever-changing batch sizes: keep the recent ones
            self._layouts.clear()
        self._layouts[shape] = layout
        return layout
