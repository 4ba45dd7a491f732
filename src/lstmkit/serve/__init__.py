"""``lstmkit serve``: an HTTP service for a model folder or an exported ONNX file.

``create_app(backend, options)`` builds the FastAPI app (see ``lstmkit.serve.app`` for the endpoints);
``load_backend(model, backend)`` opens a model with PyTorch or ONNX Runtime; ``serve(...)`` runs it all
with uvicorn. Modules: ``backends`` (PyTorch / ONNX Runtime), ``batcher`` (micro-batching of predict
requests), ``sessions`` (stream states and the cross-session step batcher), ``validation`` (request
checks and their statuses), ``guard`` (rate limit, API key, body size, concurrency and time limits;
the access log), ``metrics`` (Prometheus), ``options`` (limits and security settings).

The web stack is imported only when used, so ``import lstmkit.serve`` stays cheap for the CLI.
"""

from __future__ import annotations

import importlib
import logging
import socket
from pathlib import Path
from typing import Any

from lstmkit.serve.options import ServeOptions, is_loopback

log = logging.getLogger(__name__)

__all__ = ["Backend", "OnnxBackend", "ServeOptions", "TorchBackend", "create_app", "load_backend", "serve"]

_LAZY = {"create_app": "app", "Backend": "backends", "OnnxBackend": "backends", "TorchBackend": "backends",
         "load_backend": "backends"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"lstmkit.serve.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'lstmkit.serve' has no attribute {name!r}")


def serve(model: str | Path, host: str = "127.0.0.1", port: int = 8000, backend: str = "auto",
          options: ServeOptions | None = None, threads: int = 1, sock: socket.socket | None = None) -> None:
    """Load ``model`` and serve it on ``host:port`` until interrupted (SIGINT or SIGTERM).

    Raises:
        LstmkitError: ``host`` (or ``sock``'s address) is not a loopback address and ``options`` has neither
            an ``api_key`` nor ``insecure`` (checked before the model is loaded).
    """
    import uvicorn

    from lstmkit.serve.app import create_app
    from lstmkit.serve.backends import load_backend

    options = options or ServeOptions()
    address = host if sock is None else str(sock.getsockname()[0])
    options.check_bind(address)
    if not is_loopback(address):
        if options.api_key is None:
            log.warning("serve: listening on %s without an API key (--insecure): anyone who can reach it may use it",
                        address)
        if options.rate_limit == 0:
            log.warning("serve: listening on %s without a rate limit; consider --rate-limit", address)
    if options.access_log:
        _json_lines_to_stderr(logging.getLogger("lstmkit.serve.access"))
    app = create_app(load_backend(model, backend, threads), options)
    config = uvicorn.Config(app, host=host, port=port, log_level="info", access_log=False,
                            timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock] if sock is not None else None)


def _json_lines_to_stderr(logger: logging.Logger) -> None:
    """Write ``logger``'s records to stderr as their bare messages (JSON lines), not through the root format."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
