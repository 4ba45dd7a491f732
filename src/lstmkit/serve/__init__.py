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

import dataclasses
import errno
import importlib
import logging
import os
import socket
from pathlib import Path
from typing import Any

from lstmkit.errors import LstmkitError
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
          options: ServeOptions | None = None, threads: int = 1, sock: socket.socket | None = None) -> int:
    """Load ``model`` and serve it on ``host:port`` until interrupted (SIGINT or SIGTERM); ``options.workers``
    processes share the address (``lstmkit.serve.workers``). Returns the exit status (0 after a signal).

    The address is bound before the model is loaded, so a port in use fails at once.

    Raises:
        LstmkitError: ``host`` (or ``sock``'s address) is not a loopback address and ``options`` has neither
            an ``api_key`` nor ``insecure``; ``port``, ``threads`` or ``workers`` is out of range; the address
            cannot be bound (in use, or not this machine's). All checked before the model is loaded.
    """
    from lstmkit.serve.connections import install_log_rate_limit

    options = options or ServeOptions()
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise LstmkitError(f"serve --port: expected a port number in 0..65535, got {port!r}")
    cores = os.cpu_count() or 1
    if isinstance(threads, bool) or not isinstance(threads, int) or not 0 <= threads <= 4 * cores:
        raise LstmkitError(f"serve --threads: expected 0 (all cores) to {4 * cores} (4 per core of this machine), "
                           f"got {threads!r}")
    workers = options.workers
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 4 * cores:
        raise LstmkitError(f"serve --workers: expected 1 to {4 * cores} (4 per core of this machine), got {workers!r}")
    address = host if sock is None else str(sock.getsockname()[0])
    options.check_bind(address)
    options = _fit_connections_to_file_limit(options)
    own_socket = sock is None
    if sock is None:
        sock = _bind(host, port)
    if not is_loopback(address):
        if options.api_key is None:
            log.warning("serve: listening on %s without an API key (--insecure): anyone who can reach it may use it",
                        address)
        if options.rate_limit == 0:
            log.warning("serve: listening on %s without a rate limit; consider --rate-limit", address)
    if options.access_log:
        _json_lines_to_stderr(logging.getLogger("lstmkit.serve.access"))
    try:
        install_log_rate_limit()
        bound_host, bound_port = sock.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        many = f" with {workers} worker processes" if workers > 1 else ""

        def announce() -> None:
            logging.getLogger("uvicorn.error").info("Uvicorn running on http://%s:%d%s (Press CTRL+C to quit)",
                                                    shown, bound_port, many)

        if workers == 1:
            _run_server(model, backend, threads, options, host, sock, loaded=announce)
            return 0
        from lstmkit.serve.workers import supervise

        return supervise(workers, lambda ready: _run_server(model, backend, threads, options, host, sock,
                                                            ready=ready), all_ready=announce)
    finally:
        if own_socket:
            sock.close()


def _run_server(model: str | Path, backend: str, threads: int, options: ServeOptions, host: str,
                sock: socket.socket, loaded: Any = None, ready: Any = None) -> None:
    """Load the model and serve it on ``sock`` until the server stops; ``loaded()`` once the model is loaded,
    ``ready()`` once the server accepts requests."""
    import uvicorn

    from lstmkit.serve.app import create_app
    from lstmkit.serve.backends import load_backend
    from lstmkit.serve.connections import server_config

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started and ready is not None:
                ready()

    app = create_app(load_backend(model, backend, threads), options)
    if loaded is not None:
        loaded()
    Server(server_config(app, options, host=host, port=sock.getsockname()[1])).run(sockets=[sock])


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (what uvicorn would open), or a one-line LstmkitError."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise LstmkitError(f"serve --host {host}: expected an address of this machine, got one that does not "
                           f"resolve ({exc})") from None
    family, _, _, _, sockaddr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Inherited by accepted connections: without it a pre-bound socket answered each request ~40 ms late
        # (Nagle and delayed ACKs), where uvicorn binding the address itself answers in about 1 ms.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(sockaddr)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        why = "already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        raise LstmkitError(f"serve --host {host} --port {port}: cannot listen there ({why})") from None
    return sock


def _fit_connections_to_file_limit(options: ServeOptions) -> ServeOptions:
    """``options`` with ``max_connections`` below the open-file limit, leaving room for the model's files."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return options
    room = soft - 128
    if soft == resource.RLIM_INFINITY or options.max_connections <= room:
        return options
    fitted = max(16, room)
    log.warning("serve: --max-connections %d lowered to %d to fit the open-file limit (ulimit -n %d)",
                options.max_connections, fitted, soft)
    return dataclasses.replace(options, max_connections=fitted)


def _json_lines_to_stderr(logger: logging.Logger) -> None:
    """Write ``logger``'s records to stderr as their bare messages (JSON lines), not through the root format."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
