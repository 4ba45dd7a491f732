"""LSTM-FCN and MLSTM-FCN: an LSTM branch over the dimension-shuffled input beside a fully convolutional one.

Karim, Majumdar, Darabi & Chen, "LSTM Fully Convolutional Networks for Time Series Classification", IEEE
Access 6 (2018); Karim, Majumdar, Darabi & Harford, "Multivariate LSTM-FCNs for Time Series
Classification", Neural Networks 116 (2019). For a batch ``x`` of N series of L steps and F variables::

    LSTM branch:  x (N, L, F) --dimension shuffle--> (N, F, T) --LSTM--> h after the F-th step (N, D * H)
                  --> Dropout(shuffle_dropout)
    FCN branch:   x (N, L, F) --> [Conv1d(k_i) -> BatchNorm -> ReLU (-> SE)] x 3 --> mean over time (N, C_3)
    head:         concat (N, D * H + C_3) --> Linear --> logits (N, C)

The dimension shuffle reads each variable's whole series (T values) as one LSTM step, so a univariate
series is a single step of T features; T is ``[model] shuffle_length`` or the data's fixed length L
(shorter series are zero-padded to T, longer ones cut). The convolutions keep the length ("same" padding);
the papers use 128, 256 and 128 filters with kernels 8, 5 and 3 (``fcn_filters``, ``fcn_kernels``).

MLSTM-FCN adds a squeeze-and-excitation block (Hu, Shen & Sun 2018) after each convolution block but the
last. With the block's input ``u`` (N, C, L), reduction ratio r = 16 and the sigmoid σ::

    s = mean_t u[:, :, t]                       (N, C)       squeeze
    a = σ(W_2 ReLU(W_1 s)),  W_1: C/r x C, W_2: C x C/r      excitation (no biases)
    SE(u)[:, c, t] = a[:, c] * u[:, c, t]                     scale

Padded steps of variable-length series are zeroed before every convolution and left out of the means,
so they add nothing but the batch-norm statistics. Neither branch is causal (the LSTM sees the whole series
at its first step, the kernels look ahead), so these models cannot stream step by step.

Example::

    cfg = ModelConfig(architecture="mlstm-fcn", hidden_size=8)
    net = LSTMFCN(cfg, InputSpec(input_size=6, num_outputs=4, sequence_length=100))
    net(torch.randn(2, 100, 6)).shape      # (2, 4)
"""

from __future__ import annotations

import torch
from torch import nn

from lstmkit.config import ModelConfig
from lstmkit.errors import ConfigError, ShapeError
from lstmkit.models.classifier import dense_head, lstm_options, merge_final_states
from lstmkit.models.registry import InputSpec
from lstmkit.nn import LSTM

__all__ = ["LSTMFCN", "SE_REDUCTION", "FCNBranch", "SqueezeExcite"]

SE_REDUCTION = 16
"""The reduction ratio r of the squeeze-and-excitation blocks (the MLSTM-FCN paper's)."""

NOT_STREAMABLE = ("it is an LSTM-FCN: its LSTM reads each variable's whole series as one step (dimension "
                  "shuffle) and its convolutions look ahead in time, so no output depends on the steps so far only")


def _masked_mean(y: torch.Tensor, real: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``y`` (N, C, L) over time, over the real steps ``real`` (N, 1, L) when given: (N, C)."""
    if real is None:
        return y.mean(dim=2)
    return (y * real).sum(dim=2) / real.sum(dim=2).clamp(min=1)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation over the channels of ``(N, C, L)``: ``u * σ(W_2 ReLU(W_1 mean_t u))``."""

    def __init__(self, channels: int, reduction: int = SE_REDUCTION) -> None:
        super().__init__()
        squeezed = max(1, channels // reduction)
        self.reduce = nn.Linear(channels, squeezed, bias=False)
        self.expand = nn.Linear(squeezed, channels, bias=False)

    def forward(self, u: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
        weights = torch.sigmoid(self.expand(torch.relu(self.reduce(_masked_mean(u, real)))))  # (N, C)
        return u * weights.unsqueeze(-1)  # (N, C, L)


class FCNBranch(nn.Module):
    """The fully convolutional branch: ``(N, L, F) -> (N, C_last)``.

    Each block is ``Conv1d(kernel) -> BatchNorm1d -> ReLU`` on the input zero-padded by ``(k - 1) // 2`` steps
    before and ``k // 2`` after (Keras' "same" padding, which keeps the length L), followed by a
    squeeze-and-excitation block when ``squeeze_excite`` and the block is not the last; the last block's
    maps are averaged over the real steps.
    """

    def __init__(self, input_size: int, filters: list[int], kernels: list[int], squeeze_excite: bool) -> None:
        super().__init__()
        if not filters:
            raise ConfigError("config [model] fcn_filters: expected at least one convolution block, got []")
        if len(kernels) != len(filters):
            raise ConfigError(f"config [model] fcn_kernels: expected one kernel size per fcn_filters entry "
                              f"({len(filters)}), got {len(kernels)}")
        for key, values, top in (("fcn_filters", filters, 2**16), ("fcn_kernels", kernels, 1024)):
            for i, value in enumerate(values):
                if not 1 <= value <= top:
                    raise ConfigError(f"config [model] {key}[{i}]: expected an integer in 1..{top}, got {value}")
        if len(filters) > 64:
            raise ConfigError(f"config [model] fcn_filters: expected at most 64 blocks, got {len(filters)}")
        self.convs, self.norms, self.excites = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        channels = input_size
        for i, (out_channels, kernel) in enumerate(zip(filters, kernels)):
            conv = nn.Conv1d(channels, out_channels, kernel)  # padded in forward, as "same" pads an even kernel
            nn.init.kaiming_uniform_(conv.weight, nonlinearity="relu")  # He uniform, as in the papers' code
            nn.init.zeros_(conv.bias)
            self.convs.append(conv)
            self.norms.append(nn.BatchNorm1d(out_channels))
            last = i == len(filters) - 1
            self.excites.append(SqueezeExcite(out_channels) if squeeze_excite and not last else nn.Identity())
            channels = out_channels
        self.output_size = channels

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        y = x.transpose(1, 2)  # (N, F, L)
        real = None
        if lengths is not None:
            steps = torch.arange(y.shape[2], device=y.device)
            real = (steps[None, :] < lengths.to(y.device)[:, None]).unsqueeze(1).to(y.dtype)  # (N, 1, L)
        for conv, norm, excite in zip(self.convs, self.norms, self.excites):
            if real is not None:
                y = y * real  # the padding must not reach the real steps through the kernels
            kernel = conv.kernel_size[0]
            y = nn.functional.pad(y, ((kernel - 1) // 2, kernel // 2))  # "same": the extra zero on the right
            y = torch.relu(norm(conv(y)))  # (N, C_i, L)
            y = excite(y, real) if isinstance(excite, SqueezeExcite) else y
        return _masked_mean(y, real)  # (N, C_last)


class LSTMFCN(nn.Module):
    """LSTM-FCN (``architecture = "lstm-fcn"``) or MLSTM-FCN (``"mlstm-fcn"``): ``(N, L, F) -> (N, C)``.

    The LSTM branch is an ``lstmkit.nn.LSTM`` with the ``[model]`` LSTM options (``hidden_size``,
    ``num_layers``, ``bidirectional``, the variants) over F steps of T features; its final hidden state
    (both directions merged by ``merge_mode``) goes through ``Dropout(shuffle_dropout)``. The head is
    ``[Dropout(head_dropout)] [Linear -> ReLU (head_hidden)] Linear``.

    Args:
        config: the ``[model]`` table.
        spec: the data's variables per step, outputs and fixed length (if any).
    """

    def __init__(self, config: ModelConfig, spec: InputSpec) -> None:
        super().__init__()
        length = config.shuffle_length or spec.sequence_length
        if not length:
            raise ConfigError(f'config [model] shuffle_length: the "{config.architecture}" model reads each '
                              "variable's whole series as one LSTM step, so variable-length data needs the "
                              "length T to pad or cut to; expected a positive integer (such as the longest "
                              "training series), got 0")
        if config.proj_size >= config.hidden_size:
            raise ConfigError(f"config [model] proj_size: expected less than hidden_size ({config.hidden_size}), "
                              f"got {config.proj_size}")
        self.input_size, self.shuffle_length = spec.input_size, int(length)
        self.architecture = config.architecture
        self.lstm = LSTM.from_options(lstm_options(config, self.shuffle_length))
        self.shuffle_dropout = nn.Dropout(config.shuffle_dropout)
        self.fcn = FCNBranch(spec.input_size, config.fcn_filters, config.fcn_kernels,
                             squeeze_excite=config.architecture == "mlstm-fcn")
        directions = 2 if config.bidirectional and config.merge_mode == "concat" else 1
        width = directions * (config.proj_size or config.hidden_size) + self.fcn.output_size
        self.head = dense_head(config, width, spec.num_outputs)

    def _shuffle(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """``(N, L, F) -> (N, F, T)``: each variable's series as one step, zero past its length, padded or cut to T."""
        if lengths is not None:
            steps = torch.arange(x.shape[1], device=x.device)
            x = x * (steps[None, :] < lengths.to(x.device)[:, None]).unsqueeze(-1).to(x.dtype)  # (N, L, F)
        shuffled = x.transpose(1, 2)  # (N, F, L)
        t = self.shuffle_length
        if shuffled.shape[2] >= t:
            return shuffled[:, :, :t]  # (N, F, T)
        return nn.functional.pad(shuffled, (0, t - shuffled.shape[2]))  # (N, F, T)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ShapeError(f"LSTMFCN: expected input of shape (N, L, {self.input_size}), got {tuple(x.shape)}")
        _, (h_n, _) = self.lstm(self._shuffle(x, lengths))  # h_n (num_layers * D, N, H_out)
        memory = self.shuffle_dropout(merge_final_states(self.lstm, h_n))  # (N, D * H_out)
        features = self.fcn(x, lengths)  # (N, C_last)
        return self.head(torch.cat([memory, features], dim=-1))  # (N, C)

    def min_length(self) -> int:
        """The fewest steps a sequence needs: 1 (the convolutions keep the length)."""
        return 1

    def streaming_unsupported_reason(self) -> str:
        """Always a reason: neither branch is causal (see the module docstring)."""
        return NOT_STREAMABLE

    def step(self, x_t: torch.Tensor, state: object = None) -> None:
        """Not possible: raises ``ValueError`` with ``streaming_unsupported_reason``."""
        raise ValueError(f"LSTMFCN.step: this model cannot stream: {NOT_STREAMABLE}")

    def forward_steps(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> None:
        """Not possible: raises ``ValueError`` with ``streaming_unsupported_reason``."""
        raise ValueError(f"LSTMFCN.forward_steps: this model cannot stream: {NOT_STREAMABLE}")
