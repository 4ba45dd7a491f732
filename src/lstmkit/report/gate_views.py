"""What the LSTM units of a model do on given inputs: their gates and states as arrays, and unit rankings.

``gate_views(module, x)`` runs the model once under :func:`lstmkit.nn.record_gates` and returns the
recorded gates and states as NumPy arrays per layer and direction, with the numbers the report shows:

* gate saturation: for each unit, the fraction of steps its gate is below 0.1 (nearly closed) and above
  0.9 (nearly open), as in Karpathy, Johnson & Fei-Fei (2015), "Visualizing and understanding recurrent
  networks";
* units ranked by the Pearson correlation of a quantity (the cell state, its change
  :math:`|c_t - c_{t-1}|`, a gate) with a per-step ``signal`` (N, L), pooled over samples and steps;
* units ranked by the correlation of their final hidden state with each class (one against the rest).

Example, the adding problem (the marker is the signal; a unit that stores the first marked value changes
its cell state at the two marked steps and holds it in between)::

    views = gate_views(model, x, signal=x[..., 1])
    best = views.top_units(by="cell_change", k=1)[0]   # UnitScore(layer, unit, r)
    c = views.layer(best.layer).cell[:, :, best.unit]   # (N, L)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from lstmkit.errors import DataError
from lstmkit.nn.record import TRACE_FIELDS, record_gates

__all__ = ["GateViews", "LayerView", "UnitScore", "gate_views", "QUANTITIES", "SATURATION_LOW", "SATURATION_HIGH"]

SATURATION_LOW, SATURATION_HIGH = 0.1, 0.9

#: What ``top_units`` can rank by: the recorded traces, and ``cell_change``, :math:`|c_t - c_{t-1}|`.
QUANTITIES = (*TRACE_FIELDS, "cell_change")


@dataclass
class LayerView:
    """One layer and direction of one LSTM on the inputs, as NumPy arrays (N, L, H), batch first, in input
    time order; past each sequence's end the values are 0 and ``valid`` is false.

    Attributes:
        module, layer, direction: which LSTM (its name in the model, ``""`` for the model itself), layer
            and direction (0 forward, 1 reverse).
        input_gate, forget_gate, candidate, output_gate, cell, hidden: as :class:`lstmkit.nn.GateTrace`.
        valid: (N, L) booleans, true on each sequence's real steps.
    """

    module: str
    layer: int
    direction: int
    input_gate: np.ndarray
    forget_gate: np.ndarray
    candidate: np.ndarray
    output_gate: np.ndarray
    cell: np.ndarray
    hidden: np.ndarray
    valid: np.ndarray

    @property
    def name(self) -> str:
        """``"layer 0"``, ``"layer 1 reverse"``, prefixed by the module name where it has one."""
        text = f"layer {self.layer}" + (" reverse" if self.direction == 1 else "")
        return f"{self.module} {text}" if self.module else text

    @property
    def hidden_size(self) -> int:
        return self.cell.shape[-1]

    @property
    def cell_change(self) -> np.ndarray:
        """:math:`|c_t - c_{t-1}|` (N, L, H), with :math:`c_{-1} = 0`; for the reverse direction the previous
        step is ``t + 1`` (it runs backward in time)."""
        cell = self.cell if self.direction == 0 else self.cell[:, ::-1]
        change = np.abs(np.diff(cell, axis=1, prepend=0.0))
        change = change if self.direction == 0 else change[:, ::-1]
        return np.where(self.valid[..., None], change, 0.0)

    def quantity(self, name: str) -> np.ndarray:
        """One of :data:`QUANTITIES`, (N, L, H) (``hidden`` is (N, L, H_out))."""
        if name not in QUANTITIES:
            raise DataError(f"gate views: expected a quantity in {', '.join(QUANTITIES)}, got {name!r}")
        return getattr(self, name)

    def final_hidden(self) -> np.ndarray:
        """The hidden state where this direction ends: each sequence's last step (forward) or step 0 (reverse)."""
        if self.direction == 1:
            return self.hidden[:, 0]  # (N, H_out)
        last = self.valid.sum(axis=1) - 1  # (N,)
        return self.hidden[np.arange(len(last)), last]

    def saturation(self, gate: str) -> tuple[np.ndarray, np.ndarray]:
        """For each unit (H,), the fraction of real steps that ``gate`` is below 0.1 and above 0.9."""
        values = self.quantity(gate)
        steps = max(int(self.valid.sum()), 1)
        valid = self.valid[..., None]
        low = ((values < SATURATION_LOW) & valid).sum(axis=(0, 1)) / steps
        high = ((values > SATURATION_HIGH) & valid).sum(axis=(0, 1)) / steps
        return low, high


class UnitScore(NamedTuple):
    """A unit and its correlation ``r`` (signed; units are ranked by ``|r|``)."""

    layer: str
    unit: int
    r: float


@dataclass
class GateViews:
    """The recorded layers of a model on some inputs, and the signal to rank units against."""

    layers: list[LayerView]
    signal: np.ndarray | None = None
    outputs: np.ndarray | None = field(default=None, repr=False)

    def layer(self, name: str) -> LayerView:
        """The layer view called ``name`` (see :attr:`LayerView.name`)."""
        for view in self.layers:
            if view.name == name:
                return view
        raise DataError(f"gate views: expected a layer in {', '.join(v.name for v in self.layers)}, got {name!r}")

    def top_units(self, by: str = "cell_change", k: int = 5, signal: np.ndarray | None = None) -> list[UnitScore]:
        """The ``k`` units of all layers whose ``by`` correlates most (by ``|r|``) with the signal.

        Args:
            by: a quantity of :data:`QUANTITIES`.
            k: how many units.
            signal: (N, L) values per step; the signal given to :func:`gate_views` by default.
        """
        signal = self.signal if signal is None else _check_signal(signal, self.layers[0].valid.shape)
        if signal is None:
            raise DataError("gate views: top_units needs a signal of shape (N, L); got none")
        scores = []
        for view in self.layers:
            r = _correlations(view.quantity(by), signal, view.valid)
            scores += [UnitScore(view.name, unit, float(value)) for unit, value in enumerate(r)]
        return sorted(scores, key=lambda s: -abs(s.r) if np.isfinite(s.r) else 0.0)[:k]

    def units_by_label(self, labels: np.ndarray, label_names: list[str], k: int = 3) -> dict[str, list[UnitScore]]:
        """For each class, the ``k`` units whose final hidden state correlates most with being that class."""
        labels = np.asarray(labels)
        result = {}
        for index, name in enumerate(label_names):
            target = (labels == index).astype(np.float64)  # (N,)
            scores = []
            for view in self.layers:
                final = view.final_hidden()  # (N, H_out)
                r = _correlations(final[:, None, :], target[:, None], np.ones((len(target), 1), dtype=bool))
                scores += [UnitScore(view.name, unit, float(value)) for unit, value in enumerate(r)]
            result[name] = sorted(scores, key=lambda s: -abs(s.r) if np.isfinite(s.r) else 0.0)[:k]
        return result


@torch.no_grad()
def gate_views(module: nn.Module, x: torch.Tensor | np.ndarray, signal: np.ndarray | torch.Tensor | None = None,
               lengths: torch.Tensor | None = None) -> GateViews:
    """Run ``module`` on prepared inputs ``x`` (N, L, F) in evaluation mode and record its LSTMs.

    Args:
        module: a model holding one or more :class:`lstmkit.nn.LSTM` (or an LSTM), called as
            ``module(x)`` (or ``module(x, lengths=lengths)``).
        x: the model's inputs, already preprocessed (a model folder's ``prepare``).
        signal: optional per-step values (N, L) to rank units against (``top_units``); L is the LSTM's
            sequence length, which a pooling front end makes shorter than the input's.
        lengths: optional sequence lengths (N,).

    Raises:
        DataError: ``signal`` has the wrong shape or non-finite values.
    """
    x = torch.as_tensor(x)
    was_training = module.training
    module.eval()
    try:
        with record_gates(module) as recording:
            outputs = module(x) if lengths is None else module(x, lengths=lengths)
    finally:
        module.train(was_training)
    layers = []
    for record in recording.records:
        trace = record.trace
        n, steps = trace.cell.shape[:2]
        if record.lengths is None:
            valid = np.ones((n, steps), dtype=bool)
        else:
            valid = np.arange(steps)[None, :] < record.lengths.cpu().numpy()[:, None]
        arrays = {name: getattr(trace, name).double().cpu().numpy() for name in TRACE_FIELDS}
        layers.append(LayerView(record.module, record.layer, record.direction, valid=valid, **arrays))
    if signal is not None:
        signal = _check_signal(signal, layers[0].valid.shape)
    out = outputs[0] if isinstance(outputs, tuple) else outputs
    return GateViews(layers, signal, out.detach().cpu().numpy() if isinstance(out, torch.Tensor) else None)


def _check_signal(signal, shape: tuple[int, int]) -> np.ndarray:
    array = np.asarray(signal.cpu() if isinstance(signal, torch.Tensor) else signal, dtype=np.float64)
    if array.shape != shape:
        raise DataError(
            f"signal: expected one value per LSTM step and sample, shape (N, L) = {shape}, got {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise DataError("signal: expected finite values, got NaN or infinity")
    return array


def _correlations(values: np.ndarray, signal: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Pearson r of each unit's ``values`` (N, L, H) with ``signal`` (N, L) over the valid steps; NaN where
    either is constant."""
    v = values[valid]  # (S, H)
    s = signal[valid]  # (S,)
    v = v - v.mean(axis=0)
    s = s - s.mean()
    denominator = np.sqrt((v**2).sum(axis=0) * (s**2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 1e-12, (v * s[:, None]).sum(axis=0) / np.where(denominator > 0, denominator, 1), np.nan)
