"""Run a time loop as one CUDA graph: captured once per shape, replayed on copies of the call's tensors.

A step of the GPU path is two or three launches (:mod:`lstmkit.nn.gpu.recurrence`); at the seed shape the
GPU finishes each in microseconds, so a loop launched from Python waits on Python. Captured in a CUDA graph,
the whole loop (forward or backward) is one launch. The graph reads and writes fixed memory: each call
copies its tensors into the graph's inputs, replays, and returns copies of the graph's outputs, so two
calls that share a graph (the two directions of a bidirectional layer, the layers of a stack) never share
results.

``LSTMKIT_CUDA_GRAPHS=0`` turns graphs off (every loop runs launch by launch). A capture that fails warns
once and its loop runs launch by launch from then on.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections import OrderedDict
from typing import Callable

import torch
from torch import Tensor

__all__ = ["GraphedLoop", "capture_cuda_graph", "enabled", "run"]

#: How many captured loops are kept (each holds its inputs' and outputs' memory); least recently used go first.
CACHE_SIZE = 64

Tensors = dict[str, Tensor]


def enabled(tensor: Tensor) -> bool:
    """Whether a loop on ``tensor`` runs as a CUDA graph: a CUDA tensor, and ``LSTMKIT_CUDA_GRAPHS`` not ``0``."""
    return tensor.is_cuda and os.environ.get("LSTMKIT_CUDA_GRAPHS", "1") != "0"


def capture_cuda_graph(fn: Callable[[], Tensors]) -> tuple[Callable[[], None], Tensors]:
    """Capture ``fn`` in a CUDA graph after one warm-up run on a side stream (which compiles the Triton
    kernels: nothing may compile during a capture); returns the replay function and ``fn``'s outputs."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, capture_error_mode="thread_local"):  # other threads may use the GPU meanwhile
        outputs = fn()
    return graph.replay, outputs


class GraphedLoop:
    """``fn`` captured once on static copies of example inputs, replayed per call.

    Args:
        fn: the loop; takes the inputs (tensors or ``None``) positionally and returns a dict of tensors,
            which it allocates.
        example: inputs of the shapes, dtypes and devices of every later call (``None`` stays ``None``).
        capture: takes a function of no arguments, runs or captures it, and returns the replay function and
            the outputs it fills (:func:`capture_cuda_graph`; the tests pass one that replays by calling).
    """

    def __init__(self, fn: Callable[..., Tensors], example: tuple[Tensor | None, ...],
                 capture: Callable[[Callable[[], Tensors]], tuple[Callable[[], None], Tensors]]) -> None:  # fmt: skip
        self.inputs = tuple(None if t is None else t.detach().clone() for t in example)
        self.replay, self.outputs = capture(lambda: fn(*self.inputs))

    def __call__(self, *inputs: Tensor | None) -> Tensors:
        for static, tensor in zip(self.inputs, inputs):
            if static is not None:
                static.copy_(tensor)
        self.replay()
        return {name: tensor.clone() for name, tensor in self.outputs.items()}


_cache: OrderedDict[tuple, GraphedLoop | None] = OrderedDict()
_lock = threading.Lock()


def run(key: tuple, fn: Callable[..., Tensors], *inputs: Tensor | None) -> Tensors:
    """``fn(*inputs)`` through the captured loop of ``key`` (which must name everything ``fn`` depends on
    besides the inputs' values: their shapes, dtypes and device are added here), capturing it on first use."""
    key = (key, *(None if t is None else (t.shape, t.dtype, t.device) for t in inputs))
    with _lock:
        loop = _cache.get(key, False)
        if loop is False:
            try:
                loop = GraphedLoop(fn, inputs, capture_cuda_graph)
            except Exception as exc:  # noqa: BLE001  # e.g. an operation a graph cannot hold: launch by launch
                warnings.warn(f"lstmkit: the GPU path could not capture its loop in a CUDA graph ({exc}); "
                              "running it launch by launch", stacklevel=3)  # fmt: skip
                loop = None
            _cache[key] = loop
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
        else:
            _cache.move_to_end(key)
        if loop is not None:
            return loop(*inputs)
    return fn(*inputs)
