r"""One LSTM time step in plain PyTorch: the reference every faster path is tested against.

``lstm_cell`` runs in four stages: gate pre-activations, gate activations, cell update, output. A cell
variant (peepholes, layer norm, zoneout, recurrent dropout, coupled input-forget gate, cell clipping)
belongs to one stage and joins as a keyword-only option of ``lstm_cell`` that is off by default.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .activations import Activation


class CellActivations(NamedTuple):
    r"""The three activations of an LSTM cell (ONNX calls them f, g and h).

    Attributes:
        gate: squashes the input, forget and output gates (:math:`\sigma`; ONNX ``f``).
        cell: squashes the candidate cell value :math:`g_t` (:math:`\tanh`; ONNX ``g``).
        hidden: squashes the new cell state before the output gate (:math:`\tanh`; ONNX ``h``).
    """

    gate: Activation = torch.sigmoid
    cell: Activation = torch.tanh
    hidden: Activation = torch.tanh


DEFAULT_ACTIVATIONS = CellActivations()


def lstm_cell(
    xw_t: Tensor,
    h: Tensor,
    c: Tensor,
    weight_hh: Tensor,
    bias_hh: Tensor | None = None,
    weight_hr: Tensor | None = None,
    activations: CellActivations = DEFAULT_ACTIVATIONS,
) -> tuple[Tensor, Tensor]:
    r"""Advance an LSTM by one time step.

    .. math::
        \begin{array}{ll}
            i_t = \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi}) \\
            f_t = \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf}) \\
            g_t = \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) \\
            o_t = \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho}) \\
            c_t = f_t \odot c_{t-1} + i_t \odot g_t \\
            h_t = o_t \odot \tanh(c_t) \\
            h_t = W_{hr} h_t \quad \text{(only with a projection)}
        \end{array}

    where :math:`\sigma` is ``activations.gate``, the :math:`\tanh` of :math:`g_t` is ``activations.cell``
    and the :math:`\tanh` of :math:`c_t` is ``activations.hidden``. Gates are stacked in PyTorch's order
    i, f, g, o along the last dimension.

    The input half of the pre-activations, :math:`W_{i\ast} x_t + b_{i\ast}`, does not depend on the state,
    so the layer computes it for every time step in one matrix product and passes one step of it as
    ``xw_t``; :math:`b_{h\ast}` may be folded into it too, in which case ``bias_hh`` is ``None``.

    Args:
        xw_t: input projection of this step, :math:`W_{ih} x_t + b_{ih}` (+ :math:`b_{hh}`), shape (N, 4H).
        h: previous hidden state :math:`h_{t-1}`, shape (N, H_out), where H_out is ``proj_size`` with a
            projection and H otherwise.
        c: previous cell state :math:`c_{t-1}`, shape (N, H).
        weight_hh: recurrent weights :math:`(W_{hi}|W_{hf}|W_{hg}|W_{ho})`, shape (4H, H_out).
        bias_hh: recurrent bias :math:`b_{hh}`, shape (4H,), or ``None`` when folded into ``xw_t`` or absent.
        weight_hr: projection :math:`W_{hr}`, shape (H_out, H), or ``None`` for no projection.
        activations: the gate, cell and hidden activations.

    Returns:
        ``(h_t, c_t)`` of shapes (N, H_out) and (N, H).
    """
    # Pre-activations of the four gates: the input part came in with xw_t, add the recurrent part.
    gates = torch.addmm(xw_t, h, weight_hh.t())  # (N, 4H)
    if bias_hh is not None:
        gates = gates + bias_hh
    pre_i, pre_f, pre_g, pre_o = gates.chunk(4, dim=1)  # 4 x (N, H)

    input_gate = activations.gate(pre_i)
    forget_gate = activations.gate(pre_f)
    candidate = activations.cell(pre_g)
    output_gate = activations.gate(pre_o)

    c_next = forget_gate * c + input_gate * candidate  # (N, H)
    h_next = output_gate * activations.hidden(c_next)  # (N, H)
    if weight_hr is not None:
        h_next = h_next @ weight_hr.t()  # (N, H_out)
    return h_next, c_next
