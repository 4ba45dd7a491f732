r"""The sLSTM of xLSTM (Beck et al., 2024): exponential gating with a normaliser and a stabiliser state.

``slstm_cell`` is one stabilised time step in plain PyTorch, the reference; the module :class:`sLSTM`
owns the time loop and the stacking. Only the recurrent layer is here, not the xLSTM block around it
(no layer norm, convolution, up- or down-projection).
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..errors import ShapeError

_FORGET_GATES = ("exp", "sigmoid")


class SLSTMState(NamedTuple):
    """The four states of an sLSTM, each (N, H) for one layer or (num_layers, N, H) for the module.

    Attributes:
        h: hidden state :math:`h_t`.
        c: cell state :math:`c_t`, scaled by :math:`e^{-m_t}`.
        n: normaliser state :math:`n_t`, scaled by :math:`e^{-m_t}`.
        m: stabiliser state :math:`m_t`, the log of the scale.
    """

    h: Tensor
    c: Tensor
    n: Tensor
    m: Tensor


def slstm_cell(
    xw_t: Tensor, state: SLSTMState, weight_hh: Tensor, num_heads: int = 1, forget_gate: str = "exp"
) -> SLSTMState:
    r"""Advance an sLSTM by one stabilised time step.

    With the pre-activations :math:`\tilde{a}_t = W_a x_t + R_a h_{t-1} + b_a` for :math:`a \in \{i, f,
    z, o\}` (stacked in this order, like PyTorch's i, f, g, o), where each :math:`R_a` is block-diagonal
    over ``num_heads`` heads:

    .. math::
        \begin{array}{ll}
            \log i_t = \tilde{\imath}_t \\
            \log f_t = \tilde{f}_t \text{ (exp) or } \log\sigma(\tilde{f}_t) \text{ (sigmoid)} \\
            m_t = \max(\log f_t + m_{t-1},\ \log i_t) \\
            i'_t = \exp(\log i_t - m_t) \\
            f'_t = \exp(\log f_t + m_{t-1} - m_t) \\
            z_t = \tanh(\tilde{z}_t) \\
            o_t = \sigma(\tilde{o}_t) \\
            c_t = f'_t \odot c_{t-1} + i'_t \odot z_t \\
            n_t = f'_t \odot n_{t-1} + i'_t \\
            h_t = o_t \odot c_t / n_t
        \end{array}

    The stabilised :math:`c_t, n_t` are the unstabilised ones of the paper times :math:`e^{-m_t}`, so
    :math:`h_t` is unchanged while no exponential overflows. A state element with :math:`n_{t-1} = 0`
    (the zero initial state) holds no memory: its :math:`m_{t-1}` is taken as :math:`-\infty`, so
    :math:`m_t = \log i_t` and :math:`f'_t = 0`. This keeps :math:`n_t \ge 1` from then on.

    Args:
        xw_t: the input part of this step, :math:`W x_t + b`, shape (N, 4H).
        state: the previous states ``(h, c, n, m)``, each of shape (N, H).
        weight_hh: the recurrent weights, shape (4H, H / num_heads): row :math:`aH + u` holds the weights
            of unit :math:`u` in gate :math:`a` for the H / num_heads units of :math:`u`'s own head.
        num_heads: the number of heads, dividing H.
        forget_gate: ``"exp"`` or ``"sigmoid"``.

    Returns:
        the next states ``(h_t, c_t, n_t, m_t)``, each of shape (N, H).
    """
    h, c, n, m = state
    batch, hidden_size = h.shape
    if num_heads == 1:
        gates = torch.addmm(xw_t, h, weight_hh.t())  # (N, 4H)
    else:
        head_size = hidden_size // num_heads
        blocks = weight_hh.view(4, num_heads, head_size, head_size)  # (gate, head, out, in)
        recurrent = torch.einsum("nki,gkoi->ngko", h.view(batch, num_heads, head_size), blocks)  # (N, 4, heads, d)
        gates = xw_t + recurrent.reshape(batch, 4 * hidden_size)  # (N, 4H)
    pre_i, pre_f, pre_z, pre_o = gates.chunk(4, dim=1)  # 4 x (N, H)

    log_f = pre_f if forget_gate == "exp" else F.logsigmoid(pre_f)
    m = torch.where(n == 0, float("-inf"), m)  # an empty memory has no scale yet
    log_f_plus_m = log_f + m
    m_next = torch.maximum(log_f_plus_m, pre_i)
    input_gate = torch.exp(pre_i - m_next)  # i'
    forget_gate_value = torch.exp(log_f_plus_m - m_next)  # f'
    cell_input = torch.tanh(pre_z)
    output_gate = torch.sigmoid(pre_o)

    c_next = forget_gate_value * c + input_gate * cell_input  # (N, H)
    n_next = forget_gate_value * n + input_gate  # (N, H)
    h_next = output_gate * c_next / n_next  # (N, H)
    return SLSTMState(h_next, c_next, n_next, m_next)


class sLSTM(nn.Module):  # noqa: N801 - the paper's name
    r"""Apply a multi-layer sLSTM (Beck et al., 2024, *xLSTM: Extended Long Short-Term Memory*) to a sequence.

    For each element of the input sequence, each layer computes

    .. math::
        \begin{array}{ll}
            \tilde{a}_t = W_a x_t + R_a h_{t-1} + b_a \quad \text{for } a \in \{i, f, z, o\} \\
            i_t = \exp(\tilde{\imath}_t) \\
            f_t = \exp(\tilde{f}_t) \text{ or } \sigma(\tilde{f}_t) \\
            z_t = \tanh(\tilde{z}_t) \\
            o_t = \sigma(\tilde{o}_t) \\
            c_t = f_t \odot c_{t-1} + i_t \odot z_t \\
            n_t = f_t \odot n_{t-1} + i_t \\
            h_t = o_t \odot c_t / n_t
        \end{array}

    where :math:`c_t` is the cell state, :math:`n_t` the normaliser state, :math:`z_t` the cell input and
    :math:`i_t, f_t, o_t` the input, forget and output gates. :math:`R_a` is block-diagonal with
    ``num_heads`` blocks: a unit's gates see only the previous hidden state of its own head ("memory mixing"
    within heads). The input of layer :math:`k > 0` is the hidden state of layer :math:`k - 1`.

    The exponentials are computed stabilised, with a fourth state :math:`m_t`, as the paper does:

    .. math::
        \begin{array}{ll}
            m_t = \max(\log f_t + m_{t-1},\ \log i_t) \\
            i'_t = \exp(\log i_t - m_t) \\
            f'_t = \exp(\log f_t + m_{t-1} - m_t)
        \end{array}

    and :math:`i'_t, f'_t` replace :math:`i_t, f_t` above. That scales :math:`c_t` and :math:`n_t` by
    :math:`e^{-m_t}` and leaves :math:`h_t` as it is. See :func:`slstm_cell` for the step and the
    handling of an empty (all-zero) state.

    Args:
        input_size: the number of features H_in of the input `x`.
        hidden_size: the number of features H of every state.
        num_layers: the number of stacked layers. Default: 1
        num_heads: the number of heads of the block-diagonal recurrent weights; must divide ``hidden_size``.
            Default: 1
        batch_first: if ``True``, the input and output are (N, L, H) instead of (L, N, H). The states are
            always (num_layers, N, H). Default: ``False``
        forget_gate: ``"exp"`` for :math:`f_t = \exp(\tilde{f}_t)` or ``"sigmoid"`` for
            :math:`f_t = \sigma(\tilde{f}_t)`. Default: ``"exp"``
        forget_bias: initial forget-gate bias; ``None`` picks 1.0 for ``"sigmoid"`` (:math:`f \approx 0.73`,
            as :class:`lstmkit.nn.LSTM`) and 0.0 for ``"exp"`` (:math:`f = 1`; a positive bias would weight
            old inputs more than new ones). Default: ``None``
        device, dtype: where and of what type the parameters are made.

    Inputs: input, state
        * **input**: tensor of shape (L, N, H_in) when ``batch_first=False`` or (N, L, H_in) when
          ``batch_first=True``.
        * **state**: optional tuple ``(h_0, c_0, n_0, m_0)`` of tensors of shape (num_layers, N, H), such as
          the ``state`` a previous call returned. Default: zeros (an empty memory).

    Outputs: output, state
        * **output**: tensor of shape (L, N, H) or (N, L, H) with ``batch_first=True``, the last layer's
          :math:`h_t` for each `t`.
        * **state**: :class:`SLSTMState` ``(h_n, c_n, n_n, m_n)``, each of shape (num_layers, N, H), the
          final stabilised states of each layer.

    Attributes:
        weight_ih_l[k]: :math:`(W_i|W_f|W_z|W_o)` of layer k, shape (4 * hidden_size, input_size) for k = 0,
            else (4 * hidden_size, hidden_size).
        weight_hh_l[k]: the diagonal blocks of :math:`(R_i|R_f|R_z|R_o)`, shape
            (4 * hidden_size, hidden_size / num_heads): row :math:`aH + u` holds unit :math:`u`'s weights in
            gate :math:`a` for the units of its own head; with ``num_heads=1`` it is the full (4H, H) matrix,
            laid out like ``torch.nn.LSTM``'s ``weight_hh_l[k]``. The off-diagonal blocks do not exist.
        bias_l[k]: :math:`(b_i|b_f|b_z|b_o)`, shape (4 * hidden_size,). There is one bias per gate, as in
            the paper, not PyTorch's redundant pair.

    Initialisation:
        ``weight_ih`` Xavier (Glorot) uniform; each (gate, head) block of ``weight_hh``, (H / num_heads,
        H / num_heads), orthogonal; ``bias`` zero except the forget-gate slice, ``forget_bias``.

    Examples::

        >>> import torch
        >>> from lstmkit.nn.slstm import sLSTM
        >>> rnn = sLSTM(10, 16, num_layers=2, num_heads=4)
        >>> x = torch.randn(5, 3, 10)  # (L, N, H_in)
        >>> output, state = rnn(x)
        >>> output.shape, state.m.shape
        (torch.Size([5, 3, 16]), torch.Size([2, 3, 16]))
        >>> output, state = rnn(x, state)  # carry on from where the first call stopped
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        num_heads: int = 1,
        batch_first: bool = False,
        forget_gate: str = "exp",
        *,
        forget_bias: float | None = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        for name, value in (
            ("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers),
            ("num_heads", num_heads),
        ):  # fmt: skip
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"sLSTM: {name}: expected an integer >= 1, got {value!r}")
        if hidden_size % num_heads != 0:
            raise ValueError(
                f"sLSTM: hidden_size: expected a multiple of num_heads={num_heads}, got {hidden_size}"
            )
        if not isinstance(batch_first, bool):
            raise ValueError(f"sLSTM: batch_first: expected True or False, got {batch_first!r}")
        if forget_gate not in _FORGET_GATES:
            raise ValueError(
                f"sLSTM: forget_gate: expected one of {', '.join(map(repr, _FORGET_GATES))}, got {forget_gate!r}"
            )
        if forget_bias is None:
            forget_bias = 1.0 if forget_gate == "sigmoid" else 0.0
        elif isinstance(forget_bias, bool) or not isinstance(forget_bias, numbers.Real):
            raise ValueError(f"sLSTM: forget_bias: expected None or a real number, got {forget_bias!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.batch_first = batch_first
        self.forget_gate = forget_gate
        self.forget_bias = float(forget_bias)

        factory = {"device": device, "dtype": dtype}
        gate_size, head_size = 4 * hidden_size, hidden_size // num_heads
        for k in range(num_layers):
            layer_input_size = input_size if k == 0 else hidden_size
            self.register_parameter(
                f"weight_ih_l{k}", nn.Parameter(torch.empty(gate_size, layer_input_size, **factory))
            )
            self.register_parameter(f"weight_hh_l{k}", nn.Parameter(torch.empty(gate_size, head_size, **factory)))
            self.register_parameter(f"bias_l{k}", nn.Parameter(torch.empty(gate_size, **factory)))
        self.reset_parameters()

    @property
    def head_size(self) -> int:
        """H / num_heads: the number of units in each head."""
        return self.hidden_size // self.num_heads

    def reset_parameters(self) -> None:
        """Initialise every parameter as the class docstring says."""
        h, d = self.hidden_size, self.head_size
        with torch.no_grad():
            for k in range(self.num_layers):
                nn.init.xavier_uniform_(getattr(self, f"weight_ih_l{k}"))
                for block in getattr(self, f"weight_hh_l{k}").split(d, dim=0):  # 4 * heads x (d, d)
                    nn.init.orthogonal_(block)
                bias = getattr(self, f"bias_l{k}")
                bias.zero_()
                bias[h : 2 * h] = self.forget_bias

    def recurrent_matrix(self, layer: int = 0) -> Tensor:
        """The full recurrent matrix :math:`(R_i|R_f|R_z|R_o)` of ``layer``, shape (4H, H), zero off the
        diagonal blocks; differentiable, for inspection and tests (the forward pass never builds it)."""
        d = self.head_size
        blocks = getattr(self, f"weight_hh_l{layer}").split(self.hidden_size, dim=0)  # 4 x (H, d)
        return torch.cat([torch.block_diag(*gate.split(d, dim=0)) for gate in blocks], dim=0)  # (4H, H)

    def forward(
        self, input: Tensor, state: tuple[Tensor, Tensor, Tensor, Tensor] | None = None
    ) -> tuple[Tensor, SLSTMState]:
        """Run the layers over the sequence; see the class docstring for the shapes of inputs and outputs."""
        self._check_input(input)
        x = input.transpose(0, 1) if self.batch_first else input  # (L, N, H_in)
        seq_len, batch = x.shape[:2]
        if seq_len == 0:
            raise ShapeError(f"sLSTM: expected at least one time step, got input of shape {tuple(input.shape)}")
        initial = self._initial_state(state, batch, input)

        finals = []
        for k in range(self.num_layers):
            xw = F.linear(x, getattr(self, f"weight_ih_l{k}"), getattr(self, f"bias_l{k}"))  # (L, N, 4H)
            weight_hh = getattr(self, f"weight_hh_l{k}")
            layer_state = SLSTMState(*(s[k] for s in initial))
            outputs = []
            # unbind, not xw[t]: indexing in the loop makes the backward pass quadratic in L.
            for xw_t in xw.unbind(0):
                layer_state = slstm_cell(xw_t, layer_state, weight_hh, self.num_heads, self.forget_gate)
                outputs.append(layer_state.h)
            x = torch.stack(outputs)  # (L, N, H)
            finals.append(layer_state)
        output = x.transpose(0, 1) if self.batch_first else x  # (N, L, H) or (L, N, H)
        return output, SLSTMState(*(torch.stack(states) for states in zip(*finals)))  # 4 x (num_layers, N, H)

    def _check_input(self, input: Tensor) -> None:
        if not isinstance(input, Tensor):
            raise TypeError(f"sLSTM: expected input to be a Tensor, got {type(input).__name__}")
        if input.dim() != 3:
            layout = "(N, L, H_in)" if self.batch_first else "(L, N, H_in)"
            raise ShapeError(f"sLSTM: expected input of shape {layout}, got shape {tuple(input.shape)}")
        if input.size(2) != self.input_size:
            raise ShapeError(
                f"sLSTM: expected input with {self.input_size} features (last dimension), "
                f"got shape {tuple(input.shape)}"
            )
        dtype = self.weight_ih_l0.dtype
        if input.dtype != dtype:
            raise ValueError(f"sLSTM: expected input of dtype {dtype} like the parameters, got {input.dtype}")

    def _initial_state(
        self, state: tuple[Tensor, Tensor, Tensor, Tensor] | None, batch: int, input: Tensor
    ) -> SLSTMState:
        shape = (self.num_layers, batch, self.hidden_size)
        if state is None:
            zeros = input.new_zeros(shape)
            return SLSTMState(zeros, zeros, zeros, zeros)
        if not isinstance(state, (tuple, list)) or len(state) != 4 or not all(isinstance(s, Tensor) for s in state):
            raise TypeError(
                f"sLSTM: expected state to be a tuple (h, c, n, m) of four tensors, got {type(state).__name__}"
                + (f" of length {len(state)}" if isinstance(state, (tuple, list)) else "")
            )
        for name, value in zip(SLSTMState._fields, state):
            if tuple(value.shape) != shape:
                raise ShapeError(
                    f"sLSTM: expected state {name} of shape {shape} (num_layers, N, H), got {tuple(value.shape)}"
                )
        return SLSTMState(*state)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.num_heads != 1:
            s += f", num_heads={self.num_heads}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.forget_gate != "exp":
            s += f", forget_gate={self.forget_gate!r}"
        return s

