"""SequenceAttention: the three scores from their equations, masked padding that changes nothing, errors."""

from __future__ import annotations

import pytest
import torch

from lstmkit.errors import ShapeError
from lstmkit.nn import SequenceAttention


def reference_scores(attend: SequenceAttention, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """The score of each key, one (query, key) pair at a time, straight from the equations."""
    scores = torch.empty(keys.shape[:2], dtype=keys.dtype)
    for n in range(keys.shape[0]):
        for s in range(keys.shape[1]):
            q, k = query[n], keys[n, s]
            if attend.score == "additive":
                hidden = torch.tanh(attend.weight_query @ q + attend.weight_key @ k + attend.bias)
                scores[n, s] = attend.weight_score @ hidden
            elif attend.score == "general":
                scores[n, s] = q @ attend.weight @ k
            else:
                scores[n, s] = q @ k
    return scores


@pytest.mark.parametrize("score", ["additive", "dot", "general"])
def test_weights_and_context_follow_the_equations(score):
    torch.manual_seed(0)
    attend = SequenceAttention(6, 6, score=score).double()
    query, keys = torch.randn(3, 6, dtype=torch.float64), torch.randn(3, 5, 6, dtype=torch.float64)
    mask = torch.arange(5) < torch.tensor([[5], [3], [1]])
    context, weights = attend(query, keys, mask)
    expected = reference_scores(attend, query, keys).masked_fill(~mask, float("-inf")).softmax(dim=1)
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(context, torch.einsum("ns,nsh->nh", expected, keys))
    assert bool((weights[1, 3:] == 0).all()) and bool((weights[2, 1:] == 0).all())
    torch.testing.assert_close(weights.sum(1), torch.ones(3, dtype=torch.float64))


@pytest.mark.parametrize("score", ["additive", "general"])
def test_padding_values_change_neither_outputs_nor_gradients(score):
    torch.manual_seed(1)
    attend = SequenceAttention(4, 8, score=score)
    query = torch.randn(2, 4)
    keys = torch.randn(2, 6, 8)
    mask = torch.arange(6) < torch.tensor([[6], [2]])
    junk = keys.clone()
    junk[1, 2:] = float("nan")
    results = []
    for k in (keys, junk):
        k = k.clone().requires_grad_(True)
        context, weights = attend(query, k, mask)
        context.sum().backward()
        results.append((context.detach(), weights.detach(), k.grad[:, :2].clone()))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="dot score needs query_size == key_size"):
        SequenceAttention(4, 8, score="dot")
    with pytest.raises(ValueError, match="score: expected one of additive, dot, general"):
        SequenceAttention(4, 4, score="cosine")
    attend = SequenceAttention(4, 8)
    with pytest.raises(ShapeError, match=r"expected keys of shape \(2, S, 8\)"):
        attend(torch.randn(2, 4), torch.randn(2, 3, 7))
    with pytest.raises(ShapeError, match="expected a bool mask"):
        attend(torch.randn(2, 4), torch.randn(2, 3, 8), torch.ones(2, 3))
