"""Sequence classifier: optional conv + pooling front end, an LSTM stack, a readout and a dense head.

This is the seed workflow's model. With the defaults it is the classic row-reading image classifier::

    x (N, L, F) --> LSTM(hidden_size) --> h at the last step (N, H) --> Linear --> logits (N, C)

The softmax of the seed's ``Dense(10, softmax)`` is folded into the loss (cross-entropy takes logits) and
into ``predict_proba``, which is the numerically stable way to write the same model.
"""

from __future__ import annotations

import torch
from torch import nn

from lstmkit.config import ModelConfig
from lstmkit.errors import ConfigError, ShapeError
from lstmkit.models.registry import InputSpec, register_model
from lstmkit.nn import LSTM

__all__ = ["SequenceClassifier", "ConvFrontEnd"]


class ConvFrontEnd(nn.Module):
    """Convolution + ReLU + max-pooling layers in front of the LSTM.

    ``conv1d`` convolves along time with the features as channels: ``(N, L, F) -> (N, L / pool^k, C)``.
    ``conv2d`` treats each sample as a one-channel image of ``L`` rows and ``F`` columns and then reads
    the rows of the feature maps as the sequence: ``(N, L, F) -> (N, L / pool^k, C * F / pool^k)``.
    """

    def __init__(self, kind: str, input_size: int, channels: list[int], kernel: int, pool: int) -> None:
        super().__init__()
        if not channels:
            raise ConfigError("config [model] conv_channels: expected at least one channel count when conv is on, got []")
        self.kind, self.pool, self.depth = kind, pool, len(channels)
        conv = nn.Conv1d if kind == "conv1d" else nn.Conv2d
        pooling = nn.MaxPool1d if kind == "conv1d" else nn.MaxPool2d
        layers: list[nn.Module] = []
        in_channels = input_size if kind == "conv1d" else 1
        for out_channels in channels:
            layers += [conv(in_channels, out_channels, kernel, padding=kernel // 2), nn.ReLU()]
            if pool > 1:
                layers.append(pooling(pool))
            in_channels = out_channels
        self.layers = nn.Sequential(*layers)
        self.out_channels = in_channels
        self.input_size = input_size

    def output_size(self) -> int:
        """Features per step after the front end."""
        if self.kind == "conv1d":
            return self.out_channels
        width = self.input_size
        for _ in range(self.depth):
            width //= self.pool
        return self.out_channels * width

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Sequence lengths after pooling (at least 1, so no sequence vanishes)."""
        for _ in range(self.depth):
            lengths = torch.div(lengths, self.pool, rounding_mode="floor")
        return lengths.clamp(min=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "conv1d":
            y = self.layers(x.transpose(1, 2))  # (N, C, L')
            return y.transpose(1, 2)  # (N, L', C)
        y = self.layers(x.unsqueeze(1))  # (N, C, L', F')
        n, c, steps, width = y.shape
        return y.permute(0, 2, 1, 3).reshape(n, steps, c * width)  # (N, L', C * F')


class SequenceClassifier(nn.Module):
    """Classify whole sequences: ``forward(x (N, L, F), lengths=None) -> logits (N, C)``.

    Args:
        config: the ``[model]`` table.
        spec: the data's features per step, classes, and (for ``conv2d``) fixed length.
    """

    def __init__(self, config: ModelConfig, spec: InputSpec) -> None:
        super().__init__()
        self.input_size = spec.input_size
        self.readout = config.readout
        self.front: ConvFrontEnd | None = None
        features = spec.input_size
        if config.conv != "none":
            self.front = ConvFrontEnd(config.conv, spec.input_size, config.conv_channels, config.conv_kernel, config.pool)
            features = self.front.output_size()
            if features < 1:
                raise ConfigError(
                    f"config [model] pool: {config.pool} pooling over {len(config.conv_channels)} conv2d layers "
                    f"leaves no columns of the {spec.input_size}-wide input"
                )
        if config.proj_size >= config.hidden_size:
            raise ConfigError(
                f"config [model] proj_size: expected less than hidden_size ({config.hidden_size}), got {config.proj_size}"
            )
        self.lstm = LSTM(
            features,
            config.hidden_size,
            num_layers=config.num_layers,
            batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            bidirectional=config.bidirectional,
            proj_size=config.proj_size,
            gate_activation=config.gate_activation,
            cell_activation=config.cell_activation,
            hidden_activation=config.hidden_activation,
            forget_bias=config.forget_bias,
            init=config.init,
        )
        directions = 2 if config.bidirectional else 1
        width = directions * (config.proj_size or config.hidden_size)
        head: list[nn.Module] = []
        if config.head_dropout > 0:
            head.append(nn.Dropout(config.head_dropout))
        if config.head_hidden > 0:
            head += [nn.Linear(width, config.head_hidden), nn.ReLU()]
            width = config.head_hidden
        head.append(nn.Linear(width, spec.num_outputs))
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ShapeError(
                f"SequenceClassifier: expected input of shape (N, L, {self.input_size}), got {tuple(x.shape)}"
            )
        if self.front is not None:
            x = self.front(x)  # (N, L', F')
            if lengths is not None:
                lengths = self.front.output_lengths(lengths)
        output, (h_n, _) = self.lstm(x, lengths=lengths)  # output (N, L, D * H_out)
        if self.readout == "last":
            directions = 2 if self.lstm.bidirectional else 1
            summary = torch.cat(list(h_n[-directions:]), dim=-1)  # (N, D * H_out)
        else:
            steps = torch.arange(output.shape[1], device=output.device)
            if lengths is None:
                mask = torch.ones(output.shape[:2], dtype=torch.bool, device=output.device)
            else:
                mask = steps[None, :] < lengths.to(output.device)[:, None]  # (N, L)
            mask = mask.unsqueeze(-1)  # (N, L, 1)
            if self.readout == "mean":
                summary = (output * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
            else:
                summary = output.masked_fill(~mask, float("-inf")).amax(dim=1)
        return self.head(summary)  # (N, C)


@register_model("classifier")
def build_classifier(config: ModelConfig, spec: InputSpec) -> nn.Module:
    return SequenceClassifier(config, spec)
