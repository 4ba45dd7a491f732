"""check_finite, Standardizer and split_train_val."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lstmkit.data import ArrayDataset, Standardizer, check_finite, split_train_val
from lstmkit.errors import DataError

# ------------------------------------------------------------------------------------------ check_finite


def test_check_finite_counts_and_locates_bad_values() -> None:
    x = np.zeros((2, 3, 6), dtype=np.float32)
    x[0, 2, 5] = np.nan
    x[1, 0, 0] = np.inf
    x[1, 2, 1] = -np.inf
    with pytest.raises(DataError, match=r"^data contains 3 NaN/Inf values \(first at index \(0, 2, 5\)\)$"):
        check_finite(x, "data")


def test_check_finite_accepts_finite_and_integer_arrays() -> None:
    check_finite(np.ones((2, 2)), "ones")
    check_finite(np.arange(4), "integers")


# ------------------------------------------------------------------------------------------ Standardizer


def test_standardizer_golden_values_and_constant_feature() -> None:
    x = np.array([[[1.0, 10.0], [3.0, 10.0]]])  # feature 0: mean 2, std 1; feature 1: constant
    s = Standardizer().fit(x)
    np.testing.assert_allclose(s.mean, [2.0, 10.0])
    np.testing.assert_allclose(s.std, [1.0, 1.0])  # the constant feature is only centred
    z = s.transform(x)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z, [[[-1.0, 0.0], [1.0, 0.0]]])
    np.testing.assert_allclose(s.transform(np.array([[11.0, 12.0]])), [[9.0, 2.0]])


def test_standardizer_normalises_each_feature_over_samples_and_steps() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(loc=[5.0, -3.0, 0.0], scale=[2.0, 0.5, 10.0], size=(50, 7, 3)).astype(np.float32)
    s = Standardizer().fit(x)
    z = s.transform(x)
    assert s.mean.shape == (3,) and z.shape == (50, 7, 3)
    np.testing.assert_allclose(z.reshape(-1, 3).mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.reshape(-1, 3).std(axis=0), 1.0, atol=1e-5)
    np.testing.assert_allclose(s.inverse_transform(z), x, rtol=1e-5, atol=1e-5)


def test_standardizer_dict_round_trip_through_json() -> None:
    x = np.random.default_rng(1).normal(size=(10, 4, 2))
    s = Standardizer().fit(x)
    d = json.loads(json.dumps(s.to_dict()))
    assert set(d) == {"mean", "std"} and all(isinstance(v, float) for v in d["mean"] + d["std"])
    np.testing.assert_array_equal(Standardizer.from_dict(d).transform(x), s.transform(x))


def test_standardizer_rejects_a_wrong_feature_count() -> None:
    s = Standardizer().fit(np.zeros((2, 3, 2)))
    with pytest.raises(DataError, match=r"^Standardizer\.transform: expected an array with 2 features in its last "
                                        r"dimension, got shape \(1, 2, 3\)$"):
        s.transform(np.zeros((1, 2, 3)))


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (np.zeros((0, 3, 2)), r"^Standardizer\.fit: expected a non-empty array of shape \(N, L, F\), got \(0, 3, 2\)$"),
        (np.array([[[np.nan, 1.0]]]),
         r"^Standardizer\.fit input contains 1 NaN/Inf values \(first at index \(0, 0, 0\)\)$"),
    ],
)
def test_standardizer_fit_rejects_empty_or_non_finite(x: np.ndarray, message: str) -> None:
    with pytest.raises(DataError, match=message):
        Standardizer().fit(x)


@pytest.mark.parametrize(
    ("d", "message"),
    [
        ({"mean": [0.0]}, r"expected a table with keys 'mean' and 'std', got \['mean'\]"),
        ({"mean": [0.0, 1.0], "std": [1.0]},
         r"expected 'mean' and 'std' lists of equal, non-zero length, got shapes \(2,\) and \(1,\)"),
        ({"mean": [0.0], "std": [0.0]},
         r"expected finite means and positive finite stds, got mean \[0\.0\] and std \[0\.0\]"),
        ({"mean": ["a"], "std": [1.0]}, r"expected 'mean' and 'std' to be lists of numbers"),
    ],
)
def test_standardizer_from_dict_rejects_bad_statistics(d: dict, message: str) -> None:
    with pytest.raises(DataError, match=rf"^standardizer statistics: {message}"):
        Standardizer.from_dict(d)


def test_unfitted_standardizer_is_a_programming_error() -> None:
    with pytest.raises(RuntimeError, match="call fit"):
        Standardizer().transform(np.zeros((1, 1, 1)))


# ------------------------------------------------------------------------------------------ split_train_val


def _numbered(labels: list[int]) -> ArrayDataset:
    """x[i] holds i, so a split's members can be identified."""
    n = len(labels)
    return ArrayDataset(np.arange(n, dtype=np.float32).reshape(n, 1, 1), np.array(labels))


def test_split_is_stratified_disjoint_ordered_and_seeded() -> None:
    ds = _numbered([c for c in range(5) for _ in range(10)])
    train, val = split_train_val(ds, 0.2, seed=0)
    assert len(train) == 40 and len(val) == 10
    np.testing.assert_array_equal(np.bincount(val.y), [2] * 5)
    ids_train, ids_val = train.x.ravel().astype(int), val.x.ravel().astype(int)
    assert sorted(np.concatenate([ids_train, ids_val]).tolist()) == list(range(50))
    assert list(ids_val) == sorted(ids_val) and list(ids_train) == sorted(ids_train)
    np.testing.assert_array_equal(ds.y[ids_val], val.y)
    again, _ = split_train_val(ds, 0.2, seed=0)
    other, _ = split_train_val(ds, 0.2, seed=1)
    np.testing.assert_array_equal(again.x, train.x)
    assert not np.array_equal(other.x, train.x)


def test_split_falls_back_to_random_when_a_class_is_a_singleton() -> None:
    ds = _numbered([0] * 9 + [1])
    train, val = split_train_val(ds, 0.3, seed=0)
    assert len(train) == 7 and len(val) == 3
    assert sorted(np.concatenate([train.x, val.x]).ravel().tolist()) == list(range(10))


def test_split_fraction_zero_returns_the_dataset() -> None:
    ds = _numbered([0, 1])
    train, val = split_train_val(ds, 0.0, seed=0)
    assert train is ds and val is None


@pytest.mark.parametrize("fraction", [1.0, -0.1, "0.2"])
def test_split_rejects_a_fraction_outside_0_1(fraction) -> None:
    with pytest.raises(DataError, match=rf"^validation fraction: expected a number in \[0, 1\), got {fraction!r}$"):
        split_train_val(_numbered([0, 1]), fraction, seed=0)


def test_split_that_empties_the_training_part_is_an_error() -> None:
    with pytest.raises(DataError, match=r"^validation fraction 0\.9: expected to leave at least one training sample, "
                                        r"got an empty training split \(2 samples, 2 held out\)$"):
        split_train_val(_numbered([0, 1]), 0.9, seed=0)
    with pytest.raises(DataError, match=r"^split_train_val: the training split is empty$"):
        split_train_val(_numbered([]), 0.1, seed=0)
