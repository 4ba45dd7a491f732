"""Reading time series from a user's CSV or Parquet file: one or many series on a shared time axis.

Two layouts are read:

* **wide**: a time column and one numeric column per series::

      month,north,south
      2020-01,112,80
      2020-02,118,85

* **long**: one row per (time, series id, value)::

      month,id,value
      2020-01,north,112
      2020-01,south,80

Every series must have a finite value at every time: a missing or non-numeric value is an error that
names the column and the row, never silently filled. ``read_series_list`` reads the same layouts as
separate series of their own lengths (a global model's data): each id of a long file keeps its own times,
and each column of a wide file runs from its first to its last value (empty cells before and after are
not part of it; an empty cell between values is still an error). Times keep the file's order; repeated times are an
error, and times that parse as numbers or dates must increase.

Example::

    series = read_series("sales.csv", time_column="month")
    series.values.shape       # (T, S) float64
    series.names              # ['north', 'south']
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lstmkit.errors import DataError

__all__ = [
    "SERIES_SUFFIXES",
    "Series",
    "read_series",
    "read_series_list",
    "series_from_frame",
    "series_list_from_frame",
]

log = logging.getLogger(__name__)

SERIES_SUFFIXES = (".csv", ".txt", ".parquet", ".pq")


MAX_ABS_VALUE = 1e30
"""The largest magnitude a series value may have: float32 holds 3.4e38, and sums, squares and differences of
values need room (1e308 trained and reported test_mae Infinity and test_naive_mase 0.0)."""


@dataclass
class Series:
    """Aligned series: ``values`` float64 of shape (T, S), ``times`` (T,) labels, ``names`` (S,)."""

    values: np.ndarray
    times: list[str]
    names: list[str]

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float64)
        if values.ndim == 1:
            values = values[:, None]
        if values.ndim != 2 or values.shape[0] == 0 or values.shape[1] == 0:
            raise DataError(f"Series: expected values of shape (T, S) with T, S >= 1, got {values.shape}")
        if len(self.times) != values.shape[0] or len(self.names) != values.shape[1]:
            raise DataError(f"Series: expected {values.shape[0]} times and {values.shape[1]} names, "
                            f"got {len(self.times)} and {len(self.names)}")
        bad = ~np.isfinite(values)
        if bad.any():
            t, s = (int(i) for i in np.argwhere(bad)[0])
            raise DataError(f"series {self.names[s]!r}: expected finite values, got {int(bad.sum())} NaN/Inf "
                            f"(first at time {self.times[t]!r})")
        huge = np.abs(values) > MAX_ABS_VALUE
        if huge.any():
            t, s = (int(i) for i in np.argwhere(huge)[0])
            raise DataError(f"series {self.names[s]!r}: expected values within ±{MAX_ABS_VALUE:g} (the network and "
                            f"its metrics compute in float32), got {values[t, s]:g} at time {self.times[t]!r} "
                            f"({int(huge.sum())} such values); rescale the series first")
        self.values = values
        self.times = [str(t) for t in self.times]
        self.names = [str(n) for n in self.names]

    @classmethod
    def from_array(cls, values: Any, names: Sequence[str] | None = None) -> Series:
        """Series from an array (T,) or (T, S), with times 0..T-1 and names ``y0, y1, ...`` unless given."""
        array = np.asarray(values, dtype=np.float64)
        count = 1 if array.ndim == 1 else (array.shape[1] if array.ndim == 2 else 0)
        return cls(array, [str(i) for i in range(len(array))],
                   list(names) if names is not None else [f"y{i}" for i in range(count)])


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise DataError("series files and the forecasting sources need pandas "
                        "(pip install 'lstmkit[forecast]'), which is not installed") from None
    return pandas


def _read_frame(path: Path) -> Any:
    pd = _pandas()

    name = str(path)
    if not path.exists():
        raise DataError(f"series file {name}: expected an existing file, got no such file")
    if path.is_dir():
        raise DataError(f"series file {name}: expected a file, got a folder")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        try:
            return pd.read_parquet(path)
        except ImportError:
            raise DataError(f"series file {name}: reading Parquet needs pyarrow "
                            "(pip install 'lstmkit[parquet]'), which is not installed") from None
        except Exception as exc:  # pyarrow raises its own error types for corrupt files
            raise DataError(f"series file {name}: expected a Parquet file, got unreadable data ({exc})") from None
    if suffix in (".csv", ".txt"):
        try:
            return pd.read_csv(path, comment="#", skipinitialspace=True)
        except pd.errors.EmptyDataError:
            raise DataError(f"series file {name}: expected a header row and data rows, got an empty file") from None
        except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
            raise DataError(f"series file {name}: expected a readable CSV file, got {exc}") from None
        except OverflowError:  # pandas converting a column of integers beyond 64 bits
            pass
        try:  # every column as text: _numeric converts the value columns and names the bad cells
            return pd.read_csv(path, comment="#", skipinitialspace=True, dtype=str, keep_default_na=False,
                               na_values=[""])
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, OverflowError) as exc:
            raise DataError(f"series file {name}: expected a readable CSV file, got {exc}") from None
    raise DataError(f"series file {name}: expected one of the extensions {', '.join(SERIES_SUFFIXES)} (or "
                    f"{TSF_SUFFIX} with [data] pooled = true), "
                    f"got {suffix or 'no extension'!r}")


def read_series(path: str | Path, time_column: str = "", format: str = "auto", series: Sequence[str] = (),
                id_column: str = "id", value_column: str = "value") -> Series:
    """Read a CSV (``.csv``, ``.txt``; ``#`` starts a comment) or Parquet (``.parquet``, ``.pq``) series file.

    Args:
        path: the file.
        time_column: the time column; empty means the first column.
        format: ``"wide"``, ``"long"`` or ``"auto"`` (long when the file has ``id_column`` and
            ``value_column``, else wide).
        series: the series to keep (column names for wide files, ids for long ones); empty keeps all.
        id_column, value_column: the columns of a long file.

    Raises:
        DataError: for a missing or unreadable file, a missing column, a non-numeric or missing value
            (naming the column and the file row), a repeated time, times out of order, or an unknown
            series name.
    """
    path = Path(path).expanduser()
    if path.suffix.lower() == TSF_SUFFIX:
        raise DataError(f"series file {path}: a .tsf file holds series of their own lengths; read it with "
                        "[data] pooled = true (one model for all of them)")
    return series_from_frame(_read_frame(path), str(path), time_column, format, series, id_column, value_column)


def _layout(frame: Any, name: str, time_column: str, format: str, id_column: str,
            value_column: str) -> tuple[Any, list[str], str, bool]:
    """The frame with string column names, its columns, its time column and whether it is long; a DataError for
    an unknown format, an empty frame or a missing time column."""
    if format not in ("auto", "wide", "long"):
        raise DataError(f'series {name}: expected format "auto", "wide" or "long", got {format!r}')
    columns = [str(c) for c in frame.columns]
    frame = frame.set_axis(columns, axis=1)
    if len(frame) == 0 or not columns:
        raise DataError(f"series {name}: expected a time column and data rows, got {len(frame)} rows")
    time_column = time_column or columns[0]
    if time_column not in columns:
        raise DataError(f"series {name}: expected a time column {time_column!r}, got columns {columns}")
    long = format == "long" or (format == "auto" and id_column in columns and value_column in columns)
    return frame, columns, time_column, long


def series_from_frame(frame: Any, name: str, time_column: str = "", format: str = "auto",
                      series: Sequence[str] = (), id_column: str = "id", value_column: str = "value") -> Series:
    """``read_series`` on a pandas DataFrame already in memory; ``name`` appears in error messages."""
    pd = _pandas()

    frame, columns, time_column, long = _layout(frame, name, time_column, format, id_column, value_column)
    if long:
        missing = [c for c in (id_column, value_column) if c not in columns]
        if missing:
            raise DataError(f"series {name}: a long file needs the columns {time_column!r}, {id_column!r} and "
                            f"{value_column!r}; missing {missing} in {columns}")
        if len({time_column, id_column, value_column}) < 3:
            raise DataError(f"series {name}: a long file needs three different columns for time, id and value, "
                            f"got {time_column!r}, {id_column!r} and {value_column!r}")
        values = _numeric(frame[value_column], name, value_column)
        frame = frame.assign(**{value_column: values, id_column: frame[id_column].astype(str),
                                time_column: frame[time_column].astype(str)})
        repeated = frame.duplicated([time_column, id_column])
        if repeated.any():
            row = frame[repeated].iloc[0]
            raise DataError(f"series {name}: expected one value per time and id, got a repeated "
                            f"({row[time_column]!r}, {row[id_column]!r})")
        times = pd.unique(frame[time_column])
        ids = list(pd.unique(frame[id_column]))
        wide = frame.pivot(index=time_column, columns=id_column, values=value_column).reindex(index=times,
                                                                                           columns=ids)
        gaps = wide.isna()
        if gaps.to_numpy().any():
            t, s = (int(i) for i in np.argwhere(gaps.to_numpy())[0])
            raise DataError(f"series {name}: series {ids[s]!r} has no value at time {times[t]!r} "
                            f"({int(gaps.to_numpy().sum())} missing in all); every series needs every time")
        table, time_values = wide, list(times)
    else:
        value_columns = [c for c in columns if c != time_column]
        if not value_columns:
            raise DataError(f"series {name}: expected at least one value column besides {time_column!r}, "
                            f"got columns {columns}")
        table = pd.DataFrame({c: _numeric(frame[c], name, c) for c in value_columns})
        time_values = list(frame[time_column])
        _check_times(time_values, name, time_column)
    names = [str(c) for c in table.columns]
    if series:
        unknown = [s for s in series if s not in names]
        if unknown:
            raise DataError(f"series {name}: expected series among {names}, got unknown {unknown}")
        table, names = table[list(series)], list(series)
    if long:
        _check_times(time_values, name, time_column)
    return Series(table.to_numpy(dtype=np.float64), [str(t) for t in time_values], names)


def read_series_list(path: str | Path, time_column: str = "", format: str = "auto", series: Sequence[str] = (),
                     id_column: str = "id", value_column: str = "value") -> list[Series]:
    """Read a series file as separate one-column ``Series``, each with its own times (see the module docstring).

    Takes the arguments of ``read_series``; raises a DataError for the same faults, naming the series. Also
    reads the Monash forecasting archive's ``.tsf`` files (``read_tsf``).
    """
    path = Path(path).expanduser()
    if path.suffix.lower() == TSF_SUFFIX:
        return _pick(read_tsf(path), series, str(path))
    return series_list_from_frame(_read_frame(path), str(path), time_column, format, series, id_column,
                                  value_column)


def series_list_from_frame(frame: Any, name: str, time_column: str = "", format: str = "auto",
                           series: Sequence[str] = (), id_column: str = "id", value_column: str = "value"
                           ) -> list[Series]:
    """``read_series_list`` on a pandas DataFrame already in memory; ``name`` appears in error messages."""
    pd = _pandas()

    frame, columns, time_column, long = _layout(frame, name, time_column, format, id_column, value_column)
    found: list[Series] = []
    if long:
        missing = [c for c in (id_column, value_column) if c not in columns]
        if missing or len({time_column, id_column, value_column}) < 3:
            raise DataError(f"series {name}: a long file needs three different columns for time, id and value, "
                            f"got {time_column!r}, {id_column!r} and {value_column!r} in {columns}")
        values = _numeric(frame[value_column], name, value_column).to_numpy()
        ids = frame[id_column].astype(str)
        all_times = frame[time_column].astype(str).to_numpy()
        rows_of = ids.groupby(ids, sort=False).indices  # id -> its row positions, in file order
        for key in pd.unique(ids):
            rows = rows_of[key]
            times = list(all_times[rows])
            _check_times(times, f"{name} id {key!r}", time_column)
            found.append(Series(values[rows], times, [str(key)]))
    else:
        value_columns = [c for c in columns if c != time_column]
        if not value_columns:
            raise DataError(f"series {name}: expected at least one value column besides {time_column!r}, "
                            f"got columns {columns}")
        _check_times(list(frame[time_column]), name, time_column)
        for column in value_columns:
            present = np.flatnonzero(frame[column].notna().to_numpy()
                                     & (frame[column].astype(str).str.strip() != "").to_numpy())
            if len(present) == 0:
                raise DataError(f"series {name} column {column!r}: expected at least one value, got none")
            part = frame.iloc[present[0]:present[-1] + 1]
            try:
                numbers = _numeric(part[column].reset_index(drop=True), name, column)
            except DataError as exc:  # the row in the message counts from the column's first value
                raise DataError(f"{exc} (rows counted from the column's first value, file row {present[0] + 1})") from None
            found.append(Series(numbers.to_numpy(), [str(t) for t in part[time_column]], [column]))
    return _pick(found, series, name)


def _pick(found: list[Series], series: Sequence[str], name: str) -> list[Series]:
    """The ``series`` of ``found`` by name, in that order (all of them when empty)."""
    if not series:
        return found
    names = [s.names[0] for s in found]
    unknown = [s for s in series if s not in names]
    if unknown:
        raise DataError(f"series {name}: expected series among {names[:20]}{' ...' if len(names) > 20 else ''}, "
                        f"got unknown {unknown}")
    return [found[names.index(s)] for s in series]


TSF_SUFFIX = ".tsf"
TSF_FREQUENCIES = {"yearly": ("YS", "%Y"), "quarterly": ("QS", "%Y-%m"), "monthly": ("MS", "%Y-%m"),
                   "weekly": ("W", "%Y-%m-%d"), "daily": ("D", "%Y-%m-%d"), "hourly": ("h", "%Y-%m-%d %H:%M"),
                   "half_hourly": ("30min", "%Y-%m-%d %H:%M"), "10_minutes": ("10min", "%Y-%m-%d %H:%M"),
                   "minutely": ("min", "%Y-%m-%d %H:%M"), "4_seconds": ("4s", "%Y-%m-%d %H:%M:%S")}
"""The Monash archive's ``@frequency`` names: pandas' frequency, and the format of the time labels made."""


def read_tsf(path: str | Path) -> list[Series]:
    """The series of a Monash Time Series Forecasting Archive file (``.tsf``; Godahewa et al. 2021), parsed by
    aeon (``pip install 'lstmkit[aeon]'``). Each series is labelled by its ``start_timestamp`` and the file's
    ``@frequency`` when it has both, else by 0, 1, ...; a missing value (``?``) is an error naming the series."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"series file {path}: expected an existing file, got no such file")
    try:
        from aeon.datasets import load_from_tsf_file
    except ImportError:
        raise DataError(f"series file {path}: reading .tsf files needs aeon (pip install 'lstmkit[aeon]'), "
                        "which is not installed") from None
    try:
        frame, meta = load_from_tsf_file(str(path))
    except Exception as exc:  # aeon raises bare Exceptions for malformed headers and data lines
        raise DataError(f"series file {path}: expected a .tsf file, got {exc}") from None
    pd = _pandas()
    frequency = TSF_FREQUENCIES.get(str(meta.get("frequency") or ""))
    found = []
    for _, row in frame.iterrows():
        values = np.asarray(row["series_value"], dtype=np.float64)
        start = row.get("start_timestamp")
        if frequency is not None and start is not None and not pd.isna(start):
            times = [t.strftime(frequency[1]) for t in pd.date_range(start, periods=len(values), freq=frequency[0])]
        else:
            times = [str(t) for t in range(len(values))]
        found.append(Series(values, times, [str(row["series_name"])]))
    if not found:
        raise DataError(f"series file {path}: expected at least one series, got none")
    return found


def _rows(count: int) -> str:
    return "1 such row" if count == 1 else f"{count} such rows"


def _numeric(column: Any, name: str, column_name: str) -> Any:
    """The column as float64; a DataError names the first non-numeric or missing value and its file row."""
    import pandas as pd

    try:
        values = pd.to_numeric(column, errors="coerce")
        array = values.to_numpy(dtype=np.float64, na_value=np.nan)
    except OverflowError:  # integers beyond 64 bits: as floats (inf beyond float64), checked below
        values = pd.Series([_as_float(v) for v in column], index=column.index, dtype=np.float64)
        array = values.to_numpy()
    bad = values.isna().to_numpy() | ~np.isfinite(array)
    if bad.any():
        position = int(np.flatnonzero(bad)[0])
        raw = column.iloc[position]
        what = "a missing value (NaN)" if pd.isna(raw) or str(raw).strip().lower() in ("nan", "") \
            else f"non-numeric value {raw!r}"
        if what.startswith("non-numeric") and not math.isnan(_as_float(raw)):
            what = f"{str(raw)[:20]!r}, beyond float64"
        raise DataError(f"series {name} column {column_name!r} row {position + 1}: expected a number, got "
                        f"{what} ({_rows(int(bad.sum()))}); fill or drop them first")
    huge = np.abs(array) > MAX_ABS_VALUE
    if huge.any():
        position = int(np.flatnonzero(huge)[0])
        raise DataError(f"series {name} column {column_name!r} row {position + 1}: expected values within "
                        f"±{MAX_ABS_VALUE:g} (the network and its metrics compute in float32), got {array[position]:g} "
                        f"({_rows(int(huge.sum()))}); rescale the series first")
    return pd.Series(array, index=column.index, name=column.name)


def _as_float(value: Any) -> float:
    try:
        return float(str(value).strip())
    except ValueError:
        return math.nan


def _check_times(times: list[Any], name: str, column: str) -> None:
    import pandas as pd

    labels = pd.Series([str(t) for t in times])
    repeated = labels.duplicated()
    if repeated.any():
        raise DataError(f"series {name}: expected each time once in column {column!r}, got "
                        f"{labels[repeated].iloc[0]!r} again")
    numbers = pd.to_numeric(labels, errors="coerce")
    if numbers.notna().all():
        order = numbers.to_numpy()
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dates = pd.to_datetime(labels, errors="coerce")
        if not dates.notna().all():
            return  # labels such as "1-01": the file's order is the time order
        order = dates.to_numpy()
    if (np.diff(order) <= np.zeros_like(np.diff(order))).any():
        position = int(np.flatnonzero(np.diff(order) <= np.zeros_like(np.diff(order)))[0]) + 1
        raise DataError(f"series {name}: expected increasing times in column {column!r}, got "
                        f"{labels.iloc[position]!r} after {labels.iloc[position - 1]!r}")
