"""Shared set-up of the lstmkit.nn tests: every test runs on one thread (``one_thread`` in tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread_everywhere(one_thread):
    yield
