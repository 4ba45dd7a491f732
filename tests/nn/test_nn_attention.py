"""AttentionPooling: golden values from the equations in NumPy, padding that changes nothing, gradients, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

from lstmkit.errors import ShapeError
from lstmkit.nn.attention import AttentionPooling

# Two sequences of three steps with two features; the second has two real steps and one padded one.
X = np.array(
    [
        [[0.5, -1.0], [2.0, 0.25], [-0.75, 1.5]],
        [[1.0, 1.0], [-0.5, 2.0], [9.0, -9.0]],
    ]
)
LENGTHS = [3, 2]


def numpy_pool(x: np.ndarray, lengths: list[int], score) -> tuple[np.ndarray, np.ndarray]:
    """Pool each sequence over its real steps only, from the equations, one sequence at a time."""
    pooled, weights = np.zeros((x.shape[0], x.shape[2])), np.zeros(x.shape[:2])
    for b, length in enumerate(lengths):
        h = x[b, :length]  # (length, F)
        e = np.array([score(h_t) for h_t in h])
        alpha = np.exp(e - e.max()) / np.exp(e - e.max()).sum()
        weights[b, :length] = alpha
        pooled[b] = alpha @ h  # r = H alpha
    return pooled, weights


def test_zhou_form_matches_numpy() -> None:
    pool = AttentionPooling(2, dtype=torch.float64)
    w = np.array([0.8, -1.3])
    with torch.no_grad():
        pool.weight_score.copy_(torch.from_numpy(w))
    pooled, weights = pool(torch.from_numpy(X), lengths=LENGTHS)

    expected_pooled, expected_weights = numpy_pool(X, LENGTHS, lambda h_t: w @ np.tanh(h_t))
    np.testing.assert_allclose(weights.detach().numpy(), expected_weights, rtol=0, atol=1e-12)
    np.testing.assert_allclose(pooled.detach().numpy(), expected_pooled, rtol=0, atol=1e-12)
    # The weights are not uniform, so the test would notice scores that ignore w or tanh.
    assert expected_weights[0].std() > 0.05


def test_zhou_form_by_hand_for_one_step_pair() -> None:
    """Two steps, w = (1, 0): the scores are tanh(0) = 0 and tanh(atanh(0.5)) = 0.5."""
    pool = AttentionPooling(2, dtype=torch.float64)
    with torch.no_grad():
        pool.weight_score.copy_(torch.tensor([1.0, 0.0]))
    x = torch.tensor([[[0.0, 3.0], [np.arctanh(0.5), -1.0]]], dtype=torch.float64)
    pooled, weights = pool(x)
    a0 = 1.0 / (1.0 + np.exp(0.5))  # softmax(0, 0.5)[0]
    torch.testing.assert_close(weights, torch.tensor([[a0, 1.0 - a0]], dtype=torch.float64))
    expected = a0 * x[0, 0] + (1.0 - a0) * x[0, 1]
    torch.testing.assert_close(pooled[0], expected)


def test_projected_form_matches_numpy() -> None:
    torch.manual_seed(0)
    pool = AttentionPooling(2, attention_size=3, dtype=torch.float64)
    assert pool.weight_proj.shape == (3, 2) and pool.bias_proj.shape == (3,) and pool.weight_score.shape == (3,)
    w, b, v = (p.detach().numpy() for p in (pool.weight_proj, pool.bias_proj, pool.weight_score))
    pooled, weights = pool(torch.from_numpy(X), lengths=LENGTHS)

    expected_pooled, expected_weights = numpy_pool(X, LENGTHS, lambda h_t: v @ np.tanh(w @ h_t + b))
    np.testing.assert_allclose(weights.detach().numpy(), expected_weights, rtol=0, atol=1e-12)
    np.testing.assert_allclose(pooled.detach().numpy(), expected_pooled, rtol=0, atol=1e-12)


@pytest.mark.parametrize("attention_size", [None, 4])
def test_padding_gets_zero_weight_and_changes_nothing(attention_size: int | None) -> None:
    torch.manual_seed(1)
    pool = AttentionPooling(3, attention_size)
    lengths = torch.tensor([4, 1, 3])
    real = torch.arange(4).unsqueeze(0) < lengths.unsqueeze(1)  # (N, L)

    def run(padding_value: float) -> tuple[torch.Tensor, ...]:
        torch.manual_seed(2)
        x = torch.randn(3, 4, 3)
        x = torch.where(real.unsqueeze(2), x, padding_value).requires_grad_()
        pool.zero_grad()
        pooled, weights = pool(x, lengths=lengths)
        (pooled * torch.arange(1.0, 4.0)).sum().backward()
        return pooled.detach(), weights.detach(), x.grad.clone(), pool.weight_score.grad.clone()

    baseline = run(0.0)
    assert bool((baseline[1][~real] == 0).all()), "padded steps must get weight exactly 0"
    assert bool((baseline[1][real] > 0).all())
    assert bool((baseline[2][~real] == 0).all()), "padded steps must get no gradient"
    for padding_value in (1e4, -3.0, float("nan"), float("inf")):
        for got, want in zip(run(padding_value), baseline):
            assert torch.equal(got, want), f"padding value {padding_value} changed the result"


def test_weights_sum_to_one() -> None:
    torch.manual_seed(3)
    pool = AttentionPooling(5, attention_size=2)
    x = torch.randn(4, 6, 5) * 3
    for kwargs in ({}, {"lengths": [6, 1, 3, 5]}):
        _, weights = pool(x, **kwargs)
        torch.testing.assert_close(weights.sum(dim=1), torch.ones(4))
    _, weights = pool(x, lengths=[6, 1, 3, 5])
    assert torch.equal(weights[1], torch.tensor([1.0, 0, 0, 0, 0, 0]))


def test_mask_equals_lengths_and_may_have_holes() -> None:
    torch.manual_seed(4)
    pool = AttentionPooling(2)
    x = torch.randn(2, 3, 2)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    by_mask = pool(x, mask=mask)
    by_lengths = pool(x, lengths=torch.tensor(LENGTHS))
    for got, want in zip(by_mask, by_lengths):
        torch.testing.assert_close(got, want, rtol=0, atol=0)

    holes = torch.tensor([[True, False, True], [False, True, False]])
    pooled, weights = pool(x, mask=holes)
    assert bool((weights[~holes] == 0).all())
    torch.testing.assert_close(pooled[1], x[1, 1])  # one real step: it is the whole average
    # The same as pooling only the real steps.
    pooled_0, _ = pool(x[:1, [0, 2]])
    torch.testing.assert_close(pooled[0], pooled_0[0])


def test_full_lengths_equal_no_lengths() -> None:
    torch.manual_seed(5)
    pool = AttentionPooling(2, attention_size=3)
    x = torch.randn(2, 3, 2)
    for got, want in zip(pool(x, lengths=[3, 3]), pool(x)):
        assert torch.equal(got, want)


@pytest.mark.parametrize("attention_size", [None, 3])
def test_gradcheck(attention_size: int | None) -> None:
    torch.manual_seed(6)
    pool = AttentionPooling(2, attention_size, dtype=torch.float64)
    params = tuple(p for p in pool.parameters())
    x = torch.randn(2, 3, 2, dtype=torch.float64, requires_grad=True)

    def fn(x: torch.Tensor, *params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        names = [name for name, _ in pool.named_parameters()]
        return torch.func.functional_call(pool, dict(zip(names, params)), (x,), {"lengths": LENGTHS})

    assert gradcheck(fn, (x, *params))


def test_zero_scores_give_mean_pooling() -> None:
    pool = AttentionPooling(2, dtype=torch.float64)
    with torch.no_grad():
        pool.weight_score.zero_()
    pooled, _ = pool(torch.from_numpy(X), lengths=LENGTHS)
    np.testing.assert_allclose(pooled.detach().numpy(), [X[0].mean(0), X[1, :2].mean(0)], rtol=0, atol=1e-12)


# Errors: each names the thing, the expectation and what it got.


@pytest.fixture
def pool() -> AttentionPooling:
    return AttentionPooling(4)


@pytest.mark.parametrize("shape", [(4,), (3, 4), (1, 2, 3, 4)])
def test_error_wrong_rank(pool: AttentionPooling, shape: tuple[int, ...]) -> None:
    with pytest.raises(ShapeError, match=r"AttentionPooling: expected input of shape \(N, L, F\), got shape"):
        pool(torch.randn(shape))


def test_error_wrong_features(pool: AttentionPooling) -> None:
    with pytest.raises(ShapeError, match=r"expected input with 4 features \(last dimension\), got shape \(2, 3, 5\)"):
        pool(torch.randn(2, 3, 5))


def test_error_no_steps(pool: AttentionPooling) -> None:
    with pytest.raises(ShapeError, match=r"expected at least one time step, got shape \(2, 0, 4\)"):
        pool(torch.randn(2, 0, 4))


def test_error_dtype(pool: AttentionPooling) -> None:
    message = r"expected input of dtype torch.float32 like the parameters, got torch.float64"
    with pytest.raises(ValueError, match=message):
        pool(torch.randn(2, 3, 4, dtype=torch.float64))


@pytest.mark.parametrize(
    ("lengths", "message"),
    [
        ([3, 0], r"expected every length in 1\.\.3 \(the padded sequence length L\), got lengths from 0 to 3"),
        ([4, 1], r"expected every length in 1\.\.3 .* got lengths from 1 to 4"),
        ([3], r"expected one length per sequence, shape \(2,\), got shape \(1,\)"),
        ([1.0, 2.0], r"expected integer lengths, got dtype torch.float32"),
        ("ab", r"expected lengths as a list or 1-D tensor of 2 integers, got 'ab'"),
    ],
)
def test_error_lengths(pool: AttentionPooling, lengths, message: str) -> None:
    with pytest.raises(ShapeError, match=message):
        pool(torch.randn(2, 3, 4), lengths=lengths)


def test_error_lengths_and_mask(pool: AttentionPooling) -> None:
    with pytest.raises(ValueError, match="AttentionPooling: expected lengths or mask, not both"):
        pool(torch.randn(2, 3, 4), lengths=[3, 3], mask=torch.ones(2, 3, dtype=torch.bool))


def test_error_mask_shape(pool: AttentionPooling) -> None:
    with pytest.raises(ShapeError, match=r"expected mask of shape \(2, 3\) \(N, L\), got \(3, 2\)"):
        pool(torch.randn(2, 3, 4), mask=torch.ones(3, 2, dtype=torch.bool))


def test_error_mask_dtype(pool: AttentionPooling) -> None:
    with pytest.raises(ValueError, match=r"expected mask of dtype torch.bool, got torch.int64"):
        pool(torch.randn(2, 3, 4), mask=torch.ones(2, 3, dtype=torch.long))


def test_error_mask_empty_sequence(pool: AttentionPooling) -> None:
    mask = torch.tensor([[True, False, False], [False, False, False]])
    message = r"expected at least one True step per sequence in mask, got none in sequences \[1\]"
    with pytest.raises(ShapeError, match=message):
        pool(torch.randn(2, 3, 4), mask=mask)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0,), r"AttentionPooling: input_size: expected an integer >= 1, got 0"),
        ((4, 0), r"AttentionPooling: attention_size: expected None or an integer >= 1, got 0"),
        ((4, 2.5), r"attention_size: expected None or an integer >= 1, got 2\.5"),
    ],
)
def test_error_constructor(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AttentionPooling(*args)
