"""Data-parallel training across processes: PyTorch's own engine (``torch.distributed``, DDP).

Two ways in:

- ``lstmkit train CONFIG --nproc N`` starts N worker processes on this machine (``spawn``), each joining
  a process group over 127.0.0.1;
- ``torchrun --nnodes M --nproc-per-node N ... -m lstmkit.cli train CONFIG`` for several machines:
  torchrun sets ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``, and ``init_from_env`` joins.

The backend is gloo on the CPU and NCCL on GPUs. How the work is split (the same global batch, cut into
one slice per rank, gradients averaged) is described in ``lstmkit.trainer``.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any, Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lstmkit.errors import ConfigError

__all__ = ["init_from_env", "launch_local", "is_main_process", "shutdown"]

log = logging.getLogger(__name__)


def _backend() -> str:
    return "nccl" if torch.cuda.is_available() else "gloo"


def init_from_env() -> bool:
    """Join the process group described by torchrun's environment; False when not launched that way."""
    if dist.is_initialized():
        return True
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return False
    backend = _backend()
    dist.init_process_group(backend=backend)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    log.info("rank %d of %d joined (%s)", dist.get_rank(), world, backend)
    return True


def is_main_process() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, world: int, port: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    # Each worker gets its share of the cores, so N workers do not fight over them.
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    init_from_env()
    try:
        fn(*args)
    finally:
        shutdown()


def launch_local(nproc: int, fn: Callable[..., Any], *args: Any) -> None:
    """Run ``fn(*args)`` in ``nproc`` processes on this machine, joined in one process group.

    ``fn`` and its arguments must be picklable (a module-level function). A failing worker fails the
    whole launch with its exception.
    """
    if nproc < 1:
        raise ConfigError(f"--nproc: expected a positive number of processes, got {nproc}")
    mp.spawn(_worker, args=(nproc, _free_port(), fn, args), nprocs=nproc, join=True)
