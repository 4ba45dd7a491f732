"""Source/target text pairs for sequence-to-sequence models: generated tasks and a user's TSV file.

Generated under a seed, nothing downloaded:

- ``reverse``: a string of digits and its reverse, ``"40213" -> "31204"``.
- ``addition``: two numbers written as text and their sum, ``"123+45" -> "168"``.
- ``dates``: a date written in one of ``DATE_FORMATS`` (a dozen: ``"3 March 2021"``, ``"03/03/21"``,
  ``"Mar 3, 2021"``, ``"2021.03.03"``, ...) and the same date in ISO form, ``"2021-03-03"``.

A user's file (``read_pairs_tsv``) has one pair per line, source and target separated by a tab.

Example::

    rng = np.random.default_rng(0)
    dates(2, rng)        # [("01/19/2038", "2038-01-19"), ("2020.12.16", "2020-12-16")]
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Callable

import numpy as np

from lstmkit.errors import DataError

__all__ = ["Pair", "reverse_digits", "addition", "dates", "DATE_FORMATS", "format_date", "parse_date",
           "read_pairs_tsv", "GENERATORS"]

Pair = tuple[str, str]

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

DATE_FORMATS = (
    "{d} {B} {Y}",        # 3 March 2021
    "{dd}/{mm}/{yy}",     # 03/03/21
    "{b} {d}, {Y}",       # Mar 3, 2021
    "{Y}.{mm}.{dd}",      # 2021.03.03
    "{B} {d}, {Y}",       # March 3, 2021
    "{dd}-{b}-{Y}",       # 03-Mar-2021
    "{mm}/{dd}/{Y}",      # 03/03/2021 (US order, four-digit year)
    "{d}.{m}.{Y}",        # 3.3.2021
    "{A}, {d} {B} {Y}",   # Wednesday, 3 March 2021
    "{Y}{mm}{dd}",        # 20210303
    "{d} {b} {yy}",       # 3 Mar 21
    "{o} of {B} {Y}",     # 3rd of March 2021
)
"""Templates of the ``dates`` task: ``{d}``/``{dd}`` day (plain, two digits), ``{o}`` ordinal day,
``{m}``/``{mm}`` month number, ``{B}``/``{b}`` month name (full, three letters), ``{Y}``/``{yy}`` year
(four, two digits), ``{A}`` weekday."""

FIRST_DATE, LAST_DATE = dt.date(1970, 1, 1), dt.date(2049, 12, 31)
"""Two-digit years are unambiguous in this range (00-49 -> 20xx, 70-99 -> 19xx)."""


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def format_date(date: dt.date, template: str) -> str:
    """``date`` written with one of ``DATE_FORMATS``."""
    return template.format(d=date.day, dd=f"{date.day:02d}", o=_ordinal(date.day), m=date.month,
                           mm=f"{date.month:02d}", B=MONTHS[date.month - 1], b=MONTHS[date.month - 1][:3],
                           Y=date.year, yy=f"{date.year % 100:02d}", A=WEEKDAYS[date.weekday()])


_STRPTIME = {"d": "%d", "dd": "%d", "o": "%d", "m": "%m", "mm": "%m", "B": "%B", "b": "%b", "Y": "%Y",
             "yy": "%y", "A": "%A"}


def parse_date(text: str, template: str) -> dt.date:
    """Read ``text`` written with ``template`` back into a date (with the standard library's ``strptime``)."""
    pattern = re.sub(r"\{(\w+)\}", lambda m: _STRPTIME[m.group(1)], template)
    if "{o}" in template:
        text = re.sub(r"(\d+)(st|nd|rd|th)", r"\1", text)
    return dt.datetime.strptime(text, pattern).date()


def dates(n: int, rng: np.random.Generator) -> list[Pair]:
    """``n`` random dates in 1970..2049, each written in a random one of ``DATE_FORMATS``, with their ISO form."""
    span = (LAST_DATE - FIRST_DATE).days + 1
    offsets = rng.integers(0, span, size=n)
    formats = rng.integers(0, len(DATE_FORMATS), size=n)
    pairs = []
    for offset, k in zip(offsets, formats):
        date = FIRST_DATE + dt.timedelta(days=int(offset))
        pairs.append((format_date(date, DATE_FORMATS[k]), date.isoformat()))
    return pairs


def reverse_digits(n: int, rng: np.random.Generator, min_length: int = 3, max_length: int = 12) -> list[Pair]:
    """``n`` random digit strings of ``min_length``..``max_length`` digits and their reverses."""
    lengths = rng.integers(min_length, max_length + 1, size=n)
    pairs = []
    for length in lengths:
        text = "".join(map(str, rng.integers(0, 10, size=int(length))))
        pairs.append((text, text[::-1]))
    return pairs


def addition(n: int, rng: np.random.Generator, max_digits: int = 3) -> list[Pair]:
    """``n`` sums ``"a+b" -> "a+b's value"`` of numbers with 1..``max_digits`` digits each."""
    pairs = []
    for _ in range(n):
        a, b = (int(rng.integers(0, 10 ** int(rng.integers(1, max_digits + 1)))) for _ in range(2))
        pairs.append((f"{a}+{b}", str(a + b)))
    return pairs


GENERATORS: dict[str, Callable[..., list[Pair]]] = {"reverse": reverse_digits, "addition": addition, "dates": dates}


def read_pairs_tsv(path: str | Path) -> list[Pair]:
    """Read ``source<TAB>target`` lines from a UTF-8 file; blank lines are skipped.

    Raises:
        DataError: if the file is missing or unreadable, a line has no tab or more than one, a source or
            target is empty, or the file holds no pairs.
    """
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"pairs file {path}: not found (expected a TSV file of source<TAB>target lines)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"pairs file {path}: cannot be read as UTF-8 text ({exc})") from None
    pairs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise DataError(f"pairs file {path} line {number}: expected source<TAB>target (2 fields), "
                            f"got {len(fields)} field{'s' if len(fields) != 1 else ''}: {line[:60]!r}")
        source, target = (field.strip() for field in fields)
        if not source or not target:
            raise DataError(f"pairs file {path} line {number}: expected a non-empty source and target, "
                            f"got {line[:60]!r}")
        pairs.append((source, target))
    if not pairs:
        raise DataError(f"pairs file {path}: expected at least one source<TAB>target line, got none")
    return pairs
