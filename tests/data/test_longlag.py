"""The 1997 long-time-lag tasks: generators under a seed, the sources, and the paper's criteria."""

from __future__ import annotations

import numpy as np
import pytest

from lstmkit.config import DataConfig
from lstmkit.data import load_source
from lstmkit.data.longlag import (REBER_SYMBOLS, SYMBOLS, TEST_SAMPLES, adding_criterion, adding_problem_1997,
                                  embedded_reber_criterion, embedded_reber_problem, embedded_reber_strings,
                                  is_embedded_reber, multiplication_problem_1997, next_symbol_sets, task_criterion,
                                  temporal_order_criterion, temporal_order_problem)
from lstmkit.errors import DataError


def test_adding_problem_follows_the_paper():
    x, y, lengths = adding_problem_1997(500, 40, np.random.default_rng(0))
    assert x.shape == (500, 44, 2) and y.shape == lengths.shape == (500,)
    assert lengths.min() >= 40 and lengths.max() <= 44
    values, markers = x[..., 0], x[..., 1]
    for i in range(500):
        n = lengths[i]
        marked = np.flatnonzero(markers[i] == 1.0)
        assert len(marked) == 2 and marked[0] < 10 and marked[1] < 40 // 2  # one of the first T/2 - 1 unmarked
        ends = [0, n - 1] if marked[0] != 0 else [n - 1]
        assert set(np.flatnonzero(markers[i] == -1.0)) == set(ends)
        assert not x[i, n:].any()  # padding is zero
        assert y[i] == pytest.approx(0.5 + values[i, marked].sum() / 4)
    assert np.abs(values).max() <= 1 and values.min() < 0
    first_marked = np.flatnonzero(markers[:, 0] == 1.0)
    assert len(first_marked) and not values[first_marked, 0].any()  # X1 is 0 when the first pair is marked


def test_generators_are_deterministic_under_a_seed():
    for make in (adding_problem_1997, multiplication_problem_1997,
                 lambda n, t, rng: temporal_order_problem(n, t, 3, rng)):
        a, b = make(20, 30, np.random.default_rng(5)), make(20, 30, np.random.default_rng(5))
        c = make(20, 30, np.random.default_rng(6))
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)
        assert not np.array_equal(a[0], c[0])


def test_multiplication_targets_are_products_in_unit_range():
    x, y, lengths = multiplication_problem_1997(200, 20, np.random.default_rng(1))
    marked = x[..., 1] == 1.0
    np.testing.assert_allclose(y, np.where(marked, x[..., 0], 1.0).prod(axis=1), rtol=1e-6)
    assert x[..., 0].min() >= 0 and y.max() <= 1


@pytest.mark.parametrize("relevant, windows", [(2, [(10, 20), (50, 60)]), (3, [(10, 20), (33, 43), (66, 76)])])
def test_temporal_order_places_x_and_y_in_the_papers_windows(relevant, windows):
    x, y, lengths = temporal_order_problem(300, 100, relevant, np.random.default_rng(2))
    symbols = x.argmax(-1)
    assert (x.sum(-1)[np.arange(x.shape[1])[None, :] < lengths[:, None]] == 1).all()  # one-hot real steps
    for i in range(300):
        n = lengths[i]
        assert symbols[i, 0] == SYMBOLS.index("E") and symbols[i, n - 1] == SYMBOLS.index("B")
        relevant_steps = np.flatnonzero(np.isin(symbols[i, :n], [4, 5]))
        assert len(relevant_steps) == relevant
        for step, (low, high) in zip(relevant_steps, windows):
            assert low <= step <= high
        order = "".join("XY"[s - 4] for s in symbols[i, relevant_steps])
        assert y[i] == int(order.replace("X", "0").replace("Y", "1"), 2)


def test_sources_take_length_and_samples_from_the_data_table():
    source = load_source("adding", config=DataConfig(name="adding", length=30, samples=64))
    assert source.train.x.shape == (64, 33, 2) and len(source.test) == TEST_SAMPLES
    assert source.train.targets == "values" and source.train.lengths is None
    x, _, lengths = adding_problem_1997(64, 30, np.random.default_rng(1997))
    for i in (0, 1):  # each sequence ends on the last step, after blank steps
        np.testing.assert_array_equal(source.train.x[i, 33 - lengths[i]:], x[i, :lengths[i]])
        assert not source.train.x[i, :33 - lengths[i]].any()
    again = load_source("adding", config=DataConfig(name="adding", length=30, samples=64))
    np.testing.assert_array_equal(source.train.x, again.train.x)
    scaled = load_source("adding", config=DataConfig(name="adding", length=30, samples=64, input_scale=5.0))
    np.testing.assert_allclose(scaled.train.x, 5 * source.train.x)
    np.testing.assert_array_equal(scaled.train.y, source.train.y)
    order = load_source("temporal-order-8", config=DataConfig(name="temporal-order-8", length=50, samples=16))
    assert order.label_names[0] == "XXX" and order.label_names[-1] == "YYY" and order.train.x.shape[2] == 8
    with pytest.raises(DataError, match=r"expected length T >= 20 .*got 10"):
        load_source("adding", config=DataConfig(name="adding", length=10, samples=4))


def test_adding_criterion_on_hand_made_predictions():
    targets = np.full(2500, 0.5)
    report = adding_criterion(targets + 0.039, targets)
    assert report["wrong"] == 0 and report["solved"] and report["sequences"] == 2500
    off = targets + 0.01
    off[100] += 0.05  # one wrong, but not among the last 2000
    report = adding_criterion(off, targets)
    assert report["wrong"] == 1 and report["solved"] and report["fraction_correct"] == pytest.approx(2499 / 2500)
    off[-1] += 0.05  # a wrong one among the last 2000
    assert not adding_criterion(off, targets)["solved"]
    report = adding_criterion(np.full(2500, 0.5 + 0.11), targets)  # all wrong, MSE 0.0121 >= 0.01
    assert report["wrong"] == 2500 and not report["solved"]
    with pytest.raises(DataError, match="expected one prediction per target"):
        adding_criterion(np.zeros(3), np.zeros(4))


def test_temporal_order_criterion_asks_every_output_within_0_3():
    targets = np.array([0, 1, 2, 3])
    good = np.full((4, 4), 0.05) + np.eye(4)[targets] * 0.75  # true class 0.8, others 0.05
    assert temporal_order_criterion(good, targets)["solved"]
    argmax_right_but_unsure = good.copy()
    argmax_right_but_unsure[0] = [0.6, 0.2, 0.1, 0.1]  # accuracy still 1, but |0.6 - 1| >= 0.3
    report = temporal_order_criterion(argmax_right_but_unsure, targets)
    assert report["accuracy"] == 1.0 and report["wrong"] == 1 and not report["solved"]
    assert task_criterion("temporal-order-8") is temporal_order_criterion
    with pytest.raises(DataError, match="expected a task among adding"):
        task_criterion("reber")


def test_the_grammar_checker_knows_reber_strings():
    for inner in ["BTSSXXTVVE", "BPVVE", "BTXXVPSE", "BPVPXVPXVPXVVE", "BTSXXVPSE"]:  # Reber strings
        assert is_embedded_reber(f"BT{inner}TE") and is_embedded_reber(f"BP{inner}PE")
        assert not is_embedded_reber(f"BT{inner}PE")  # the penultimate symbol must repeat the second
    for inner in ["BTSSPXSE", "BPTVVB", "BTXXVVSE", "BPVSPSE", "BTSSSE"]:  # not Reber strings
        assert not is_embedded_reber(f"BT{inner}TE")


def test_embedded_reber_strings_are_grammatical_and_deterministic():
    strings = embedded_reber_strings(2000, np.random.default_rng(0))
    assert all(is_embedded_reber(s) for s in strings)
    assert all(s[-2] == s[1] for s in strings) and {s[1] for s in strings} == {"T", "P"}
    assert strings == embedded_reber_strings(2000, np.random.default_rng(0))
    assert strings != embedded_reber_strings(2000, np.random.default_rng(1))
    assert min(map(len, strings)) == 9  # B T BTXSE T E or B P BPVVE P E


def test_next_symbol_targets_follow_the_grammar():
    assert next_symbol_sets("BTBPVVETE") == ["TP", "B", "TP", "TV", "PV", "E", "T", "E"]
    assert next_symbol_sets("BPBTSXSEPE") == ["TP", "B", "TP", "SX", "SX", "XS", "E", "P", "E"]
    x, y, lengths, strings = embedded_reber_problem(300, np.random.default_rng(3), exclude={"BTBTXSETE"})
    assert "BTBTXSETE" not in strings and x.shape[2] == len(REBER_SYMBOLS)
    for i, string in enumerate(strings):
        n = lengths[i]
        assert n == len(string) - 1 and not x[i, n:].any() and not y[i, n:].any()
        assert "".join(REBER_SYMBOLS[k] for k in x[i, :n].argmax(-1)) == string[:-1]
        assert y[i, n - 2] == 1 << REBER_SYMBOLS.index(string[1])  # after the inner E: the second symbol
    seen: dict[str, set[str]] = {}  # the next symbols that follow each prefix in many generated strings
    for string in embedded_reber_strings(5000, np.random.default_rng(4)):
        for t in range(1, len(string)):
            seen.setdefault(string[:t], set()).add(string[t])
    for i, string in enumerate(strings):
        for t in range(lengths[i]):
            allowed = {c for k, c in enumerate(REBER_SYMBOLS) if int(y[i, t]) >> k & 1}
            assert string[t + 1] in allowed and seen.get(string[: t + 1], allowed) <= allowed
            if t < 6:  # short prefixes are seen often enough to show every continuation
                assert seen[string[: t + 1]] == allowed


def test_embedded_reber_source_holds_unseen_test_strings():
    source = load_source("embedded-reber", config=DataConfig(name="embedded-reber", samples=64))
    assert len(source.train) == 64 and len(source.test) == 256 and source.train.targets == "values"
    assert source.train.lengths is not None and source.train.x.shape[1:] == source.test.x.shape[1:]
    def strings(ds):
        return {"".join(REBER_SYMBOLS[k] for k in ds.x[i, :n].argmax(-1)) for i, n in enumerate(ds.lengths)}
    assert not strings(source.train) & strings(source.test)


def test_embedded_reber_criterion_on_hand_made_outputs():
    _, y, _, _ = embedded_reber_problem(4, np.random.default_rng(0))
    bits = (y.astype(np.int64)[..., None] >> np.arange(7)) & 1  # (N, L, 7)
    perfect = np.where(bits == 1, 0.6, 0.1)
    report = embedded_reber_criterion(perfect, y)
    assert report["solved"] and report["wrong"] == 0 and report["step_accuracy"] == 1.0
    assert report["penultimate_correct"] == 1.0
    wrong = perfect.copy()
    n = int((y[2] > 0).sum())
    wrong[2, n - 2] = 0.3  # the long-lag step: both T and P at 0.3
    report = embedded_reber_criterion(wrong, y)
    assert not report["solved"] and report["wrong"] == 1 and report["penultimate_correct"] == 0.75
    wrong[0, 0, :] = 0.5  # a tie between an allowed and a forbidden symbol is wrong too
    assert embedded_reber_criterion(wrong, y)["wrong"] == 2
    with pytest.raises(DataError, match="expected outputs of shape"):
        embedded_reber_criterion(perfect[:, :, :6], y)
