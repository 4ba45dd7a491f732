"""The LSTM engine: one-step cells, the time loop over them, and PyTorch's fused kernel behind one module.

``LSTM`` is a drop-in for ``torch.nn.LSTM`` (same parameters, inputs and outputs) that adds configurable
activations, variants (peepholes, coupled gates, layer norm, zoneout, recurrent dropout, weight drop, cell
clipping, residual stacking, merge modes), a ``lengths`` argument and ``step`` for streaming. ``lstm_cell``
is the reference time step every path is tested against; ``ACTIVATIONS`` is the registry of activation
names. ``from_torch``, ``to_torch``, ``from_keras_weights`` and ``to_keras_weights`` convert to and from
PyTorch's and Keras' LSTMs. Beside it: ``AttentionPooling`` (Att-BLSTM), ``ConvLSTM`` for frame sequences
and ``sLSTM`` from xLSTM.
"""

from .activations import ACTIVATIONS, get_activation
from .attention import AttentionPooling
from .cell import CellActivations, lstm_cell
from .convert import KerasWeights, from_keras_weights, from_torch, to_keras_weights, to_torch
from .convlstm import ConvLSTM, ConvLSTMCell
from .lstm import LSTM
from .slstm import SLSTMState, slstm_cell, sLSTM

__all__ = [
    "ACTIVATIONS",
    "AttentionPooling",
    "CellActivations",
    "ConvLSTM",
    "ConvLSTMCell",
    "KerasWeights",
    "LSTM",
    "SLSTMState",
    "from_keras_weights",
    "from_torch",
    "get_activation",
    "lstm_cell",
    "sLSTM",
    "slstm_cell",
    "to_keras_weights",
    "to_torch",
]
