"""tests/conftest.py puts back the process-wide settings a test changes: the second test sees the first's undone.

The two tests run in file order (pytest's default); the second fails if the autouse restore in conftest.py
is removed or misses one of these settings.
"""

from __future__ import annotations

import logging
import os

import torch

BEFORE: dict[str, object] = {}
VARIABLE = "LSTMKIT_TEST_PROCESS_GLOBALS"


def _settings() -> dict[str, object]:
    return {
        "threads": torch.get_num_threads(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "environ": os.environ.get(VARIABLE),
        "root_level": logging.getLogger().level,
        "lstmkit_handlers": list(logging.getLogger("lstmkit.serve.access").handlers),
    }


def test_a_test_changes_process_settings() -> None:
    BEFORE.update(_settings())
    torch.set_num_threads(BEFORE["threads"] + 1)
    torch.use_deterministic_algorithms(not BEFORE["deterministic"], warn_only=True)
    os.environ[VARIABLE] = "1"
    logging.getLogger().setLevel(logging.DEBUG if BEFORE["root_level"] != logging.DEBUG else logging.ERROR)
    logging.getLogger("lstmkit.serve.access").addHandler(logging.NullHandler())
    assert _settings() != BEFORE


def test_the_next_test_finds_them_as_they_were() -> None:
    assert BEFORE, "runs after test_a_test_changes_process_settings"
    assert _settings() == BEFORE
