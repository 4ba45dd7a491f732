r"""Token models: an embedding table in front of an LSTM, for text classification, tagging and char LMs.

All three read token ids as ``x`` of shape (N, L, 1) (float ids, as ``ArrayDataset`` holds them; the
embedding reads them back as integers) or (N, L) integers, with ``lengths`` for padded batches, and need
``[model] vocab_size`` (a text data source sets it during ``lstmkit train``).

- ``text-classifier``: ``AttentionTextClassifier``, the Att-BLSTM of Zhou et al. (2016).
- ``tagger``: ``TokenTagger``, embeddings + (Bi)LSTM + a linear layer at every step.
- ``char-lm``: ``TokenTagger`` with a unidirectional LSTM predicting the next token, with ``step`` for
  sampling (see ``lstmkit.text.generate``).
"""

from __future__ import annotations

import torch
from torch import nn

from lstmkit.config import ModelConfig
from lstmkit.errors import ConfigError, ShapeError
from lstmkit.models import sequence_objectives  # noqa: F401  (registers the per-step objectives)
from lstmkit.models.classifier import lstm_options
from lstmkit.models.registry import InputSpec, register_model
from lstmkit.nn import LSTM, AttentionPooling

__all__ = ["TokenEmbedding", "AttentionTextClassifier", "TokenTagger"]


class TokenEmbedding(nn.Module):
    """Token ids to vectors: ``(N, L, 1)`` float ids or ``(N, L)`` integer ids -> ``(N, L, E)``.

    Id 0 is ``<pad>``; its vector is zero and gets no gradient (``padding_idx=0``).
    """

    def __init__(self, vocab_size: int, embedding_size: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, embedding_size, padding_idx=0)
        self.dropout = nn.Dropout(dropout)

    def ids(self, x: torch.Tensor, owner: str) -> torch.Tensor:
        """``x`` as int64 ids ``(N, L)``, checked to be whole numbers in 0..vocab_size - 1."""
        if x.dim() == 3 and x.shape[-1] == 1:
            x = x[..., 0]  # (N, L)
        if x.dim() not in (1, 2):
            raise ShapeError(f"{owner}: expected token ids of shape (N, L, 1) or (N, L), got {tuple(x.shape)}")
        if x.is_floating_point():
            ids = x.round().long()
            if not torch.equal(ids.to(x.dtype), x):
                raise ShapeError(f"{owner}: expected whole-number token ids, got values such as "
                                 f"{float(x[ids.to(x.dtype) != x][0]):g} (set [data] normalize = false for text)")
        else:
            ids = x.long()
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.vocab_size):
            raise ShapeError(f"{owner}: expected token ids in 0..{self.vocab_size - 1} ([model] vocab_size "
                             f"{self.vocab_size}), got {int(ids.min())}..{int(ids.max())}")
        return ids

    def forward(self, x: torch.Tensor, owner: str = "TokenEmbedding") -> torch.Tensor:
        return self.dropout(self.embedding(self.ids(x, owner)))  # (N, L, E)


def _check_spec(config: ModelConfig, spec: InputSpec) -> int:
    if config.vocab_size < 2:
        raise ConfigError(
            f"config [model] vocab_size: the task {config.task!r} embeds token ids and needs the vocabulary size "
            f"(<pad> and <unk> included); a text data source sets it in `lstmkit train`, the Python API needs "
            f"it set (e.g. overrides=['model.vocab_size=V']); got {config.vocab_size}")
    if spec.input_size != 1:
        raise ConfigError(f"config [model] task {config.task!r}: expected token ids, one feature per step "
                          f"(x of shape (N, L, 1)), got data with {spec.input_size} features per step")
    if config.proj_size >= config.hidden_size:
        raise ConfigError(f"config [model] proj_size: expected less than hidden_size ({config.hidden_size}), "
                          f"got {config.proj_size}")
    return config.vocab_size


def _lstm(config: ModelConfig) -> tuple[LSTM, int]:
    """The ``[model]`` LSTM over embeddings, and the width of its merged outputs."""
    lstm = LSTM.from_options(lstm_options(config, config.embedding_size))
    directions = 2 if config.bidirectional and config.merge_mode == "concat" else 1
    return lstm, directions * (config.proj_size or config.hidden_size)


class AttentionTextClassifier(nn.Module):
    r"""Att-BLSTM (Zhou et al., 2016): embeddings, a bidirectional LSTM, attention pooling, a linear layer.

    For a text of tokens :math:`w_1 \dots w_L` with embeddings :math:`e_t`:

    .. math::
        \begin{array}{ll}
            H = [h_1, \dots, h_L], \quad h_t = \overrightarrow{h_t} + \overleftarrow{h_t} \\
            M = \tanh(H) \\
            \alpha = \operatorname{softmax}(w^\top M) \\
            r = H \alpha^\top \\
            h^* = \tanh(r) \\
            \hat{y} = \operatorname{softmax}(W h^* + b)
        \end{array}

    where :math:`\overrightarrow{h_t}` and :math:`\overleftarrow{h_t}` are the forward and backward LSTM
    outputs at step t (``[model] bidirectional = true, merge_mode = "sum"`` gives the paper's element-wise
    sum; ``"concat"`` doubles the width instead). Padded steps get :math:`\alpha_t = 0`
    (``lstmkit.nn.AttentionPooling`` with ``lengths``), and the LSTM stops at each text's length, so a
    text's logits do not depend on how much padding its batch has. The softmax is folded into the loss.
    Dropout: ``embedding_dropout`` on :math:`e_t`, ``head_dropout`` on :math:`h^*`.

    Shapes: ``forward(x (N, L, 1) float ids or (N, L) ids, lengths (N,)) -> logits (N, C)``.

    Example::

        >>> cfg = ModelConfig(task="text-classifier", vocab_size=50, embedding_size=8, hidden_size=6,
        ...                   bidirectional=True, merge_mode="sum")
        >>> model = AttentionTextClassifier(cfg, InputSpec(input_size=1, num_outputs=2))
        >>> model(torch.randint(1, 50, (3, 7, 1)).float(), lengths=torch.tensor([7, 4, 2])).shape
        torch.Size([3, 2])
    """

    def __init__(self, config: ModelConfig, spec: InputSpec) -> None:
        super().__init__()
        vocab_size = _check_spec(config, spec)
        self.embedding = TokenEmbedding(vocab_size, config.embedding_size, config.embedding_dropout)
        self.lstm, width = _lstm(config)
        self.attention = AttentionPooling(width)
        self.dropout = nn.Dropout(config.head_dropout)
        self.head = nn.Linear(width, spec.num_outputs)

    def attend(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(h*, alpha)``: the pooled representation (N, D * H_out) and the attention weights (N, L)."""
        embedded = self.embedding(x, "AttentionTextClassifier")  # (N, L, E)
        output, _ = self.lstm(embedded, lengths=lengths)  # (N, L, D * H_out)
        pooled, weights = self.attention(output, lengths=lengths)  # (N, D * H_out), (N, L)
        return torch.tanh(pooled), weights

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        representation, _ = self.attend(x, lengths)
        return self.head(self.dropout(representation))  # (N, C)


class TokenTagger(nn.Module):
    r"""Embeddings, an LSTM stack and a linear layer at every step: one label (or next token) per token.

    .. math::
        z_t = W h_t + b, \qquad h_t = \mathrm{LSTM}(e_1 \dots e_L)_t

    With a bidirectional LSTM :math:`h_t` sees the whole sentence (tagging); a unidirectional one sees
    :math:`e_1 \dots e_t` only, which makes it a language model that can ``step`` one token at a time.

    Shapes: ``forward(x (N, L, 1) float ids or (N, L) ids, lengths (N,)) -> logits (N, L, C)``; steps past
    a sequence's length hold the head applied to the LSTM's zeros there, which the loss ignores.
    """

    def __init__(self, config: ModelConfig, spec: InputSpec) -> None:
        super().__init__()
        vocab_size = _check_spec(config, spec)
        self.embedding = TokenEmbedding(vocab_size, config.embedding_size, config.embedding_dropout)
        self.lstm, width = _lstm(config)
        self.dropout = nn.Dropout(config.head_dropout)
        self.head = nn.Linear(width, spec.num_outputs)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        embedded = self.embedding(x, "TokenTagger")  # (N, L, E)
        output, _ = self.lstm(embedded, lengths=lengths)  # (N, L, D * H_out)
        return self.head(self.dropout(output))  # (N, L, C)

    def step(self, ids: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
             ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """One token per sequence, ``ids (N,)`` -> logits for the next token ``(N, C)`` and the new state.

        ``state`` is what the previous call returned, or None at the start. In evaluation mode the logits
        after step t equal ``forward(x[:, : t + 1])[:, t]``. Needs a unidirectional LSTM.
        """
        if self.lstm.bidirectional:
            raise ValueError("TokenTagger.step: expected a unidirectional LSTM, got bidirectional=True")
        embedded = self.embedding(ids.reshape(-1, 1), "TokenTagger.step")[:, 0]  # (N, E)
        h_t, state = self.lstm.step(embedded, state)  # (N, H_out)
        return self.head(self.dropout(h_t)), state


@register_model("text-classifier", default_loss="cross_entropy")
def build_text_classifier(config: ModelConfig, spec: InputSpec) -> nn.Module:
    """Att-BLSTM text classification; see ``AttentionTextClassifier``."""
    return AttentionTextClassifier(config, spec)


@register_model("tagger", default_loss="step_cross_entropy")
def build_tagger(config: ModelConfig, spec: InputSpec) -> nn.Module:
    """Sequence tagging, one label per token; see ``TokenTagger``."""
    return TokenTagger(config, spec)


@register_model("char-lm", default_loss="lm_cross_entropy")
def build_char_lm(config: ModelConfig, spec: InputSpec) -> nn.Module:
    """A next-token language model (characters with the ``char-lm`` source); see ``TokenTagger``."""
    if config.bidirectional:
        raise ConfigError("config [model] bidirectional: a language model predicts the next token from the "
                          "ones before it; expected false, got true")
    return TokenTagger(config, spec)
