"""What every fuzzed entry point must do, and the counts reported at the end of the run.

The property is the same for every reader of user input: it returns a valid result, or it raises an
``LstmkitError`` subclass whose message is one non-empty line that names the thing (the file, the key or
the override). Any other exception, a warning (deprecations aside), or, where a reader is given
``max_allocation``, a large allocation on a tiny input fails the example.

Fuzzing a new entry point (a ``.ts`` or text reader, say) takes a strategy for its input and one call::

    @fuzz_settings()
    @given(content=st.binary())
    def test_ts_reader(workdir, content):
        path = write(workdir / "in.ts", content)
        check_entry_point("ts_reader", lambda: read_ts(path), mentions=[str(path)], validate=check_ts)
"""

from __future__ import annotations

import tracemalloc
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable

from hypothesis import settings
from hypothesis import strategies as st

from lstmkit.errors import LstmkitError

PROFILE = "lstmkit-fuzz"  # registered in conftest.py
COUNTS: Counter[str] = Counter()
MAX_ALLOCATION = 64 * 2**20
"""Peak bytes a call may allocate on tiny inputs (a header declaring gigabytes must not be believed)."""


def fuzz_settings(**overrides: Any) -> settings:
    """The fuzz profile (``max_examples``, ``derandomize``, no deadline), with per-test overrides."""
    return settings(settings.get_profile(PROFILE), **overrides)


def assert_clear_message(exc: BaseException, mentions: Iterable[str] = ()) -> None:
    """``exc`` reads as one non-empty line that names at least one of ``mentions`` (when given)."""
    message = str(exc)
    assert message.strip(), f"{type(exc).__name__} with an empty message"
    assert len(message.splitlines()) == 1, f"{type(exc).__name__} message spans lines: {message!r}"
    mentions = list(mentions)
    assert not mentions or any(m in message for m in mentions), \
        f"{type(exc).__name__} message names none of {mentions}: {message!r}"


def check_entry_point(
    name: str,
    call: Callable[[], Any],
    *,
    error: type[BaseException] = LstmkitError,
    mentions: Iterable[str] = (),
    validate: Callable[[Any], None] | None = None,
    max_allocation: int | None = None,
) -> Any:
    """Run ``call`` once under the fuzz property and count it as an example of entry point ``name``.

    Returns the result (after ``validate`` accepted it), or None when ``call`` raised a clear ``error``.
    Warnings other than deprecations are errors here: a user would see them as noise on stderr. With ``max_allocation``, the
    call's peak allocation (as ``tracemalloc`` sees it: Python objects and NumPy arrays) is bounded.
    """
    COUNTS[name] += 1
    if max_allocation is not None:
        tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            warnings.simplefilter("ignore", DeprecationWarning)  # hidden from users by default too
            try:
                result, raised = call(), False
            except error as exc:
                assert_clear_message(exc, mentions)
                result, raised = None, True
        if max_allocation is not None:
            peak = tracemalloc.get_traced_memory()[1]
            assert peak <= max_allocation, f"{name}: allocated {peak / 2**20:.0f} MiB on a tiny input"
    finally:
        if max_allocation is not None:
            tracemalloc.stop()
    if validate is not None and not raised:
        validate(result)
    return result


def write(path: Path, content: bytes | str) -> Path:
    """Write ``content`` to ``path`` (replacing what an earlier example left) and return ``path``."""
    if isinstance(content, str):
        content = content.encode("utf-8", "surrogatepass")
    path.write_bytes(content)
    return path


@st.composite
def mutated(draw: st.DrawFn, base: bytes | st.SearchStrategy[bytes], max_ops: int = 3) -> bytes:
    """``base`` (or a draw from it) with a few random edits: byte flips, insertions, deletions, truncation."""
    data = bytearray(draw(base) if isinstance(base, st.SearchStrategy) else base)
    for _ in range(draw(st.integers(1, max_ops))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        pos = draw(st.integers(0, len(data)))
        if op == "flip" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[pos: pos + draw(st.integers(1, 16))]
        elif op == "truncate":
            del data[pos:]
    return bytes(data)
