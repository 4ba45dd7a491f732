r"""The LSTM variants :class:`lstmkit.nn.LSTM` offers as keyword arguments, validated in one place.

Each variant is off by default; with all of them off the module is ``torch.nn.LSTM``. They change one
stage of the cell (:func:`lstmkit.nn.lstm_cell`) or one step of the layer loop
(:func:`lstmkit.nn.layer.reference_lstm`):

================== ============================================================ ===========================
option             what it computes                                             stage
================== ============================================================ ===========================
peephole           gates i, f see :math:`c_{t-1}`, gate o sees :math:`c_t`        cell: gates
coupled_gates      CIFG, :math:`f_t = 1 - i_t` (3 gate blocks, not 4)            cell: gates
layer_norm         LayerNorm of :math:`W_{ih} x_t`, :math:`W_{hh} h_{t-1}`, c_t  cell: pre-activations, output
cell_clip          :math:`c_t \leftarrow \mathrm{clip}(c_t, -v, v)`              cell: cell update
zoneout            units keep their previous value with probability p          cell: after the update
recurrent_dropout  one dropout mask on :math:`h_{t-1}` per sequence             layer: per direction
weight_drop        DropConnect on :math:`W_{hh}`, once per forward              layer: per direction
residual           layer k > 0 adds its input to its output                     layer: stacking
merge_mode         how the two directions are combined: concat, sum or mean     layer: stacking
================== ============================================================ ===========================

The equations are in the docstring of :class:`lstmkit.nn.LSTM`.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields

MERGE_MODES = ("concat", "sum", "mean")

#: The epsilon of every LayerNorm of ``layer_norm=True`` (``torch.nn.LayerNorm``'s default).
LAYER_NORM_EPS = 1e-5


@dataclass(frozen=True)
class Variants:
    """The variant options of one LSTM, already validated; the defaults are the vanilla LSTM.

    ``zoneout`` is always the pair ``(p_h, p_c)`` here, and ``cell_clip`` is ``None`` for no clipping.
    """

    peephole: bool = False
    coupled_gates: bool = False
    layer_norm: bool = False
    recurrent_dropout: float = 0.0
    zoneout: tuple[float, float] = (0.0, 0.0)
    weight_drop: float = 0.0
    cell_clip: float | None = None
    residual: bool = False
    merge_mode: str = "concat"

    @property
    def num_gates(self) -> int:
        """How many gate blocks the weights stack: 3 (i, g, o) with ``coupled_gates``, else 4 (i, f, g, o)."""
        return 3 if self.coupled_gates else 4

    def active(self) -> dict[str, object]:
        """The options that differ from the vanilla LSTM, by name, in declaration order."""
        vanilla = Variants()
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {name: value for name, value in values.items() if value != getattr(vanilla, name)}

    def describe(self) -> str:
        """The active options as keyword arguments, e.g. ``"peephole=True, zoneout=(0.1, 0.1)"``."""
        return ", ".join(f"{name}={value!r}" for name, value in self.active().items())


VANILLA = Variants()


def make_variants(
    *,
    peephole: object = False,
    coupled_gates: object = False,
    layer_norm: object = False,
    recurrent_dropout: object = 0.0,
    zoneout: object = 0.0,
    weight_drop: object = 0.0,
    cell_clip: object = None,
    residual: object = False,
    merge_mode: object = "concat",
    bidirectional: bool = False,
    owner: str = "LSTM",
) -> Variants:
    """Check the variant arguments of ``owner`` and return them as :class:`Variants`.

    Raises:
        ValueError: an argument has the wrong type or is out of range; the message names the argument,
            what it accepts and what it got.
    """
    for name, value in (
        ("peephole", peephole), ("coupled_gates", coupled_gates), ("layer_norm", layer_norm), ("residual", residual)
    ):  # fmt: skip
        if not isinstance(value, bool):
            raise ValueError(f"{owner}: {name}: expected True or False, got {value!r}")
    recurrent_dropout = _probability(owner, "recurrent_dropout", recurrent_dropout)
    weight_drop = _probability(owner, "weight_drop", weight_drop)
    if isinstance(zoneout, (tuple, list)):
        if len(zoneout) != 2:
            raise ValueError(
                f"{owner}: zoneout: expected a probability in [0, 1) or a pair (p_h, p_c) of them, got {zoneout!r}"
            )
        zoneout = (_probability(owner, "zoneout", zoneout[0]), _probability(owner, "zoneout", zoneout[1]))
    else:
        p = _probability(owner, "zoneout", zoneout, pair_allowed=True)
        zoneout = (p, p)
    if cell_clip is not None:
        if isinstance(cell_clip, bool) or not isinstance(cell_clip, numbers.Real) or not cell_clip > 0:
            raise ValueError(f"{owner}: cell_clip: expected None (no clipping) or a number > 0, got {cell_clip!r}")
        cell_clip = float(cell_clip)
    if merge_mode not in MERGE_MODES:
        allowed = ", ".join(map(repr, MERGE_MODES))
        raise ValueError(f"{owner}: merge_mode: expected one of {allowed}, got {merge_mode!r}")
    if merge_mode != "concat" and not bidirectional:
        raise ValueError(
            f"{owner}: merge_mode={merge_mode!r} combines the two directions of a bidirectional LSTM, "
            "but bidirectional=False; use merge_mode='concat' (the default) or bidirectional=True"
        )
    return Variants(
        peephole=peephole,
        coupled_gates=coupled_gates,
        layer_norm=layer_norm,
        recurrent_dropout=recurrent_dropout,
        zoneout=zoneout,
        weight_drop=weight_drop,
        cell_clip=cell_clip,
        residual=residual,
        merge_mode=merge_mode,
    )


def _probability(owner: str, name: str, value: object, pair_allowed: bool = False) -> float:
    """Check that ``value`` is a real number in [0, 1) and return it as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1 or math.isnan(value):
        expected = "a probability in [0, 1) or a pair (p_h, p_c) of them" if pair_allowed else "a probability in [0, 1)"
        raise ValueError(f"{owner}: {name}: expected {expected}, got {value!r}")
    return float(value)
