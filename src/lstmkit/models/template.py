"""Template: how to add a task model to the registry.

Copy this file, rename the model, and import your module before building (for example from your own
script). Registered models are chosen with ``[model] task = "mean-pool-linear"`` in a config::

    import lstmkit.models.template  # registers "mean-pool-linear"
    from lstmkit.config import ModelConfig
    from lstmkit.models import InputSpec, build_model

    model = build_model(ModelConfig(task="mean-pool-linear"), InputSpec(input_size=8, num_outputs=10))
    logits = model(torch.randn(4, 8, 8))     # (N, num_outputs)
"""

from __future__ import annotations

import torch
from torch import nn

from lstmkit.config import ModelConfig
from lstmkit.models.registry import InputSpec, register_model


class MeanPoolLinear(nn.Module):
    """A deliberately tiny baseline: average the steps, then one linear layer."""

    def __init__(self, input_size: int, num_outputs: int) -> None:
        super().__init__()
        self.linear = nn.Linear(input_size, num_outputs)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if lengths is None:
            return self.linear(x.mean(dim=1))  # (N, num_outputs)
        steps = torch.arange(x.shape[1], device=x.device)
        mask = (steps[None, :] < lengths.to(x.device)[:, None]).unsqueeze(-1)  # (N, L, 1)
        mean = (x * mask).sum(dim=1) / lengths.to(x.device, x.dtype)[:, None]
        return self.linear(mean)


@register_model("mean-pool-linear")
def build(config: ModelConfig, spec: InputSpec) -> nn.Module:
    return MeanPoolLinear(spec.input_size, spec.num_outputs)
