"""The fuzz profile and the per-entry-point example counts printed at the end of the run.

``LSTMKIT_FUZZ_EXAMPLES`` lowers the example count for a quick local loop; CI runs the default, 1000.
Examples are derandomized, so a CI failure reproduces locally with the same command.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from fuzz_harness import COUNTS, PROFILE

settings.register_profile(
    PROFILE,
    max_examples=int(os.environ.get("LSTMKIT_FUZZ_EXAMPLES", "1000")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder per test module, reused by every example (hypothesis runs many per test)."""
    return tmp_path_factory.mktemp("fuzz")


def pytest_terminal_summary(terminalreporter) -> None:
    if COUNTS:
        counts = ", ".join(f"{name}={count}" for name, count in sorted(COUNTS.items()))
        terminalreporter.write_line(f"fuzz examples: {counts}")
