"""The LSTM engine: one-step cells, the time loop over them, and PyTorch's fused kernel behind one module.

``LSTM`` is a drop-in for ``torch.nn.LSTM`` (same parameters, inputs and outputs) that adds configurable
activations and a ``lengths`` argument. ``lstm_cell`` is the reference time step every path is tested
against; ``ACTIVATIONS`` is the registry of activation names.
"""

from .activations import ACTIVATIONS, get_activation
from .cell import CellActivations, lstm_cell
from .lstm import LSTM

__all__ = ["ACTIVATIONS", "CellActivations", "LSTM", "get_activation", "lstm_cell"]
