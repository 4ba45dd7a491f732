r"""The fast path for the LSTM variants: a small C++ kernel per layer and direction, with its own backward.

PyTorch's fused kernel (:mod:`lstmkit.nn.fused`) computes the vanilla LSTM only; every variant and every
non-default activation used to run the reference loop over :func:`lstmkit.nn.lstm_cell`, which pays
PyTorch's per-operator overhead a dozen times per step, forward and backward. Here the whole recurrence
of one layer in one direction is one call into ``csrc/lstm_fast.cpp``:

* the input projection of all steps, :math:`W_{ih} x + b`, stays one PyTorch matrix product outside the
  kernel, so autograd differentiates it (with ``layer_norm``, the kernel normalises it and adds the biases);
* per step, forward: one matrix product :math:`W_{hh} h_{t-1}` (BLAS, into the step's gate rows), then one
  element-wise pass per batch row for everything else (peepholes, activations, cell update, clipping,
  layer norms, zoneout, lengths), plus :math:`W_{hr}` with a projection;
* per step, backward (hand-written, :class:`_Recurrence`): one element-wise pass per row, then one matrix
  product into :math:`h_{t-1}`; the weight gradients are one matrix product each over all steps at the end.

It covers everything the reference computes (every variant, activation, ``proj_size``, lengths, both
directions, stacking) for float32 and float64 CPU tensors; the layer structure (directions, stacking,
residual, merge modes, dropout between layers) is :func:`lstmkit.nn.layer.stack_layers`, shared with the
reference. Dropout-like masks are drawn by :func:`lstmkit.nn.layer.draw_masks`, the reference's own helper,
so a seeded training step draws the same masks on both paths.

The kernel is compiled on first use (a few seconds with the system's C++ compiler, cached on disk in the
PyTorch extensions folder, ``$TORCH_EXTENSIONS_DIR`` or ``~/.cache/torch_extensions``); nothing is built on
import or for vanilla LSTMs. If it cannot be built or loaded, :func:`available` is ``False``, one warning says
why, and :class:`lstmkit.nn.LSTM` runs the reference loop instead. ``LSTMKIT_NO_FAST=1`` turns it off.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import struct
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

import torch
from torch import Tensor
from torch.nn import functional as F

from .activations import ACTIVATIONS
from .cell import CellActivations
from .layer import LayerWeights, draw_masks, stack_layers
from .layer import input_projection as layer_input_projection
from .variants import VANILLA, Variants

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).parent / "csrc" / "lstm_fast.cpp"
#: Compiler flags; ``-march=native`` because the library is built on the machine that runs it.
CXX_FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-fPIC", "-shared", "-std=c++17")
_ABI_VERSION = 3

#: The activations the kernel implements, by name, with its codes for them.
ACTIVATION_CODES = {"sigmoid": 0, "hard_sigmoid": 1, "tanh": 2, "relu": 3, "elu": 4, "softsign": 5}
_KERNEL_FUNCTIONS = {name: ACTIVATIONS[name] for name in ACTIVATION_CODES}  # as lstmkit defines them
_CODES_BY_FUNCTION = {_KERNEL_FUNCTIONS[name]: code for name, code in ACTIVATION_CODES.items()}
_DTYPES = (torch.float32, torch.float64)


class FastPathUnavailable(RuntimeError):
    """The kernel could not be built or loaded; the message says why."""


# --- Building and loading ----------------------------------------------------------------------------------


def build_dir() -> Path:
    """Where the compiled library is cached: ``$TORCH_EXTENSIONS_DIR/lstmkit_fast`` or the PyTorch default."""
    root = os.environ.get("TORCH_EXTENSIONS_DIR")
    if not root:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(cache, "torch_extensions")  # torch.utils.cpp_extension's default on Linux
    return Path(root) / "lstmkit_fast"


def _cpu_signature() -> str:
    """The CPU model and flags: a library built with -march=native must not be reused on another CPU."""
    try:
        with open("/proc/cpuinfo") as fh:
            lines = [line for line in fh if line.startswith(("model name", "flags", "Features"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return platform.processor()


def _compiler() -> str:
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if not cxx:
        raise FastPathUnavailable("no C++ compiler found (set CXX, or install g++ or clang++)")
    return cxx


def _library_path(cxx: str) -> tuple[Path, str]:
    """Where the library built from this source, compiler, flags and CPU lies, and the source's SHA-256."""
    try:
        source = SOURCE.read_bytes()
    except OSError as exc:
        raise FastPathUnavailable(f"the kernel's source is missing: {exc}") from exc
    key = hashlib.sha256(
        b"\0".join([source, cxx.encode(), " ".join(CXX_FLAGS).encode(), _cpu_signature().encode(),
                    platform.machine().encode()])  # fmt: skip
    ).hexdigest()[:16]
    return build_dir() / f"lstm_fast_{key}.so", hashlib.sha256(source).hexdigest()


def built() -> Path | None:
    """The library, if it is built and cached already and may be loaded (:func:`build` without building)."""
    try:
        target, source_sha256 = _library_path(_compiler())
    except FastPathUnavailable:
        return None
    if not target.exists() or _cached_library_problem(target, target.with_suffix(".json"), source_sha256):
        return None
    return target


def build() -> Path:
    """Compile ``csrc/lstm_fast.cpp`` into a shared library (if not cached yet) and return its path.

    Tries with OpenMP first, then without (e.g. clang without libomp). Raises :class:`FastPathUnavailable`.
    """
    cxx = _compiler()
    target, source_sha256 = _library_path(cxx)
    directory = target.parent
    record = target.with_suffix(".json")
    if target.exists():
        problem = _cached_library_problem(target, record, source_sha256)
        if problem is None:
            return target
        logger.warning("lstmkit: not loading the cached kernel %s: %s; building it again", target, problem)
        for stale in (target, record):
            stale.unlink(missing_ok=True)
    directory.mkdir(parents=True, exist_ok=True)
    errors = []
    for extra in (("-fopenmp",), ()):
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=directory)
        os.close(fd)
        command = [cxx, *CXX_FLAGS, *extra, str(SOURCE), "-o", tmp]
        logger.info("lstmkit: building the fast LSTM kernel: %s", " ".join(command))
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.SubprocessError) as exc:
            os.unlink(tmp)
            raise FastPathUnavailable(f"running {cxx} failed: {exc}") from exc
        if result.returncode == 0:
            # The record ties the library's bytes to its source and flags; load() trusts the file only with it.
            _write_record(record, {"library_sha256": _sha256_file(Path(tmp)), "source_sha256": source_sha256,
                                   "compiler": cxx, "flags": [*CXX_FLAGS, *extra]})
            os.replace(tmp, target)  # atomic: concurrent builders each write their own temporary file
            return target
        os.unlink(tmp)
        errors.append(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.returncode}")
    raise FastPathUnavailable(f"{cxx} could not compile {SOURCE.name}: {errors[-1]}")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _write_record(path: Path, record: dict) -> None:
    import json

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w") as fh:
            json.dump(record, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _cached_library_problem(target: Path, record_path: Path, source_sha256: str) -> str | None:
    """Why the cached library must not be loaded (None when it may): it must be this user's, writable by no
    one else, in a folder no one else can write to, and its bytes must match the SHA-256 recorded when it was
    built from this very source."""
    import json
    import stat

    if hasattr(os, "getuid"):
        for path in (target, target.parent):
            info = os.stat(path)
            if info.st_uid != os.getuid():
                return f"{path} belongs to another user (uid {info.st_uid})"
            if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not (path.is_dir() and info.st_mode & stat.S_ISVTX):
                return f"{path} is writable by other users"
    try:
        record = json.loads(record_path.read_text())
        expected, built_from = record["library_sha256"], record["source_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"no valid build record {record_path.name} beside it"
    if built_from != source_sha256:
        return "it was built from another version of the source"
    actual = _sha256_file(target)
    if actual != expected:
        return f"its SHA-256 {actual[:12]}... differs from the one recorded at build time ({str(expected)[:12]}...)"
    return None


def _blas() -> tuple[int, int]:
    """Addresses of the Fortran ``sgemm_`` and ``dgemm_`` that torch links (MKL or OpenBLAS)."""
    torch_lib = Path(torch.__file__).parent / "lib"
    candidates = sorted(torch_lib.glob("libtorch_cpu.*"))
    for path in candidates + [None]:
        try:
            lib = ctypes.CDLL(str(path) if path is not None else None)
            return (ctypes.cast(lib.sgemm_, ctypes.c_void_p).value, ctypes.cast(lib.dgemm_, ctypes.c_void_p).value)
        except (OSError, AttributeError):
            continue
    raise FastPathUnavailable("torch exports no BLAS sgemm_/dgemm_ to call")


def load(path: Path | None = None) -> ctypes.CDLL:
    """Load the kernel at ``path``, or build (if needed) and load it; raises :class:`FastPathUnavailable`."""
    if os.environ.get("LSTMKIT_NO_FAST"):
        raise FastPathUnavailable("turned off by LSTMKIT_NO_FAST")
    path = path or build()
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as exc:
        raise FastPathUnavailable(f"could not load {path}: {exc}") from exc
    lib.lk_abi_version.restype = ctypes.c_int64
    lib.lk_args_size.restype = ctypes.c_int64
    if lib.lk_abi_version() != _ABI_VERSION or lib.lk_args_size() != ctypes.sizeof(LkArgs):
        raise FastPathUnavailable(f"{path} does not match this version of lstmkit")
    sgemm, dgemm = _blas()
    lib.lk_set_blas(ctypes.c_void_p(sgemm), ctypes.c_void_p(dgemm))
    for name in ("lk_forward_f32", "lk_forward_f64", "lk_backward_f32", "lk_backward_f64"):
        getattr(lib, name).argtypes = [ctypes.POINTER(LkArgs)]
        getattr(lib, name).restype = None
    for name in ("lk_step_f32", "lk_step_f64"):  # called with the structure's address: the cheapest call
        getattr(lib, name).argtypes = [ctypes.c_void_p]
        getattr(lib, name).restype = None
    for name in ("lk_step_into_f32", "lk_step_into_f64"):  # called with the bytes of STEP_INTO.pack(...)
        getattr(lib, name).argtypes = [ctypes.c_char_p]
        getattr(lib, name).restype = None
    for name in ("lk_step_scratch_size", "lk_step_struct_size", "lk_layer_struct_size", "lk_step_into_struct_size"):
        getattr(lib, name).restype = ctypes.c_int64
    lib.lk_step_scratch_size.argtypes = [ctypes.c_int64] * 4
    if (
        lib.lk_step_struct_size() != ctypes.sizeof(LkStep)
        or lib.lk_layer_struct_size() != ctypes.sizeof(LkLayer)
        or lib.lk_step_into_struct_size() != STEP_INTO.size
    ):
        raise FastPathUnavailable(f"{path} does not match this version of lstmkit")
    return lib


_lock = threading.Lock()
_state: dict[str, object] = {}  # "lib" once loaded, or "error" once it failed


def library() -> ctypes.CDLL | None:
    """The loaded kernel, building it on the first call; ``None`` (after one warning) when that fails."""
    lib = _state.get("lib")
    if lib is not None or "error" in _state:
        return lib
    with _lock:
        if "lib" not in _state and "error" not in _state:
            try:
                _state["lib"] = load()
            except FastPathUnavailable as exc:
                _state["error"] = str(exc)
                warnings.warn(f"lstmkit: fast LSTM path unavailable ({exc}); using the reference loop", stacklevel=3)
    return _state.get("lib")


def loaded() -> bool:
    """Whether the kernel is loaded already (never builds)."""
    return "lib" in _state


def load_built() -> bool:
    """Whether the kernel is loaded, loading it first if it is built already; never compiles. Looks on disk
    once per process (a millisecond): a library built later by another process is not seen, one built by
    :func:`library` in this process is."""
    if "lib" in _state:
        return True
    if "error" in _state or "looked_on_disk" in _state or os.environ.get("LSTMKIT_NO_FAST"):
        return False
    with _lock:
        if "lib" not in _state and "looked_on_disk" not in _state:
            _state["looked_on_disk"] = True
            path = built()
            if path is not None:
                try:
                    _state["lib"] = load(path)
                except FastPathUnavailable as exc:
                    logger.info("lstmkit: the built fast kernel did not load (%s); library() will say why", exc)
    return "lib" in _state


def available() -> bool:
    """Whether the kernel is built and loaded (builds it on the first call)."""
    return library() is not None


def covers(activation_names: tuple[str, str, str]) -> bool:
    """Whether the kernel implements these (gate, cell, hidden) activations: lstmkit's own functions by these
    names (not ones a user registered or replaced in :data:`~lstmkit.nn.ACTIVATIONS`)."""
    gate, cell, hidden = activation_names  # unrolled: LSTM asks at every call
    get, kernel = ACTIVATIONS.get, _KERNEL_FUNCTIONS.get
    return get(gate) is kernel(gate, False) and get(cell) is kernel(cell, False) and get(hidden) is kernel(hidden, False)


def usable(tensor: Tensor) -> bool:
    """Whether a call on ``tensor`` (an input or parameter) can run here: CPU, float32/64, no autocast, built."""
    return (
        tensor.device.type == "cpu"
        and tensor.dtype in _DTYPES
        and not torch.is_autocast_enabled("cpu")
        and available()
    )


def unusable_reason(tensor: Tensor) -> str | None:
    """Why a call on ``tensor`` cannot run the kernel, or ``None`` when it can (:func:`usable`, in words)."""
    if tensor.device.type != "cpu":
        return f"the fast kernel runs on the CPU, got a tensor on {tensor.device}"
    if tensor.dtype not in _DTYPES:
        return f"the fast kernel computes float32 and float64, got {tensor.dtype}"
    if torch.is_autocast_enabled("cpu"):
        return "the fast kernel does not run under autocast"
    if not available():
        return f"the fast kernel is unavailable ({_state.get('error')})"
    return None


# --- The C ABI ---------------------------------------------------------------------------------------------

_P = ctypes.c_void_p


class LkArgs(ctypes.Structure):
    """Mirror of ``struct LkArgs`` in ``csrc/lstm_fast.cpp`` (field for field)."""

    _fields_ = [
        *((name, ctypes.c_int64) for name in ("L", "N", "H", "P", "G", "nthreads", "act_gate", "act_cell",
                                               "act_hidden", "save")),
        *((name, ctypes.c_double) for name in ("clip", "zh", "zc")),
        *((name, _P) for name in (
            "xw", "h0", "c0", "w_hh", "w_hr", "peep", "ln_hh", "ln_c_w", "ln_c_b", "ln_ih", "b_ih", "b_hh", "rmask",
            "zh_mask", "zc_mask", "valid", "out", "h_n", "c_n", "gates", "cs", "cstate", "hin", "hh", "psi", "rn",
            "r_rstd", "c_mean", "c_rstd", "x_mean", "x_rstd", "d_out", "d_hn", "d_cn", "d_xw", "d_h0", "d_c0",
            "d_w_hh", "d_w_hr", "d_peep", "d_ln_hh", "d_ln_c_w", "d_ln_c_b", "d_ln_ih", "d_bias", "d_r", "d_hp",
        )),
    ]  # fmt: skip


def _ptr(tensor: Tensor | None) -> int | None:
    return None if tensor is None else tensor.data_ptr()


def _contiguous(tensor: Tensor | None) -> Tensor | None:
    return None if tensor is None else tensor.contiguous()


class _Config:
    """What stays fixed for one call: gate count, activation codes, clip value, scalar zoneout weights."""

    __slots__ = ("gates", "codes", "clip", "zh", "zc")

    def __init__(self, gates: int, codes: tuple[int, int, int], clip: float | None, zh: float, zc: float):
        self.gates, self.codes, self.clip, self.zh, self.zc = gates, codes, clip, zh, zc


class _Recurrence(torch.autograd.Function):
    """One layer in one direction over all steps; inputs and outputs as in :func:`run_direction`, except that
    with layer norm (``ln_ih`` given) ``xw`` is the raw :math:`W_{ih} x` and the kernel adds the norm and
    the biases."""

    @staticmethod
    def forward(ctx, config, xw, h0, c0, w_hh, w_hr, peep, ln_hh, ln_c_w, ln_c_b, ln_ih, b_ih, b_hh, rmask, zh_mask,
                zc_mask, valid):  # fmt: skip
        lib = _state["lib"]
        L, N, GH = xw.shape
        H, P = GH // config.gates, h0.size(-1)
        save = any(ctx.needs_input_grad)
        steps = L if save else 1
        new = xw.new_empty
        out, h_n, c_n, cstate = new((L, N, P)), new((N, P)), new((N, H)), new((L, N, H))
        gates, cs, psi = new((steps, N, GH)), new((steps, N, H)), new((steps, N, H))
        hin = new((steps, N, P)) if rmask is not None else None
        hh = new((steps, N, H)) if w_hr is not None else None
        rn, r_rstd = (new((steps, N, GH)), new((steps, N))) if ln_hh is not None else (None, None)
        c_mean, c_rstd = (new((steps, N)), new((steps, N))) if ln_c_w is not None else (None, None)
        x_mean, x_rstd = (new((steps, N)), new((steps, N))) if ln_ih is not None else (None, None)
        args = LkArgs(
            L=L, N=N, H=H, P=P, G=config.gates, nthreads=torch.get_num_threads(), act_gate=config.codes[0],
            act_cell=config.codes[1], act_hidden=config.codes[2], save=int(save), clip=config.clip or 0.0,
            zh=config.zh, zc=config.zc,
            xw=_ptr(xw), h0=_ptr(h0), c0=_ptr(c0), w_hh=_ptr(w_hh), w_hr=_ptr(w_hr), peep=_ptr(peep),
            ln_hh=_ptr(ln_hh), ln_c_w=_ptr(ln_c_w), ln_c_b=_ptr(ln_c_b), ln_ih=_ptr(ln_ih), b_ih=_ptr(b_ih),
            b_hh=_ptr(b_hh), rmask=_ptr(rmask), zh_mask=_ptr(zh_mask), zc_mask=_ptr(zc_mask), valid=_ptr(valid),
            out=_ptr(out), h_n=_ptr(h_n), c_n=_ptr(c_n), gates=_ptr(gates), cs=_ptr(cs), cstate=_ptr(cstate),
            hin=_ptr(hin), hh=_ptr(hh), psi=_ptr(psi), rn=_ptr(rn), r_rstd=_ptr(r_rstd), c_mean=_ptr(c_mean),
            c_rstd=_ptr(c_rstd), x_mean=_ptr(x_mean), x_rstd=_ptr(x_rstd),
        )  # fmt: skip
        (lib.lk_forward_f64 if xw.dtype == torch.float64 else lib.lk_forward_f32)(ctypes.byref(args))
        if save:
            ctx.config = config
            ctx.save_for_backward(h0, c0, w_hh, w_hr, peep, ln_hh, ln_c_w, ln_c_b, ln_ih, b_ih, b_hh, rmask, zh_mask,
                                  zc_mask, valid, out, xw if ln_ih is not None else None)  # fmt: skip
            ctx.workspace = (gates, cs, cstate, hin, hh, psi, rn, r_rstd, c_mean, c_rstd, x_mean, x_rstd)
            ctx.set_materialize_grads(False)
        return out, h_n, c_n

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, d_out, d_hn, d_cn):
        lib = _state["lib"]
        config = ctx.config
        saved = ctx.saved_tensors
        h0, c0, w_hh, w_hr, peep, ln_hh, ln_c_w, ln_c_b, ln_ih, b_ih, b_hh, rmask, zh_mask, zc_mask, valid = saved[:15]
        out, xw = saved[15:]
        gates, cs, cstate, hin, hh, psi, rn, r_rstd, c_mean, c_rstd, x_mean, x_rstd = ctx.workspace
        L, N, GH = gates.shape
        H, P = GH // config.gates, h0.size(-1)
        needs = ctx.needs_input_grad  # (config, xw, h0, c0, w_hh, w_hr, peep, ln_hh, ln_c_w, ln_c_b, ln_ih, ...)
        new = gates.new_empty
        d_xw = new((L, N, GH))
        d_h0, d_c0 = new((N, P)), new((N, H))
        d_w_hh = new(w_hh.shape) if needs[4] else None
        d_w_hr = new(w_hr.shape) if w_hr is not None and needs[5] else None
        d_peep = new(peep.shape) if peep is not None and needs[6] else None
        d_ln_hh = new(ln_hh.shape) if ln_hh is not None and needs[7] else None
        d_ln_c_w = new(ln_c_w.shape) if ln_c_w is not None and needs[8] else None
        d_ln_c_b = new(ln_c_b.shape) if ln_c_b is not None and needs[9] else None
        d_ln_ih = new(ln_ih.shape) if ln_ih is not None and needs[10] else None
        d_bias = new((GH,)) if b_ih is not None and ln_ih is not None and (needs[11] or needs[12]) else None
        d_r = new((L, N, GH)) if ln_hh is not None or ln_ih is not None else None
        d_hp = new((L, N, P)) if w_hr is not None else None
        d_out, d_hn, d_cn = (_contiguous(g) for g in (d_out, d_hn, d_cn))
        args = LkArgs(
            L=L, N=N, H=H, P=P, G=config.gates, nthreads=torch.get_num_threads(), act_gate=config.codes[0],
            act_cell=config.codes[1], act_hidden=config.codes[2], save=1, clip=config.clip or 0.0,
            zh=config.zh, zc=config.zc,
            xw=_ptr(xw), h0=_ptr(h0), c0=_ptr(c0), w_hh=_ptr(w_hh), w_hr=_ptr(w_hr), peep=_ptr(peep),
            ln_hh=_ptr(ln_hh), ln_c_w=_ptr(ln_c_w), ln_c_b=_ptr(ln_c_b), ln_ih=_ptr(ln_ih), b_ih=_ptr(b_ih),
            b_hh=_ptr(b_hh), rmask=_ptr(rmask), zh_mask=_ptr(zh_mask), zc_mask=_ptr(zc_mask), valid=_ptr(valid),
            out=_ptr(out), gates=_ptr(gates), cs=_ptr(cs), cstate=_ptr(cstate), hin=_ptr(hin), hh=_ptr(hh),
            psi=_ptr(psi), rn=_ptr(rn), r_rstd=_ptr(r_rstd), c_mean=_ptr(c_mean), c_rstd=_ptr(c_rstd),
            x_mean=_ptr(x_mean), x_rstd=_ptr(x_rstd), d_out=_ptr(d_out), d_hn=_ptr(d_hn), d_cn=_ptr(d_cn),
            d_xw=_ptr(d_xw), d_h0=_ptr(d_h0), d_c0=_ptr(d_c0), d_w_hh=_ptr(d_w_hh), d_w_hr=_ptr(d_w_hr),
            d_peep=_ptr(d_peep), d_ln_hh=_ptr(d_ln_hh), d_ln_c_w=_ptr(d_ln_c_w), d_ln_c_b=_ptr(d_ln_c_b),
            d_ln_ih=_ptr(d_ln_ih), d_bias=_ptr(d_bias), d_r=_ptr(d_r), d_hp=_ptr(d_hp),
        )  # fmt: skip
        (lib.lk_backward_f64 if gates.dtype == torch.float64 else lib.lk_backward_f32)(ctypes.byref(args))
        d_b_ih = d_bias if d_bias is not None and needs[11] else None
        d_b_hh = d_bias.clone() if d_bias is not None and needs[12] else None  # not one tensor for two .grad
        return (None, d_xw, d_h0, d_c0, d_w_hh, d_w_hr, d_peep, d_ln_hh, d_ln_c_w, d_ln_c_b, d_ln_ih, d_b_ih, d_b_hh,
                None, None, None, None)  # fmt: skip


# --- The layer loop ----------------------------------------------------------------------------------------


def activation_codes(activations: CellActivations) -> tuple[int, int, int]:
    """The kernel's codes for the (gate, cell, hidden) activation functions; ``KeyError`` if one has none."""
    return tuple(_CODES_BY_FUNCTION[fn] for fn in activations)


def run_direction(
    xw: Tensor,
    h0: Tensor,
    c0: Tensor,
    weights: LayerWeights,
    activations: CellActivations,
    valid: Tensor | None = None,
    *,
    variants: Variants = VANILLA,
    training: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`lstmkit.nn.layer.run_direction` through the kernel: same arguments, same results, same masks."""
    masks = draw_masks(weights.weight_hh, h0, c0, xw.size(0), variants, training)  # the reference's draws
    # In training the kernel takes zoneout's masks (0/1 per step); in evaluation, its probabilities.
    zh, zc = (0.0, 0.0) if training else variants.zoneout
    config = _Config(variants.num_gates, activation_codes(activations), variants.cell_clip, zh, zc)
    ln_ih = weights.ln_ih_weight  # with it, xw is W_ih x only (input_projection below); the kernel does the rest
    out, h_n, c_n = _Recurrence.apply(
        config, xw.contiguous(), h0.contiguous(), c0.contiguous(), masks.weight_hh.contiguous(),
        *map(_contiguous, (weights.weight_hr, weights.weight_peephole, weights.ln_hh_weight, weights.ln_c_weight,
                           weights.ln_c_bias, ln_ih)),
        *((weights.bias_ih, weights.bias_hh) if ln_ih is not None else (None, None)),
        masks.recurrent, masks.keep_h, masks.keep_c,
        None if valid is None else valid.reshape(valid.shape[:2]).contiguous(),
    )  # fmt: skip
    return out, h_n, c_n


def input_projection(x: Tensor, weights: LayerWeights) -> Tensor:
    """What :func:`run_direction` takes as ``xw``: :func:`lstmkit.nn.layer.input_projection`'s, or with layer
    norm only :math:`W_{ih} x`, (L, N, H_in) -> (L, N, G*H), since the kernel normalises and adds the biases."""
    if weights.ln_ih_weight is None:
        return layer_input_projection(x, weights)
    return F.linear(x, weights.weight_ih)  # (L, N, G*H)


def fast_lstm(
    x: Tensor,
    h0: Tensor,
    c0: Tensor,
    layers: list[list[LayerWeights]],
    activations: CellActivations,
    dropout: float = 0.0,
    training: bool = False,
    lengths: Tensor | None = None,
    variants: Variants = VANILLA,
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """:func:`lstmkit.nn.layer.reference_lstm` with each direction run by the kernel (call :func:`available`
    first)."""
    return stack_layers(
        x, h0, c0, layers, activations, dropout, training, lengths, variants, run_direction, project=input_projection
    )


# --- Streaming: one step of a stacked unidirectional LSTM in evaluation mode -------------------------------


class LkLayer(ctypes.Structure):
    """Mirror of ``struct LkLayer`` in ``csrc/lstm_fast.cpp``."""

    _fields_ = [("I", ctypes.c_int64)] + [
        (name, _P) for name in (
            "w_ih", "w_hh", "b_ih", "b_hh", "w_hr", "peep", "ln_ih", "ln_hh", "ln_c_w", "ln_c_b", "h", "c",
        )
    ]  # fmt: skip


class LkStep(ctypes.Structure):
    """Mirror of ``struct LkStep`` in ``csrc/lstm_fast.cpp``."""

    _fields_ = [
        *((name, ctypes.c_int64) for name in ("num_layers", "N", "H", "P", "G", "act_gate", "act_cell",
                                               "act_hidden", "residual")),
        *((name, ctypes.c_double) for name in ("clip", "zh", "zc")),
        ("layers", ctypes.POINTER(LkLayer)),
        *((name, _P) for name in ("x", "y", "scratch")),
    ]  # fmt: skip


#: ``struct LkStepInto`` of ``csrc/lstm_fast.cpp``: (plan address, N, x, y, h_in, c_in, h_out, c_out), the
#: pointers as integers (0 for null). Packed into fresh bytes per call, so concurrent calls share nothing.
STEP_INTO = struct.Struct("=Qq6Q")


class StepPlan:
    """One evaluation-mode step of a stacked unidirectional LSTM as a single C call on fixed buffers.

    Built once for a batch size and dtype; it points at the parameters' memory (so in-place updates show,
    and the tensors are kept alive) and at whatever state and output buffers :meth:`bind` last gave it.
    :meth:`step_into` runs the same step at any batch size from one state into another, on buffers given
    per call. Call :func:`available` first.

    Args:
        layers: ``layers[k][0]``, the weights of each layer (``LSTM.structure.layers``).
        activations: the cell's activations (each one the kernel covers).
        variants: the variant options; the dropout-like ones act as in evaluation.
        batch_size: N.
    """

    def __init__(self, layers: list[list[LayerWeights]], activations: CellActivations, variants: Variants,
                 batch_size: int) -> None:  # fmt: skip
        lib = _state["lib"]
        first = layers[0][0]
        dtype = first.weight_ih.dtype
        hidden = first.weight_hh.size(0) // variants.num_gates
        out_size = first.weight_hh.size(1)
        self.batch_size, self.dtype, self.num_layers = batch_size, dtype, len(layers)
        self.hidden_size, self.output_size = hidden, out_size
        self._keep = []  # the tensors the C structures point at
        self._layers = (LkLayer * len(layers))()
        for k, (weights,) in enumerate(layers):
            tensors = {
                name: None if t is None else t.detach().contiguous()
                for name, t in (
                    ("w_ih", weights.weight_ih), ("w_hh", weights.weight_hh), ("b_ih", weights.bias_ih),
                    ("b_hh", weights.bias_hh), ("w_hr", weights.weight_hr), ("peep", weights.weight_peephole),
                    ("ln_ih", weights.ln_ih_weight), ("ln_hh", weights.ln_hh_weight),
                    ("ln_c_w", weights.ln_c_weight), ("ln_c_b", weights.ln_c_bias),
                )
            }  # fmt: skip
            self._keep.extend(t for t in tensors.values() if t is not None)
            self._layers[k] = LkLayer(I=weights.weight_ih.size(1), **{n: _ptr(t) for n, t in tensors.items()})
        size = lib.lk_step_scratch_size(batch_size, hidden, out_size, variants.num_gates)
        self._scratch = torch.empty(size, dtype=dtype)
        codes = activation_codes(activations)
        p_h, p_c = variants.zoneout
        self._args = LkStep(
            num_layers=len(layers), N=batch_size, H=hidden, P=out_size, G=variants.num_gates, act_gate=codes[0],
            act_cell=codes[1], act_hidden=codes[2], residual=int(variants.residual), clip=variants.cell_clip or 0.0,
            zh=p_h, zc=p_c, layers=self._layers, scratch=self._scratch.data_ptr(),
        )  # fmt: skip
        self._call = lib.lk_step_f64 if dtype == torch.float64 else lib.lk_step_f32
        self._address = ctypes.addressof(self._args)
        #: ``into_function(STEP_INTO.pack(address, N, x, y, h_in, c_in, h_out, c_out))`` is :meth:`step_into`
        #: without its checks, for a caller that has made them (``LSTM.step``'s cached path).
        self.into_function = lib.lk_step_into_f64 if dtype == torch.float64 else lib.lk_step_into_f32
        self.address = self._address

    def bind(self, h: Tensor, c: Tensor, y: Tensor) -> None:
        """Use ``h`` (num_layers, N, H_out) and ``c`` (num_layers, N, H), contiguous, as the state, updated in
        place by each :meth:`run`, and ``y`` (N, H_out) for the output."""
        for k in range(self.num_layers):
            self._layers[k].h = h[k].data_ptr()
            self._layers[k].c = c[k].data_ptr()
        self._args.y = y.data_ptr()
        self._bound = (h, c, y)

    def run(self, x: Tensor) -> None:
        """One step on ``x`` (N, H_in), contiguous, of the plan's dtype: updates the bound state and output."""
        self._args.x = x.data_ptr()
        self._call(self._address)

    def step_into(self, x: Tensor, state: tuple[Tensor, Tensor] | None, h: Tensor, c: Tensor, y: Tensor) -> None:
        """One step of ``x`` (N, H_in) from ``state`` = (h_in, c_in), shapes (num_layers, N, H_out) and
        (num_layers, N, H), or zeros when ``None``, into ``h`` and ``c`` (same shapes) and the output ``y``
        (N, H_out); every tensor contiguous, of the plan's dtype, on the CPU (only shapes are checked, by
        assertion). The bound state and buffers are neither read nor written, and each call has its own
        scratch memory, so threads may share a plan. ``h``, ``c`` may be the state's own tensors (in place)."""
        n = x.size(0)
        assert x.shape == (n, self._layers[0].I) and y.shape == (n, self.output_size), (x.shape, y.shape)
        assert h.shape == (self.num_layers, n, self.output_size) and c.shape == (self.num_layers, n, self.hidden_size)
        h_in, c_in = (0, 0) if state is None else (state[0].data_ptr(), state[1].data_ptr())
        if state is not None:
            assert state[0].shape == h.shape and state[1].shape == c.shape, (state[0].shape, state[1].shape)
        self.into_function(STEP_INTO.pack(self.address, n, x.data_ptr(), y.data_ptr(), h_in, c_in, h.data_ptr(),
                                          c.data_ptr()))
