"""The LSTM engine: one-step cells, the time loop over them, and the fast paths behind one module.

``LSTM`` is a drop-in for ``torch.nn.LSTM`` (same parameters, inputs and outputs) that adds configurable
activations, variants (peepholes, coupled gates, layer norm, zoneout, recurrent dropout, weight drop, cell
clipping, residual stacking, merge modes), a ``lengths`` argument, and ``step`` and ``stream`` (an
``LSTMStream``) for streaming. ``LSTMOptions`` is its options as one validated object (``LSTM.from_options``),
``LSTM.structure`` (an ``LSTMStructure``) what it is made of, and ``lstmkit.nn.backend.choose_backend`` which
implementation runs a call, and why. It runs PyTorch's fused kernel for the vanilla LSTM and the C++ kernel of
``lstmkit.nn.fast`` (compiled on first use) for the variants. ``lstm_cell`` is the reference time step every
path is tested against; ``ACTIVATIONS`` is the registry of activation
names. ``from_torch``, ``to_torch``, ``from_keras_weights`` and ``to_keras_weights`` convert to and from
PyTorch's and Keras' LSTMs. Beside it: ``AttentionPooling`` (Att-BLSTM), ``SequenceAttention`` (Bahdanau's and
Luong's encoder-decoder attention), ``ConvLSTM`` for frame sequences and ``sLSTM`` from xLSTM.
``record_gates`` records every gate and state of the LSTMs in a model while a block runs (``lstmkit.nn.record``).
"""

from .activations import ACTIVATIONS, get_activation
from .attention import AttentionPooling, SequenceAttention
from .cell import CellActivations, lstm_cell
from .convert import KerasWeights, from_keras_weights, from_torch, to_keras_weights, to_torch
from .convlstm import ConvLSTM, ConvLSTMCell
from .lstm import LSTM
from .options import LSTMOptions, LSTMStructure
from .record import GateTrace, Recording, record_gates
from .slstm import SLSTMState, slstm_cell, sLSTM
from .stream import LSTMStream

__all__ = [
    "ACTIVATIONS",
    "AttentionPooling",
    "CellActivations",
    "GateTrace",
    "ConvLSTM",
    "ConvLSTMCell",
    "KerasWeights",
    "LSTM",
    "LSTMOptions",
    "LSTMStream",
    "LSTMStructure",
    "Recording",
    "SLSTMState",
    "SequenceAttention",
    "from_keras_weights",
    "from_torch",
    "get_activation",
    "lstm_cell",
    "record_gates",
    "sLSTM",
    "slstm_cell",
    "to_keras_weights",
    "to_torch",
]
