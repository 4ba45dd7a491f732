"""``lstmkit serve MODEL``: an HTTP service with batch predictions and streaming sessions."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from lstmkit.serve.options import ServeOptions as ServeDefaults


def register(subparsers: Any) -> None:
    defaults = ServeDefaults()
    serve = subparsers.add_parser("serve", help="serve a model over HTTP: batch predictions and streaming sessions")
    serve.add_argument("model", type=Path, help="model folder, or a .onnx file written by `lstmkit export`")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1; any other needs an API key or --insecure)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--backend", choices=["auto", "torch", "onnx"], default="auto",
                       help="auto (default): onnx for a .onnx file, torch for a folder; onnx with a folder exports it first")
    serve.add_argument("--max-batch", type=int, default=defaults.max_batch,
                       help=f"most sequences (or sessions) per model call and per predict request (default {defaults.max_batch})")
    serve.add_argument("--batch-wait-ms", type=float, default=defaults.batch_wait_ms,
                       help=f"how long a batch waits for more requests (default {defaults.batch_wait_ms:g})")
    serve.add_argument("--max-sequence-length", type=int, default=defaults.max_sequence_length,
                       help=f"most steps per sequence or step request (default {defaults.max_sequence_length})")
    serve.add_argument("--max-payload-bytes", type=int, default=defaults.max_payload_bytes,
                       help=f"largest request body (default {defaults.max_payload_bytes})")
    serve.add_argument("--session-ttl", type=float, default=defaults.session_ttl,
                       help=f"seconds an idle session lives (default {defaults.session_ttl:g})")
    serve.add_argument("--max-sessions", type=int, default=defaults.max_sessions,
                       help=f"most open sessions (default {defaults.max_sessions})")
    serve.add_argument("--max-queue", type=int, default=defaults.max_queue,
                       help=f"most sequences or step requests waiting before 503 (default {defaults.max_queue})")
    serve.add_argument("--threads", type=int, default=1,
                       help="CPU threads of each model call (default 1: the event loop needs a core; 0: all cores)")
    serve.add_argument("--workers", type=int, default=defaults.workers,
                       help="server processes sharing the port (default 1). More than one runs /v1/predict's HTTP "
                            "and JSON handling on several cores; HTTP sessions then answer 409 (use /v1/stream), and "
                            "every limit and /metrics is per worker")
    serve.add_argument("--max-concurrency", type=int, default=defaults.max_concurrency,
                       help=f"most requests in progress before 503 (default {defaults.max_concurrency})")
    serve.add_argument("--request-timeout", type=float, default=defaults.request_timeout,
                       help=f"seconds a request may take before 504 (default {defaults.request_timeout:g}; 0: no limit)")
    serve.add_argument("--rate-limit", type=float, default=defaults.rate_limit,
                       help="requests per second per client address before 429 (default 0: no limit)")
    serve.add_argument("--rate-burst", type=int, default=defaults.rate_burst,
                       help=f"requests a client may send at once under --rate-limit (default {defaults.rate_burst})")
    serve.add_argument("--header-timeout", type=float, default=defaults.header_timeout,
                       help=f"seconds for a request's headers to arrive (default {defaults.header_timeout:g}; 0: no limit)")
    serve.add_argument("--body-timeout", type=float, default=defaults.body_timeout,
                       help=f"seconds for a request's body to arrive, then 408 (default {defaults.body_timeout:g}; 0: no limit)")
    serve.add_argument("--max-connections", type=int, default=defaults.max_connections,
                       help=f"most open connections before 503 (default {defaults.max_connections})")
    serve.add_argument("--stream-max-pending", type=int, default=defaults.stream_max_pending,
                       help="most messages of one /v1/stream WebSocket awaiting their answer; beyond it the server "
                            f"stops reading that connection (default {defaults.stream_max_pending})")
    serve.add_argument("--forwarded-allow-ips", default=None,
                       help="addresses of the reverse proxies whose X-Forwarded-For is trusted (default: none)")
    serve.add_argument("--api-key", help="require 'Authorization: Bearer KEY' on every request but /healthz "
                                         "(default: the LSTMKIT_API_KEY environment variable, which ps cannot show)")
    serve.add_argument("--insecure", action="store_true",
                       help="allow a non-loopback --host without an API key")
    serve.add_argument("--access-log", action="store_true",
                       help="log one JSON line per request to stderr (method, path, status, duration, client); "
                            "off by default")
    serve.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lstmkit.serve import ServeOptions, serve

    options = ServeOptions(
        max_batch=args.max_batch, batch_wait_ms=args.batch_wait_ms, max_sequence_length=args.max_sequence_length,
        max_payload_bytes=args.max_payload_bytes, session_ttl=args.session_ttl, max_sessions=args.max_sessions,
        max_queue=args.max_queue, max_concurrency=args.max_concurrency, request_timeout=args.request_timeout,
        rate_limit=args.rate_limit, rate_burst=args.rate_burst,
        api_key=args.api_key if args.api_key is not None else (os.environ.get("LSTMKIT_API_KEY") or None),
        insecure=args.insecure, access_log=args.access_log, header_timeout=args.header_timeout,
        body_timeout=args.body_timeout, max_connections=args.max_connections,
        forwarded_allow_ips=args.forwarded_allow_ips, stream_max_pending=args.stream_max_pending,
        workers=args.workers,
    )
    return serve(args.model, host=args.host, port=args.port, backend=args.backend, options=options,
                 threads=args.threads)
