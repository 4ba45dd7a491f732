"""``lstmkit serve --workers N``: N server processes on one listening socket, and the process that watches them.

The parent binds the address, then forks N workers before anything is loaded; each worker loads the model
and runs its own uvicorn server on the inherited socket, and the kernel hands each new connection to one of
them. On 2 cores the JSON and HTTP handling of ``/v1/predict`` then runs on both (BENCHMARKS.md).

What is per worker:

- every limit (``--max-concurrency``, ``--max-connections``, ``--rate-limit``, ``--max-sessions``, ...) and
  ``/metrics``: each worker counts its own connections and requests;
- the memory of the model: N copies;
- sessions. A session's state lives in the worker that opened it, and the next HTTP request of a client may
  reach another worker, so under N > 1 ``POST /v1/sessions`` answers 409 and says so. ``/v1/stream`` works:
  a WebSocket connection, and the sessions on it, stay with the worker that accepted it.

The parent (``supervise``):

- restarts a worker that dies after it was serving (killed, out of memory), at most ``MAX_RESTARTS`` times a
  minute; beyond that it stops them all and exits 1;
- stops everything and exits with the worker's status when a worker ends before it serves (a model that does
  not load: each worker would fail the same way); the worker has printed why;
- forwards SIGINT and SIGTERM to the workers as SIGTERM (uvicorn's graceful shutdown), and kills those still
  running ``STOP_SECONDS`` later. On Linux a worker also gets SIGTERM when the parent dies by any means
  (``PR_SET_PDEATHSIG``), so no orphan keeps the port.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from lstmkit.errors import LstmkitError

__all__ = ["MAX_RESTARTS", "STOP_SECONDS", "supervise"]

log = logging.getLogger("uvicorn.error")

MAX_RESTARTS = 5
"""Most restarts of dead workers within 60 s before the parent gives up."""
STOP_SECONDS = 10.0
"""How long the workers have to finish after SIGTERM before they are killed."""
_POLL_SECONDS = 0.1


@dataclass
class _Worker:
    pid: int
    ready_fd: int  # the read end of the pipe on which the worker writes one byte once it serves
    ready: bool = False


@dataclass
class _Supervisor:
    run_worker: Callable[[Callable[[], None]], None]
    workers: dict[int, _Worker] = field(default_factory=dict)
    restarts: deque[float] = field(default_factory=deque)
    stopping: bool = False

    def start_one(self) -> None:
        read_fd, write_fd = os.pipe()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the worker
            os.close(read_fd)
            for other in self.workers.values():
                os.close(other.ready_fd)
            _worker_main(self.run_worker, write_fd, parent)  # never returns
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        self.workers[pid] = _Worker(pid, read_fd)

    def stop(self, *_: object) -> None:
        self.stopping = True
        for worker in self.workers.values():
            _signal(worker.pid, signal.SIGTERM)

    def poll_ready(self) -> None:
        for worker in self.workers.values():
            self.poll_ready_one(worker)

    def reap(self) -> int | None:
        """Collect dead workers; restart them, or return the status the parent should exit with."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return 0 if self.stopping else 1
            if pid == 0:
                return None
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            self.poll_ready_one(worker)
            os.close(worker.ready_fd)
            code = os.waitstatus_to_exitcode(status)
            if self.stopping:
                if not self.workers:
                    return 0
                continue
            if not worker.ready:
                log.error("serve --workers: worker %d ended before serving (status %d); stopping", pid, code)
                self.stop()
                return code if code > 0 else 1
            now = time.monotonic()
            while self.restarts and now - self.restarts[0] > 60.0:
                self.restarts.popleft()
            if len(self.restarts) >= MAX_RESTARTS:
                log.error("serve --workers: worker %d died (status %d), the %dth death within a minute; stopping",
                          pid, code, MAX_RESTARTS + 1)
                self.stop()
                return 1
            self.restarts.append(now)
            log.warning("serve --workers: worker %d died (status %d); starting another", pid, code)
            self.start_one()

    @staticmethod
    def poll_ready_one(worker: _Worker) -> None:
        if not worker.ready:
            try:
                worker.ready = bool(os.read(worker.ready_fd, 1))
            except BlockingIOError:
                pass


def supervise(count: int, run_worker: Callable[[Callable[[], None]], None],
              all_ready: Callable[[], None] | None = None) -> int:
    """Fork ``count`` workers, each running ``run_worker(ready)`` (which must call ``ready()`` once it serves,
    and return when the server has stopped), and watch them until SIGINT or SIGTERM (see the module);
    ``all_ready()`` is called once, when the first ``count`` workers all serve.

    Returns:
        The status for the process: 0 after a stop by signal, a worker's status when one ended before serving,
        1 when workers kept dying.

    Raises:
        LstmkitError: this platform cannot fork (Windows).
    """
    if not hasattr(os, "fork"):
        raise LstmkitError("serve --workers: more than one worker needs os.fork, which this platform lacks; "
                           "use --workers 1")
    supervisor = _Supervisor(run_worker)
    previous = {sig: signal.signal(sig, supervisor.stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for _ in range(count):
            supervisor.start_one()
        status = None
        while status is None and not supervisor.stopping:
            time.sleep(_POLL_SECONDS)
            supervisor.poll_ready()
            if all_ready is not None and all(worker.ready for worker in supervisor.workers.values()):
                all_ready()
                all_ready = None
            status = supervisor.reap()
        deadline = time.monotonic() + STOP_SECONDS
        while supervisor.workers and time.monotonic() < deadline:
            time.sleep(_POLL_SECONDS)
            final = supervisor.reap()
            status = final if status is None else status
        for worker in supervisor.workers.values():
            log.warning("serve --workers: worker %d did not stop within %g s; killing it", worker.pid, STOP_SECONDS)
            _signal(worker.pid, signal.SIGKILL)
        for worker in list(supervisor.workers.values()):
            try:
                os.waitpid(worker.pid, 0)
            except ChildProcessError:
                pass
        return status or 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _worker_main(run_worker: Callable[[Callable[[], None]], None], ready_fd: int, parent: int) -> None:
    """The body of a worker forked by ``parent``: run the server, then leave without the parent's exit handlers."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)  # uvicorn installs its own once it starts
    _end_with_parent(parent)

    def ready() -> None:
        try:
            os.write(ready_fd, b"1")
            os.close(ready_fd)
        except OSError:
            pass

    code = 0
    try:
        run_worker(ready)
    except LstmkitError as exc:
        print(f"lstmkit: error: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - a worker must never return into the parent's code
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _end_with_parent(parent: int) -> None:
    """Linux: have the kernel send this process SIGTERM when the parent dies, even by SIGKILL, so that no
    orphaned worker keeps the port. Elsewhere nothing (the parent's SIGTERM still stops the workers)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the call (compared by pid: it may itself be PID 1)
        os.kill(os.getpid(), signal.SIGTERM)


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
