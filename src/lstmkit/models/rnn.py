"""Plain tanh RNN baselines, ``rnn-classifier`` and ``rnn-regressor``: the contrast to the LSTM.

The same shape as ``SequenceClassifier`` (optional conv front end, recurrent stack, readout, dense head)
with ``torch.nn.RNN`` in place of the LSTM::

    h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)

Under the same ``[model]`` and ``[train]`` settings it is the classic baseline of the long-time-lag
experiments: its gradients through ``W_hh`` vanish or explode over long lags. Of the LSTM options it
uses ``hidden_size``, ``num_layers``, ``dropout``, ``bidirectional``, ``conv*``, ``pool``, ``readout`` and
``head_*``; the LSTM variants (peepholes, layer norm, ..., ``merge_mode``) and ``proj_size`` do not apply and
are refused when set. The LSTM's gate-bias initialisations (``forget_bias``, ``chrono_init``) have no
counterpart here and are ignored, so ``lstmkit longlag RECIPE --rnn`` runs the LSTM's recipe as it is.

Example::

    model = build_model(ModelConfig(task="rnn-regressor", hidden_size=32), InputSpec(input_size=2, num_outputs=1))
    model(torch.randn(4, 100, 2), lengths=torch.tensor([100, 90, 80, 70]))   # (4, 1)
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lstmkit.config import ModelConfig
from lstmkit.errors import ConfigError, ShapeError
from lstmkit.models.classifier import ConvFrontEnd, dense_head, lstm_options
from lstmkit.models.registry import InputSpec, register_model

__all__ = ["RNNClassifier"]


class RNNClassifier(nn.Module):
    """A tanh RNN sequence model: ``forward(x (N, L, F), lengths=None) -> outputs (N, C)``.

    Args:
        config: the ``[model]`` table.
        spec: the data's features per step and number of outputs.
    """

    def __init__(self, config: ModelConfig, spec: InputSpec) -> None:
        super().__init__()
        options = lstm_options(config, spec.input_size)  # the [model] LSTM keys, checked as the LSTM checks them
        lstm_only = {**options.variants.active(), **({"proj_size": options.proj_size} if options.proj_size else {})}
        if lstm_only:
            got = ", ".join(f"{name} = {value!r}" for name, value in lstm_only.items())
            raise ConfigError(f"config [model]: {got}: LSTM options, but task {config.task!r} is a plain tanh RNN; "
                              "unset them")
        self.input_size = spec.input_size
        self.readout = config.readout
        self.front: ConvFrontEnd | None = None
        features = spec.input_size
        if config.conv != "none":
            self.front = ConvFrontEnd(config.conv, spec.input_size, config.conv_channels, config.conv_kernel,
                                      config.pool)
            features = self.front.output_size()
        self.rnn = nn.RNN(features, config.hidden_size, num_layers=config.num_layers, nonlinearity="tanh",
                          batch_first=True, dropout=config.dropout if config.num_layers > 1 else 0.0,
                          bidirectional=config.bidirectional)
        width = (2 if config.bidirectional else 1) * config.hidden_size
        self.head = dense_head(config, width, spec.num_outputs)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ShapeError(f"RNNClassifier: expected input of shape (N, L, {self.input_size}), got {tuple(x.shape)}")
        if self.front is not None:
            x = self.front(x, lengths)  # (N, L', F')
            if lengths is not None:
                lengths = self.front.output_lengths(lengths)
        steps = x.shape[1]
        if lengths is None:
            output, h_n = self.rnn(x)  # output (N, L, D * H)
        else:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            output, h_n = self.rnn(packed)
            output, _ = pad_packed_sequence(output, batch_first=True, total_length=steps)  # (N, L, D * H)
        if self.readout == "last":
            summary = torch.cat([h_n[-2], h_n[-1]], dim=-1) if self.rnn.bidirectional else h_n[-1]  # (N, D * H)
        else:
            if lengths is None:
                mask = torch.ones(output.shape[:2], dtype=torch.bool, device=output.device)
            else:
                mask = torch.arange(steps, device=output.device)[None, :] < lengths.to(output.device)[:, None]
            mask = mask.unsqueeze(-1)  # (N, L, 1)
            if self.readout == "mean":
                summary = (output * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
            else:
                summary = output.masked_fill(~mask, float("-inf")).amax(dim=1)
        return self.head(summary)


@register_model("rnn-classifier", default_loss="cross_entropy")
def build_rnn_classifier(config: ModelConfig, spec: InputSpec) -> nn.Module:
    return RNNClassifier(config, spec)


@register_model("rnn-regressor", default_loss="mse")
def build_rnn_regressor(config: ModelConfig, spec: InputSpec) -> nn.Module:
    """The tanh RNN with ``num_outputs`` real-valued outputs."""
    return RNNClassifier(config, spec)
