r"""``Seq2Seq``: an LSTM encoder-decoder with attention (Bahdanau et al., 2015; Luong et al., 2015).

The encoder (``lstmkit.nn.LSTM``, optionally bidirectional) reads the embedded source tokens; padding is
excluded through ``lengths``, so the encoder's final states are those of each sequence's last real token.
A linear bridge maps them to the decoder's initial states. At each target step :math:`t` the decoder
(``lstmkit.nn.LSTM``, stepped one token at a time) computes

.. math::
    \begin{array}{ll}
        s_t = \mathrm{LSTM}([E y_{t-1}; \tilde h_{t-1}], s_{t-1}) \\
        c_t, \alpha_t = \mathrm{attend}(s_t, [k_1, \dots, k_S]) \\
        \tilde h_t = \tanh(W_c [s_t; c_t]) \\
        p(y_t \mid y_{<t}, x) = \operatorname{softmax}(W_o \tilde h_t)
    \end{array}

with input feeding (Luong et al.): the attentional state :math:`\tilde h_{t-1}` is part of the next input.
The keys :math:`k_s` are the encoder outputs (projected to the decoder's width when the encoder is
bidirectional); ``attend`` is :class:`lstmkit.nn.SequenceAttention` with an additive (Bahdanau), dot or
general (Luong) score, masked over source padding.

Decoding: :meth:`Seq2Seq.forward` with teacher forcing (ratio 1 feeds the true previous token, 0 the
model's own argmax, in between a per-sequence coin flip at each step), :meth:`Seq2Seq.greedy` and
:meth:`Seq2Seq.beam_search`. A beam of 1 is exactly greedy decoding.

Example::

    model = Seq2Seq(source_vocab_size=40, target_vocab_size=14, hidden_size=64, attention="general")
    src = torch.randint(4, 40, (8, 12))                         # (N, S) token ids
    logits, attention = model(src, [12] * 8, tgt_in)            # (N, T, V), (N, T, S)
    tokens, attention = model.greedy(src, [12] * 8, max_length=12)
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from lstmkit.data.tokenizer import BOS, EOS, PAD
from lstmkit.errors import ShapeError
from lstmkit.nn import LSTM, SequenceAttention

__all__ = ["Seq2Seq"]


class Seq2Seq(nn.Module):
    """An attentional LSTM encoder-decoder over token ids (see the module docstring for the equations).

    Args:
        source_vocab_size, target_vocab_size: the sizes V_src and V_tgt of the two vocabularies (ids 0..3 are
            ``<pad>``, ``<bos>``, ``<eos>``, ``<unk>``).
        embedding_size: the width E of the token embeddings. Default: 64
        hidden_size: the width H of every LSTM layer and of the attentional state. Default: 128
        num_layers: stacked layers of the encoder and of the decoder. Default: 1
        bidirectional: whether the encoder reads both ways. Default: ``True``
        attention: ``"additive"``, ``"dot"`` or ``"general"``. Default: ``"general"``
        dropout: dropout on embeddings, between stacked layers and before the output layer. Default: 0

    Shapes: N batch, S source length, T target length.
    """

    def __init__(self, source_vocab_size: int, target_vocab_size: int, embedding_size: int = 64,
                 hidden_size: int = 128, num_layers: int = 1, bidirectional: bool = True,
                 attention: str = "general", dropout: float = 0.0) -> None:
        super().__init__()
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.directions = 2 if bidirectional else 1
        self.target_vocab_size = target_vocab_size
        self.source_embedding = nn.Embedding(source_vocab_size, embedding_size, padding_idx=PAD)
        self.target_embedding = nn.Embedding(target_vocab_size, embedding_size, padding_idx=PAD)
        self.encoder = LSTM(embedding_size, hidden_size, num_layers, batch_first=True, bidirectional=bidirectional,
                            dropout=dropout if num_layers > 1 else 0.0)
        width = self.directions * hidden_size
        self.bridge = nn.Linear(width, 2 * hidden_size)  # encoder final (h, c) of a layer -> decoder's
        self.keys = nn.Linear(width, hidden_size) if bidirectional else nn.Identity()
        self.decoder = LSTM(embedding_size + hidden_size, hidden_size, num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.attention = SequenceAttention(hidden_size, hidden_size, score=attention)
        self.combine = nn.Linear(2 * hidden_size, hidden_size)
        self.output = nn.Linear(hidden_size, target_vocab_size)
        self.dropout = nn.Dropout(dropout)

    # ----------------------------------------------------------------------------------------------------

    def encode(self, src: Tensor, lengths: Tensor | Sequence[int]) -> tuple[Tensor, Tensor, Tensor | None, tuple]:
        """Encode ``src`` (N, S): keys (N, S, H), mask (N, S), projected keys, decoder initial (h_0, c_0)."""
        if src.dim() != 2:
            raise ShapeError(f"Seq2Seq: expected source ids of shape (N, S), got {tuple(src.shape)}")
        lengths = torch.as_tensor(lengths, dtype=torch.int64).cpu()
        if lengths.shape != (src.size(0),):
            raise ShapeError(f"Seq2Seq: expected {src.size(0)} source lengths, got shape {tuple(lengths.shape)}")
        embedded = self.dropout(self.source_embedding(src))  # (N, S, E)
        outputs, (h_n, c_n) = self.encoder(embedded, lengths=lengths)  # (N, S, D*H), 2 x (L*D, N, H)
        keys = self.keys(outputs)  # (N, S, H)
        mask = torch.arange(src.size(1)).unsqueeze(0) < lengths.unsqueeze(1)  # (N, S)
        mask = mask.to(src.device)

        def per_layer(state: Tensor) -> Tensor:  # (L*D, N, H) -> (L, N, D*H)
            return state.view(self.num_layers, self.directions, *state.shape[1:]).permute(0, 2, 1, 3).flatten(2)

        bridged = self.bridge(torch.cat([per_layer(h_n), per_layer(c_n)], dim=0))  # (2L, N, 2H)
        h0 = torch.tanh(bridged[: self.num_layers, :, : self.hidden_size]).contiguous()  # (L, N, H)
        c0 = bridged[self.num_layers:, :, self.hidden_size:].contiguous()  # (L, N, H)
        return keys, mask, self.attention.project_keys(keys), (h0, c0)

    def step(self, tokens: Tensor, feed: Tensor, state: tuple[Tensor, Tensor], keys: Tensor, mask: Tensor,
             projected: Tensor | None) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor], Tensor]:
        """One decoder step from the previous tokens (N,): logits (N, V), the attentional state (N, H), the
        LSTM state and the attention weights (N, S)."""
        x = torch.cat([self.dropout(self.target_embedding(tokens)), feed], dim=1).unsqueeze(1)  # (N, 1, E+H)
        output, state = self.decoder(x, state)  # (N, 1, H)
        query = output[:, 0]  # (N, H)
        context, weights = self.attention(query, keys, mask, projected)  # (N, H), (N, S)
        feed = torch.tanh(self.combine(torch.cat([query, context], dim=1)))  # (N, H)
        return self.output(self.dropout(feed)), feed, state, weights

    def forward(self, src: Tensor, lengths: Tensor | Sequence[int], tgt_in: Tensor,
                teacher_forcing: float = 1.0) -> tuple[Tensor, Tensor]:
        """Logits (N, T, V) and attention (N, T, S) for target inputs ``tgt_in`` (N, T), which start with
        ``<bos>``. With ``teacher_forcing`` below 1, each sequence takes its own previous argmax instead of the
        true token at each step t >= 1 with probability 1 - teacher_forcing (PyTorch's global RNG)."""
        if not 0.0 <= teacher_forcing <= 1.0:
            raise ValueError(f"Seq2Seq: teacher_forcing: expected a ratio in [0, 1], got {teacher_forcing!r}")
        if tgt_in.dim() != 2 or tgt_in.size(0) != src.size(0):
            raise ShapeError(f"Seq2Seq: expected target ids of shape ({src.size(0)}, T), got {tuple(tgt_in.shape)}")
        keys, mask, projected, state = self.encode(src, lengths)
        feed = keys.new_zeros(src.size(0), self.hidden_size)
        tokens = tgt_in[:, 0]
        logits, attention = [], []
        for t in range(tgt_in.size(1)):
            if t > 0:
                tokens = tgt_in[:, t]
                if teacher_forcing < 1.0:
                    own = logits[-1].argmax(-1)
                    take_true = torch.rand(src.size(0), device=src.device) < teacher_forcing
                    tokens = torch.where(take_true, tokens, own)
            step_logits, feed, state, weights = self.step(tokens, feed, state, keys, mask, projected)
            logits.append(step_logits)
            attention.append(weights)
        return torch.stack(logits, dim=1), torch.stack(attention, dim=1)  # (N, T, V), (N, T, S)

    # ----------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def greedy(self, src: Tensor, lengths: Tensor | Sequence[int], max_length: int) -> tuple[Tensor, Tensor]:
        """The argmax token at each step: ids (N, T) ending in ``<eos>`` (then ``<pad>``) or cut at
        ``max_length``, and attention (N, T, S)."""
        keys, mask, projected, state = self.encode(src, lengths)
        batch = src.size(0)
        feed = keys.new_zeros(batch, self.hidden_size)
        tokens = torch.full((batch,), BOS, dtype=torch.long, device=src.device)
        done = torch.zeros(batch, dtype=torch.bool, device=src.device)
        out, attention = [], []
        for _ in range(max_length):
            logits, feed, state, weights = self.step(tokens, feed, state, keys, mask, projected)
            tokens = logits.argmax(-1).masked_fill(done, PAD)
            out.append(tokens)
            attention.append(weights.masked_fill(done.unsqueeze(1), 0.0))
            done = done | (tokens == EOS)
            if bool(done.all()):
                break
        return torch.stack(out, dim=1), torch.stack(attention, dim=1)

    @torch.no_grad()
    def beam_search(self, src: Tensor, lengths: Tensor | Sequence[int], beam: int,
                    max_length: int) -> list[tuple[list[int], Tensor]]:
        """The most probable output of each source found with a beam of ``beam`` hypotheses.

        Hypotheses are ranked by their summed log-probability; one that ends with ``<eos>`` among the top
        ``beam`` candidates of a step is finished, and the search stops when no live hypothesis can beat the
        best finished one. With ``beam=1`` this is greedy decoding exactly.

        Returns one ``(ids, attention)`` per source: ids end with ``<eos>`` unless cut at ``max_length``;
        attention has shape (len(ids), S_n) over that source's real steps.
        """
        if isinstance(beam, bool) or not isinstance(beam, int) or beam < 1:
            raise ValueError(f"Seq2Seq.beam_search: beam: expected an integer >= 1, got {beam!r}")
        lengths = torch.as_tensor(lengths, dtype=torch.int64).cpu()
        results = []
        for n in range(src.size(0)):
            length = int(lengths[n])
            results.append(self._beam_one(src[n:n + 1, :length], length, beam, max_length))
        return results

    def _beam_one(self, src: Tensor, length: int, beam: int, max_length: int) -> tuple[list[int], Tensor]:
        keys, mask, projected, state = self.encode(src, [length])
        seqs: list[list[int]] = [[]]
        attns: list[list[Tensor]] = [[]]
        scores = keys.new_zeros(1)
        feed = keys.new_zeros(1, self.hidden_size)
        tokens = torch.full((1,), BOS, dtype=torch.long, device=src.device)
        finished: list[tuple[float, list[int], list[Tensor]]] = []
        for _ in range(max_length):
            alive = len(seqs)
            expand = lambda t: t.expand(alive, *t.shape[1:])  # noqa: E731  (one source, `alive` hypotheses)
            logits, feed, state, weights = self.step(tokens, feed, state, expand(keys), expand(mask),
                                                     None if projected is None else expand(projected))
            candidates = (scores.unsqueeze(1) + torch.log_softmax(logits, dim=-1)).flatten()  # (alive * V,)
            top_scores, top_index = candidates.topk(min(2 * beam, candidates.numel()))
            keep_rows, keep_tokens, keep_scores = [], [], []
            for rank, (score, index) in enumerate(zip(top_scores.tolist(), top_index.tolist())):
                row, token = divmod(index, self.target_vocab_size)
                if token == EOS:
                    if rank < beam:
                        finished.append((score, seqs[row] + [EOS], attns[row] + [weights[row]]))
                    continue
                keep_rows.append(row)
                keep_tokens.append(token)
                keep_scores.append(score)
                if len(keep_rows) == beam:
                    break
            if not keep_rows or (finished and max(f[0] for f in finished) >= keep_scores[0]):
                break
            rows = torch.tensor(keep_rows, device=src.device)
            seqs = [seqs[r] + [t] for r, t in zip(keep_rows, keep_tokens)]
            attns = [attns[r] + [weights[r]] for r in keep_rows]
            scores = torch.tensor(keep_scores, dtype=keys.dtype, device=src.device)
            tokens = torch.tensor(keep_tokens, dtype=torch.long, device=src.device)
            feed = feed[rows]
            state = (state[0][:, rows], state[1][:, rows])
        else:
            finished.extend((float(s), q, a) for s, q, a in zip(scores.tolist(), seqs, attns))
        if not finished:  # only reachable when max_length cut every hypothesis
            finished.extend((float(s), q, a) for s, q, a in zip(scores.tolist(), seqs, attns))
        _, ids, attention = max(finished, key=lambda f: f[0])
        return ids, torch.stack(attention) if attention else keys.new_zeros(0, length)
