r"""Record what an LSTM computes inside: its gates and states at every step, per layer and direction.

Recording costs nothing unless asked for. Inside ``with record_gates(model) as recording:``, every
:class:`lstmkit.nn.LSTM` in ``model`` runs its reference cell loop (:func:`lstmkit.nn.lstm_cell`), which hands
each step's input gate :math:`i_t`, forget gate :math:`f_t`, candidate :math:`g_t`, output gate
:math:`o_t`, cell state :math:`c_t` and hidden state :math:`h_t` to the recording; outside, the modules run
their fused or fast paths as before. The reference loop computes the same function as those paths
(``tests/nn`` proves it), so what is recorded is what the model computes, for every variant and activation.

Example::

    >>> import torch
    >>> from lstmkit.nn import LSTM, record_gates
    >>> lstm = LSTM(2, 8, num_layers=2, batch_first=True).eval()
    >>> x = torch.randn(4, 30, 2)  # (N, L, H_in)
    >>> with record_gates(lstm) as recording:
    ...     output, _ = lstm(x)
    >>> trace = recording.trace(layer=1)  # the top layer, forward direction
    >>> trace.forget_gate.shape  # (N, L, H)
    torch.Size([4, 30, 8])
    >>> torch.allclose(trace.hidden, output, atol=1e-6)
    True
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from . import layer as _layer
from .cell import CellStep

__all__ = ["GateTrace", "LayerRecord", "Recording", "is_recorded", "record_gates"]

#: The fields of a trace, in the order of :class:`GateTrace`.
TRACE_FIELDS = ("input_gate", "forget_gate", "candidate", "output_gate", "cell", "hidden")


class GateTrace(NamedTuple):
    """One layer and direction of an LSTM over a whole batch, batch first, in input time order.

    For the reverse direction, step ``t`` is what the cell computed when it read input ``t`` (the last
    step it ran, in its own order, is step 0). Past the end of a sequence (``lengths`` or a packed input)
    every value is 0, as the LSTM's output is there.

    Attributes:
        input_gate: :math:`i_t`, shape (N, L, H).
        forget_gate: :math:`f_t` (N, L, H); with ``coupled_gates``, :math:`1 - i_t`.
        candidate: :math:`g_t` (N, L, H).
        output_gate: :math:`o_t` (N, L, H).
        cell: :math:`c_t` (N, L, H), the carried cell state (after ``cell_clip`` and zoneout).
        hidden: :math:`h_t` (N, L, H_out), the layer's output in this direction (after the projection and
            zoneout; before ``residual`` and the merge of directions).
    """

    input_gate: Tensor
    forget_gate: Tensor
    candidate: Tensor
    output_gate: Tensor
    cell: Tensor
    hidden: Tensor


@dataclass
class LayerRecord:
    """One layer and direction of one forward call of one LSTM module.

    Attributes:
        module: the LSTM's qualified name in the recorded model (``""`` when it is the model itself).
        call: the number of the forward call of that module within the recording, from 0.
        layer: the layer, 0 at the bottom.
        direction: 0 forward, 1 reverse.
        trace: the gates and states.
        lengths: each sequence's length (N,), or ``None`` when every sequence has L steps.
    """

    module: str
    call: int
    layer: int
    direction: int
    trace: GateTrace
    lengths: Tensor | None


class Recording:
    """What :func:`record_gates` collected: a :class:`LayerRecord` per module, call, layer and direction.

    Attributes:
        records: every record, in the order they were computed.
        modules: the qualified names of the recorded LSTMs (``""`` for the model itself).
    """

    def __init__(self, modules: list[str], detach: bool) -> None:
        self.modules = modules
        self.records: list[LayerRecord] = []
        self._detach = detach
        self._calls: dict[str, int] = {}

    def trace(self, layer: int = 0, direction: int = 0, module: str | None = None, call: int = -1) -> GateTrace:
        """The trace of one layer and direction: of ``module`` (needed when the model holds several
        LSTMs), in its ``call``-th forward call (the last by default).

        Raises:
            KeyError: nothing was recorded for that module, call, layer and direction; the message lists
                what was.
        """
        if module is None:
            if len(self.modules) > 1:
                raise KeyError(f"Recording.trace: the model holds several LSTMs, {self.modules}; pass module=NAME")
            module = self.modules[0]
        calls = self._calls.get(module, 0)
        number = call + calls if call < 0 else call
        for record in self.records:
            if (record.module, record.call, record.layer, record.direction) == (module, number, layer, direction):
                return record.trace
        have = sorted({(r.module, r.call, r.layer, r.direction) for r in self.records})
        raise KeyError(
            f"Recording.trace: expected one of the recorded (module, call, layer, direction) {have}, "
            f"got ({module!r}, {call}, {layer}, {direction})"
        )

    def _run(self, lstm: nn.Module, name: str, x: Tensor, h0: Tensor, c0: Tensor,
            lengths: Tensor | None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """``lstm``'s forward on a time-major input (L, N, H_in), by the reference loop over its
        :attr:`~lstmkit.nn.LSTM.structure`, recording each layer and direction; what ``lstm`` runs instead of
        its fused or fast path while the recording is on (it asks :func:`tap`)."""
        call = self._calls.get(name, 0)
        self._calls[name] = call + 1
        masks = None if lengths is None else _layer.time_masks(lengths, x.size(0))
        num_directions = lstm.options.num_directions
        runs = 0

        def run_and_record(xw, h0, c0, weights, activations, valid=None, *, variants, training):
            nonlocal runs
            layer, direction = divmod(runs, num_directions)  # stack_layers runs layer by layer, forward first
            runs += 1
            steps: list[CellStep] = []
            out, h_n, c_n = _layer.run_direction(
                xw, h0, c0, weights, activations, valid, variants=variants, training=training, record=steps.append
            )
            self.records.append(LayerRecord(name, call, layer, direction, self._trace(steps, direction, masks), lengths))
            return out, h_n, c_n

        structure = lstm.structure
        options = structure.options
        result = _layer.stack_layers(
            x, h0, c0, structure.layers, structure.activations, options.dropout, lstm.training, lengths,
            options.variants, run_and_record,
        )
        assert runs == lstm.options.num_layers * num_directions, "stack_layers ran an unexpected number of directions"
        return result

    def _trace(self, steps: list[CellStep], direction: int, masks: _layer.TimeMasks | None) -> GateTrace:
        values = []
        for field in zip(*steps):
            seq = torch.stack(field)  # (L, N, H), in the order the cell ran
            if self._detach:
                seq = seq.detach()
            if direction == 1:
                seq = _layer._reverse_in_time(seq, masks)  # back to input order
            if masks is not None:
                seq = torch.where(masks.valid, seq, 0.0)
            values.append(seq.transpose(0, 1))  # (N, L, H)
        return GateTrace(*values)


class _Tap:
    """What records one LSTM: the recording and the module's name in it."""

    def __init__(self, recording: Recording, name: str) -> None:
        self.recording, self.name = recording, name

    def run(self, lstm, x, h0, c0, lengths):
        return self.recording._run(lstm, self.name, x, h0, c0, lengths)


# The LSTMs being recorded now, each with its tap; empty outside every ``record_gates`` block.
_TAPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def tap(lstm: nn.Module) -> _Tap | None:
    """What records ``lstm`` now, or ``None``: ``lstmkit.nn.LSTM`` asks at each forward call (outside a
    recording this costs one test of an empty dictionary)."""
    return _TAPS.get(lstm) if _TAPS.data else None  # .data: the plain dict, without WeakKeyDictionary.__len__


def is_recorded(lstm: nn.Module) -> bool:
    """Whether ``lstm`` is being recorded by a :func:`record_gates` block now."""
    return tap(lstm) is not None


class record_gates:  # noqa: N801  (used like a function: ``with record_gates(model) as recording``)
    """Record the gates and states of every :class:`lstmkit.nn.LSTM` in ``model`` while the block runs.

    Args:
        model: an ``LSTM``, or any module holding some (a task model).
        detach: store the values detached from autograd (default); ``False`` keeps the graph, e.g. to
            differentiate a gate with respect to the input.

    Yields a :class:`Recording`. Inside the block the LSTMs run their reference loop (slower, same values);
    :meth:`lstmkit.nn.LSTM.step` and ``LSTMStream`` are not recorded. Blocks do not nest on one module.

    Raises:
        ValueError: ``model`` holds no ``lstmkit.nn.LSTM``, or one of its LSTMs is already being recorded.
    """

    def __init__(self, model: nn.Module, *, detach: bool = True) -> None:
        from .lstm import LSTM

        if not isinstance(model, nn.Module):
            raise ValueError(f"record_gates: expected a torch.nn.Module holding an lstmkit.nn.LSTM, got {type(model).__name__}")
        self._lstms = [(name, m) for name, m in model.named_modules() if isinstance(m, LSTM)]
        if not self._lstms:
            raise ValueError(
                f"record_gates: expected a module that is or holds an lstmkit.nn.LSTM, got {type(model).__name__} "
                "without one (a torch.nn.LSTM cannot be recorded; convert it with lstmkit.nn.from_torch)"
            )
        self.recording = Recording([name for name, _ in self._lstms], detach)

    def __enter__(self) -> Recording:
        busy = [name or type(m).__name__ for name, m in self._lstms if is_recorded(m)]
        if busy:
            raise ValueError(f"record_gates: the LSTM {busy[0]!r} is already being recorded; blocks do not nest")
        for name, lstm in self._lstms:
            _TAPS[lstm] = _Tap(self.recording, name)
        return self.recording

    def __exit__(self, *exc_info) -> None:
        for _, lstm in self._lstms:
            _TAPS.pop(lstm, None)
