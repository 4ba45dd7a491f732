r"""One LSTM time step in plain PyTorch: the reference every faster path is tested against.

``lstm_cell`` runs in four stages: gate pre-activations, gate activations, cell update, output. A cell
variant (peepholes, layer norm, zoneout, recurrent dropout, coupled input-forget gate, cell clipping)
belongs to one stage and joins as a keyword-only option of ``lstm_cell`` that is off by default.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch import Tensor
from torch.nn import functional as F

from .activations import Activation
from .variants import LAYER_NORM_EPS


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


class CellStep(NamedTuple):
    """What one step of :func:`lstm_cell` computed, as its ``record`` hook receives it.

    Attributes:
        input_gate, forget_gate, candidate, output_gate: :math:`i_t, f_t, g_t, o_t`, each (N, H); with
            ``coupled_gates`` the forget gate is :math:`1 - i_t`.
        cell: the new cell state :math:`c_t` (N, H), after clipping and zoneout: the one carried on.
        hidden: the new hidden state :math:`h_t` (N, H_out), after projection and zoneout.
    """

    input_gate: Tensor
    forget_gate: Tensor
    candidate: Tensor
    output_gate: Tensor
    cell: Tensor
    hidden: Tensor


def lstm_cell(
    xw_t: Tensor,
    h: Tensor,
    c: Tensor,
    weight_hh: Tensor,
    bias_hh: Tensor | None = None,
    weight_hr: Tensor | None = None,
    activations: CellActivations = DEFAULT_ACTIVATIONS,
    *,
    weight_peephole: Tensor | None = None,
    coupled_gates: bool = False,
    ln_hh_weight: Tensor | None = None,
    ln_c: tuple[Tensor, Tensor] | None = None,
    cell_clip: float | None = None,
    recurrent_mask: Tensor | None = None,
    zoneout: tuple[Tensor | float, Tensor | float] | None = None,
    record: Callable[[CellStep], None] | None = None,
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

    The variants, each off by default, change one stage (equations in :class:`lstmkit.nn.LSTM`):

    * pre-activations: ``recurrent_mask`` multiplies :math:`h_{t-1}` before :math:`W_{hh}`;
      ``ln_hh_weight`` layer-normalises :math:`W_{hh} h_{t-1}` (then ``xw_t`` must hold the normalised
      input half, :math:`\mathrm{LN}(W_{ih} x_t) + b_{ih}`);
    * gates: ``weight_peephole`` adds :math:`p_i \odot c_{t-1}`, :math:`p_f \odot c_{t-1}` and
      :math:`p_o \odot c_t`; ``coupled_gates`` stacks only i, g, o and sets :math:`f_t = 1 - i_t`;
    * cell update: ``cell_clip`` clamps :math:`c_t` to :math:`[-v, v]`;
    * output: ``ln_c`` layer-normalises :math:`c_t` inside :math:`\tanh` (the carried :math:`c_t` is not
      normalised); ``zoneout`` mixes the new state with the previous one.

    Args:
        xw_t: input projection of this step, :math:`W_{ih} x_t + b_{ih}` (+ :math:`b_{hh}`), shape (N, G*H),
            where G is 4, or 3 with ``coupled_gates``.
        h: previous hidden state :math:`h_{t-1}`, shape (N, H_out), where H_out is ``proj_size`` with a
            projection and H otherwise.
        c: previous cell state :math:`c_{t-1}`, shape (N, H).
        weight_hh: recurrent weights :math:`(W_{hi}|W_{hf}|W_{hg}|W_{ho})`, shape (G*H, H_out).
        bias_hh: recurrent bias :math:`b_{hh}`, shape (G*H,), or ``None`` when folded into ``xw_t`` or absent.
        weight_hr: projection :math:`W_{hr}`, shape (H_out, H), or ``None`` for no projection.
        activations: the gate, cell and hidden activations.
        weight_peephole: diagonal peephole weights, rows :math:`(p_i, p_f, p_o)`, shape (3, H), or with
            ``coupled_gates`` rows :math:`(p_i, p_o)`, shape (2, H); ``None`` for no peepholes.
        coupled_gates: CIFG: the weights stack the gates i, g, o and :math:`f_t = 1 - i_t`.
        ln_hh_weight: gain of the LayerNorm of :math:`W_{hh} h_{t-1}`, shape (G*H,), or ``None``.
        ln_c: ``(gain, bias)`` of the LayerNorm of :math:`c_t` before the hidden activation, each (H,), or
            ``None``.
        cell_clip: clamp :math:`c_t` to ``[-cell_clip, cell_clip]``, or ``None``.
        recurrent_mask: dropout mask (already scaled by :math:`1/(1-p)`) on :math:`h_{t-1}` as an input of
            :math:`W_{hh}`, shape (N, H_out), or ``None``; the carried state is not masked.
        zoneout: ``(z_h, z_c)``: weights, masks of 0 and 1 (training) or probabilities (evaluation), with
            which each unit keeps its previous value: :math:`h_t = z_h h_{t-1} + (1 - z_h) \tilde h_t`,
            likewise for :math:`c_t`; a weight of 0 leaves that state alone. ``None`` for no zoneout.
        record: called once with the step's gates and new states (a :class:`CellStep`), or ``None``
            (see :mod:`lstmkit.nn.record`).

    Returns:
        ``(h_t, c_t)`` of shapes (N, H_out) and (N, H).
    """
    # Stage 1, pre-activations: the input part came in with xw_t, add the recurrent part.
    h_in = h if recurrent_mask is None else h * recurrent_mask  # (N, H_out)
    if ln_hh_weight is None:
        gates = torch.addmm(xw_t, h_in, weight_hh.t())  # (N, G*H)
    else:
        recurrent = F.layer_norm(h_in @ weight_hh.t(), ln_hh_weight.shape, ln_hh_weight, None, LAYER_NORM_EPS)
        gates = xw_t + recurrent  # (N, G*H)
    if bias_hh is not None:
        gates = gates + bias_hh

    # Stage 2, gate activations.
    if coupled_gates:
        pre_i, pre_g, pre_o = gates.chunk(3, dim=1)  # 3 x (N, H)
    else:
        pre_i, pre_f, pre_g, pre_o = gates.chunk(4, dim=1)  # 4 x (N, H)
    if weight_peephole is not None:
        pre_i = pre_i + weight_peephole[0] * c
        if not coupled_gates:
            pre_f = pre_f + weight_peephole[1] * c
    input_gate = activations.gate(pre_i)
    forget_gate = 1 - input_gate if coupled_gates else activations.gate(pre_f)
    candidate = activations.cell(pre_g)

    # Stage 3, cell update.
    c_next = forget_gate * c + input_gate * candidate  # (N, H)
    if cell_clip is not None:
        c_next = c_next.clamp(-cell_clip, cell_clip)

    # Stage 4, output.
    if weight_peephole is not None:
        pre_o = pre_o + weight_peephole[-1] * c_next  # the output gate sees c_t, not c_{t-1}
    output_gate = activations.gate(pre_o)
    c_out = c_next if ln_c is None else F.layer_norm(c_next, ln_c[0].shape, ln_c[0], ln_c[1], LAYER_NORM_EPS)
    h_next = output_gate * activations.hidden(c_out)  # (N, H)
    if weight_hr is not None:
        h_next = h_next @ weight_hr.t()  # (N, H_out)
    if zoneout is not None:
        keep_h, keep_c = zoneout
        if not _is_zero(keep_h):
            h_next = h_next + keep_h * (h - h_next)  # (N, H_out)
        if not _is_zero(keep_c):
            c_next = c_next + keep_c * (c - c_next)  # (N, H)
    if record is not None:
        record(CellStep(input_gate, forget_gate, candidate, output_gate, c_next, h_next))
    return h_next, c_next


def _is_zero(weight: Tensor | float) -> bool:
    return not isinstance(weight, Tensor) and weight == 0
