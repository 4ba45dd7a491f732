"""Shared set-up of the lstmkit.nn tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Run each test on one thread: the tensors here are tiny, and OpenMP with 2 threads on a busy 2-vCPU
    machine stalls (PERFORMANCE-NOTES.md), which made tests/nn five times slower. Restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
