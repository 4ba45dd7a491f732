r"""Conversions between :class:`lstmkit.nn.LSTM` and the LSTMs of PyTorch and Keras.

``from_torch`` / ``to_torch`` convert to and from ``torch.nn.LSTM`` without loss (same parameter names,
shapes and order). ``from_keras_weights`` / ``to_keras_weights`` convert the three arrays of a Keras
``LSTM`` layer (``layer.get_weights()`` / ``layer.set_weights(...)``):

* ``kernel`` (H_in, 4H) is ``weight_ih`` transposed, ``recurrent_kernel`` (H, 4H) is ``weight_hh``
  transposed; Keras' gate order i, f, c, o is PyTorch's i, f, g, o, so no block moves.
* Keras has one bias (4H,); it becomes ``bias_ih`` and ``bias_hh`` is zero. Back to Keras, the bias is
  ``bias_ih + bias_hh``.
* Keras' ``recurrent_activation`` is ``gate_activation``; its ``activation`` is both ``cell_activation``
  and ``hidden_activation``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import ShapeError
from .activations import ACTIVATIONS
from .lstm import LSTM


class KerasWeights(NamedTuple):
    """The weights of a Keras ``LSTM`` layer in ``get_weights()`` order; ``bias`` is ``None`` without bias."""

    kernel: np.ndarray  # (H_in, 4H)
    recurrent_kernel: np.ndarray  # (H, 4H)
    bias: np.ndarray | None  # (4H,)


def from_torch(torch_lstm: nn.LSTM, *, impl: str = "auto") -> LSTM:
    """Make an :class:`LSTM` with the configuration, parameters and training mode of a ``torch.nn.LSTM``.

    The same as :meth:`LSTM.from_torch`.
    """
    return LSTM.from_torch(torch_lstm, impl=impl)


def to_torch(lstm: LSTM) -> nn.LSTM:
    """Return a ``torch.nn.LSTM`` with the configuration, parameters and training mode of ``lstm``.

    The same as :meth:`LSTM.to_torch`.

    Raises:
        TypeError: ``lstm`` is not an :class:`LSTM`.
        ValueError: ``lstm`` has activations or variants that ``torch.nn.LSTM`` does not compute.
    """
    if not isinstance(lstm, LSTM):
        raise TypeError(f"to_torch: expected a lstmkit.nn.LSTM, got {type(lstm).__name__}")
    return lstm.to_torch()


def from_keras_weights(
    kernel,
    recurrent_kernel,
    bias=None,
    *,
    activation: str = "tanh",
    recurrent_activation: str = "sigmoid",
    batch_first: bool = True,
    device=None,
    dtype: torch.dtype | None = None,
) -> LSTM:
    r"""Make a one-layer :class:`LSTM` from the weights of a Keras ``LSTM`` layer.

    ``layer.get_weights()`` of ``keras.layers.LSTM(H, activation=a, recurrent_activation=r)`` gives the
    three arrays; ``from_keras_weights(*layer.get_weights(), activation=a, recurrent_activation=r)``
    computes what the layer computes (with ``return_sequences=True, return_state=True`` its outputs are
    ``output, h_n[0], c_n[0]``).

    Args:
        kernel: input weights, array-like of shape (H_in, 4H), gate blocks i, f, c, o.
        recurrent_kernel: recurrent weights, shape (H, 4H).
        bias: shape (4H,), or ``None`` for a layer made with ``use_bias=False``.
        activation: Keras' ``activation``, here ``cell_activation`` and ``hidden_activation``; a key of
            :data:`lstmkit.nn.ACTIVATIONS`. Default: ``"tanh"``
        recurrent_activation: Keras' ``recurrent_activation``, here ``gate_activation``. Default: ``"sigmoid"``.
            ``"hard_sigmoid"`` is ONNX's and Keras 2's :math:`\mathrm{clip}(0.2 x + 0.5, 0, 1)`; Keras 3
            changed its ``hard_sigmoid`` to :math:`\mathrm{clip}(x / 6 + 0.5, 0, 1)`, which has no name here.
        batch_first: the input layout of the returned module; Keras' is (N, L, H_in). Default: ``True``
        device, dtype: of the parameters; the default dtype is the kernel's if it is a floating type.

    Returns:
        An :class:`LSTM` with ``input_size=H_in``, ``hidden_size=H``, ``bias=bias is not None``, the
        kernels transposed into ``weight_ih_l0`` and ``weight_hh_l0``, ``bias`` in ``bias_ih_l0`` and
        zeros in ``bias_hh_l0``.

    Raises:
        ShapeError: the arrays' shapes do not fit together.
        ValueError: an activation is not a key of :data:`lstmkit.nn.ACTIVATIONS`.
    """
    for name, value in (("activation", activation), ("recurrent_activation", recurrent_activation)):
        if not isinstance(value, str) or value not in ACTIVATIONS:
            allowed = ", ".join(repr(n) for n in ACTIVATIONS)
            raise ValueError(f"from_keras_weights: {name}: expected one of {allowed}, got {value!r}")
    kernel_t = _as_tensor("kernel", kernel)
    if dtype is None:
        dtype = kernel_t.dtype if kernel_t.is_floating_point() else torch.get_default_dtype()
    recurrent_t = _as_tensor("recurrent_kernel", recurrent_kernel)
    if recurrent_t.dim() != 2 or recurrent_t.size(1) != 4 * recurrent_t.size(0) or recurrent_t.size(0) == 0:
        raise ShapeError(
            f"from_keras_weights: expected recurrent_kernel of shape (H, 4H), got {tuple(recurrent_t.shape)}"
        )
    hidden_size = recurrent_t.size(0)
    if kernel_t.dim() != 2 or kernel_t.size(1) != 4 * hidden_size or kernel_t.size(0) == 0:
        raise ShapeError(
            f"from_keras_weights: expected kernel of shape (H_in, {4 * hidden_size}) (H_in, 4H with "
            f"H={hidden_size} from recurrent_kernel), got {tuple(kernel_t.shape)}"
        )
    bias_t = None
    if bias is not None:
        bias_t = _as_tensor("bias", bias)
        if tuple(bias_t.shape) != (4 * hidden_size,):
            raise ShapeError(
                f"from_keras_weights: expected bias of shape ({4 * hidden_size},) (4H with H={hidden_size}), "
                f"got {tuple(bias_t.shape)}"
            )
    lstm = LSTM(
        kernel_t.size(0), hidden_size, bias=bias_t is not None, batch_first=batch_first,
        gate_activation=recurrent_activation, cell_activation=activation, hidden_activation=activation,
        device=device, dtype=dtype,
    )  # fmt: skip
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(kernel_t.t())  # (4H, H_in)
        lstm.weight_hh_l0.copy_(recurrent_t.t())  # (4H, H)
        if bias_t is not None:
            lstm.bias_ih_l0.copy_(bias_t)
            lstm.bias_hh_l0.zero_()
    return lstm


def to_keras_weights(lstm: LSTM) -> KerasWeights:
    """The weights of a Keras ``LSTM`` layer that computes what ``lstm`` computes, as NumPy arrays.

    ``keras.layers.LSTM(lstm.hidden_size, activation=lstm.cell_activation,
    recurrent_activation=lstm.gate_activation, use_bias=lstm.bias)`` built for ``lstm.input_size`` features
    takes them with ``layer.set_weights([w for w in weights if w is not None])``. The inverse of
    :func:`from_keras_weights` (up to how the bias is split between ``bias_ih`` and ``bias_hh``).

    Raises:
        TypeError: ``lstm`` is not an :class:`LSTM`.
        ValueError: Keras' LSTM layer cannot express ``lstm``: more than one layer, bidirectional, a
            projection, a variant, or a ``cell_activation`` other than the ``hidden_activation``.
    """
    if not isinstance(lstm, LSTM):
        raise TypeError(f"to_keras_weights: expected a lstmkit.nn.LSTM, got {type(lstm).__name__}")
    problems = []
    if lstm.num_layers != 1:
        problems.append(f"num_layers={lstm.num_layers}")
    if lstm.bidirectional:
        problems.append("bidirectional=True")
    if lstm.proj_size:
        problems.append(f"proj_size={lstm.proj_size}")
    if lstm.variants.active():
        problems.append(lstm.variants.describe())
    if lstm.cell_activation != lstm.hidden_activation:
        problems.append(f"cell_activation={lstm.cell_activation!r} with hidden_activation={lstm.hidden_activation!r}")
    if problems:
        raise ValueError(
            "to_keras_weights: expected one unidirectional layer without projection or variants, whose "
            f"cell_activation equals its hidden_activation (Keras' activation); got {', '.join(problems)}"
        )
    with torch.no_grad():
        kernel = lstm.weight_ih_l0.detach().t().cpu().numpy().copy()  # (H_in, 4H)
        recurrent_kernel = lstm.weight_hh_l0.detach().t().cpu().numpy().copy()  # (H, 4H)
        bias = None
        if lstm.bias:
            bias = (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach().cpu().numpy()  # (4H,)
    return KerasWeights(kernel, recurrent_kernel, bias)


def _as_tensor(name: str, value) -> Tensor:
    if isinstance(value, Tensor):
        return value.detach()
    try:
        return torch.as_tensor(np.asarray(value))
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"from_keras_weights: expected {name} as an array, got {type(value).__name__}") from None
