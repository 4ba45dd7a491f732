r"""Convolutional LSTM (Shi et al., 2015) for sequences of frames: the one-step cell and the layered loop."""

from __future__ import annotations

import math
import numbers
from typing import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..errors import ShapeError


class ConvLSTMCell(nn.Module):
    r"""One time step of a convolutional LSTM (Shi et al., 2015) on a batch of frames.

    The gates are convolutions of the frame and the previous hidden state:

    .. math::
        \begin{array}{ll}
            i_t = \sigma(W_{xi} * x_t + W_{hi} * h_{t-1} + w_{ci} \odot c_{t-1} + b_i) \\
            f_t = \sigma(W_{xf} * x_t + W_{hf} * h_{t-1} + w_{cf} \odot c_{t-1} + b_f) \\
            g_t = \tanh(W_{xg} * x_t + W_{hg} * h_{t-1} + b_g) \\
            c_t = f_t \odot c_{t-1} + i_t \odot g_t \\
            o_t = \sigma(W_{xo} * x_t + W_{ho} * h_{t-1} + w_{co} \odot c_t + b_o) \\
            h_t = o_t \odot \tanh(c_t)
        \end{array}

    where :math:`*` is a 2-D convolution with 'same' padding (stride 1, so every state keeps the frame's
    height and width) and :math:`\odot` the Hadamard product. One convolution of the stacked channels
    :math:`[x_t, h_{t-1}]` makes all four gates, in PyTorch's order i, f, g, o. The peephole terms
    :math:`w_{c\ast} \odot c` are there only with ``peephole=True``. Shi et al. give the peephole weights
    one value per channel and pixel, which ties a model to one frame size; here they have one value per
    channel, shape (C_hid, 1, 1), broadcast over the pixels.

    Args:
        input_channels: the number of channels C_in of each input frame.
        hidden_channels: the number of channels C_hid of the hidden and cell states.
        kernel_size: an odd int or a pair of odd ints (kH, kW), the size of the convolution kernel.
        bias: if ``False``, the gates have no bias :math:`b`. Default: ``True``
        peephole: if ``True``, add the peephole terms :math:`w_{c\ast} \odot c`. Default: ``False``
        forget_bias: initial forget-gate bias (ignored when ``bias=False``). Default: 1.0
        device, dtype: where and of what type the parameters are made.

    Inputs: input, (h_0, c_0)
        * **input**: tensor of shape (N, C_in, H, W), where H and W are the frame's height and width.
        * **h_0**, **c_0**: tensors of shape (N, C_hid, H, W), the previous states. Default: zeros.

    Outputs: (h_1, c_1)
        * **h_1**, **c_1**: tensors of shape (N, C_hid, H, W), the next hidden and cell states.

    Attributes:
        weight: the convolution kernel :math:`(W_{x\ast} | W_{h\ast})`, shape
            (4 * C_hid, C_in + C_hid, kH, kW): output channels stacked by gate (i, f, g, o), input channels
            the frame's first, then the hidden state's. :attr:`weight_ih` and :attr:`weight_hh` are its
            two halves.
        bias: :math:`(b_i|b_f|b_g|b_o)`, shape (4 * C_hid,); only with ``bias=True``.
        weight_ci, weight_cf, weight_co: the peephole weights, shape (C_hid, 1, 1); only with ``peephole=True``.

    Initialisation:
        ``weight`` as ``torch.nn.Conv2d`` does, :math:`\mathcal{U}(-1/\sqrt{k}, 1/\sqrt{k})` with
        :math:`k = (C_{in} + C_{hid}) \cdot kH \cdot kW`; ``bias`` zero except the forget-gate slice,
        ``forget_bias``; peephole weights zero (the cell starts as one without peepholes).

    Examples::

        >>> import torch
        >>> from lstmkit.nn.convlstm import ConvLSTMCell
        >>> cell = ConvLSTMCell(3, 8, kernel_size=3)
        >>> frame = torch.randn(2, 3, 16, 16)  # (N, C_in, H, W)
        >>> h, c = cell(frame)
        >>> h, c = cell(frame, (h, c))
        >>> h.shape
        torch.Size([2, 8, 16, 16])
    """

    def __init__(
        self,
        input_channels: int,
        hidden_channels: int,
        kernel_size: int | tuple[int, int],
        bias: bool = True,
        peephole: bool = False,
        *,
        forget_bias: float = 1.0,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        _check_int(name, "input_channels", input_channels)
        _check_int(name, "hidden_channels", hidden_channels)
        kernel = _check_kernel_size(name, kernel_size)
        _check_flags(name, bias=bias, peephole=peephole)
        _check_real(name, "forget_bias", forget_bias)
        self.input_channels = input_channels
        self.hidden_channels = hidden_channels
        self.kernel_size = kernel
        self.padding = (kernel[0] // 2, kernel[1] // 2)
        self.peephole = peephole
        self.forget_bias = float(forget_bias)

        factory = {"device": device, "dtype": dtype}
        gate_channels = 4 * hidden_channels
        self.weight = nn.Parameter(torch.empty(gate_channels, input_channels + hidden_channels, *kernel, **factory))
        self.bias = nn.Parameter(torch.empty(gate_channels, **factory)) if bias else None
        for peephole_name in ("weight_ci", "weight_cf", "weight_co"):
            value = nn.Parameter(torch.empty(hidden_channels, 1, 1, **factory)) if peephole else None
            self.register_parameter(peephole_name, value)
        self.reset_parameters()

    @property
    def weight_ih(self) -> Tensor:
        """:math:`W_{x\\ast}`, the input half of :attr:`weight`: a view of shape (4 * C_hid, C_in, kH, kW)."""
        return self.weight[:, : self.input_channels]

    @property
    def weight_hh(self) -> Tensor:
        """:math:`W_{h\\ast}`, the recurrent half of :attr:`weight`: a view of shape (4 * C_hid, C_hid, kH, kW)."""
        return self.weight[:, self.input_channels :]

    def reset_parameters(self) -> None:
        """Initialise every parameter as the class docstring says."""
        with torch.no_grad():
            bound = 1.0 / math.sqrt(self.weight[0].numel())
            nn.init.uniform_(self.weight, -bound, bound)
            if self.bias is not None:
                self.bias.zero_()
                self.bias[self.hidden_channels : 2 * self.hidden_channels] = self.forget_bias
            if self.peephole:
                for weight in (self.weight_ci, self.weight_cf, self.weight_co):
                    weight.zero_()

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """Advance by one step; see the class docstring for the shapes of inputs and outputs."""
        name = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: expected input to be a Tensor, got {type(input).__name__}")
        if input.dim() != 4:
            raise ShapeError(f"{name}: expected input of shape (N, C_in, H, W), got shape {tuple(input.shape)}")
        _check_frames(name, input, self.input_channels, "C_in", dim=1)
        _check_dtype(name, input, self.weight.dtype)
        batch, _, height, width = input.shape
        state_shape = (batch, self.hidden_channels, height, width)
        if hx is None:
            h = c = input.new_zeros(state_shape)
        else:
            h, c = _check_state_pair(name, hx, "hx", "(h_0, c_0)")
            for state_name, state in (("h_0", h), ("c_0", c)):
                if tuple(state.shape) != state_shape:
                    raise ShapeError(
                        f"{name}: expected {state_name} of shape {state_shape} (N, C_hid, H, W), "
                        f"got {tuple(state.shape)}"
                    )
        # The literal form: one convolution of the stacked channels [x_t, h_{t-1}].
        stacked = torch.cat([input, h], dim=1)  # (N, C_in + C_hid, H, W)
        gates = F.conv2d(stacked, self.weight, self.bias, padding=self.padding)  # (N, 4C_hid, H, W)
        return self._update(gates, c)

    def _update(self, gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        """The gate activations and state update, from the pre-activations ``gates`` (N, 4 * C_hid, H, W)."""
        pre_i, pre_f, pre_g, pre_o = gates.chunk(4, dim=1)  # 4 x (N, C_hid, H, W)
        if self.peephole:
            pre_i = pre_i + self.weight_ci * c
            pre_f = pre_f + self.weight_cf * c
        input_gate = torch.sigmoid(pre_i)
        forget_gate = torch.sigmoid(pre_f)
        candidate = torch.tanh(pre_g)
        c_next = forget_gate * c + input_gate * candidate  # (N, C_hid, H, W)
        if self.peephole:
            pre_o = pre_o + self.weight_co * c_next  # Shi et al.: the output gate peeks at the new cell state
        output_gate = torch.sigmoid(pre_o)
        h_next = output_gate * torch.tanh(c_next)  # (N, C_hid, H, W)
        return h_next, c_next

    def extra_repr(self) -> str:
        s = f"{self.input_channels}, {self.hidden_channels}, kernel_size={self.kernel_size}"
        if self.bias is None:
            s += ", bias=False"
        if self.peephole:
            s += ", peephole=True"
        if self.forget_bias != 1.0:
            s += f", forget_bias={self.forget_bias}"
        return s


class ConvLSTM(nn.Module):
    r"""Apply a multi-layer convolutional LSTM (Shi et al., 2015) to a sequence of frames.

    For each frame of the sequence, each layer computes

    .. math::
        \begin{array}{ll}
            i_t = \sigma(W_{xi} * x_t + W_{hi} * h_{t-1} + w_{ci} \odot c_{t-1} + b_i) \\
            f_t = \sigma(W_{xf} * x_t + W_{hf} * h_{t-1} + w_{cf} \odot c_{t-1} + b_f) \\
            g_t = \tanh(W_{xg} * x_t + W_{hg} * h_{t-1} + b_g) \\
            c_t = f_t \odot c_{t-1} + i_t \odot g_t \\
            o_t = \sigma(W_{xo} * x_t + W_{ho} * h_{t-1} + w_{co} \odot c_t + b_o) \\
            h_t = o_t \odot \tanh(c_t)
        \end{array}

    as :class:`ConvLSTMCell` describes: :math:`*` is a 'same'-padded convolution, so every state keeps the
    frames' height and width, the peephole terms are there only with ``peephole=True`` and their weights
    have one value per channel. The input of layer :math:`k > 0` is the hidden state of layer :math:`k - 1`.

    The input half :math:`W_{x\ast} * x_t + b` of every step is computed in one convolution over all
    frames before the time loop, which then convolves only the hidden state; this is the same function as
    stepping :class:`ConvLSTMCell`, whose single convolution of :math:`[x_t, h_{t-1}]` is the reference.

    Args:
        input_channels: the number of channels C_in of each input frame.
        hidden_channels: the number of channels of each layer's states: an int for every layer, or a list
            of ``num_layers`` ints, one per layer.
        kernel_size: an odd int or a pair of odd ints (kH, kW), used by every layer.
        num_layers: the number of stacked layers. Default: 1
        batch_first: if ``True``, the input and output are (N, L, C, H, W), else (L, N, C, H, W). The
            states are always (num_layers, N, C_hid, H, W). Default: ``True``
        bias: if ``False``, the gates have no bias. Default: ``True``
        peephole: if ``True``, add the peephole terms. Default: ``False``
        forget_bias: initial forget-gate bias of every layer (ignored when ``bias=False``). Default: 1.0
        device, dtype: where and of what type the parameters are made.

    Inputs: input, (h_0, c_0)
        * **input**: tensor of shape (N, L, C_in, H, W) when ``batch_first=True``, else (L, N, C_in, H, W).
        * **h_0**, **c_0**: the initial states, default zeros: tensors of shape
          (num_layers, N, C_hid, H, W) when every layer has C_hid channels, or (for any channel counts)
          sequences of ``num_layers`` tensors, layer ``k``'s of shape (N, C_hid[k], H, W).

        where

        .. math::
            \begin{aligned}
                N ={} & \text{batch size} \\
                L ={} & \text{sequence length} \\
                C_{in} ={} & \text{input\_channels} \\
                C_{hid} ={} & \text{hidden\_channels (of the layer)} \\
                H, W ={} & \text{height and width of each frame}
            \end{aligned}

    Outputs: output, (h_n, c_n)
        * **output**: tensor of shape (N, L, C_hid[-1], H, W) when ``batch_first=True``, else
          (L, N, C_hid[-1], H, W): the last layer's :math:`h_t` for each `t`.
        * **h_n**, **c_n**: the final states of each layer: tensors of shape (num_layers, N, C_hid, H, W)
          when every layer has the same number of channels, else tuples of ``num_layers`` tensors of shapes
          (N, C_hid[k], H, W). Either way ``h_n[k]`` is layer ``k``'s final hidden state.

    Attributes:
        cells: a ``ModuleList`` of one :class:`ConvLSTMCell` per layer, holding the parameters
            (``cells.{k}.weight``, ``cells.{k}.bias``, ``cells.{k}.weight_c{i,f,o}``).

    Initialisation:
        Each cell's, see :class:`ConvLSTMCell`.

    Examples::

        >>> import torch
        >>> from lstmkit.nn.convlstm import ConvLSTM
        >>> rnn = ConvLSTM(1, [8, 4], kernel_size=3, num_layers=2)
        >>> frames = torch.randn(2, 10, 1, 16, 16)  # (N, L, C_in, H, W)
        >>> output, (h_n, c_n) = rnn(frames)
        >>> output.shape, [h.shape for h in h_n]
        (torch.Size([2, 10, 4, 16, 16]), [torch.Size([2, 8, 16, 16]), torch.Size([2, 4, 16, 16])])
    """

    def __init__(
        self,
        input_channels: int,
        hidden_channels: int | Sequence[int],
        kernel_size: int | tuple[int, int],
        num_layers: int = 1,
        batch_first: bool = True,
        bias: bool = True,
        peephole: bool = False,
        *,
        forget_bias: float = 1.0,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        _check_int(name, "input_channels", input_channels)
        _check_int(name, "num_layers", num_layers)
        _check_flags(name, batch_first=batch_first)
        if isinstance(hidden_channels, (list, tuple)):
            if len(hidden_channels) != num_layers:
                raise ValueError(
                    f"{name}: hidden_channels: expected an int or a list of num_layers={num_layers} ints, "
                    f"got a list of {len(hidden_channels)}: {list(hidden_channels)!r}"
                )
            channels = list(hidden_channels)
        else:
            channels = [hidden_channels] * num_layers
        per_layer = isinstance(hidden_channels, (list, tuple))
        for k, value in enumerate(channels):
            _check_int(name, f"hidden_channels[{k}]" if per_layer else "hidden_channels", value)
        self.input_channels = input_channels
        self.hidden_channels = hidden_channels if isinstance(hidden_channels, int) else tuple(channels)
        self.num_layers = num_layers
        self.batch_first = batch_first
        self.cells = nn.ModuleList(
            ConvLSTMCell(
                input_channels if k == 0 else channels[k - 1], channels[k], kernel_size, bias, peephole,
                forget_bias=forget_bias, device=device, dtype=dtype,
            )  # fmt: skip
            for k in range(num_layers)
        )
        self.kernel_size = self.cells[0].kernel_size

    @property
    def layer_channels(self) -> tuple[int, ...]:
        """C_hid of each layer."""
        return tuple(cell.hidden_channels for cell in self.cells)

    def forward(
        self, input: Tensor, hx: tuple[Tensor | Sequence[Tensor], Tensor | Sequence[Tensor]] | None = None
    ) -> tuple[Tensor, tuple[Tensor | tuple[Tensor, ...], Tensor | tuple[Tensor, ...]]]:
        """Run the layers over the frames; see the class docstring for the shapes of inputs and outputs."""
        name = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: expected input to be a Tensor, got {type(input).__name__}")
        layout = "(N, L, C_in, H, W)" if self.batch_first else "(L, N, C_in, H, W)"
        if input.dim() != 5:
            raise ShapeError(f"{name}: expected input of shape {layout}, got shape {tuple(input.shape)}")
        _check_frames(name, input, self.input_channels, "C_in", dim=2)
        _check_dtype(name, input, self.cells[0].weight.dtype)
        time_dim = 1 if self.batch_first else 0
        batch, seq_len = input.size(1 - time_dim), input.size(time_dim)
        if seq_len == 0:
            raise ShapeError(f"{name}: expected at least one time step, got input of shape {tuple(input.shape)}")
        h0, c0 = self._initial_state(hx, batch, input)

        x = input
        h_n, c_n = [], []
        for k, cell in enumerate(self.cells):
            # The input half of every step in one convolution: (N * L, C, H, W) -> (N, L, 4C_hid, H, W).
            xw = F.conv2d(x.flatten(0, 1), cell.weight_ih, cell.bias, padding=cell.padding).unflatten(0, x.shape[:2])
            weight_hh = cell.weight_hh  # (4C_hid, C_hid, kH, kW)
            h, c = h0[k], c0[k]
            outputs = []
            # unbind, not xw[:, t]: indexing in the loop makes the backward pass quadratic in L.
            for xw_t in xw.unbind(time_dim):
                gates = xw_t + F.conv2d(h, weight_hh, padding=cell.padding)  # (N, 4C_hid, H, W)
                h, c = cell._update(gates, c)
                outputs.append(h)
            x = torch.stack(outputs, dim=time_dim)  # (N, L, C_hid, H, W) or (L, N, C_hid, H, W)
            h_n.append(h)
            c_n.append(c)
        if len(set(self.layer_channels)) == 1:
            return x, (torch.stack(h_n), torch.stack(c_n))  # 2 x (num_layers, N, C_hid, H, W)
        return x, (tuple(h_n), tuple(c_n))

    def _initial_state(
        self, hx: tuple[Tensor | Sequence[Tensor], Tensor | Sequence[Tensor]] | None, batch: int, input: Tensor
    ) -> tuple[Sequence[Tensor], Sequence[Tensor]]:
        """Validate (h_0, c_0) or make zeros; returns per-layer states (N, C_hid[k], H, W)."""
        name = type(self).__name__
        height, width = input.shape[-2:]
        shapes = [(batch, channels, height, width) for channels in self.layer_channels]
        if hx is None:
            zeros = [input.new_zeros(shape) for shape in shapes]
            return zeros, zeros
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise TypeError(f"{name}: expected hx to be a pair (h_0, c_0), got {type(hx).__name__}")
        states = []
        for state_name, state in zip(("h_0", "c_0"), hx):
            if isinstance(state, Tensor):
                channels = set(self.layer_channels)
                if len(channels) != 1:
                    raise TypeError(
                        f"{name}: expected {state_name} as a list of {self.num_layers} tensors, one per layer, "
                        f"because the layers have different hidden_channels {self.layer_channels}; got one tensor"
                    )
                stacked = (self.num_layers, *shapes[0])
                if tuple(state.shape) != stacked:
                    raise ShapeError(
                        f"{name}: expected {state_name} of shape {stacked} (num_layers, N, C_hid, H, W), "
                        f"got {tuple(state.shape)}"
                    )
                states.append(state.unbind(0))
                continue
            if not isinstance(state, (tuple, list)) or len(state) != self.num_layers:
                raise TypeError(
                    f"{name}: expected {state_name} as a tensor or a list of {self.num_layers} tensors, "
                    f"got {type(state).__name__}"
                )
            for k, (layer_state, shape) in enumerate(zip(state, shapes)):
                if not isinstance(layer_state, Tensor) or tuple(layer_state.shape) != shape:
                    got = tuple(layer_state.shape) if isinstance(layer_state, Tensor) else type(layer_state).__name__
                    raise ShapeError(
                        f"{name}: expected {state_name}[{k}] of shape {shape} (N, C_hid, H, W), got {got}"
                    )
            states.append(list(state))
        return states[0], states[1]

    def extra_repr(self) -> str:
        s = f"{self.input_channels}, {self.hidden_channels}, kernel_size={self.kernel_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.batch_first is not True:
            s += f", batch_first={self.batch_first}"
        return s


def _check_int(owner: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{owner}: {name}: expected an integer >= 1, got {value!r}")


def _check_real(owner: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{owner}: {name}: expected a real number, got {value!r}")


def _check_flags(owner: str, **flags: object) -> None:
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise ValueError(f"{owner}: {name}: expected True or False, got {value!r}")


def _check_kernel_size(owner: str, kernel_size: object) -> tuple[int, int]:
    sizes = (kernel_size, kernel_size) if not isinstance(kernel_size, (tuple, list)) else tuple(kernel_size)
    valid = len(sizes) == 2 and all(
        not isinstance(k, bool) and isinstance(k, numbers.Integral) and k >= 1 and k % 2 == 1 for k in sizes
    )
    if not valid:
        raise ValueError(
            f"{owner}: kernel_size: expected an odd integer >= 1 or a pair of them (kH, kW), so that 'same' "
            f"padding keeps the frame size, got {kernel_size!r}"
        )
    return int(sizes[0]), int(sizes[1])


def _check_frames(owner: str, input: Tensor, channels: int, channels_name: str, dim: int) -> None:
    if input.size(dim) != channels:
        raise ShapeError(
            f"{owner}: expected input with {channels} channels ({channels_name}, dimension {dim}), "
            f"got shape {tuple(input.shape)}"
        )


def _check_dtype(owner: str, input: Tensor, dtype: torch.dtype) -> None:
    if input.dtype != dtype and not torch.is_autocast_enabled(input.device.type):
        raise ValueError(f"{owner}: expected input of dtype {dtype} like the parameters, got {input.dtype}")


def _check_state_pair(owner: str, hx: object, name: str, form: str) -> tuple[Tensor, Tensor]:
    if not isinstance(hx, (tuple, list)) or len(hx) != 2 or not all(isinstance(s, Tensor) for s in hx):
        raise TypeError(f"{owner}: expected {name} to be a tuple {form} of two tensors, got {type(hx).__name__}")
    return hx[0], hx[1]
