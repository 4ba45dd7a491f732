"""A small GPT (decoder-only transformer) for the character-LM benchmark, after nanoGPT's ``model.py`` design.

Pre-norm blocks ``x + Attn(LN(x))`` then ``x + MLP(LN(x))``; causal multi-head self-attention through
``torch.nn.functional.scaled_dot_product_attention``; a GELU MLP four times as wide; learned position
embeddings; the output layer shares its weights with the token embedding; no biases (nanoGPT's
``bias=False``); weights drawn from N(0, 0.02), the residual projections from N(0, 0.02 / sqrt(2 n_layer)).
This is the benchmark's peer, not part of lstmkit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class GPTConfig:
    vocab_size: int
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.dropout = config.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, c = x.shape  # (N, T, C)
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = (z.view(n, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))  # (N, h, T, C/h)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(n, t, c))  # (N, T, C)


class Block(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd, bias=False)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.n_embd, bias=False)
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=False)
        self.out = nn.Linear(4 * config.n_embd, config.n_embd, bias=False)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x)))
        return x + self.drop(self.out(F.gelu(self.fc(self.ln2(x)))))


class GPT(nn.Module):
    """Token ids (N, T) with T <= block_size -> next-token logits (N, T, vocab_size)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.tokens = nn.Embedding(config.vocab_size, config.n_embd)
        self.positions = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, bias=False)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.head.weight = self.tokens.weight  # weight tying
        self.apply(self._init)
        for name, p in self.named_parameters():
            if name.endswith(("attn.proj.weight", ".out.weight")):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, 0.0, 0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        if t > self.config.block_size:
            raise ValueError(f"GPT: expected at most {self.config.block_size} tokens, got {t}")
        x = self.drop(self.tokens(ids) + self.positions(torch.arange(t, device=ids.device)))  # (N, T, C)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))  # (N, T, V)

    def optimizer(self, lr: float, weight_decay: float, betas: tuple[float, float]) -> torch.optim.AdamW:
        """AdamW with weight decay on the matrices (2-D parameters) only, as nanoGPT configures it."""
        params = [p for p in self.parameters() if p.requires_grad]
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                  {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=betas)


def nanogpt_lr(iteration: int, lr: float = 1e-3, min_lr: float = 1e-4, warmup: int = 100,
               decay_iters: int = 2000) -> float:
    """nanoGPT's schedule: linear warm-up for ``warmup`` iterations, then cosine decay to ``min_lr``."""
    if iteration < warmup:
        return lr * (iteration + 1) / (warmup + 1)
    if iteration > decay_iters:
        return min_lr
    ratio = (iteration - warmup) / (decay_iters - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)
