"""``lstmkit.nn.LSTM``: a drop-in for ``torch.nn.LSTM`` with configurable activations and variable lengths."""

from __future__ import annotations

import math
import numbers
import warnings

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from ..errors import ShapeError
from . import fused as _fused
from . import layer as _layer
from .activations import ACTIVATIONS, get_activation
from .cell import CellActivations
from .layer import LayerWeights

_VANILLA_ACTIVATIONS = {"gate_activation": "sigmoid", "cell_activation": "tanh", "hidden_activation": "tanh"}
_INITS = ("default", "torch")
_IMPLS = ("auto", "reference", "fused")


class LSTM(nn.Module):
    r"""Apply a multi-layer long short-term memory (LSTM) RNN to an input sequence.

    For each element in the input sequence, each layer computes the following function:

    .. math::
        \begin{array}{ll}
            i_t = \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi}) \\
            f_t = \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf}) \\
            g_t = \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) \\
            o_t = \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho}) \\
            c_t = f_t \odot c_{t-1} + i_t \odot g_t \\
            h_t = o_t \odot \tanh(c_t)
        \end{array}

    where :math:`h_t` is the hidden state at time `t`, :math:`c_t` the cell state, :math:`x_t` the input,
    :math:`h_{t-1}` the hidden state of the layer at time `t-1` (or the initial hidden state at time 0),
    and :math:`i_t, f_t, g_t, o_t` the input, forget, cell and output gates. :math:`\sigma` is
    ``gate_activation``, the :math:`\tanh` of :math:`g_t` is ``cell_activation`` and the :math:`\tanh` of
    :math:`c_t` is ``hidden_activation`` (ONNX's f, g and h); the defaults give ``torch.nn.LSTM``.
    :math:`\odot` is the Hadamard product. The input of layer :math:`k > 0` is the hidden state of layer
    :math:`k-1`, with dropout applied to it during training when ``dropout > 0``.

    With ``proj_size > 0`` each hidden state is projected, :math:`h_t = W_{hr} h_t`, so :math:`h_t` has
    ``proj_size`` features and :math:`W_{h\ast}` change shape accordingly (Sak et al., 2014).

    The module has two implementations that compute the same function: the reference path, a plain
    PyTorch loop over :func:`lstmkit.nn.lstm_cell`, and the fused path, PyTorch's own LSTM kernel (the one
    ``torch.nn.LSTM`` runs, oneDNN on CPU). ``impl="auto"`` takes the fused path whenever the activations
    are the default ones; :attr:`fused` tells which path this module runs.

    Args:
        input_size: the number of features H_in of the input `x`.
        hidden_size: the number of features H (H_cell) of the cell state and of the unprojected hidden state.
        num_layers: the number of stacked LSTM layers. Default: 1
        bias: if ``False``, the layers use neither ``b_ih`` nor ``b_hh``. Default: ``True``
        batch_first: if ``True``, the input and output are (N, L, H) instead of (L, N, H). The states
            ``h_0, c_0, h_n, c_n`` are always (D * num_layers, N, H). Default: ``False``
        dropout: if non-zero, dropout with this probability on the outputs of each layer except the last,
            in training mode only. Default: 0
        bidirectional: if ``True``, each layer also runs backward in time and concatenates both outputs.
            Default: ``False``
        proj_size: if ``> 0``, project each hidden state to this many features; must be smaller than
            ``hidden_size``. Default: 0
        gate_activation: name of :math:`\sigma`, a key of :data:`lstmkit.nn.ACTIVATIONS`. Default: ``"sigmoid"``
        cell_activation: name of the activation of :math:`g_t`. Default: ``"tanh"``
        hidden_activation: name of the activation of :math:`c_t` in :math:`h_t`. Default: ``"tanh"``
        forget_bias: initial forget-gate bias with ``init="default"`` (ignored when ``bias=False`` or
            ``init="torch"``). Default: 1.0
        init: ``"default"`` or ``"torch"``, see Initialisation. Default: ``"default"``
        impl: ``"auto"``, ``"reference"`` or ``"fused"``; ``"fused"`` raises ``ValueError`` when the
            activations are not the default ones. Default: ``"auto"``
        device, dtype: where and of what type the parameters are made.

    Inputs: input, (h_0, c_0), lengths
        * **input**: tensor of shape (L, H_in) for unbatched input, (L, N, H_in) when
          ``batch_first=False`` or (N, L, H_in) when ``batch_first=True``, or a
          :class:`~torch.nn.utils.rnn.PackedSequence`.
        * **h_0**: tensor of shape (D * num_layers, H_out) for unbatched input or
          (D * num_layers, N, H_out), the initial hidden state of each sequence. Default: zeros.
        * **c_0**: tensor of shape (D * num_layers, H_cell) for unbatched input or
          (D * num_layers, N, H_cell), the initial cell state of each sequence. Default: zeros.
        * **lengths**: optional list or 1-D integer tensor of N values in 1..L, the number of real steps
          of each sequence in a padded batched input. Not allowed with a ``PackedSequence``.

        where

        .. math::
            \begin{aligned}
                N ={} & \text{batch size} \\
                L ={} & \text{sequence length} \\
                D ={} & 2 \text{ if bidirectional=True otherwise } 1 \\
                H_{in} ={} & \text{input\_size} \\
                H_{cell} ={} & \text{hidden\_size} \\
                H_{out} ={} & \text{proj\_size if } \text{proj\_size}>0 \text{ otherwise hidden\_size}
            \end{aligned}

    Outputs: output, (h_n, c_n)
        * **output**: tensor of shape (L, D * H_out) for unbatched input, (L, N, D * H_out) when
          ``batch_first=False`` or (N, L, D * H_out) when ``batch_first=True``: the last layer's
          :math:`h_t` for each `t`, the two directions concatenated. A ``PackedSequence`` input gives a
          ``PackedSequence`` output. With ``lengths``, the output past each sequence's end is exactly zero.
        * **h_n**: tensor of shape (D * num_layers, H_out) or (D * num_layers, N, H_out), the final hidden
          state of each layer and direction (forward first). With ``lengths`` or packed input it is the state
          at each sequence's last real step; the reverse direction starts at that step and ends at step 0.
        * **c_n**: tensor of shape (D * num_layers, H_cell) or (D * num_layers, N, H_cell), the final cell
          state, likewise.

    Attributes:
        weight_ih_l[k]: input-hidden weights :math:`(W_{ii}|W_{if}|W_{ig}|W_{io})` of layer k, shape
            (4 * hidden_size, input_size) for k = 0, else (4 * hidden_size, D * H_out).
        weight_hh_l[k]: hidden-hidden weights :math:`(W_{hi}|W_{hf}|W_{hg}|W_{ho})`, shape (4 * hidden_size, H_out).
        bias_ih_l[k]: input-hidden bias :math:`(b_{ii}|b_{if}|b_{ig}|b_{io})`, shape (4 * hidden_size,).
        bias_hh_l[k]: hidden-hidden bias :math:`(b_{hi}|b_{hf}|b_{hg}|b_{ho})`, shape (4 * hidden_size,).
        weight_hr_l[k]: projection weights, shape (proj_size, hidden_size); only when ``proj_size > 0``.
        The reverse direction's parameters have the suffix ``_reverse``. Names, shapes and order are those
        of ``torch.nn.LSTM``, so state dicts load both ways.

    Initialisation:
        ``init="default"``: ``weight_ih`` Xavier (Glorot) uniform; each of the four gate blocks of
        ``weight_hh``, (hidden_size, H_out), orthogonal; ``weight_hr`` orthogonal; every bias zero except
        the forget-gate slice of ``bias_ih``, set to ``forget_bias`` so that the effective forget bias
        :math:`b_{if} + b_{hf}` starts at ``forget_bias``.
        ``init="torch"``: exactly ``torch.nn.LSTM.reset_parameters``: every parameter from
        :math:`\mathcal{U}(-\sqrt{k}, \sqrt{k})` with :math:`k = 1/\text{hidden\_size}`, drawing from the RNG
        in the same order, so the same seed gives the same parameters as ``torch.nn.LSTM``.

    Examples::

        >>> import torch
        >>> from lstmkit.nn import LSTM
        >>> rnn = LSTM(10, 20, num_layers=2)
        >>> x = torch.randn(5, 3, 10)  # (L, N, H_in)
        >>> h0, c0 = torch.zeros(2, 3, 20), torch.zeros(2, 3, 20)  # (D * num_layers, N, H_out)
        >>> output, (hn, cn) = rnn(x, (h0, c0))
        >>> output.shape
        torch.Size([5, 3, 20])
        >>> output, (hn, cn) = rnn(x, lengths=[5, 2, 3])  # outputs past each length are zero
        >>> bool((output[2:, 1] == 0).all())
        True
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        *,
        gate_activation: str = "sigmoid",
        cell_activation: str = "tanh",
        hidden_activation: str = "tanh",
        forget_bias: float = 1.0,
        init: str = "default",
        impl: str = "auto",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        _check_int("input_size", input_size, minimum=1)
        _check_int("hidden_size", hidden_size, minimum=1)
        _check_int("num_layers", num_layers, minimum=1)
        _check_int("proj_size", proj_size, minimum=0)
        if proj_size >= hidden_size:
            raise ValueError(
                f"LSTM: proj_size: expected 0 (no projection) or less than hidden_size={hidden_size}, "
                f"got {proj_size}"
            )
        for name, value in (("bias", bias), ("batch_first", batch_first), ("bidirectional", bidirectional)):
            if not isinstance(value, bool):
                raise ValueError(f"LSTM: {name}: expected True or False, got {value!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout <= 1:
            raise ValueError(f"LSTM: dropout: expected a probability in [0, 1], got {dropout!r}")
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                f"LSTM: dropout={dropout} acts between stacked layers only, so it does nothing with "
                "num_layers=1",
                stacklevel=2,
            )
        if isinstance(forget_bias, bool) or not isinstance(forget_bias, numbers.Real):
            raise ValueError(f"LSTM: forget_bias: expected a real number, got {forget_bias!r}")
        if init not in _INITS:
            raise ValueError(f"LSTM: init: expected one of {_quoted(_INITS)}, got {init!r}")
        if impl not in _IMPLS:
            raise ValueError(f"LSTM: impl: expected one of {_quoted(_IMPLS)}, got {impl!r}")
        activation_names = {
            "gate_activation": gate_activation,
            "cell_activation": cell_activation,
            "hidden_activation": hidden_activation,
        }
        for name, value in activation_names.items():
            if not isinstance(value, str) or value not in ACTIVATIONS:
                raise ValueError(f"LSTM: {name}: expected one of {_quoted(ACTIVATIONS)}, got {value!r}")
        non_vanilla = {n: v for n, v in activation_names.items() if v != _VANILLA_ACTIVATIONS[n]}
        if impl == "fused" and non_vanilla:
            got = ", ".join(f"{n}={v!r}" for n, v in non_vanilla.items())
            raise ValueError(
                "LSTM: impl='fused' runs PyTorch's kernel, which computes only gate_activation='sigmoid', "
                f"cell_activation='tanh', hidden_activation='tanh'; got {got}. Use impl='auto' or 'reference'"
            )

        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        self.gate_activation = gate_activation
        self.cell_activation = cell_activation
        self.hidden_activation = hidden_activation
        self.forget_bias = float(forget_bias)
        self.init = init
        self.impl = impl
        self._fused = impl == "fused" or (impl == "auto" and not non_vanilla)
        self._activations = CellActivations(
            gate=get_activation(gate_activation),
            cell=get_activation(cell_activation),
            hidden=get_activation(hidden_activation),
        )

        # Parameters in torch.nn.LSTM's order: layer by layer, forward then reverse direction, and within
        # one direction weight_ih, weight_hh, bias_ih, bias_hh, weight_hr. The fused kernel wants this order.
        factory = {"device": device, "dtype": dtype}
        gate_size = 4 * hidden_size
        out_size = self.output_size
        self._weight_names: list[list[LayerWeights]] = []
        for k in range(num_layers):
            layer_input_size = input_size if k == 0 else out_size * self.num_directions
            directions = []
            for suffix in ("", "_reverse")[: self.num_directions]:
                names = LayerWeights(
                    weight_ih=f"weight_ih_l{k}{suffix}",
                    weight_hh=f"weight_hh_l{k}{suffix}",
                    bias_ih=f"bias_ih_l{k}{suffix}" if bias else None,
                    bias_hh=f"bias_hh_l{k}{suffix}" if bias else None,
                    weight_hr=f"weight_hr_l{k}{suffix}" if proj_size > 0 else None,
                )
                shapes = LayerWeights(
                    weight_ih=(gate_size, layer_input_size),
                    weight_hh=(gate_size, out_size),
                    bias_ih=(gate_size,),
                    bias_hh=(gate_size,),
                    weight_hr=(proj_size, hidden_size),
                )
                for name, shape in zip(names, shapes):
                    if name is not None:
                        self.register_parameter(name, nn.Parameter(torch.empty(shape, **factory)))
                directions.append(names)
            self._weight_names.append(directions)
        self._flat_weight_names = [
            name for directions in self._weight_names for names in directions for name in names if name is not None
        ]
        self.reset_parameters()

    @property
    def num_directions(self) -> int:
        """D: 2 when bidirectional, else 1."""
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """H_out: the size of each hidden state, ``proj_size`` if it is non-zero, else ``hidden_size``."""
        return self.proj_size if self.proj_size > 0 else self.hidden_size

    @property
    def fused(self) -> bool:
        """Whether ``forward`` runs PyTorch's fused LSTM kernel (``True``) or the reference loop (``False``)."""
        return self._fused

    def reset_parameters(self) -> None:
        """Initialise every parameter as ``init`` says (see the class docstring)."""
        with torch.no_grad():
            if self.init == "torch":
                bound = 1.0 / math.sqrt(self.hidden_size)
                for weight in self.parameters():
                    nn.init.uniform_(weight, -bound, bound)
                return
            h = self.hidden_size
            for directions in self._layer_weights():
                for weights in directions:
                    nn.init.xavier_uniform_(weights.weight_ih)
                    for block in weights.weight_hh.split(h, dim=0):  # 4 x (H, H_out)
                        nn.init.orthogonal_(block)
                    if weights.bias_ih is not None:
                        weights.bias_ih.zero_()
                        weights.bias_hh.zero_()
                        weights.bias_ih[h : 2 * h] = self.forget_bias
                    if weights.weight_hr is not None:
                        nn.init.orthogonal_(weights.weight_hr)

    def forward(
        self,
        input: Tensor | PackedSequence,
        hx: tuple[Tensor, Tensor] | None = None,
        lengths: Tensor | list[int] | None = None,
    ) -> tuple[Tensor | PackedSequence, tuple[Tensor, Tensor]]:
        """Run the LSTM; see the class docstring for the shapes of inputs and outputs."""
        if isinstance(input, PackedSequence):
            if lengths is not None:
                raise ValueError("LSTM: lengths must be None for a PackedSequence input, which has its own lengths")
            return self._forward_packed(input, hx)
        return self._forward_padded(input, hx, lengths)

    def _forward_padded(
        self, input: Tensor, hx: tuple[Tensor, Tensor] | None, lengths: Tensor | list[int] | None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        self._check_input(input, ranks=(2, 3))
        is_batched = input.dim() == 3
        batch_dim = 0 if self.batch_first else 1
        if not is_batched:
            if lengths is not None:
                raise ShapeError(
                    f"LSTM: lengths needs a batched 3-D input, got unbatched input of shape {tuple(input.shape)}; "
                    "slice the sequence to its length instead"
                )
            input = input.unsqueeze(batch_dim)  # (1, L, H_in) or (L, 1, H_in)
        batch_size, seq_len = input.size(batch_dim), input.size(1 - batch_dim)
        if seq_len == 0:
            raise ShapeError(f"LSTM: expected at least one time step, got input of shape {tuple(input.shape)}")
        h0, c0 = self._initial_state(hx, batch_size, is_batched, input)
        if lengths is not None:
            lengths = self._check_lengths(lengths, batch_size, seq_len)
            if bool((lengths == seq_len).all()):
                lengths = None  # every sequence is full: the plain path computes the same, faster

        if self._fused:
            output, (h_n, c_n) = _fused.fused_lstm(
                input, (h0, c0), self._flat_weights(), self.bias, self.num_layers, self.dropout,
                self.training, self.bidirectional, self.batch_first, lengths,
            )  # fmt: skip
        else:
            x = input.transpose(0, 1) if self.batch_first else input  # (L, N, H_in)
            output, (h_n, c_n) = _layer.reference_lstm(
                x, h0, c0, self._layer_weights(), self._activations, self.dropout, self.training,
                None if lengths is None else lengths.to(input.device),
            )  # fmt: skip
            if self.batch_first:
                output = output.transpose(0, 1)  # (N, L, D * H_out)

        if not is_batched:
            output = output.squeeze(batch_dim)  # (L, D * H_out)
            h_n, c_n = h_n.squeeze(1), c_n.squeeze(1)  # (D * num_layers, H_out), (D * num_layers, H_cell)
        return output, (h_n, c_n)

    def _forward_packed(
        self, input: PackedSequence, hx: tuple[Tensor, Tensor] | None
    ) -> tuple[PackedSequence, tuple[Tensor, Tensor]]:
        self._check_input(input.data, ranks=(2,), packed=True)
        batch_sizes = input.batch_sizes  # (L,) on the CPU, non-increasing
        batch_size = int(batch_sizes[0])
        h0, c0 = self._initial_state(hx, batch_size, True, input.data)
        if self._fused:
            return _fused.fused_lstm_packed(
                input, (h0, c0), self._flat_weights(), self.bias, self.num_layers, self.dropout,
                self.training, self.bidirectional,
            )  # fmt: skip

        padded, lengths = pad_packed_sequence(input)  # (L, N, H_in) and (N,), in the caller's batch order
        output, hidden = _layer.reference_lstm(
            padded, h0, c0, self._layer_weights(), self._activations, self.dropout, self.training,
            lengths.to(padded.device),
        )  # fmt: skip
        # Pack again in the input's order: sorted by length, time-major, only the real steps.
        if input.sorted_indices is not None:
            output = output.index_select(1, input.sorted_indices)  # (L, N, D * H_out), sorted
        batch_index = torch.arange(batch_size)
        valid = (batch_index.unsqueeze(0) < batch_sizes.unsqueeze(1)).to(output.device)  # (L, N)
        data = output[valid]  # (sum(lengths), D * H_out)
        packed = PackedSequence(data, batch_sizes, input.sorted_indices, input.unsorted_indices)
        return packed, hidden

    def _check_input(self, input: Tensor, ranks: tuple[int, ...], packed: bool = False) -> None:
        if not isinstance(input, Tensor):
            raise TypeError(f"LSTM: expected input to be a Tensor or a PackedSequence, got {type(input).__name__}")
        if input.dim() not in ranks:
            if packed:
                expected = "PackedSequence data of shape (sum(lengths), H_in)"
            elif self.batch_first:
                expected = "input of shape (N, L, H_in) or unbatched (L, H_in)"
            else:
                expected = "input of shape (L, N, H_in) or unbatched (L, H_in)"
            raise ShapeError(f"LSTM: expected {expected}, got shape {tuple(input.shape)}")
        if input.size(-1) != self.input_size:
            raise ShapeError(
                f"LSTM: expected input with {self.input_size} features (last dimension), "
                f"got shape {tuple(input.shape)}"
            )
        dtype = self.weight_ih_l0.dtype
        if input.dtype != dtype and not torch.is_autocast_enabled(input.device.type):
            raise ValueError(
                f"LSTM: expected input of dtype {dtype} like the parameters, got {input.dtype}; "
                f"convert the input with .to({dtype}) or the model with .to({input.dtype})"
            )

    def _initial_state(
        self, hx: tuple[Tensor, Tensor] | None, batch_size: int, is_batched: bool, input: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Validate (h_0, c_0), or make zeros; returns them batched: (D * num_layers, N, H_out / H_cell)."""
        states = self.num_directions * self.num_layers
        h_shape = (states, batch_size, self.output_size)
        c_shape = (states, batch_size, self.hidden_size)
        if hx is None:
            zeros = {"dtype": input.dtype, "device": input.device}
            return torch.zeros(h_shape, **zeros), torch.zeros(c_shape, **zeros)
        if not isinstance(hx, (tuple, list)) or len(hx) != 2 or not all(isinstance(s, Tensor) for s in hx):
            raise TypeError(f"LSTM: expected hx to be a tuple (h_0, c_0) of two tensors, got {type(hx).__name__}")
        h0, c0 = hx
        if is_batched:
            dims = "D*num_layers, N, {}"
        else:
            dims = "D*num_layers, {}"
            h_shape, c_shape = (states, self.output_size), (states, self.hidden_size)
        for name, state, shape, size_name in (("h_0", h0, h_shape, "H_out"), ("c_0", c0, c_shape, "H_cell")):
            if tuple(state.shape) != shape:
                raise ShapeError(
                    f"LSTM: expected {name} of shape {shape} ({dims.format(size_name)}), got {tuple(state.shape)}"
                )
        if not is_batched:
            h0, c0 = h0.unsqueeze(1), c0.unsqueeze(1)  # (D * num_layers, 1, H)
        return h0, c0

    @staticmethod
    def _check_lengths(lengths: Tensor | list[int], batch_size: int, seq_len: int) -> Tensor:
        """Validate ``lengths`` and return them as a CPU int64 tensor of shape (N,)."""
        try:
            values = torch.as_tensor(lengths).detach().to("cpu")
        except (TypeError, ValueError, RuntimeError):
            raise ShapeError(
                f"LSTM: expected lengths as a list or 1-D tensor of {batch_size} integers, got {lengths!r}"
            ) from None
        if values.dim() != 1 or values.numel() != batch_size:
            raise ShapeError(
                f"LSTM: expected one length per sequence, shape ({batch_size},), got shape {tuple(values.shape)}"
            )
        if values.dtype == torch.bool or values.is_floating_point() or values.is_complex():
            raise ShapeError(f"LSTM: expected integer lengths, got dtype {values.dtype}")
        shortest, longest = int(values.min()), int(values.max())
        if shortest < 1 or longest > seq_len:
            raise ShapeError(
                f"LSTM: expected every length in 1..{seq_len} (the padded sequence length L), "
                f"got lengths from {shortest} to {longest}"
            )
        return values.to(torch.int64)

    def _layer_weights(self) -> list[list[LayerWeights]]:
        """The parameters as ``[layer][direction]`` tuples, read now so that ``functional_call`` works."""
        return [
            [LayerWeights(*(None if n is None else getattr(self, n) for n in names)) for names in directions]
            for directions in self._weight_names
        ]

    def _flat_weights(self) -> list[Tensor]:
        """The parameters in the flat order of PyTorch's kernel."""
        return [getattr(self, name) for name in self._flat_weight_names]

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        for name, vanilla in _VANILLA_ACTIVATIONS.items():
            if getattr(self, name) != vanilla:
                s += f", {name}={getattr(self, name)!r}"
        if self.init != "default":
            s += f", init={self.init!r}"
        elif self.forget_bias != 1.0:
            s += f", forget_bias={self.forget_bias}"
        if self.impl != "auto":
            s += f", impl={self.impl!r}"
        return s

    @classmethod
    def from_torch(cls, torch_lstm: nn.LSTM, *, impl: str = "auto") -> LSTM:
        """Make an ``LSTM`` with the configuration, parameters and training mode of a ``torch.nn.LSTM``."""
        if not isinstance(torch_lstm, nn.LSTM):
            raise TypeError(f"LSTM.from_torch: expected a torch.nn.LSTM, got {type(torch_lstm).__name__}")
        reference = torch_lstm.weight_ih_l0
        lstm = cls(
            torch_lstm.input_size, torch_lstm.hidden_size, torch_lstm.num_layers, torch_lstm.bias,
            torch_lstm.batch_first, torch_lstm.dropout, torch_lstm.bidirectional, torch_lstm.proj_size,
            init="torch", impl=impl, device=reference.device, dtype=reference.dtype,
        )  # fmt: skip
        lstm.load_state_dict(torch_lstm.state_dict())
        return lstm.train(torch_lstm.training)

    def to_torch(self) -> nn.LSTM:
        """Return a ``torch.nn.LSTM`` with this module's configuration, parameters and training mode.

        Raises:
            ValueError: the activations are not ``torch.nn.LSTM``'s (sigmoid, tanh, tanh).
        """
        non_vanilla = [f"{n}={getattr(self, n)!r}" for n, v in _VANILLA_ACTIVATIONS.items() if getattr(self, n) != v]
        if non_vanilla:
            raise ValueError(
                "LSTM.to_torch: torch.nn.LSTM computes only gate_activation='sigmoid', cell_activation='tanh', "
                f"hidden_activation='tanh'; this LSTM has {', '.join(non_vanilla)}"
            )
        reference = self.weight_ih_l0
        torch_lstm = nn.LSTM(
            self.input_size, self.hidden_size, self.num_layers, self.bias, self.batch_first, self.dropout,
            self.bidirectional, self.proj_size, device=reference.device, dtype=reference.dtype,
        )  # fmt: skip
        torch_lstm.load_state_dict(self.state_dict())
        return torch_lstm.train(self.training)


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"LSTM: {name}: expected an integer >= {minimum}, got {value!r}")


def _quoted(names) -> str:
    return ", ".join(repr(n) for n in names)
