"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
from collections.abc import Iterator
from pathlib import Path

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


# ---------------------------------------------------------------------------------------------------------
# Trained models shared by the test modules of one task, trained once per session


@pytest.fixture(scope="session")
def reviews(tmp_path_factory) -> Path:
    """80 one-sentence film reviews (JSON lines: ``review``, ``stars``) in which one word decides the label."""
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("text") / "reviews.jsonl"
    lines = []
    for i in range(80):
        good = i % 2 == 0
        word = rng.choice(["good", "great", "fine"] if good else ["bad", "dull", "poor"])
        lines.append(json.dumps({"review": f"the film was {word}", "stars": "high" if good else "low"}))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def text_classifier_model(reviews, tmp_path_factory) -> Path:
    """The model folder of ``configs/text_classification.toml`` trained on ``reviews`` (tiny, 8 epochs), for the
    text CLI and the text server tests."""
    from lstmkit.cli import main

    out = tmp_path_factory.mktemp("runs") / "reviews"
    configs = Path(__file__).parent.parent / "configs"
    with process_globals_restored(), num_threads(1):
        status = main(["train", str(configs / "text_classification.toml"), "--out", str(out),
                       "--set", f"data.path={json.dumps(str(reviews))}", "--set", "data.text_column=review",
                       "--set", "data.label_column=stars", "--set", "train.epochs=8", "--set", "train.lr=0.02",
                       "--set", "model.hidden_size=8", "--set", "model.embedding_size=8",
                       "--set", "model.head_dropout=0", "--set", "train.progress=false",
                       "--set", "train.tensorboard=false", "--set", "train.report=false"])
    assert status == 0
    return out / "model"


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> Path:
    """One digits run, trained through ``lstmkit train`` (2 epochs, LSTM(32), on one thread with the process
    settings put back), shared by the test modules that read a classifier's run folder. Modules that change
    the folder copy it first (``copied_digits_run``)."""
    from lstmkit.cli import main

    out = tmp_path_factory.mktemp("digits") / "run"
    with num_threads(1), process_globals_restored():
        status = main(["train", str(Path(__file__).parent.parent / "configs" / "digits.toml"), "--out", str(out),
                       "--set", "train.epochs=2", "--set", "train.progress=false", "--set", "model.hidden_size=32",
                       "--set", "train.num_threads=1"])
    assert status == 0
    return out


FSDD_RECORDINGS = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "fsdd" / "recordings"
"""The real Free Spoken Digit Dataset recordings, at ../shared relative to the repository root."""


@pytest.fixture(scope="session")
def speech_run(tmp_path_factory) -> Path:
    """configs/spoken_digits.toml on the real FSDD recordings, as the README runs it, shrunk to 2 epochs of an
    LSTM(48) on one thread (~10 s); shared by the speech tests of training, predict and serving."""
    return _train_speech(tmp_path_factory, "speech")


@pytest.fixture(scope="session")
def speech_cmn_run(tmp_path_factory) -> Path:
    """``speech_run`` with per-recording cepstral mean normalisation (``--set data.cmn=mean``), ~10 s."""
    return _train_speech(tmp_path_factory, "speech-cmn", "data.cmn=mean")


@pytest.fixture(scope="session")
def speech_speaker_cmvn_run(tmp_path_factory) -> Path:
    """``speech_run`` with per-speaker cepstral mean and variance normalisation (``--set data.cmn=speaker``)."""
    return _train_speech(tmp_path_factory, "speech-speaker-cmvn", "data.cmn=speaker")


def _train_speech(tmp_path_factory, name: str, *overrides: str) -> Path:
    """The shrunk recipe with ``overrides``, in a fresh folder ``name``; skipped without the [audio] extra or
    the shared recordings."""
    pytest.importorskip("kaldi_native_fbank")  # the [audio] extra
    if not FSDD_RECORDINGS.is_dir():
        pytest.skip(f"needs the shared FSDD recordings at {FSDD_RECORDINGS}")
    from lstmkit.cli import main

    out = tmp_path_factory.mktemp(name) / "run"
    with num_threads(1), process_globals_restored():
        status = main(["train", str(Path(__file__).parent.parent / "configs" / "spoken_digits.toml"), "--out",
                       str(out), "--set", f"data.path={FSDD_RECORDINGS}", "--set", "train.epochs=2",
                       "--set", "model.hidden_size=48", "--set", "train.report=false",
                       "--set", "train.tensorboard=false", "--set", "train.num_threads=1",
                       *[arg for override in overrides for arg in ("--set", override)]])
    assert status == 0
    return out
