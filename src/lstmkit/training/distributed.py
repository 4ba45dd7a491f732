"""Data-parallel training across processes: PyTorch's own engine (``torch.distributed``, DDP).

Two ways in:

- ``lstmkit train CONFIG --nproc N`` starts N worker processes on this machine (``spawn``), each joining
  a process group over 127.0.0.1;
- ``torchrun --nnodes M --nproc-per-node N ... -m lstmkit.cli train CONFIG`` for several machines:
  torchrun sets ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``, and ``init_from_env`` joins.

The backend follows ``[train] device``: NCCL when the workers train on GPUs (one GPU per worker, so
``--nproc`` may not exceed the GPUs this machine has), gloo on the CPU, also on a machine that has GPUs
when the recipe asks for ``device = "cpu"``. How the work is split (the same global batch, cut into
one slice per rank, gradients averaged) is described in ``lstmkit.training.trainer``.
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


def backend_for(device: str) -> str:
    """The process-group backend for workers that train on ``device`` (``[train] device``)."""
    from lstmkit.training.trainer import resolve_device

    return "nccl" if resolve_device(device).type == "cuda" else "gloo"


def init_from_env(device: str = "auto") -> bool:
    """Join the process group described by torchrun's environment; False when not launched that way.

    ``device`` is the recipe's ``[train] device``: on GPUs each worker takes the GPU of its ``LOCAL_RANK``
    before joining, so that ``"cuda"`` means that worker's own GPU from then on.
    """
    if dist.is_initialized():
        return True
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return False
    backend = backend_for(device)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
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


def _worker(rank: int, world: int, port: int, device: str, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    # Each worker gets its share of the cores, so N workers do not fight over them.
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    init_from_env(device)
    try:
        fn(*args)
    finally:
        shutdown()


def launch_local(nproc: int, fn: Callable[..., Any], *args: Any, device: str = "auto") -> None:
    """Run ``fn(*args)`` in ``nproc`` processes on this machine, joined in one process group.

    ``fn`` and its arguments must be picklable (a module-level function). A failing worker fails the
    whole launch with its exception. ``device`` is the recipe's ``[train] device``; GPU workers need a GPU
    each, and asking for more workers than GPUs is refused before any worker starts.
    """
    if nproc < 1:
        raise ConfigError(f"--nproc: expected a positive number of processes, got {nproc}")
    if backend_for(device) == "nccl" and nproc > torch.cuda.device_count():
        gpus = torch.cuda.device_count()
        raise ConfigError(f"--nproc {nproc}: each GPU worker needs its own GPU and this machine has {gpus}; "
                          f"use --nproc {gpus}, or --set train.device=\"cpu\" for CPU workers")
    mp.spawn(_worker, args=(nproc, _free_port(), device, fn, args), nprocs=nproc, join=True)
