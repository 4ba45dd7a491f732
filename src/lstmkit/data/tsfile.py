"""Strict readers for labelled time-series files: the UCR/UEA ``.ts`` format and long-format CSV.

Both return ``(x, lengths, labels)``: zero-padded inputs ``(N, L, F)``, each series' real length ``(N,)``
and its label as written in the file. Every problem is a ``DataError`` naming the file and the line.

The ``.ts`` format (as written by sktime/aeon for the UCR/UEA archives)::

    # comments
    @problemName GunPoint
    @timeStamps false
    @univariate true
    @classLabel true 1 2
    @data
    -0.64,-0.64,-0.63,...:1                     one series per line: dimensions separated by ':',
    0.1,0.2,...:0.3,0.4,...:2                   values by ',', the class label last

Time-stamped series (``@timeStamps true``) and missing values (``?`` or NaN) are refused with an error;
series of different lengths are allowed, but all dimensions of one series must have the same length.

Long-format CSV: a header row naming the columns ``id``, ``time`` and ``label`` (any order) plus one
column per feature; one row per series and time step. Rows of one id are sorted by ``time``; an id's
label must be the same on all its rows. Example::

    id,time,x,y,label
    a,0,0.1,1.2,walk
    a,1,0.3,1.1,walk
    b,0,0.5,0.9,run

Example::

    x, lengths, labels = read_ts("GunPoint_TRAIN.ts")   # (50, 150, 1), [150, ...], ["2", "1", ...]
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lstmkit.data.arrays import pad_sequences
from lstmkit.errors import DataError

__all__ = ["TimeSeriesFile", "read_ts", "read_long_csv"]


@dataclass
class TimeSeriesFile:
    """What a labelled time-series file holds.

    Attributes:
        x: float32 (N, L, F), zero-padded at the end.
        lengths: int64 (N,), each series' number of real steps.
        labels: the class label of each series, as a string from the file.
        class_labels: the declared class labels in the file's order (``@classLabel``), or the sorted
            distinct labels when the file declares none.
    """

    x: np.ndarray
    lengths: np.ndarray
    labels: list[str]
    class_labels: list[str] = field(default_factory=list)


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: expected a UTF-8 text file, got undecodable bytes ({exc.reason})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})") from None


def _number(text: str, where: str) -> float:
    text = text.strip()
    if text in ("?", "") or text.lower() == "nan":
        raise DataError(f"{where}: missing value {text!r}; missing values are not supported "
                        "(fill or drop them first)")
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{where}: expected a number, got {text!r}") from None
    if not math.isfinite(value) or abs(value) > _FLOAT32_MAX:  # the series are kept as float32
        raise DataError(f"{where}: expected a finite number within float32 (±3.4e38), got {text[:40]!r}")
    return value


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _header_value(headers: dict[str, list[str]], key: str, default: str | None, path: Path) -> str | None:
    """The first word after ``@key`` (``default`` when the header is absent); a header without one is an error."""
    if key not in headers:
        return default
    if not headers[key]:
        raise DataError(f"{path}: @{key}: expected a value after it, got none")
    return headers[key][0]


def read_ts(path: str | Path) -> TimeSeriesFile:
    """Read a labelled UCR/UEA ``.ts`` file (see the module docstring).

    Raises:
        DataError: naming the file and line, for a missing ``@data`` section, time stamps, a missing or
            non-numeric value, a series whose dimensions differ in length or count from the header or the
            first series, a label not declared by ``@classLabel``, or a file with no series.
    """
    path = Path(path)
    lines = _read_lines(path)
    headers: dict[str, list[str]] = {}
    data_start = None
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith("@"):
            raise DataError(f"{path} line {number}: expected a @header or @data before the series, got {line[:40]!r}")
        key, *values = line.split()
        key = key[1:].lower()
        if key == "data":
            data_start = number
            break
        headers[key] = values
    if data_start is None:
        raise DataError(f"{path}: expected a @data line before the series, got none")
    if (_header_value(headers, "timestamps", "false", path) or "").lower() == "true":
        raise DataError(f"{path}: @timeStamps true: time-stamped series are not supported; "
                        "write them as a long-format CSV (id, time, features..., label)")
    declared = headers.get("classlabel", [])
    if declared and declared[0].lower() != "true":
        raise DataError(f"{path}: @classLabel {declared[0]}: expected labelled series (@classLabel true ...)")
    class_labels = declared[1:]
    dimensions_text = _header_value(headers, "dimensions", None, path)
    if dimensions_text is not None and not (dimensions_text.isdigit() and 0 < int(dimensions_text) <= 100_000):
        raise DataError(f"{path}: @dimensions: expected a positive integer, got {dimensions_text[:40]!r}")
    dimensions = int(dimensions_text) if dimensions_text is not None else None

    series: list[np.ndarray] = []
    labels: list[str] = []
    for number in range(data_start + 1, len(lines) + 1):
        line = lines[number - 1].strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path} line {number}"
        parts = line.split(":")
        if len(parts) < 2:
            raise DataError(f"{where}: expected dimensions separated by ':' and a class label last, got no ':'")
        label = parts[-1].strip()
        if class_labels and label not in class_labels:
            raise DataError(f"{where}: class label {label!r} is not declared by @classLabel "
                            f"({' '.join(class_labels)})")
        dims = parts[:-1]
        expected_dims = dimensions if dimensions is not None else (series[0].shape[1] if series else len(dims))
        if len(dims) != expected_dims:
            raise DataError(f"{where}: expected {expected_dims} dimensions separated by ':', got {len(dims)}")
        values = [[_number(v, f"{where} dimension {d + 1}") for v in dim.split(",")] for d, dim in enumerate(dims)]
        length = len(values[0])
        for d, dim in enumerate(values):
            if len(dim) != length:
                raise DataError(f"{where}: expected every dimension to have {length} values (as dimension 1), "
                                f"got {len(dim)} in dimension {d + 1}")
        series.append(np.asarray(values, dtype=np.float32).T)  # (L_i, F)
        labels.append(label)
    if not series:
        raise DataError(f"{path}: expected at least one series after @data, got none")
    x, lengths = pad_sequences(series, str(path))
    return TimeSeriesFile(x=x, lengths=lengths, labels=labels, class_labels=class_labels or sorted(set(labels)))


def read_long_csv(path: str | Path) -> TimeSeriesFile:
    """Read a long-format CSV (``id``, ``time``, feature columns, ``label``; see the module docstring).

    Raises:
        DataError: naming the file and line, for a missing column, a row with the wrong number of fields,
            a non-numeric time or feature, a time repeated within one id, or an id whose label changes.
    """
    path = Path(path)
    lines = _read_lines(path)
    rows = list(csv.reader(lines))
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise DataError(f"{path}: expected a header row (id, time, features..., label), got an empty file")
    header = [cell.strip() for cell in rows[0]]
    missing = [name for name in ("id", "time", "label") if name not in header]
    if missing:
        raise DataError(f"{path} line 1: expected columns id, time and label in the header, "
                        f"missing {', '.join(missing)} (got {', '.join(header)})")
    id_col, time_col, label_col = header.index("id"), header.index("time"), header.index("label")
    feature_cols = [i for i in range(len(header)) if i not in (id_col, time_col, label_col)]
    if not feature_cols:
        raise DataError(f"{path} line 1: expected at least one feature column besides id, time and label")
    steps: dict[str, dict[float, list[float]]] = {}
    series_labels: dict[str, tuple[str, int]] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not row or not any(cell.strip() for cell in row):
            continue
        where = f"{path} line {number}"
        if len(row) != len(header):
            raise DataError(f"{where}: expected {len(header)} fields (as the header), got {len(row)}")
        key, label = row[id_col].strip(), row[label_col].strip()
        if not key:
            raise DataError(f"{where}: expected a series id, got an empty field")
        time = _number(row[time_col], f"{where} column time")
        values = [_number(row[i], f"{where} column {header[i]}") for i in feature_cols]
        first = series_labels.setdefault(key, (label, number))
        if first[0] != label:
            raise DataError(f"{where}: series {key!r} has label {label!r}, but {first[0]!r} on line {first[1]}")
        times = steps.setdefault(key, {})
        if time in times:
            raise DataError(f"{where}: series {key!r} repeats time {row[time_col].strip()}")
        times[time] = values
    if not steps:
        raise DataError(f"{path}: expected at least one data row after the header, got none")
    series = [np.asarray([times[t] for t in sorted(times)], dtype=np.float32) for times in steps.values()]
    labels = [series_labels[key][0] for key in steps]
    x, lengths = pad_sequences(series, str(path))
    return TimeSeriesFile(x=x, lengths=lengths, labels=labels, class_labels=sorted(set(labels)))
