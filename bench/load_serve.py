"""Load test of ``lstmkit serve``: predict at several concurrencies, and many streaming sessions at once.

Starts its own server on 127.0.0.1 (a free port) for each backend, then drives it from this process with a
small keep-alive HTTP/1.1 client on asyncio (lighter than a general client, so that on a small machine the
load generator takes as little CPU from the server as it can). Every phase is bounded in time and in count.

* ``/v1/predict`` at concurrency 1, 8 and 64: each worker sends one digits-shaped sequence (8 steps of 8)
  per request, on its own connection, as fast as answers come.
* Sessions: ``--sessions`` (1,000) sessions are opened, and each has a worker that sends one step at a time
  on its own connection; session-steps/s counts the steps answered.
* Stream: the same sessions over ``--stream-connections`` (1) WebSockets of ``/v1/stream`` with
  ``lstmkit.serve.client.AsyncStreamClient``: each session's worker awaits one step at a time, and the steps
  awaited together go out as one binary message.

Throughput counts answers with status 200 (``errors`` the others). ``server CPU µs/req`` and ``client CPU
µs/req`` are the CPU time the server process (all its threads) and this load generator used per answered
request during the phase: on a shared machine they move far less than the throughput does.
``--profile-server DIR`` samples the server with py-spy; ``bench/profile_top.py DIR/onnx.txt`` summarises it.

The model is a unidirectional LSTM(128) classifier with random weights on 8x8 inputs (``--model`` serves
another folder). Prints the machine, then a markdown table: requests/s, p50 and p99 latency, and the mean
number of sequences or sessions per model call (from the server's /metrics), and CPU per request.

    .venv/bin/python bench/load_serve.py                      # both backends, 5 s per phase
    .venv/bin/python bench/load_serve.py --backend onnx --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import machine_info, markdown_table  # noqa: E402

HOST = "127.0.0.1"


def make_model(folder: Path, hidden: int = 128) -> Path:
    """A random-weight unidirectional LSTM classifier for 8 steps of 8 features and 10 classes."""
    import torch

    from lstmkit.config import Config, ModelConfig
    from lstmkit.data import Standardizer
    from lstmkit.artifacts.model_folder import save_model
    from lstmkit.models import InputSpec, build_model

    torch.manual_seed(0)
    spec = InputSpec(input_size=8, num_outputs=10, sequence_length=8)
    config = Config(model=ModelConfig(hidden_size=hidden))
    module = build_model(config.model, spec).eval()
    x = np.random.default_rng(0).uniform(0, 16, size=(64, 8, 8)).astype(np.float32)
    return save_model(folder, module, config, spec, [str(d) for d in range(10)], Standardizer().fit(x))


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Connection:
    """One keep-alive HTTP/1.1 connection; requests on it go one after another."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        head = (f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except ConnectionError:
                pass


def start_server(model: Path, backend: str, port: int, args: argparse.Namespace) -> subprocess.Popen:
    command = [sys.executable, "-m", "lstmkit", "serve", str(model), "--host", HOST, "--port", str(port),
               "--backend", backend, "--max-sessions", str(max(args.sessions, 1) + 10), "--max-batch",
               str(args.max_batch), "--batch-wait-ms", str(args.batch_wait_ms), "--max-queue",
               str(max(4096, 2 * args.sessions)), "--max-connections", str(args.sessions + 200),
               "--max-concurrency", str(max(256, args.sessions + 100))]
    if args.workers != 1:  # (a server from before --workers existed is measured with the default)
        command += ["--workers", str(args.workers)]
    if args.profile_server:
        # py-spy samples the server (not this process) 200 times a second; collapsed stacks, one file per backend.
        args.profile_server.mkdir(parents=True, exist_ok=True)
        command = ["py-spy", "record", "--format", "raw", "--rate", "200", "--nonblocking", "--subprocesses",
                   "--output", str(args.profile_server / f"{backend}.txt"), "--", *command]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               start_new_session=bool(args.profile_server))
    # "Uvicorn running on" is logged once the model is loaded (with --workers N: once every worker serves).
    for line in process.stderr:
        if "Uvicorn running on" in line:
            return process
    process.wait()
    raise RuntimeError(f"the server exited with status {process.returncode} before serving")


SERVER_PIDS: dict[int, int] = {}  # port -> the server's process id


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and its children (py-spy's server, when profiling)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            total += process_cpu_seconds(int(child))
    except (OSError, IndexError, ValueError):
        pass
    return total


async def metrics_sample(port: int) -> dict[str, float]:
    """The server's /metrics, and the CPU seconds the server and this process have used so far."""
    cpu = {"server_cpu": process_cpu_seconds(SERVER_PIDS[port]) if port in SERVER_PIDS else float("nan"),
           "client_cpu": time.process_time()}
    connection = Connection(port)
    status, body = await connection.request("GET", "/metrics")
    if status != 200:
        raise RuntimeError(f"GET /metrics: {status} {body[:200]!r}")
    await connection.close()
    values = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            values[key] = float(value)
    return {**values, **cpu}


def batch_mean(before: dict[str, float], after: dict[str, float], name: str) -> float:
    calls = after.get(f"{name}_count", 0) - before.get(f"{name}_count", 0)
    total = after.get(f"{name}_sum", 0) - before.get(f"{name}_sum", 0)
    return total / calls if calls else float("nan")


async def drive(workers: int, seconds: float, max_requests: int, one_request) -> tuple[list[float], int, float]:
    """Run ``workers`` loops of ``one_request(worker)`` until the time or count runs out."""
    latencies: list[float] = []
    errors = 0
    budget = [max_requests]
    deadline = time.perf_counter() + seconds

    async def worker(index: int) -> None:
        nonlocal errors
        while time.perf_counter() < deadline and budget[0] > 0:
            budget[0] -= 1
            start = time.perf_counter()
            ok = await one_request(index)
            latencies.append(time.perf_counter() - start)
            errors += not ok

    start = time.perf_counter()
    await asyncio.gather(*[worker(i) for i in range(workers)])
    return latencies, errors, time.perf_counter() - start


def cpu_per_request(before: dict[str, float], after: dict[str, float], requests: int) -> dict[str, str]:
    """CPU microseconds per request of the server and of this load generator: less sensitive than the
    throughput to other work on a shared machine."""
    return {side: f"{(after[f'{side}_cpu'] - before[f'{side}_cpu']) / max(requests, 1) * 1e6:.0f}"
            for side in ("server", "client")}


def _cpu_columns(before: dict[str, float], after: dict[str, float], requests: int) -> dict[str, str]:
    cpu = cpu_per_request(before, after, requests)
    return {"server CPU µs/req": cpu["server"], "client CPU µs/req": cpu["client"]}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def predict_phase(port: int, concurrency: int, args: argparse.Namespace) -> dict[str, str]:
    rng = np.random.default_rng(concurrency)
    bodies = [json.dumps({"inputs": [rng.uniform(0, 16, size=(8, 8)).round(2).tolist()]}).encode()
              for _ in range(64)]
    connections = [Connection(port) for _ in range(concurrency)]
    counter = [0]

    async def one(index: int) -> bool:
        counter[0] += 1
        status, _ = await connections[index].request("POST", "/v1/predict", bodies[counter[0] % len(bodies)])
        return status == 200

    await drive(concurrency, 0.5, 10 * concurrency, one)  # warm-up
    before = await metrics_sample(port)
    latencies, errors, elapsed = await drive(concurrency, args.seconds, args.max_requests, one)
    after = await metrics_sample(port)
    for connection in connections:
        await connection.close()
    return {
        "workload": "POST /v1/predict (1 sequence of 8x8)", "concurrency": str(concurrency),
        "requests": str(len(latencies)), "throughput": f"{(len(latencies) - errors) / elapsed:,.0f} req/s",
        "p50 ms": f"{statistics.median(latencies) * 1e3:.1f}", "p99 ms": f"{percentile(latencies, 0.99) * 1e3:.1f}",
        "mean batch": f"{batch_mean(before, after, 'lstmkit_predict_batch_size'):.1f} seq", "errors": str(errors),
        **_cpu_columns(before, after, len(latencies) - errors),
    }


async def sessions_phase(port: int, args: argparse.Namespace) -> dict[str, str]:
    n = args.sessions
    connections = [Connection(port) for _ in range(n)]
    opener_count = min(n, 50)
    ids: list[str] = []

    async def opener(index: int) -> None:
        connection = connections[index]
        for _ in range(index, n, opener_count):
            status, body = await connection.request("POST", "/v1/sessions")
            if status != 201:
                raise RuntimeError(f"opening a session: {status} {body[:200]!r}")
            ids.append(json.loads(body)["id"])

    await asyncio.gather(*[opener(i) for i in range(opener_count)])
    rng = np.random.default_rng(1)
    steps = [json.dumps({"inputs": [rng.uniform(0, 16, size=8).round(2).tolist()]}).encode() for _ in range(32)]
    paths = [f"/v1/sessions/{session}/step" for session in ids]
    counter = [0]

    async def one(index: int) -> bool:
        counter[0] += 1
        status, _ = await connections[index].request("POST", paths[index], steps[counter[0] % len(steps)])
        return status == 200

    await drive(n, 0.5, 2 * n, one)  # warm-up: every connection open
    before = await metrics_sample(port)
    latencies, errors, elapsed = await drive(n, args.seconds, args.max_requests, one)
    after = await metrics_sample(port)
    closer = [connections[i].request("DELETE", f"/v1/sessions/{ids[i]}") for i in range(n)]
    await asyncio.gather(*closer)
    for connection in connections:
        await connection.close()
    return {
        "workload": f"POST /v1/sessions/{{id}}/step, {n:,} sessions, 1 step each", "concurrency": str(n),
        "requests": str(len(latencies)), "throughput": f"{(len(latencies) - errors) / elapsed:,.0f} session-steps/s",
        "p50 ms": f"{statistics.median(latencies) * 1e3:.1f}", "p99 ms": f"{percentile(latencies, 0.99) * 1e3:.1f}",
        "mean batch": f"{batch_mean(before, after, 'lstmkit_step_batch_size'):.1f} sessions", "errors": str(errors),
        **_cpu_columns(before, after, len(latencies) - errors),
    }


async def stream_phase(port: int, args: argparse.Namespace) -> dict[str, str]:
    """``--sessions`` sessions over ``--stream-connections`` WebSockets of ``/v1/stream``; each session has a
    worker that sends one step at a time (binary frames; the client puts the steps awaited together into one
    message) and waits for its answer."""
    from lstmkit.serve.client import AsyncStreamClient

    n = args.sessions
    url = f"ws://{HOST}:{port}/v1/stream"
    clients = [await AsyncStreamClient.connect(url) for _ in range(args.stream_connections)]
    ids = await asyncio.gather(*[clients[i % len(clients)].open() for i in range(n)])
    rng = np.random.default_rng(1)
    steps = rng.uniform(0, 16, size=(32, 1, 8)).round(2).astype(np.float32)
    counter = [0]

    async def one(index: int) -> bool:
        counter[0] += 1
        await clients[index % len(clients)].step(ids[index], steps[counter[0] % len(steps)])
        return True

    await drive(n, 0.5, 2 * n, one)  # warm-up
    before = await metrics_sample(port)
    latencies, errors, elapsed = await drive(n, args.seconds, args.max_requests, one)
    after = await metrics_sample(port)
    await asyncio.gather(*[clients[i % len(clients)].close_session(ids[i]) for i in range(n)])
    for client in clients:
        await client.close()
    return {
        "workload": f"WebSocket /v1/stream, {n:,} sessions on {len(clients)} connection(s), 1 step each",
        "concurrency": str(n), "requests": str(len(latencies)),
        "throughput": f"{(len(latencies) - errors) / elapsed:,.0f} session-steps/s",
        "p50 ms": f"{statistics.median(latencies) * 1e3:.1f}", "p99 ms": f"{percentile(latencies, 0.99) * 1e3:.1f}",
        "mean batch": f"{batch_mean(before, after, 'lstmkit_step_batch_size'):.1f} sessions", "errors": str(errors),
        **_cpu_columns(before, after, len(latencies) - errors),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model folder to serve (default: a random LSTM(128) on 8x8)")
    parser.add_argument("--backend", nargs="+", choices=["torch", "onnx"], default=["torch", "onnx"])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each measured phase (default 5)")
    parser.add_argument("--max-requests", type=int, default=500_000, help="most requests per phase (default 500,000)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--stream-connections", type=int, default=1,
                        help="WebSocket connections that the --sessions share (default 1)")
    parser.add_argument("--profile-server", type=Path, metavar="DIR",
                        help="sample the server with py-spy (on PATH) into DIR/BACKEND.txt (collapsed stacks)")
    parser.add_argument("--phases", nargs="+", choices=["predict", "sessions", "stream"],
                        default=["predict", "sessions", "stream"], help="what to measure (default: all)")
    parser.add_argument("--workers", type=int, default=1, help="the server's --workers (default 1)")
    parser.add_argument("--max-batch", type=int, default=256, help="the server's --max-batch (default 256)")
    parser.add_argument("--batch-wait-ms", type=float, default=2.0, help="the server's --batch-wait-ms (default 2)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or make_model(Path(tmp) / "model")
        rows = []
        for backend in args.backend:
            port = free_port()
            server = start_server(model, backend, port, args)
            SERVER_PIDS[port] = server.pid
            try:
                if "predict" in args.phases:
                    for concurrency in args.concurrency:
                        rows.append({"backend": backend, **asyncio.run(predict_phase(port, concurrency, args))})
                if args.sessions and "sessions" in args.phases:
                    rows.append({"backend": backend, **asyncio.run(sessions_phase(port, args))})
                if args.sessions and "stream" in args.phases:
                    rows.append({"backend": backend, **asyncio.run(stream_phase(port, args))})
            finally:
                if args.profile_server:  # SIGINT to py-spy and the server: the server stops, py-spy writes its file
                    os.killpg(server.pid, signal.SIGINT)
                else:
                    server.terminate()
                server.wait(timeout=60)

    info = machine_info()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    print(f"server: --workers {args.workers}, --threads 1, --max-batch {args.max_batch}, --batch-wait-ms {args.batch_wait_ms:g}; "
          f"client: this process, {args.seconds:g} s per phase; load average before: "
          f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print()
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
