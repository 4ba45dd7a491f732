"""The long-time-lag tasks of Hochreiter & Schmidhuber (1997), generated under a seed, and their criteria.

S. Hochreiter and J. Schmidhuber, "Long Short-Term Memory", Neural Computation 9(8):1735-1780, 1997,
Section 5 (Experiments 4, 5 and 6). Each task is a configurable source; ``[data] length`` is the paper's
minimal length T (default 100) and ``[data] samples`` the number of training sequences (default 10,000;
validation is held out of them). The test split is always 2,560 sequences, the size of the paper's test
sets, drawn from a second fixed seed. Sequence lengths vary between T and T + T/10. The generators return them zero-padded at the end with their ``lengths``;
the sources instead end every sequence on the last step, after blank (all-zero) steps, and carry no
``lengths``. The blank steps come before the start marker and hold no information, the lags between the
relevant inputs and the answer are the paper's, and the batches stay rectangular, which keeps training on
the engine's fused path (on the CPU, the masked path for ``lengths`` is about ten times slower here).

``adding`` (Experiment 4, regression). Each step is a pair ``(value, marker)``: the value is drawn from
U[-1, 1]; the marker is 1.0 on exactly two steps, -1.0 on the first and last step, 0 elsewhere. The
first marked step is one of the first ten (its value is X1; X1 is set to 0 when the first step itself is
marked); the second is one of the first T/2 - 1 still unmarked steps (X2; we zero it too when it lands
on the first step, the same rare case). The target, seen only at the
end, is ``0.5 + (X1 + X2) / 4``. "A sequence was processed correctly if the absolute error at the sequence
end is below 0.04"; training was stopped once "the average training error was below 0.01 and the 2000
most recent sequences were processed correctly".

``multiplication`` (Experiment 5, regression): the adding problem with values drawn from U[0, 1] and the
target ``X1 * X2`` (a marked first step carries 1.0, the product's neutral value: our reading of the
paper's rule for that rare case). The same 0.04 per-sequence criterion.

``temporal-order-4`` / ``temporal-order-8`` (Experiment 6a / 6b, classification). One-hot symbols from
{a, b, c, d, X, Y, E, B}: the sequence starts with E, ends with the trigger symbol B, and holds random
distractors a..d except at two (three) positions that are X or Y: t1 in [10, 20], t2 in [50, 60] for 6a;
t1 in [10, 20], t2 in [33, 43], t3 in [66, 76] for 6b (scaled by T/100 for other lengths). The class
is the temporal order (XX, XY, YX, YY; XXX ... YYY). "The sequence is classified correctly if the final
absolute error of all output units is below 0.3"; training stopped once the average training error was
below 0.1 and the 2000 most recent sequences were classified correctly.

``embedded-reber`` (Experiment 1, next-symbol prediction). Strings of the embedded Reber grammar
(Cleeremans, Servan-Schreiber & McClelland 1989): ``B``, then ``T`` or ``P``, an inner Reber string, the
same ``T`` or ``P`` again, and ``E``, over the 7 symbols ``BTPSXVE`` (one-hot inputs). At each step the
model predicts the set of symbols that may come next (7 sigmoid outputs, a multi-label target); the
penultimate symbol repeats the second and needs the long lag. As in the paper, 256 training strings and 256
test strings, the test strings unseen in training. The targets are stored per step as the bitmask
``sum_k 2^k`` over the possible next symbols k (0 on padding), with ``lengths``. "A trial is considered
successful if all string symbols of all sequences in both test set and training set are predicted
correctly -- that is, if the output unit(s) corresponding to the possible next symbol(s) is(are) always
the most active ones": a string is correct when, at every step, the k possible next symbols get the k
highest outputs; ``embedded_reber_criterion`` calls the task solved when every test string is correct.

The criteria (``adding_criterion``, ``temporal_order_criterion``) apply the paper's stopping rule to the
test split, in order: the task counts as **solved** when the average error is below the paper's bound
and the 2000 most recent (last) test sequences are all processed correctly. The report also gives the
number of wrong sequences out of all 2,560, which is what the paper's tables report. The average error is
the mean squared error at the sequence end (over output units, for the classifiers' probabilities).

Example::

    x, y, lengths = adding_problem_1997(4, 100, np.random.default_rng(0))   # (4, 110, 2), (4,), (4,)
    adding_criterion(predictions, y)["solved"]
"""

from __future__ import annotations

import itertools
import logging
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lstmkit.data.base import ArrayDataset, SourceData, register_source
from lstmkit.errors import DataError

__all__ = [
    "TASKS",
    "rnn_counterpart",
    "judge_model",
    "REBER_SYMBOLS",
    "embedded_reber_strings",
    "embedded_reber_problem",
    "is_embedded_reber",
    "next_symbol_sets",
    "embedded_reber_criterion",
    "adding_problem_1997",
    "multiplication_problem_1997",
    "temporal_order_problem",
    "adding_criterion",
    "temporal_order_criterion",
    "task_criterion",
    "evaluate_criterion",
    "TEST_SAMPLES",
]

log = logging.getLogger(__name__)

DEFAULT_LENGTH = 100
DEFAULT_SAMPLES = 10_000
TEST_SAMPLES = 2560
TRAIN_SEED, TEST_SEED = 1997, 2024
RECENT = 2000
"""The paper's stopping rule asks the 2000 most recent sequences to be processed correctly."""

REGRESSION_THRESHOLD = 0.04
REGRESSION_AVERAGE_ERROR = 0.01
CLASSIFICATION_THRESHOLD = 0.3
CLASSIFICATION_AVERAGE_ERROR = 0.1

SYMBOLS = ["a", "b", "c", "d", "X", "Y", "E", "B"]

REBER_SYMBOLS = "BTPSXVE"
REBER_SAMPLES = 256
"""The paper's training and test set sizes for the embedded Reber grammar."""
_REBER = {0: (("T", 1), ("P", 2)), 1: (("S", 1), ("X", 3)), 2: (("T", 2), ("V", 4)),
          3: (("X", 2), ("S", 5)), 4: (("P", 3), ("V", 5)), 5: (("E", None),)}
"""The Reber automaton after its ``B``: state -> (symbol, next state) choices, taken with equal chance."""
_REBER_STRING = "B(?:TS*X(?:XT*VP)*(?:S|XT*VV)|PT*V(?:PXT*V)*(?:V|PS))E"
_EMBEDDED_REBER = re.compile(f"B([TP]){_REBER_STRING}\\1E")


def _lengths(n: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """Random sequence lengths in [T, T + T/10]."""
    return rng.integers(length, length + length // 10 + 1, size=n).astype(np.int64)


def _marked_pairs(n: int, length: int, values: np.ndarray, first_neutral: float,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Markers of the adding/multiplication problems; returns (x, lengths, X1, X2)."""
    if length < 20:
        raise DataError(f"adding/multiplication: expected length T >= 20 (the first mark is among the first "
                        f"10 steps, the second among the first T/2 - 1), got {length}")
    lengths = _lengths(n, length, rng)
    total = int(lengths.max())
    markers = np.zeros((n, total), dtype=np.float32)
    rows = np.arange(n)
    markers[rows, 0] = -1.0
    markers[rows, lengths - 1] = -1.0
    first = rng.integers(0, 10, size=n)
    # one of the first T/2 - 1 steps that are still unmarked: skip over the first mark
    second = rng.integers(0, length // 2 - 1, size=n)
    second = second + (second >= first)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    values = values[:, :total].copy()
    values[np.arange(total)[None, :] >= lengths[:, None]] = 0.0  # padding stays zero
    values[rows[(first == 0) | (second == 0)], 0] = first_neutral  # a marked first step carries no value
    x1, x2 = values[rows, first], values[rows, second]
    x = np.stack([values, markers], axis=-1)  # (N, L, 2)
    return x.astype(np.float32), lengths, x1, x2


def adding_problem_1997(n: int, length: int, rng: np.random.Generator
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` adding-problem sequences of minimal length T=``length`` (Experiment 4, see the module docstring).

    Returns ``x`` (n, L_max, 2) zero-padded, targets ``0.5 + (X1 + X2) / 4`` (n,), and lengths (n,).
    """
    values = rng.uniform(-1.0, 1.0, size=(n, length + length // 10)).astype(np.float32)
    x, lengths, x1, x2 = _marked_pairs(n, length, values, 0.0, rng)
    return x, (0.5 + (x1 + x2) / 4.0).astype(np.float32), lengths


def multiplication_problem_1997(n: int, length: int, rng: np.random.Generator
                                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` multiplication-problem sequences (Experiment 5): values in U[0, 1], target ``X1 * X2``."""
    values = rng.uniform(0.0, 1.0, size=(n, length + length // 10)).astype(np.float32)
    x, lengths, x1, x2 = _marked_pairs(n, length, values, 1.0, rng)
    return x, (x1 * x2).astype(np.float32), lengths


def temporal_order_problem(n: int, length: int, relevant: int, rng: np.random.Generator
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` temporal-order sequences (Experiment 6a with ``relevant=2``, 6b with 3), one-hot over ``SYMBOLS``.

    Returns ``x`` (n, L_max, 8), the class ``sum_k is_Y_k * 2^(relevant-1-k)`` (XX=0, XY=1, YX=2, YY=3;
    XXX=0 ... YYY=7) of shape (n,), and lengths (n,).
    """
    if relevant not in (2, 3):
        raise ValueError(f"temporal_order_problem: expected 2 or 3 relevant symbols, got {relevant}")
    if length < 20:
        raise DataError(f"temporal-order: expected length T >= 20, got {length}")
    windows = [(0.10, 0.20), (0.50, 0.60)] if relevant == 2 else [(0.10, 0.20), (0.33, 0.43), (0.66, 0.76)]
    lengths = _lengths(n, length, rng)
    total = int(lengths.max())
    symbols = rng.integers(0, 4, size=(n, total))  # distractors a..d
    rows = np.arange(n)
    is_y = rng.integers(0, 2, size=(n, relevant))
    for k, (low, high) in enumerate(windows):
        position = rng.integers(round(low * length), round(high * length) + 1, size=n)
        symbols[rows, position] = 4 + is_y[:, k]  # X = 4, Y = 5
    symbols[rows, 0] = SYMBOLS.index("E")
    symbols[rows, lengths - 1] = SYMBOLS.index("B")
    x = np.eye(len(SYMBOLS), dtype=np.float32)[symbols]  # (N, L, 8)
    x[np.arange(total)[None, :] >= lengths[:, None]] = 0.0  # padding
    y = (is_y * (2 ** np.arange(relevant - 1, -1, -1))[None, :]).sum(axis=1)
    return x, y.astype(np.int64), lengths


def _reber_string(rng: np.random.Generator) -> str:
    symbols, state = ["B"], 0
    while state is not None:
        symbol, state = _REBER[state][int(rng.integers(len(_REBER[state])))]
        symbols.append(symbol)
    return "".join(symbols)


def embedded_reber_strings(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` embedded Reber strings: ``B``, ``T`` or ``P``, an inner Reber string, the same ``T``/``P``, ``E``."""
    strings = []
    for _ in range(n):
        outer = "TP"[int(rng.integers(2))]
        strings.append(f"B{outer}{_reber_string(rng)}{outer}E")
    return strings


def is_embedded_reber(string: str) -> bool:
    """Whether ``string`` belongs to the embedded Reber grammar (a regular expression of the grammar's graph)."""
    return _EMBEDDED_REBER.fullmatch(string) is not None


def next_symbol_sets(string: str) -> list[str]:
    """For each prefix ``string[: t + 1]`` (t < len - 1), the symbols the embedded grammar allows next."""
    if not is_embedded_reber(string):
        raise DataError(f"next_symbol_sets: expected an embedded Reber string, got {string!r}")
    sets, state = ["TP", "B"], 0  # after the outer B; after the outer T/P
    for symbol in string[3:-2]:  # the inner string after its B, up to its E
        state = dict(_REBER[state])[symbol]
        sets.append("".join(s for s, _ in _REBER[state]) if state is not None else string[1])
    sets.insert(2, "TP")  # after the inner B
    return sets + ["E"]  # after the second outer T/P


def embedded_reber_problem(n: int, rng: np.random.Generator, exclude: set[str] | frozenset[str] = frozenset()
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """``n`` embedded Reber strings, none of them in ``exclude``, as a next-symbol task.

    Returns ``x`` (n, L_max, 7) one-hot over ``REBER_SYMBOLS`` for every symbol but the last, zero-padded;
    ``y`` (n, L_max) float32, at step t the bitmask ``sum 2^k`` of the symbols k that may follow the first
    t + 1 symbols (0 on padding); ``lengths`` (n,) = string length - 1; and the strings.
    """
    strings: list[str] = []
    while len(strings) < n:
        strings += [s for s in embedded_reber_strings(n - len(strings), rng) if s not in exclude]
    lengths = np.array([len(s) - 1 for s in strings], dtype=np.int64)
    x = np.zeros((n, int(lengths.max()), len(REBER_SYMBOLS)), dtype=np.float32)
    y = np.zeros((n, int(lengths.max())), dtype=np.float32)
    for i, string in enumerate(strings):
        x[i, np.arange(lengths[i]), [REBER_SYMBOLS.index(c) for c in string[:-1]]] = 1.0
        y[i, : lengths[i]] = [sum(1 << REBER_SYMBOLS.index(c) for c in allowed) for allowed in next_symbol_sets(string)]
    return x, y, lengths, strings


# --------------------------------------------------------------------------------------------------------
# Criteria


def _recent_all_correct(correct: np.ndarray) -> bool:
    return bool(correct[-RECENT:].all())


def adding_criterion(predictions: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
    """The paper's criterion for the adding and multiplication problems, on predictions at sequence ends.

    A sequence is correct when ``|prediction - target| < 0.04``; the task is solved when the mean squared
    error is below 0.01 and the last 2000 sequences (all, if fewer) are correct.
    """
    predictions = np.asarray(predictions, dtype=np.float64).reshape(-1)
    targets = np.asarray(targets, dtype=np.float64).reshape(-1)
    if predictions.shape != targets.shape:
        raise DataError(f"adding_criterion: expected one prediction per target ({targets.shape[0]}), "
                        f"got {predictions.shape[0]}")
    error = np.abs(predictions - targets)
    correct = error < REGRESSION_THRESHOLD
    mse = float(np.mean(error**2))
    return {
        "criterion": f"|error| < {REGRESSION_THRESHOLD} per sequence; solved: MSE < {REGRESSION_AVERAGE_ERROR} "
                     f"and the last {RECENT} sequences correct (Hochreiter & Schmidhuber 1997, Exp. 4/5)",
        "sequences": int(len(correct)),
        "wrong": int((~correct).sum()),
        "fraction_correct": float(correct.mean()),
        "mse": mse,
        "max_abs_error": float(error.max()),
        "solved": bool(mse < REGRESSION_AVERAGE_ERROR and _recent_all_correct(correct)),
    }


def temporal_order_criterion(probabilities: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
    """The paper's criterion for the temporal-order problems, on class probabilities ``(N, C)``.

    A sequence is correct when every output unit is within 0.3 of the one-hot target (for softmax outputs:
    the true class's probability is above 0.7); the task is solved when the mean squared error of the
    output units is below 0.1 and the last 2000 sequences (all, if fewer) are correct.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    targets = np.asarray(targets).reshape(-1)
    if probabilities.ndim != 2 or probabilities.shape[0] != targets.shape[0]:
        raise DataError(f"temporal_order_criterion: expected probabilities of shape ({targets.shape[0]}, C), "
                        f"got {probabilities.shape}")
    onehot = np.eye(probabilities.shape[1])[targets]
    error = np.abs(probabilities - onehot)  # (N, C)
    correct = (error < CLASSIFICATION_THRESHOLD).all(axis=1)
    mse = float(np.mean(error**2))
    return {
        "criterion": f"every output unit within {CLASSIFICATION_THRESHOLD} of its target; solved: MSE < "
                     f"{CLASSIFICATION_AVERAGE_ERROR} and the last {RECENT} sequences correct "
                     "(Hochreiter & Schmidhuber 1997, Exp. 6)",
        "sequences": int(len(correct)),
        "wrong": int((~correct).sum()),
        "fraction_correct": float(correct.mean()),
        "accuracy": float((probabilities.argmax(axis=1) == targets).mean()),
        "mse": mse,
        "solved": bool(mse < CLASSIFICATION_AVERAGE_ERROR and _recent_all_correct(correct)),
    }


def _bits(masks: np.ndarray, width: int) -> np.ndarray:
    """Bitmasks ``(...)`` to 0/1 arrays ``(..., width)``, bit k in column k."""
    return (np.asarray(masks).astype(np.int64)[..., None] >> np.arange(width)) & 1


def embedded_reber_criterion(outputs: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
    """The paper's criterion for the embedded Reber grammar, on per-step outputs ``(N, L, 7)``.

    ``targets`` (N, L) holds each step's bitmask of possible next symbols (0: padding). A step is correct
    when its k possible next symbols get the k highest outputs, a string when all its steps are; the task
    is solved when every string is correct. Also reported: the fraction of strings whose penultimate
    symbol (the second repeated, the long lag) is predicted (its unit is the most active one).
    """
    outputs = np.asarray(outputs, dtype=np.float64)
    targets = np.asarray(targets).astype(np.int64)
    if outputs.shape != targets.shape + (len(REBER_SYMBOLS),):
        raise DataError(f"embedded_reber_criterion: expected outputs of shape {targets.shape + (len(REBER_SYMBOLS),)}"
                        f", got {outputs.shape}")
    allowed = _bits(targets, outputs.shape[2]).astype(bool)  # (N, L, K)
    real = targets > 0  # (N, L)
    lowest_allowed = np.where(allowed, outputs, np.inf).min(-1)
    highest_other = np.where(allowed, -np.inf, outputs).max(-1)
    step_correct = (lowest_allowed > highest_other) | ~real
    correct = step_correct.all(axis=1)
    lengths = real.sum(axis=1)
    rows = np.arange(len(targets))
    last = np.maximum(lengths - 2, 0)  # the step whose next symbol is the second T/P
    lag_correct = step_correct[rows, last]
    return {
        "criterion": "at every step the possible next symbols get the most active outputs; solved: every test "
                     "string correct (Hochreiter & Schmidhuber 1997, Exp. 1)",
        "sequences": int(len(correct)),
        "wrong": int((~correct).sum()),
        "fraction_correct": float(correct.mean()),
        "step_accuracy": float(step_correct[real].mean()),
        "penultimate_correct": float(lag_correct.mean()),
        "solved": bool(correct.all()),
    }


TASKS: dict[str, dict[str, Any]] = {
    "adding": {"targets": "values", "criterion": adding_criterion},
    "multiplication": {"targets": "values", "criterion": adding_criterion},
    "temporal-order-4": {"targets": "classes", "criterion": temporal_order_criterion,
                         "labels": ["XX", "XY", "YX", "YY"]},
    "temporal-order-8": {"targets": "classes", "criterion": temporal_order_criterion,
                         "labels": ["".join(p) for p in itertools.product("XY", repeat=3)]},
    "embedded-reber": {"targets": "values", "criterion": embedded_reber_criterion},
}
"""Each generated task: its target kind, its criterion and (classification) its class names."""


def task_criterion(name: str) -> Callable[[np.ndarray, np.ndarray], dict[str, Any]]:
    """The criterion function of task ``name`` (a key of ``TASKS``)."""
    if name not in TASKS:
        raise DataError(f"long-lag criterion: expected a task among {', '.join(TASKS)}, got {name!r}")
    return TASKS[name]["criterion"]


def evaluate_criterion(name: str, model: Any, data: ArrayDataset) -> dict[str, Any]:
    """Run ``model`` (an ``lstmkit.tasks.sequence_model.Model``) on ``data`` and judge it by task ``name``'s criterion."""
    criterion = task_criterion(name)
    if TASKS[name]["targets"] == "classes":
        return criterion(model.predict_proba(data), data.y)
    if name == "embedded-reber":
        return criterion(model.predict(data), data.y)  # (N, L, 7) probabilities of the next symbols
    return criterion(model.predict(data), data.y)


def rnn_counterpart(model: Any) -> str:
    """The plain tanh RNN task (``rnn-regressor`` or ``rnn-classifier``) that trains on the same targets as
    the ``[model]`` table ``model`` (a ``ModelConfig``): the baseline of ``lstmkit longlag --rnn``."""
    from lstmkit.models import model_objective

    return "rnn-regressor" if model_objective(model).targets == "values" else "rnn-classifier"


def judge_model(config: Any, model_dir: str | Path) -> dict[str, Any]:
    """Judge the model folder ``model_dir``, trained with ``config`` (a ``Config`` whose ``[data] name`` is one
    of ``TASKS``), by its task's 1997 criterion on the test split; the report also names the task, its
    length T and the model's task."""
    from lstmkit.data import load_source
    from lstmkit.tasks.sequence_model import Model

    name = config.data.name
    task_criterion(name)  # an unknown task is reported by name
    source = load_source(name, config=config.data)
    report = evaluate_criterion(name, Model.load(model_dir), source.test)
    report.update({"task": name, "length": config.data.length, "model": config.model.task})
    return report


# --------------------------------------------------------------------------------------------------------
# Sources


def _align_ends(x: np.ndarray, lengths: np.ndarray, total: int) -> np.ndarray:
    """Move each sequence to the end of ``total`` steps, after blank (all-zero) steps: ``(N, total, F)``."""
    aligned = np.zeros((x.shape[0], total, x.shape[2]), dtype=np.float32)  # (N, L, F)
    for i, n in enumerate(lengths):
        aligned[i, total - n:] = x[i, :n]
    return aligned


def _generated(name: str, config: Any, make: Callable[[int, int, np.random.Generator], tuple]) -> SourceData:
    length = config.length or DEFAULT_LENGTH
    samples = config.samples or DEFAULT_SAMPLES
    task = TASKS[name]
    splits = []
    for n, seed in ((samples, TRAIN_SEED), (TEST_SAMPLES, TEST_SEED)):
        x, y, lengths = make(n, length, np.random.default_rng(seed))
        splits.append((x, y, lengths))
    total = max(x.shape[1] for x, _, _ in splits)
    datasets = []
    scale = getattr(config, "input_scale", 1.0)
    for x, y, lengths in splits:
        datasets.append(ArrayDataset(_align_ends(x, lengths, total) * np.float32(scale), y, None, task["targets"]))
    return SourceData(train=datasets[0], test=datasets[1], label_names=list(task.get("labels", [])),
                      image_shape=None, pixel_max=None, name=name)


def _ignore_data_dir(name: str, data_dir: Path | None) -> None:
    if data_dir is not None:
        log.info("%s: a generated task; ignoring data_dir %s", name, data_dir)


@register_source("adding", configurable=True)
def load_adding(data_dir: Path | None, download: bool, config: Any) -> SourceData:
    """The adding problem (Experiment 4): x (N, L, 2) pairs (value, marker), y the scaled sum (N,)."""
    _ignore_data_dir("adding", data_dir)
    return _generated("adding", config, adding_problem_1997)


@register_source("multiplication", configurable=True)
def load_multiplication(data_dir: Path | None, download: bool, config: Any) -> SourceData:
    """The multiplication problem (Experiment 5): x (N, L, 2), y = X1 * X2 (N,)."""
    _ignore_data_dir("multiplication", data_dir)
    return _generated("multiplication", config, multiplication_problem_1997)


@register_source("temporal-order-4", configurable=True)
def load_temporal_order_4(data_dir: Path | None, download: bool, config: Any) -> SourceData:
    """Temporal order with two relevant symbols (Experiment 6a): x (N, L, 8) one-hot, 4 classes."""
    _ignore_data_dir("temporal-order-4", data_dir)
    return _generated("temporal-order-4", config, lambda n, t, rng: temporal_order_problem(n, t, 2, rng))


@register_source("temporal-order-8", configurable=True)
def load_temporal_order_8(data_dir: Path | None, download: bool, config: Any) -> SourceData:
    """Temporal order with three relevant symbols (Experiment 6b): x (N, L, 8) one-hot, 8 classes."""
    _ignore_data_dir("temporal-order-8", data_dir)
    return _generated("temporal-order-8", config, lambda n, t, rng: temporal_order_problem(n, t, 3, rng))


@register_source("embedded-reber", configurable=True)
def load_embedded_reber(data_dir: Path | None, download: bool, config: Any) -> SourceData:
    """The embedded Reber grammar (Experiment 1): x (N, L, 7) one-hot, y (N, L) next-symbol bitmasks, lengths.

    ``[data] samples`` training strings (default 256, the paper's); 256 test strings, none seen in training.
    """
    _ignore_data_dir("embedded-reber", data_dir)
    x, y, lengths, strings = embedded_reber_problem(config.samples or REBER_SAMPLES, np.random.default_rng(TRAIN_SEED))
    tx, ty, tlengths, _ = embedded_reber_problem(REBER_SAMPLES, np.random.default_rng(TEST_SEED), set(strings))
    total = max(x.shape[1], tx.shape[1])
    pad = lambda a: np.pad(a, [(0, 0), (0, total - a.shape[1])] + [(0, 0)] * (a.ndim - 2))  # noqa: E731
    return SourceData(train=ArrayDataset(pad(x), pad(y), lengths, "values"),
                      test=ArrayDataset(pad(tx), pad(ty), tlengths, "values"),
                      label_names=[], image_shape=None, pixel_max=None, name="embedded-reber")
