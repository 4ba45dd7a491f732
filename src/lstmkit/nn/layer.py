"""The reference LSTM layers: the time loop over :func:`lstm_cell`, directions, lengths and stacking.

Everything here is plain PyTorch and works time-major, on a padded input of shape (L, N, H_in). The
module :class:`lstmkit.nn.LSTM` converts ``batch_first``, unbatched and packed inputs to that form.

The layer owns the variants that act on a whole sequence or on the stack (see :mod:`lstmkit.nn.variants`):
it draws the per-sequence dropout masks (``recurrent_dropout``, ``weight_drop``) and the per-step zoneout
masks, combines the directions (``merge_mode``) and adds residual connections; the cell options are
passed through to :func:`lstm_cell`.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, NamedTuple, Protocol

import torch
from torch import Tensor
from torch.nn import functional as F

from .cell import DEFAULT_ACTIVATIONS, CellActivations, CellStep, lstm_cell
from .variants import LAYER_NORM_EPS, VANILLA, Variants


class LayerWeights(NamedTuple):
    """The parameters of one layer in one direction, as ``torch.nn.LSTM`` names them (without suffix).

    G is 4, or 3 with ``coupled_gates``. The fields after ``weight_hr`` belong to variants and are
    ``None`` when the variant is off.
    """

    weight_ih: Tensor  # (G*H, H_in)
    weight_hh: Tensor  # (G*H, H_out)
    bias_ih: Tensor | None  # (G*H,)
    bias_hh: Tensor | None  # (G*H,)
    weight_hr: Tensor | None  # (H_out, H)
    weight_peephole: Tensor | None = None  # (3, H), or (2, H) with coupled_gates
    ln_ih_weight: Tensor | None = None  # (G*H,)
    ln_hh_weight: Tensor | None = None  # (G*H,)
    ln_c_weight: Tensor | None = None  # (H,)
    ln_c_bias: Tensor | None = None  # (H,)


class TimeMasks(NamedTuple):
    """What variable lengths mean for the time loop.

    Attributes:
        valid: ``valid[t, b]`` is true while step ``t`` is inside sequence ``b``; shape (L, N, 1).
        reverse_index: reverses the first ``lengths[b]`` steps of each sequence ``b`` and leaves its
            padding in place; applying it twice is the identity. Shape (L, N, 1).
    """

    valid: Tensor
    reverse_index: Tensor


def time_masks(lengths: Tensor, seq_len: int) -> TimeMasks:
    """Build the masks for sequences of the given ``lengths`` (N,) padded to ``seq_len`` steps."""
    steps = torch.arange(seq_len, device=lengths.device).unsqueeze(1)  # (L, 1)
    lengths = lengths.unsqueeze(0)  # (1, N)
    valid = steps < lengths  # (L, N)
    reverse_index = torch.where(valid, lengths - 1 - steps, steps)  # (L, N)
    return TimeMasks(valid.unsqueeze(2), reverse_index.unsqueeze(2))


def run_direction(
    xw: Tensor,
    h0: Tensor,
    c0: Tensor,
    weights: LayerWeights,
    activations: CellActivations = DEFAULT_ACTIVATIONS,
    valid: Tensor | None = None,
    *,
    variants: Variants = VANILLA,
    training: bool = False,
    record: Callable[[CellStep], None] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Run one layer forward in time over precomputed input projections.

    Args:
        xw: input projections with both biases folded in, shape (L, N, G*H) (see :func:`input_projection`).
        h0, c0: initial states, shapes (N, H_out) and (N, H).
        weights: the layer's parameters (all but ``weight_ih``, ``bias_ih``, ``bias_hh`` and
            ``ln_ih_weight`` are used here).
        activations: the cell's activations.
        valid: ``None`` when every sequence has L steps, else a bool mask (L, N, 1); past a sequence's
            end its state is held, so the final state is the one of its last real step, whatever the
            dropout or zoneout masks hold there.
        variants: the variant options; the dropout-like ones act only when ``training``.
        training: whether ``recurrent_dropout``, ``weight_drop`` and zoneout masks are drawn (zoneout
            uses its expectation otherwise).
        record: passed to every :func:`lstm_cell` call, which hands it each step's gates and states in
            the order of the loop (see :mod:`lstmkit.nn.record`); ``None`` records nothing.

    Returns:
        ``(outputs, h_n, c_n)``: outputs (L, N, H_out), with the held state (not zero) past each end, and
        the final states (N, H_out), (N, H).
    """
    h, c = h0, c0
    outputs = []
    masks = draw_masks(weights.weight_hh, h0, c0, xw.size(0), variants, training)
    weight_hh = masks.weight_hh
    options = cell_options(weights, variants)
    if masks.recurrent is not None:
        options["recurrent_mask"] = masks.recurrent
    if record is not None:
        options["record"] = record
    zoneouts = _zoneout_weights(masks, variants, training)
    # unbind, not xw[t]: indexing in the loop makes the backward pass quadratic in L.
    if valid is None:
        for xw_t, zoneout_t in zip(xw.unbind(0), zoneouts):
            h, c = lstm_cell(xw_t, h, c, weight_hh, None, weights.weight_hr, activations, zoneout=zoneout_t, **options)
            outputs.append(h)
    else:
        for xw_t, valid_t, zoneout_t in zip(xw.unbind(0), valid.unbind(0), zoneouts):
            h_next, c_next = lstm_cell(
                xw_t, h, c, weight_hh, None, weights.weight_hr, activations, zoneout=zoneout_t, **options
            )
            h = torch.where(valid_t, h_next, h)
            c = torch.where(valid_t, c_next, c)
            outputs.append(h)
    return torch.stack(outputs), h, c


def input_projection(x: Tensor, weights: LayerWeights, fold_bias_hh: bool = True) -> Tensor:
    """The input half of the pre-activations for every time step at once: (L, N, H_in) -> (L, N, G*H).

    ``W_ih x + b_ih + b_hh``, or with ``layer_norm`` ``LN(W_ih x) + b_ih + b_hh``; without
    ``fold_bias_hh`` the ``b_hh`` term is left for the cell to add. Works on one step (N, H_in) too.
    """
    bias = weights.bias_ih
    if bias is not None and fold_bias_hh:
        bias = bias + weights.bias_hh
    if weights.ln_ih_weight is None:
        return F.linear(x, weights.weight_ih, bias)  # (L, N, G*H)
    gain = weights.ln_ih_weight
    xw = F.layer_norm(F.linear(x, weights.weight_ih), gain.shape, gain, None, LAYER_NORM_EPS)  # (L, N, G*H)
    return xw if bias is None else xw + bias


class DropMasks(NamedTuple):
    """The random masks of one layer in one direction for one sequence (:func:`draw_masks`).

    Attributes:
        weight_hh: ``weight_hh`` itself, or with ``weight_drop`` in training a DropConnect'ed copy (G*H, H_out).
        recurrent: ``recurrent_dropout``'s inverted-dropout mask on h_{t-1}, values 0 or 1/(1-p), (N, H_out);
            or ``None``.
        keep_h, keep_c: zoneout's 0/1 masks :math:`d^h_t, d^c_t` for every step, (L, N, H_out) and (L, N, H),
            1 where the unit keeps its previous value; ``None`` when that zoneout is off or not training.
    """

    weight_hh: Tensor
    recurrent: Tensor | None
    keep_h: Tensor | None
    keep_c: Tensor | None


def draw_masks(
    weight_hh: Tensor, h0: Tensor, c0: Tensor, seq_len: int, variants: Variants, training: bool
) -> DropMasks:
    """Draw the masks of the dropout-like variants for one layer and direction over ``seq_len`` steps.

    The one place that draws them, for the reference loop, its one-step form and the fast kernel alike, in
    one order: ``weight_drop``, ``recurrent_dropout``, zoneout on h, zoneout on c, each from PyTorch's
    global RNG. Out of training, or with the variants off, nothing is drawn.

    Args:
        weight_hh: the layer's recurrent weights (G*H, H_out).
        h0, c0: the initial states (N, H_out) and (N, H), which give the masks' shapes, dtype and device.
        seq_len: L, the number of steps that get zoneout masks.
        variants: the variant options.
        training: whether to draw (in evaluation every mask is off; zoneout uses its expectation).
    """
    if not training:
        return DropMasks(weight_hh, None, None, None)
    if variants.weight_drop > 0:
        weight_hh = F.dropout(weight_hh, p=variants.weight_drop, training=True)  # (G*H, H_out)
    recurrent = None
    p = variants.recurrent_dropout
    if p > 0:
        recurrent = torch.empty_like(h0).bernoulli_(1 - p) / (1 - p)  # (N, H_out)
    p_h, p_c = variants.zoneout
    keep_h = h0.new_empty((seq_len, *h0.shape)).bernoulli_(p_h) if p_h > 0 else None  # (L, N, H_out)
    keep_c = c0.new_empty((seq_len, *c0.shape)).bernoulli_(p_c) if p_c > 0 else None  # (L, N, H)
    return DropMasks(weight_hh, recurrent, keep_h, keep_c)


def cell_options(weights: LayerWeights, variants: Variants) -> dict[str, Any]:
    """The keyword arguments of :func:`lstm_cell` that stay the same for every step of one direction."""
    options: dict[str, Any] = {}
    if weights.weight_peephole is not None:
        options["weight_peephole"] = weights.weight_peephole
    if variants.coupled_gates:
        options["coupled_gates"] = True
    if weights.ln_hh_weight is not None:
        options["ln_hh_weight"] = weights.ln_hh_weight
    if weights.ln_c_weight is not None:
        options["ln_c"] = (weights.ln_c_weight, weights.ln_c_bias)
    if variants.cell_clip is not None:
        options["cell_clip"] = variants.cell_clip
    return options


def _zoneout_weights(masks: DropMasks, variants: Variants, training: bool):
    """Per step ``(z_h, z_c)`` for :func:`lstm_cell`: the drawn 0/1 masks in training, probabilities otherwise."""
    p_h, p_c = variants.zoneout
    if p_h == 0 and p_c == 0:
        return itertools.repeat(None)
    if not training:
        return itertools.repeat((p_h, p_c))
    keep_h = masks.keep_h.unbind(0) if masks.keep_h is not None else itertools.repeat(0.0)
    keep_c = masks.keep_c.unbind(0) if masks.keep_c is not None else itertools.repeat(0.0)
    return zip(keep_h, keep_c)


def reference_lstm(
    x: Tensor,
    h0: Tensor,
    c0: Tensor,
    layers: list[list[LayerWeights]],
    activations: CellActivations = DEFAULT_ACTIVATIONS,
    dropout: float = 0.0,
    training: bool = False,
    lengths: Tensor | None = None,
    variants: Variants = VANILLA,
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """A stacked, optionally bidirectional LSTM over a time-major padded batch, each direction run by the
    loop over :func:`lstm_cell` (:func:`run_direction`); arguments and results as :func:`stack_layers`."""
    return stack_layers(x, h0, c0, layers, activations, dropout, training, lengths, variants, run_direction)


class DirectionRunner(Protocol):
    """What :func:`stack_layers` calls to run one layer in one direction: :func:`run_direction`'s signature."""

    def __call__(
        self, xw: Tensor, h0: Tensor, c0: Tensor, weights: LayerWeights, activations: CellActivations,
        valid: Tensor | None = None, *, variants: Variants = VANILLA, training: bool = False,
    ) -> tuple[Tensor, Tensor, Tensor]: ...  # fmt: skip


def stack_layers(
    x: Tensor,
    h0: Tensor,
    c0: Tensor,
    layers: list[list[LayerWeights]],
    activations: CellActivations,
    dropout: float,
    training: bool,
    lengths: Tensor | None,
    variants: Variants,
    run: DirectionRunner,
    project: Callable[[Tensor, LayerWeights], Tensor] | None = None,
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """A stacked, optionally bidirectional LSTM over a time-major padded batch, ``run`` running each
    layer in each direction (the reference loop, or the fast kernel of :mod:`lstmkit.nn.fast`).

    Args:
        x: input, shape (L, N, H_in).
        h0, c0: initial states, shapes (D * num_layers, N, H_out) and (D * num_layers, N, H).
        layers: ``layers[k][d]`` holds the weights of layer ``k`` in direction ``d`` (0 forward, 1 reverse).
        activations: the cell's activations.
        dropout: probability of dropping each output of every layer but the last (training only).
        training: whether dropout (and the dropout-like variants) are active.
        lengths: ``None`` when every sequence has L steps, else the length of each sequence, shape (N,),
            on ``x``'s device, values in 1..L.
        variants: the variant options; ``merge_mode`` and ``residual`` act here, the rest in the loop.
        run: runs one layer in one direction, as :func:`run_direction` does.
        project: computes what ``run`` takes as ``xw`` for all steps; :func:`input_projection` if ``None``.

    Returns:
        ``(output, (h_n, c_n))``: output (L, N, D * H_out), or (L, N, H_out) when ``merge_mode`` is
        ``"sum"`` or ``"mean"``, exactly zero past each sequence's end; h_n (D * num_layers, N, H_out) and
        c_n (D * num_layers, N, H) hold the states of each sequence's last real step (for the reverse
        direction, of its first step).

    Raises:
        ValueError: ``residual`` is on and a layer k > 0 has an input width other than its output width.
    """
    masks = None if lengths is None else time_masks(lengths, x.size(0))
    valid = None if masks is None else masks.valid
    num_directions = len(layers[0])
    h_n, c_n = [], []
    for k, directions in enumerate(layers):
        outputs = []
        for d, weights in enumerate(directions):
            state = k * num_directions + d
            xw = (project or input_projection)(x, weights)  # (L, N, G*H)
            if d == 1:
                xw = _reverse_in_time(xw, masks)
            out, h, c = run(xw, h0[state], c0[state], weights, activations, valid, variants=variants, training=training)
            if d == 1:
                out = _reverse_in_time(out, masks)
            outputs.append(out)
            h_n.append(h)
            c_n.append(c)
        y = merge_directions(outputs, variants.merge_mode)  # (L, N, D * H_out) or (L, N, H_out)
        if variants.residual and k > 0:
            y = add_residual(y, x, k)
        if valid is not None:
            y = torch.where(valid, y, 0.0)
        if dropout > 0 and training and k < len(layers) - 1:
            y = F.dropout(y, p=dropout, training=True)
        x = y
    return x, (torch.stack(h_n), torch.stack(c_n))


def step_lstm(
    x: Tensor,
    h0: Tensor,
    c0: Tensor,
    layers: list[list[LayerWeights]],
    activations: CellActivations = DEFAULT_ACTIVATIONS,
    dropout: float = 0.0,
    training: bool = False,
    variants: Variants = VANILLA,
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """One time step of a stacked unidirectional LSTM: what :func:`reference_lstm` computes at one step.

    Nothing is precomputed or reshaped beyond one matrix product per weight. In training, every call draws
    fresh masks: ``recurrent_dropout`` and ``weight_drop`` then act per step, not per sequence.

    Args:
        x: input of this step, shape (N, H_in).
        h0, c0: states before the step, shapes (num_layers, N, H_out) and (num_layers, N, H).
        layers: ``layers[k][0]`` holds the weights of layer ``k``.
        activations, dropout, training, variants: as for :func:`reference_lstm`.

    Returns:
        ``(h_t, (h_n, c_n))``: the last layer's output (N, H_out) and the states after the step.
    """
    h_n, c_n = [], []
    zoned = variants.zoneout != (0.0, 0.0)
    for k, ((weights,), h_prev, c_prev) in enumerate(zip(layers, h0.unbind(0), c0.unbind(0))):
        xw = input_projection(x, weights, fold_bias_hh=False)  # (N, G*H)
        masks = draw_masks(weights.weight_hh, h_prev, c_prev, 1, variants, training)
        options = cell_options(weights, variants)
        if masks.recurrent is not None:
            options["recurrent_mask"] = masks.recurrent
        if zoned:
            options["zoneout"] = next(iter(_zoneout_weights(masks, variants, training)))
        h, c = lstm_cell(
            xw, h_prev, c_prev, masks.weight_hh, weights.bias_hh, weights.weight_hr, activations, **options
        )
        h_n.append(h)
        c_n.append(c)
        y = add_residual(h, x, k) if variants.residual and k > 0 else h
        if dropout > 0 and training and k < len(layers) - 1:
            y = F.dropout(y, p=dropout, training=True)
        x = y
    return x, (torch.stack(h_n), torch.stack(c_n))


def merge_directions(outputs: list[Tensor], merge_mode: str) -> Tensor:
    """Combine the per-direction outputs (each (L, N, H_out)) of one layer as ``merge_mode`` says."""
    if len(outputs) == 1:
        return outputs[0]
    if merge_mode == "sum":
        return outputs[0] + outputs[1]  # (L, N, H_out)
    if merge_mode == "mean":
        return 0.5 * (outputs[0] + outputs[1])  # (L, N, H_out)
    return torch.cat(outputs, dim=-1)  # (L, N, 2 * H_out)


def add_residual(output: Tensor, layer_input: Tensor, layer: int) -> Tensor:
    """``output + layer_input`` for layer ``layer``; raises ``ValueError`` when their widths differ."""
    if output.size(-1) != layer_input.size(-1):
        raise ValueError(
            f"LSTM: residual: layer {layer} adds its input to its output, which needs equal widths; "
            f"got input width {layer_input.size(-1)} and output width {output.size(-1)}"
        )
    return output + layer_input


def _reverse_in_time(seq: Tensor, masks: TimeMasks | None) -> Tensor:
    """Reverse the real steps of each sequence in ``seq`` (L, N, F); the padding stays where it is."""
    if masks is None:
        return seq.flip(0)
    return seq.gather(0, masks.reverse_index.expand_as(seq))  # (L, N, F)
