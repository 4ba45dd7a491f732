r"""Attention over time, padding excluded: pooling a sequence into one vector (``AttentionPooling``) and a
decoder's query over encoder outputs (``SequenceAttention``: additive, dot or general scores)."""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..errors import ShapeError


class AttentionPooling(nn.Module):
    r"""Pool a sequence of feature vectors into one vector with additive attention over time.

    With ``attention_size=None`` the module is the attention layer of Zhou et al. (2016), *Attention-Based
    Bidirectional Long Short-Term Memory Networks for Relation Classification* (Att-BLSTM). For each
    sequence :math:`H = [h_1, \dots, h_L]` it computes

    .. math::
        \begin{array}{ll}
            M = \tanh(H) \\
            \alpha = \operatorname{softmax}(w^\top M) \\
            r = H \alpha^\top
        \end{array}

    that is, a score :math:`e_t = w^\top \tanh(h_t)` per step, weights :math:`\alpha_t = e^{e_t} / \sum_s
    e^{e_s}` and the pooled vector :math:`r = \sum_t \alpha_t h_t`. (Zhou et al. then classify
    :math:`\tanh(r)`; that non-linearity belongs to the model's head and is not applied here.)

    With ``attention_size=A`` the score has a hidden projection, as in Bahdanau et al. (2015) and
    Yang et al. (2016):

    .. math::
        e_t = v^\top \tanh(W h_t + b)

    Steps outside a sequence (given by ``lengths`` or ``mask``) get a score of :math:`-\infty`, so their
    weight is exactly 0 and the weights of the real steps sum to 1. Padded steps are also replaced by
    zeros before anything is computed, so their values (even NaN or inf) change neither the outputs nor
    the gradients.

    Args:
        input_size: the number of features F of each step.
        attention_size: ``None`` for Zhou's form (no projection), or the size A of the hidden projection
            :math:`W`. Default: ``None``
        device, dtype: where and of what type the parameters are made.

    Inputs: input, lengths, mask
        * **input**: tensor of shape (N, L, F). For a time-major (L, N, F) tensor, pass
          ``input.transpose(0, 1)``.
        * **lengths**: optional list or 1-D integer tensor of N values in 1..L; sequence ``b`` has its real
          steps at ``0 .. lengths[b] - 1``.
        * **mask**: optional bool tensor of shape (N, L), ``True`` at real steps, with at least one real
          step per sequence. Give ``lengths`` or ``mask``, not both; with neither, every step is real.

    Outputs: pooled, weights
        * **pooled**: tensor of shape (N, F), the weighted sum :math:`r` of each sequence's steps.
        * **weights**: tensor of shape (N, L), the attention weights :math:`\alpha`; exactly 0 at padded
          steps, summing to 1 over each sequence.

    Attributes:
        weight_score: the score vector, :math:`w` (shape (F,)) or :math:`v` (shape (A,)).
        weight_proj: :math:`W`, shape (A, F); only with ``attention_size``.
        bias_proj: :math:`b`, shape (A,); only with ``attention_size``.

    Initialisation:
        Like ``torch.nn.Linear``: every parameter from :math:`\mathcal{U}(-1/\sqrt{k}, 1/\sqrt{k})` where
        :math:`k` is the size of the vector it multiplies (F for ``weight_proj`` and ``bias_proj``, F or A for
        ``weight_score``). A zero score vector would start as mean pooling but leave :math:`W` without a
        gradient on the first step.

    Examples::

        >>> import torch
        >>> from lstmkit.nn.attention import AttentionPooling
        >>> pool = AttentionPooling(8)
        >>> x = torch.randn(3, 5, 8)  # (N, L, F), e.g. the outputs of a batch_first LSTM
        >>> pooled, weights = pool(x, lengths=[5, 2, 4])
        >>> pooled.shape, weights.shape
        (torch.Size([3, 8]), torch.Size([3, 5]))
        >>> bool((weights[1, 2:] == 0).all())
        True
    """

    def __init__(self, input_size: int, attention_size: int | None = None, *, device=None, dtype=None) -> None:
        super().__init__()
        _check_int("input_size", input_size)
        if attention_size is not None:
            _check_int("attention_size", attention_size, none_allowed=True)
        self.input_size = input_size
        self.attention_size = attention_size
        factory = {"device": device, "dtype": dtype}
        if attention_size is None:
            self.register_parameter("weight_proj", None)
            self.register_parameter("bias_proj", None)
            self.weight_score = nn.Parameter(torch.empty(input_size, **factory))
        else:
            self.weight_proj = nn.Parameter(torch.empty(attention_size, input_size, **factory))
            self.bias_proj = nn.Parameter(torch.empty(attention_size, **factory))
            self.weight_score = nn.Parameter(torch.empty(attention_size, **factory))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise every parameter as ``torch.nn.Linear`` would (see the class docstring)."""
        with torch.no_grad():
            if self.weight_proj is not None:
                bound = 1.0 / math.sqrt(self.input_size)
                nn.init.uniform_(self.weight_proj, -bound, bound)
                nn.init.uniform_(self.bias_proj, -bound, bound)
            bound = 1.0 / math.sqrt(self.weight_score.numel())
            nn.init.uniform_(self.weight_score, -bound, bound)

    def forward(
        self, input: Tensor, lengths: Tensor | list[int] | None = None, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Pool ``input``; see the class docstring for the shapes of inputs and outputs."""
        self._check_input(input)
        batch_size, seq_len, _ = input.shape
        valid = self._valid_steps(lengths, mask, batch_size, seq_len, input.device)  # (N, L) or None
        x = input
        if valid is not None:
            # Zero the padding first: a NaN there would otherwise reach the gradients through 0 * NaN.
            x = torch.where(valid.unsqueeze(2), input, 0.0)  # (N, L, F)
        if self.weight_proj is None:
            keys = torch.tanh(x)  # (N, L, F)
        else:
            keys = torch.tanh(F.linear(x, self.weight_proj, self.bias_proj))  # (N, L, A)
        scores = keys @ self.weight_score  # (N, L)
        if valid is not None:
            scores = scores.masked_fill(~valid, float("-inf"))
        weights = torch.softmax(scores, dim=1)  # (N, L)
        pooled = torch.bmm(weights.unsqueeze(1), x).squeeze(1)  # (N, F)
        return pooled, weights

    def extra_repr(self) -> str:
        s = f"{self.input_size}"
        if self.attention_size is not None:
            s += f", attention_size={self.attention_size}"
        return s

    def _check_input(self, input: Tensor) -> None:
        if not isinstance(input, Tensor):
            raise TypeError(f"AttentionPooling: expected input to be a Tensor, got {type(input).__name__}")
        if input.dim() != 3:
            raise ShapeError(f"AttentionPooling: expected input of shape (N, L, F), got shape {tuple(input.shape)}")
        if input.size(2) != self.input_size:
            raise ShapeError(
                f"AttentionPooling: expected input with {self.input_size} features (last dimension), "
                f"got shape {tuple(input.shape)}"
            )
        if input.size(1) == 0:
            raise ShapeError(f"AttentionPooling: expected at least one time step, got shape {tuple(input.shape)}")
        dtype = self.weight_score.dtype
        if input.dtype != dtype:
            raise ValueError(
                f"AttentionPooling: expected input of dtype {dtype} like the parameters, got {input.dtype}"
            )

    @staticmethod
    def _valid_steps(
        lengths: Tensor | list[int] | None, mask: Tensor | None, batch_size: int, seq_len: int, device: torch.device
    ) -> Tensor | None:
        """The bool mask (N, L) of real steps, or ``None`` when every step is real."""
        if lengths is not None and mask is not None:
            raise ValueError("AttentionPooling: expected lengths or mask, not both")
        if lengths is not None:
            values = _check_lengths(lengths, batch_size, seq_len)
            if bool((values == seq_len).all()):
                return None
            steps = torch.arange(seq_len)  # (L,)
            return (steps.unsqueeze(0) < values.unsqueeze(1)).to(device)  # (N, L)
        if mask is None:
            return None
        if not isinstance(mask, Tensor):
            raise TypeError(f"AttentionPooling: expected mask to be a bool Tensor, got {type(mask).__name__}")
        if mask.dtype != torch.bool:
            raise ValueError(f"AttentionPooling: expected mask of dtype torch.bool, got {mask.dtype}")
        if tuple(mask.shape) != (batch_size, seq_len):
            raise ShapeError(
                f"AttentionPooling: expected mask of shape ({batch_size}, {seq_len}) (N, L), got {tuple(mask.shape)}"
            )
        empty = (~mask.any(dim=1)).nonzero().flatten().tolist()
        if empty:
            raise ShapeError(
                f"AttentionPooling: expected at least one True step per sequence in mask, got none in sequences {empty}"
            )
        return mask.to(device)


def _check_lengths(lengths: Tensor | list[int], batch_size: int, seq_len: int) -> Tensor:
    """Validate ``lengths`` and return them as a CPU int64 tensor of shape (N,)."""
    try:
        values = torch.as_tensor(lengths).detach().to("cpu")
    except (TypeError, ValueError, RuntimeError):
        raise ShapeError(
            f"AttentionPooling: expected lengths as a list or 1-D tensor of {batch_size} integers, got {lengths!r}"
        ) from None
    if values.dim() != 1 or values.numel() != batch_size:
        raise ShapeError(
            f"AttentionPooling: expected one length per sequence, shape ({batch_size},), "
            f"got shape {tuple(values.shape)}"
        )
    if values.dtype == torch.bool or values.is_floating_point() or values.is_complex():
        raise ShapeError(f"AttentionPooling: expected integer lengths, got dtype {values.dtype}")
    if values.numel() == 0:
        return values.to(torch.int64)
    shortest, longest = int(values.min()), int(values.max())
    if shortest < 1 or longest > seq_len:
        raise ShapeError(
            f"AttentionPooling: expected every length in 1..{seq_len} (the padded sequence length L), "
            f"got lengths from {shortest} to {longest}"
        )
    return values.to(torch.int64)


def _check_int(name: str, value: object, none_allowed: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        expected = "None or an integer >= 1" if none_allowed else "an integer >= 1"
        raise ValueError(f"AttentionPooling: {name}: expected {expected}, got {value!r}")


class SequenceAttention(nn.Module):
    r"""Attention of one query per sequence over a sequence of keys (the encoder-decoder attention).

    For a decoder state :math:`q` (the query) and encoder outputs :math:`k_1, \dots, k_S` (the keys, also
    the values), it computes scores :math:`e_s`, weights :math:`\alpha = \operatorname{softmax}(e)` over the
    real source steps and the context :math:`c = \sum_s \alpha_s k_s`. The score is chosen by ``score``:

    .. math::
        \begin{array}{ll}
            e_s = v^\top \tanh(W_q q + W_k k_s + b) & \text{additive (Bahdanau et al., 2015)} \\
            e_s = q^\top k_s & \text{dot (Luong et al., 2015; needs } H_q = H_k) \\
            e_s = q^\top W k_s & \text{general (Luong et al., 2015)}
        \end{array}

    Source steps outside a sequence (``mask`` False) get a score of :math:`-\infty`, so their weight is
    exactly 0, and their keys are zeroed first, so their values change neither outputs nor gradients.

    Args:
        query_size: the number of features H_q of the query.
        key_size: the number of features H_k of each key.
        score: ``"additive"``, ``"dot"`` or ``"general"``. Default: ``"additive"``
        attention_size: the size A of the hidden layer of the additive score (default: ``query_size``).
        device, dtype: where and of what type the parameters are made.

    Inputs: query, keys, mask, projected
        * **query**: tensor of shape (N, H_q).
        * **keys**: tensor of shape (N, S, H_k).
        * **mask**: optional bool tensor of shape (N, S), ``True`` at real source steps (at least one each).
        * **projected**: optional output of :meth:`project_keys` for these keys, to compute the key half of
          the score once per sequence instead of once per decoder step.

    Outputs: context, weights
        * **context**: tensor of shape (N, H_k).
        * **weights**: tensor of shape (N, S), summing to 1 over each sequence's real steps.

    Attributes:
        weight_query (A, H_q), weight_key (A, H_k), bias (A,), weight_score (A,): the additive score's
        parameters; weight (H_q, H_k): the general score's. The dot score has none.

    Initialisation:
        Like ``torch.nn.Linear``: :math:`\mathcal{U}(-1/\sqrt{k}, 1/\sqrt{k})` with :math:`k` the size of the
        vector each parameter multiplies.

    Examples::

        >>> import torch
        >>> from lstmkit.nn.attention import SequenceAttention
        >>> attend = SequenceAttention(16, 32, score="general")
        >>> keys = torch.randn(3, 7, 32)  # (N, S, H_k)
        >>> mask = torch.arange(7) < torch.tensor([[7], [4], [2]])  # (N, S)
        >>> context, weights = attend(torch.randn(3, 16), keys, mask)
        >>> context.shape, bool((weights[2, 2:] == 0).all())
        (torch.Size([3, 32]), True)
    """

    SCORES = ("additive", "dot", "general")

    def __init__(self, query_size: int, key_size: int, score: str = "additive", attention_size: int | None = None,
                 *, device=None, dtype=None) -> None:
        super().__init__()
        owner = "SequenceAttention"
        for name, value in (("query_size", query_size), ("key_size", key_size)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{owner}: {name}: expected an integer >= 1, got {value!r}")
        if score not in self.SCORES:
            raise ValueError(f"{owner}: score: expected one of {', '.join(self.SCORES)}, got {score!r}")
        if score == "dot" and query_size != key_size:
            raise ValueError(f"{owner}: the dot score needs query_size == key_size, got {query_size} and {key_size}; "
                             'use score="general"')
        self.query_size, self.key_size, self.score = query_size, key_size, score
        factory = {"device": device, "dtype": dtype}
        if score == "additive":
            size = attention_size or query_size
            self.attention_size = size
            self.weight_query = nn.Parameter(torch.empty(size, query_size, **factory))
            self.weight_key = nn.Parameter(torch.empty(size, key_size, **factory))
            self.bias = nn.Parameter(torch.empty(size, **factory))
            self.weight_score = nn.Parameter(torch.empty(size, **factory))
        elif score == "general":
            self.weight = nn.Parameter(torch.empty(query_size, key_size, **factory))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise every parameter as ``torch.nn.Linear`` would (see the class docstring)."""
        with torch.no_grad():
            if self.score == "additive":
                nn.init.uniform_(self.weight_query, -1 / math.sqrt(self.query_size), 1 / math.sqrt(self.query_size))
                bound = 1 / math.sqrt(self.key_size)
                nn.init.uniform_(self.weight_key, -bound, bound)
                nn.init.uniform_(self.bias, -bound, bound)
                size = 1 / math.sqrt(self.attention_size)
                nn.init.uniform_(self.weight_score, -size, size)
            elif self.score == "general":
                bound = 1 / math.sqrt(self.key_size)
                nn.init.uniform_(self.weight, -bound, bound)

    def project_keys(self, keys: Tensor) -> Tensor | None:
        """The part of the score that depends only on the keys: (N, S, A) for additive, (N, S, H_q) for
        general, ``None`` for dot."""
        if self.score == "additive":
            return F.linear(keys, self.weight_key, self.bias)  # (N, S, A)
        if self.score == "general":
            return F.linear(keys, self.weight)  # (N, S, H_q)
        return None

    def forward(self, query: Tensor, keys: Tensor, mask: Tensor | None = None,
                projected: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Attend; see the class docstring for the shapes of inputs and outputs."""
        if query.dim() != 2 or query.size(1) != self.query_size:
            raise ShapeError(f"SequenceAttention: expected query of shape (N, {self.query_size}), "
                             f"got {tuple(query.shape)}")
        if keys.dim() != 3 or keys.size(2) != self.key_size or keys.size(0) != query.size(0):
            raise ShapeError(f"SequenceAttention: expected keys of shape ({query.size(0)}, S, {self.key_size}), "
                             f"got {tuple(keys.shape)}")
        if mask is not None:
            if mask.dtype != torch.bool or tuple(mask.shape) != tuple(keys.shape[:2]):
                raise ShapeError(f"SequenceAttention: expected a bool mask of shape {tuple(keys.shape[:2])} (N, S), "
                                 f"got {mask.dtype} {tuple(mask.shape)}")
            keys = torch.where(mask.unsqueeze(2), keys, 0.0)  # padding cannot reach the gradients
        if projected is None:
            projected = self.project_keys(keys)
        if self.score == "additive":
            hidden = torch.tanh(projected + F.linear(query, self.weight_query).unsqueeze(1))  # (N, S, A)
            scores = hidden @ self.weight_score  # (N, S)
        elif self.score == "general":
            scores = torch.bmm(projected, query.unsqueeze(2)).squeeze(2)  # (N, S)
        else:
            scores = torch.bmm(keys, query.unsqueeze(2)).squeeze(2)  # (N, S)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1)  # (N, S)
        context = torch.bmm(weights.unsqueeze(1), keys).squeeze(1)  # (N, H_k)
        return context, weights

    def extra_repr(self) -> str:
        return f"{self.query_size}, {self.key_size}, score={self.score!r}"
