"""Sequence classifier: optional conv + pooling front end, an LSTM stack, a readout and a dense head.

This is the seed workflow's model. With the defaults it is the classic row-reading image classifier::

    x (N, L, F) --> LSTM(hidden_size) --> h at the last step (N, H) --> Linear --> logits (N, C)

The softmax of the seed's ``Dense(10, softmax)`` is folded into the loss (cross-entropy takes logits) and
into ``predict_proba``, which is the numerically stable way to write the same model.
"""

from __future__ import annotations

import dataclasses
import inspect

import torch
from torch import nn

from lstmkit.config import ModelConfig
from lstmkit.errors import ConfigError, ShapeError
from lstmkit.models.registry import InputSpec, register_model
from lstmkit.nn import LSTM, LSTMOptions

__all__ = ["LSTM_KEYS", "ConvFrontEnd", "SequenceClassifier", "build_sequence_model", "dense_head", "lstm_options",
           "merge_final_states"]


def dense_head(config: ModelConfig, width: int, outputs: int) -> nn.Sequential:
    """The dense head on a ``width``-wide representation:
    ``[Dropout(head_dropout)] [Linear(width, head_hidden) -> ReLU] Linear(., outputs)``, the optional layers
    present when their ``[model]`` setting is above 0 (its state-dict keys ``0.weight``, ... follow them)."""
    layers: list[nn.Module] = []
    if config.head_dropout > 0:
        layers.append(nn.Dropout(config.head_dropout))
    if config.head_hidden > 0:
        layers += [nn.Linear(width, config.head_hidden), nn.ReLU()]
        width = config.head_hidden
    layers.append(nn.Linear(width, outputs))
    return nn.Sequential(*layers)


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
        for i, count in enumerate(channels):
            if not 1 <= count <= 2**16:
                raise ConfigError(f"config [model] conv_channels[{i}]: expected a channel count in 1..65536 for "
                                  f"{kind}, got {count}")
        if len(channels) > 64:
            raise ConfigError(f"config [model] conv_channels: expected at most 64 {kind} layers, got {len(channels)}")
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

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, L, F) -> (N, L', F')``. With ``lengths``, the steps past each sequence's end are zeroed
        before every convolution, so a padded batch gives each sequence what it gets alone (where the
        convolution's own zero padding lies past its end)."""
        y = x.transpose(1, 2) if self.kind == "conv1d" else x.unsqueeze(1)  # (N, F, L) or (N, 1, L, F)
        for layer in self.layers:
            if lengths is not None and isinstance(layer, (nn.Conv1d, nn.Conv2d)):
                real = torch.arange(y.shape[2], device=y.device)[None, :] < lengths.to(y.device)[:, None]  # (N, L)
                y = y * real.view(real.shape[0], 1, real.shape[1], *([1] * (y.dim() - 3))).to(y.dtype)
            y = layer(y)
            if lengths is not None and isinstance(layer, (nn.MaxPool1d, nn.MaxPool2d)):
                lengths = torch.div(lengths, self.pool, rounding_mode="floor")
        if self.kind == "conv1d":
            return y.transpose(1, 2)  # (N, L', C)
        n, c, steps, width = y.shape  # (N, C, L', F')
        return y.permute(0, 2, 1, 3).reshape(n, steps, c * width)  # (N, L', C * F')

    def min_length(self) -> int:
        """The fewest input steps that leave at least one step after pooling."""
        return self.pool**self.depth if self.pool > 1 else 1


#: The ``[model]`` keys that are ``lstmkit.nn.LSTM`` options: the keyword arguments of ``LSTMOptions.create``
#: that ``ModelConfig`` has, by the same name (a key added to both is picked up here).
LSTM_KEYS = tuple(
    name for name in inspect.signature(LSTMOptions.create).parameters
    if name in {f.name for f in dataclasses.fields(ModelConfig)}
)


def lstm_options(config: ModelConfig, input_size: int) -> LSTMOptions:
    """The options of the batch-first ``lstmkit.nn.LSTM`` that a ``[model]`` table asks for, over inputs of
    ``input_size`` features; ``dropout`` (between stacked layers) is 0 for one layer.

    Raises:
        ConfigError: an LSTM key is invalid; the message names it as the LSTM does, after ``config [model]``.
    """
    values = {name: getattr(config, name) for name in LSTM_KEYS}
    if config.num_layers == 1:
        values["dropout"] = 0.0  # it acts between stacked layers only; LSTM would warn about it
    try:
        return LSTMOptions.create(input_size, batch_first=True, **values)
    except ValueError as exc:  # the engine names the option; present it as a config problem
        raise ConfigError(f"config [model]: {exc}") from None


def merge_final_states(lstm: LSTM, h_n: torch.Tensor) -> torch.Tensor:
    """The top layer's final hidden state from ``h_n`` (num_layers * D, N, H_out), both directions merged as
    ``lstm`` merges its outputs: (N, D * H_out) for ``concat``, else (N, H_out)."""
    if not lstm.bidirectional:
        return h_n[-1]
    forward, backward = h_n[-2], h_n[-1]
    merge = lstm.variants.merge_mode
    if merge == "sum":
        return forward + backward
    if merge == "mean":
        return (forward + backward) / 2
    return torch.cat([forward, backward], dim=-1)


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
        self.lstm = LSTM.from_options(lstm_options(config, features))
        directions = 2 if config.bidirectional and config.merge_mode == "concat" else 1
        width = directions * (config.proj_size or config.hidden_size)
        self.head = dense_head(config, width, spec.num_outputs)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ShapeError(
                f"SequenceClassifier: expected input of shape (N, L, {self.input_size}), got {tuple(x.shape)}"
            )
        if self.front is not None:
            x = self.front(x, lengths)  # (N, L', F')
            if lengths is not None:
                lengths = self.front.output_lengths(lengths)
        output, (h_n, _) = self.lstm(x, lengths=lengths)  # output (N, L, D * H_out)
        if self.readout == "last":
            summary = merge_final_states(self.lstm, h_n)  # (N, D * H_out), or (N, H_out) for sum/mean merges
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

    def min_length(self) -> int:
        """The fewest steps a sequence needs: those the conv front end's pooling takes, else 1."""
        return self.front.min_length() if self.front is not None else 1

    # ----------------------------------------------------------------------------------------------------
    # Streaming: the output after every step, from the top layer's h_t through the head

    def streaming_unsupported_reason(self) -> str | None:
        """Why this model cannot stream step by step, or None when it can.

        Streaming needs each step's output to depend on the steps so far only, and to equal what the
        whole-sequence ``forward`` gives for that prefix: a unidirectional LSTM, no conv front end (its
        kernels and pooling look ahead) and ``readout = "last"``.
        """
        reasons = []
        if self.lstm.bidirectional:
            reasons.append("it is bidirectional (the reverse direction needs the whole sequence)")
        if self.front is not None:
            reasons.append("it has a conv front end (its kernels and pooling look ahead in time)")
        if self.readout != "last":
            reasons.append(f'its readout is "{self.readout}" (streaming gives the "last" readout of each prefix)')
        return "; ".join(reasons) or None

    def initial_state(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero states ``(h, c)`` of shapes (num_layers, N, H_out) and (num_layers, N, H) for ``step``."""
        weight = self.lstm.weight_ih_l0
        h = torch.zeros(self.lstm.num_layers, batch_size, self.lstm.output_size, dtype=weight.dtype, device=weight.device)
        c = torch.zeros(self.lstm.num_layers, batch_size, self.lstm.hidden_size, dtype=weight.dtype, device=weight.device)
        return h, c

    def step(
        self, x_t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Advance by one step: ``x_t (N, F) -> logits (N, C)`` of the sequence so far, and the new state.

        ``state`` is what the previous call returned, or None (zeros) at the start of a stream. In
        evaluation mode the logits after step t equal ``forward(x[:, : t + 1])``.

        Raises:
            ValueError: the model cannot stream (see ``streaming_unsupported_reason``).
        """
        reason = self.streaming_unsupported_reason()
        if reason is not None:
            raise ValueError(f"SequenceClassifier.step: this model cannot stream: {reason}")
        if x_t.dim() != 2 or x_t.shape[-1] != self.input_size:
            raise ShapeError(f"SequenceClassifier.step: expected x_t of shape (N, {self.input_size}), got {tuple(x_t.shape)}")
        h_t, state = self.lstm.step(x_t, state)  # (N, H_out)
        return self.head(h_t), state

    def forward_steps(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The logits after every step, ``(N, L, F) -> (N, L, C)``: what ``step`` gives, in one call.

        Steps past a sequence's length (``lengths``) hold the head applied to zeros; ignore them.
        """
        reason = self.streaming_unsupported_reason()
        if reason is not None:
            raise ValueError(f"SequenceClassifier.forward_steps: this model cannot stream: {reason}")
        output, _ = self.lstm(x, lengths=lengths)  # (N, L, H_out)
        return self.head(output)  # (N, L, C)


def build_sequence_model(config: ModelConfig, spec: InputSpec) -> nn.Module:
    """The network ``[model] architecture`` names: ``SequenceClassifier`` for ``lstm``, else an LSTM-FCN
    (``lstmkit.models.lstm_fcn``)."""
    if config.architecture == "lstm":
        return SequenceClassifier(config, spec)
    from lstmkit.models.lstm_fcn import LSTMFCN

    return LSTMFCN(config, spec)


@register_model("classifier", default_loss="cross_entropy")
def build_classifier(config: ModelConfig, spec: InputSpec) -> nn.Module:
    return build_sequence_model(config, spec)


@register_model("regressor", default_loss="mse")
def build_regressor(config: ModelConfig, spec: InputSpec) -> nn.Module:
    """The classifier's network with ``num_outputs`` real-valued outputs (no softmax is ever applied)."""
    return build_sequence_model(config, spec)
