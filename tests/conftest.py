"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

import pytest
import torch


@contextlib.contextmanager
def num_threads(threads: int) -> Iterator[None]:
    """PyTorch's intra-op thread count set to ``threads`` inside the block, and put back after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def one_thread():
    """Run a test on one thread: the tensors in tests are tiny, and OpenMP with 2 threads on a busy 2-vCPU
    machine stalls (PERFORMANCE-NOTES.md), which made tests/nn five times slower. Restored afterwards.
    Use it module-wide with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    with num_threads(1):
        yield


@pytest.fixture(scope="module")
def one_thread_for_module():
    """``one_thread`` for a module-scoped fixture (a run that a module's tests share), restored after the module."""
    with num_threads(1):
        yield


@contextlib.contextmanager
def process_globals_restored() -> Iterator[None]:
    """Put back the process-wide settings that a test, or the library code it runs in-process, changed.

    ``main(["train", ...])`` and ``run_training`` apply ``[train]`` to the whole process (``num_threads``,
    ``deterministic``: ``torch.use_deterministic_algorithms``, cuDNN flags, ``CUBLAS_WORKSPACE_CONFIG``), and the
    CLI configures logging (``logging.basicConfig`` on the root logger, handlers on ``lstmkit.*`` loggers); left
    set, they would change every later test's conditions and make results depend on the order of tests.
    """
    threads = torch.get_num_threads()
    deterministic = _deterministic()
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    environ = dict(os.environ)
    root = logging.getLogger()
    root_level, root_handlers = root.level, list(root.handlers)
    loggers = {name: (logger.level, list(logger.handlers), logger.propagate) for name, logger in _lstmkit_loggers()}
    try:
        yield
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        if _deterministic() != deterministic:
            torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
        if dict(os.environ) != environ:
            os.environ.clear()
            os.environ.update(environ)
        root.setLevel(root_level)
        for handler in list(root.handlers):  # pytest attaches its own capturing handlers per phase: leave those
            if handler not in root_handlers and type(handler).__module__ != "_pytest.logging":
                root.removeHandler(handler)
        for name, logger in _lstmkit_loggers():
            level, handlers, propagate = loggers.get(name, (logging.NOTSET, [], True))
            logger.setLevel(level)
            logger.handlers[:] = handlers
            logger.propagate = propagate


def _deterministic() -> tuple[bool, bool]:
    return torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()


def _lstmkit_loggers() -> list[tuple[str, logging.Logger]]:
    manager = logging.Logger.manager
    return [(name, logger) for name, logger in list(manager.loggerDict.items())
            if name.split(".")[0] == "lstmkit" and isinstance(logger, logging.Logger)]


@pytest.fixture(autouse=True)
def _restore_process_globals_after_each_test():
    with process_globals_restored():
        yield


@pytest.fixture(scope="module", autouse=True)
def _restore_process_globals_after_each_module():
    """The same around a whole module: its module-scoped fixtures (a shared run) run outside any one test."""
    with process_globals_restored():
        yield
