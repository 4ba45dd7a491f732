import numpy as np
import pytest

from lstmkit.data.synthetic import adding_problem


def test_adding_problem_marks_one_step_in_each_half_and_sums_them():
    x, y = adding_problem(50, 10, np.random.default_rng(0))
    assert x.shape == (50, 10, 2) and y.shape == (50,)
    markers = x[..., 1]
    assert np.all(markers.sum(axis=1) == 2)
    assert np.all(markers[:, :5].sum(axis=1) == 1) and np.all(markers[:, 5:].sum(axis=1) == 1)
    np.testing.assert_allclose(y, (x[..., 0] * markers).sum(axis=1), rtol=1e-6)
    assert np.all((x[..., 0] >= 0) & (x[..., 0] < 1))


def test_adding_problem_is_seeded_and_checks_length():
    a, _ = adding_problem(3, 6, np.random.default_rng(1))
    b, _ = adding_problem(3, 6, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="expected length >= 2, got 1"):
        adding_problem(3, 1, np.random.default_rng(0))
