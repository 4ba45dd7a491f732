"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_thread():
    """Run a test on one thread: the tensors in tests are tiny, and OpenMP with 2 threads on a busy 2-vCPU
    machine stalls (PERFORMANCE-NOTES.md), which made tests/nn five times slower. Restored afterwards.
    Use it module-wide with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
