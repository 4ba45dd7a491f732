"""Helpers of the serving tests: tiny models, a real uvicorn server in a thread, offline answers, metrics."""

import socket
import threading
import time

import numpy as np
import torch
import uvicorn

from lstmkit.config import Config, ModelConfig
from lstmkit.data import Standardizer
from lstmkit.artifacts.model_folder import save_model
from lstmkit.models import InputSpec, build_model
from lstmkit.serve import ServeOptions

FEATURES = 5
LABELS = ["a", "b", "c", "d"]
SPEC = InputSpec(input_size=FEATURES, num_outputs=len(LABELS), sequence_length=None)
# Small limits, so that each can be hit with a small request.
OPTIONS = ServeOptions(max_batch=16, batch_wait_ms=5, max_sequence_length=40, max_payload_bytes=40_000,
                       session_ttl=60, max_sessions=64)


def make_folder(path, seed=0, **model_options):
    torch.manual_seed(seed)
    config = Config(model=ModelConfig(hidden_size=8, num_layers=2, **model_options))
    module = build_model(config.model, SPEC).eval()
    x = np.random.default_rng(seed).normal(3.0, 2.0, size=(16, 9, FEATURES)).astype(np.float32)
    return save_model(path, module, config, SPEC, LABELS, Standardizer().fit(x))


class LiveServer:
    """uvicorn serving ``app`` on a socket bound to 127.0.0.1:0, in a daemon thread."""

    def __init__(self, app):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # else ~40 ms per request (Nagle)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        # A long keep-alive: under a flood on a loaded 2-core machine a pooled connection can sit idle past
        # uvicorn's default 5 s, and a request sent as the server closes it fails with a read error (the
        # keep-alive race every HTTP client has; not what these tests are about).
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                                    timeout_keep_alive=120))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=20)
        self.sock.close()


def offline_probabilities(model, sequences):
    """PyTorch's probabilities for each raw sequence (L_i, F), each run alone."""
    with torch.no_grad():
        return np.stack([
            torch.softmax(model.module(torch.from_numpy(model.standardizer.transform(s[None]))), -1)[0].numpy()
            for s in sequences
        ])


def offline_steps(model, sequence):
    """PyTorch's probabilities after every step of one raw sequence (L, F), from one whole-sequence pass."""
    with torch.no_grad():
        x = torch.from_numpy(model.standardizer.transform(sequence[None]))
        return torch.softmax(model.module.forward_steps(x), -1)[0].numpy()


def metric(text, name):
    """The value of one sample line of the Prometheus text ``text``, e.g. 'lstmkit_x_count'."""
    for line in text.splitlines():
        key, _, value = line.rpartition(" ")
        if key == name:
            return float(value)
    raise AssertionError(f"metric {name} not found in:\n{text}")


class SlowBackend:
    """``backend`` whose every model call takes ``seconds`` longer: work queues up behind it."""

    def __init__(self, backend, seconds):
        self._backend = backend
        self.seconds = seconds

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def predict(self, x, lengths):
        time.sleep(self.seconds)
        return self._backend.predict(x, lengths)
