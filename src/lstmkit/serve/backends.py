"""What the server runs a classifier with: PyTorch (a model folder) or ONNX Runtime (an exported file). The
other tasks' backends are in ``lstmkit.serve.task_backends``; ``load_backend`` picks for every task.

Both backends take raw inputs, as the data source gives them (they standardise as in training), and
offer the same two calls, each for a whole micro-batch:

* ``predict(x (N, L, F), lengths (N,)) -> probabilities (N, C)``: whole sequences, padded to L;
* ``steps(x (N, K, F), lengths (N,), h, c) -> (probabilities (N, K, C), h, c)``: continue N streams
  by ``lengths[n]`` steps each from the states ``h`` (num_layers, N, H_out) and ``c`` (num_layers, N, H),
  returning the output after every step and the states after each stream's last step.

Neither is thread-safe; the server calls them from one worker thread.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from lstmkit.errors import LstmkitError

__all__ = ["Backend", "ModelInfo", "OnnxBackend", "TorchBackend", "load_backend"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    """What the server needs to know about a model to validate requests and hold stream states."""

    label_names: list[str]
    input_size: int
    min_length: int
    """The fewest steps a whole sequence may have (a conv front end pools some away)."""
    streaming_unsupported: str | None
    """Why the model cannot stream, or None when it can."""
    num_layers: int
    state_sizes: tuple[int, int]
    """(H_out, H): the sizes of one layer's h and c."""
    source: str
    texts: bool = False
    """Whether the model reads raw texts (``{"texts": [...]}``) instead of sequences of numbers."""
    standardizer: tuple[np.ndarray, np.ndarray] | None = None
    """The training statistics ``(mean, std)`` (float32, (F,)) the backend standardises with, if any: requests
    whose values leave float32 range once standardised are refused before they reach the model."""

    def standardize(self, x: np.ndarray) -> np.ndarray:
        """``x`` (..., F) standardised exactly as the backend does it (float32), or ``x`` itself."""
        if self.standardizer is None:
            return x
        mean, std = self.standardizer
        with np.errstate(over="ignore", invalid="ignore"):
            return ((x - mean) / std).astype(np.float32)


class Backend(Protocol):
    name: str
    info: ModelInfo

    def thread_init(self) -> None:
        """Called once in the worker thread that will run every model call."""

    def predict(self, x: np.ndarray, lengths: np.ndarray) -> np.ndarray: ...

    def steps(self, x: np.ndarray, lengths: np.ndarray, h: np.ndarray, c: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


class TorchBackend:
    """Runs a ``LoadedModel`` (the model folder) in PyTorch."""

    name = "torch"

    def __init__(self, model: Any, source: str = "", threads: int = 1) -> None:
        from lstmkit.models.classifier import SequenceClassifier
        from lstmkit.models.lstm_fcn import LSTMFCN

        if model.config.model.task != "classifier" or not isinstance(model.module, (SequenceClassifier, LSTMFCN)):
            raise LstmkitError(f"serve: expected a classifier model, got [model] task = {model.config.model.task!r} "
                               f"({type(model.module).__name__})")
        self.model = model
        self.threads = threads
        module = model.module.eval()
        lstm = module.lstm
        self.info = ModelInfo(
            label_names=model.label_names,
            input_size=module.input_size,
            min_length=module.min_length(),
            streaming_unsupported=model.streaming_unsupported_reason(),
            num_layers=lstm.num_layers,
            state_sizes=(lstm.output_size, lstm.hidden_size),
            source=source,
            standardizer=_stats(model.standardizer),
        )

    def thread_init(self) -> None:
        # PyTorch's intra-op thread count is per thread: this sets the worker's only. One thread by default:
        # a serving box needs a core for the event loop, and idle OpenMP threads spin on the others.
        if self.threads:
            torch.set_num_threads(self.threads)

    def _standardize(self, x: np.ndarray) -> torch.Tensor:
        from lstmkit.export import standardize

        return standardize(self.model, x)

    @torch.inference_mode()
    def predict(self, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        inputs = self._standardize(x)
        full = bool((lengths == x.shape[1]).all())
        logits = self.model.module(inputs, None if full else torch.from_numpy(lengths))
        return torch.softmax(logits, dim=-1).numpy()

    @torch.inference_mode()
    def steps(self, x: np.ndarray, lengths: np.ndarray, h: np.ndarray, c: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        module = self.model.module
        inputs = self._standardize(x)  # (N, K, F)
        h_t, c_t = torch.from_numpy(h), torch.from_numpy(c)
        n, k = inputs.shape[:2]
        probabilities = torch.zeros(n, k, len(self.info.label_names))
        lengths_t = torch.from_numpy(lengths)
        for t in range(k):
            active = lengths_t > t
            if bool(active.all()):
                logits, (h_t, c_t) = module.step(inputs[:, t], (h_t, c_t))
                probabilities[:, t] = torch.softmax(logits, dim=-1)
                continue
            rows = active.nonzero().squeeze(1)
            logits, (h_rows, c_rows) = module.step(inputs[rows, t], (h_t[:, rows], c_t[:, rows]))
            probabilities[rows, t] = torch.softmax(logits, dim=-1)
            h_t, c_t = h_t.clone(), c_t.clone()
            h_t[:, rows], c_t[:, rows] = h_rows, c_rows
        return probabilities.numpy(), h_t.numpy(), c_t.numpy()


class OnnxBackend:
    """Runs the files written by ``lstmkit export`` in ONNX Runtime (the step file, when present, for streams)."""

    name = "onnx"

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        from lstmkit.export import read_onnx_meta

        path = Path(path)
        meta = read_onnx_meta(path)
        if meta.get("graph") != "predict":
            raise LstmkitError(f"serve: {path} is a {meta.get('graph')} graph; give the predict graph (the file "
                               "`lstmkit export --out` names)")
        step_file = meta.get("step_file")
        if step_file is not None and (not isinstance(step_file, str) or Path(step_file).name != step_file
                                      or step_file in ("", ".", "..") or "\\" in step_file):
            raise LstmkitError(f"serve: {path}: its step_file {step_file!r} is not a plain file name next to it; "
                               "export it again")
        step_path = path.with_name(step_file) if step_file else None
        step = step_path.read_bytes() if step_path is not None and step_path.is_file() else None
        missing = None
        if meta.get("streaming_unsupported") is None and step is None:
            missing = (f"the ONNX step graph {step_path or '(none)'} was not found next to {path.name}; "
                       "export again without --no-step")
        self._open(path.read_bytes(), step, meta, str(path), threads, missing)

    @classmethod
    def from_model(cls, model: Any, threads: int = 1, source: str = "") -> OnnxBackend:
        """Export ``model`` (a ``LoadedModel``) in memory, verified as ``lstmkit export`` does, and serve that."""
        from lstmkit.export import META_KEY, build_verified_graphs

        predict, step, checks = build_verified_graphs(model, target="the in-memory ONNX graph")
        log.info("serve: exported %s to ONNX in memory (max abs difference %.2g)", source, max(checks.values()))
        meta = json.loads({p.key: p.value for p in predict.metadata_props}[META_KEY])
        backend = cls.__new__(cls)
        backend._open(predict.SerializeToString(), None if step is None else step.SerializeToString(), meta,
                      f"{source} (exported to ONNX in memory)", threads, None)
        return backend

    @staticmethod
    def _graph_standardizer(predict: bytes, meta: dict[str, Any], input_name: str = "input"
                            ) -> tuple[np.ndarray, np.ndarray] | None:
        """The ``(mean, std)`` folded into the graph's front (``Sub`` then ``Div`` on ``input_name``), if any."""
        if not meta.get("standardizer_in_graph"):
            return None
        import onnx
        from onnx import numpy_helper

        graph = onnx.load_from_string(predict).graph
        constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        for sub in graph.node:
            if sub.op_type == "Sub" and sub.input[0] == input_name and sub.input[1] in constants:
                for div in graph.node:
                    if div.op_type == "Div" and div.input[0] == sub.output[0] and div.input[1] in constants:
                        return (constants[sub.input[1]].astype(np.float32), constants[div.input[1]].astype(np.float32))
        log.warning("serve: the ONNX graph says it standardises its input, but no Sub/Div on %r was found", input_name)
        return None

    def _open(self, predict: bytes, step: bytes | None, meta: dict[str, Any], source: str, threads: int,
              missing_step: str | None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        providers = ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(predict, options, providers=providers)
        self.step_session = None if step is None else ort.InferenceSession(step, options, providers=providers)
        hidden = int(meta["hidden_size"])
        self.info = ModelInfo(
            label_names=list(meta["label_names"]),
            input_size=int(meta["input_size"]),
            min_length=int(meta.get("min_length", 1)),
            streaming_unsupported=meta.get("streaming_unsupported") or missing_step,
            num_layers=int(meta["num_layers"]),
            state_sizes=(int(meta.get("output_size", hidden)), hidden),  # h is proj_size wide with a projection
            source=source,
            standardizer=self._graph_standardizer(predict, meta),
        )

    def thread_init(self) -> None:
        pass  # ONNX Runtime's threads are set per session (intra_op_num_threads)

    def predict(self, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        (probabilities,) = self.session.run(["probabilities"], {"input": x, "lengths": lengths.astype(np.int64)})
        return probabilities

    def steps(self, x: np.ndarray, lengths: np.ndarray, h: np.ndarray, c: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        assert self.step_session is not None, "the server refuses sessions without a step graph"
        probabilities, h_n, c_n = self.step_session.run(
            ["probabilities", "h_n", "c_n"], {"input": x, "lengths": lengths.astype(np.int64), "h0": h, "c0": c})
        return probabilities, h_n, c_n


def _meta_of(path: Path) -> dict[str, Any]:
    """The metadata of an exported file, or a model folder's ``meta.json`` (a run folder's model's)."""
    from lstmkit.export import read_onnx_meta

    if path.is_file():
        return read_onnx_meta(path)
    from lstmkit.runs.folder import resolve_model_folder

    meta_file = resolve_model_folder(path) / "meta.json"
    try:
        return json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # load_model below names what is wrong with the folder


def _stats(standardizer: Any) -> tuple[np.ndarray, np.ndarray] | None:
    if standardizer is None:
        return None
    return np.asarray(standardizer.mean, np.float32), np.asarray(standardizer.std, np.float32)


#: ``[model] task`` -> ``"module:function"`` that opens its models for serving, ``loader(path, backend, meta,
#: threads)``: ``path`` a model or run folder or the exported predict file, ``backend`` ``"torch"`` or ``"onnx"``,
#: ``meta`` the folder's ``meta.json`` or the file's lstmkit metadata. The classifier, absent here, is this module's.
BACKEND_LOADERS: dict[str, str] = {
    **dict.fromkeys(("regressor", "forecaster", "text-classifier", "tagger", "char-lm", "next-symbols"),
                    "lstmkit.serve.task_backends:load_task_backend"),
    "seq2seq": "lstmkit.serve.seq2seq_frames_backends:load_seq2seq_backend",
    "frames": "lstmkit.serve.seq2seq_frames_backends:load_frames_backend",
}


def _loader_for(task: Any) -> Any:
    """The loader ``BACKEND_LOADERS`` names for ``task``, imported; None for the classifier (and unknown tasks,
    which ``load_model`` then names)."""
    import importlib

    if task not in BACKEND_LOADERS:
        return None
    module, function = BACKEND_LOADERS[task].split(":")
    return getattr(importlib.import_module(module), function)


def load_backend(model: str | Path, backend: str = "auto", threads: int = 1) -> Backend:
    """Open ``model`` (a model folder or a ``.onnx`` file from ``lstmkit export``) with a backend.

    ``backend``: ``"torch"`` (needs a model folder), ``"onnx"`` (a ``.onnx`` file, or a model folder, which
    is then exported to ONNX in memory, verified as ``lstmkit export`` does) or ``"auto"`` (``onnx`` for a ``.onnx``
    file, else ``torch``). ``threads``: CPU threads of each model call (0: the backend's default, all cores).
    """
    from lstmkit.artifacts.model_folder import load_model

    path = Path(model)
    if backend not in ("auto", "torch", "onnx"):
        raise LstmkitError(f"serve: --backend: expected one of auto, torch, onnx, got {backend!r}")
    if not path.exists():
        raise LstmkitError(f"serve: model {path}: not found (expected a model folder or a .onnx file)")
    is_onnx_file = path.is_file()
    if backend == "auto":
        backend = "onnx" if is_onnx_file else "torch"
    if backend == "torch" and is_onnx_file:
        raise LstmkitError(f"serve: --backend torch needs a model folder, got the file {path}")
    meta = _meta_of(path)
    loader = _loader_for(meta.get("task"))
    if loader is not None:  # every task but the classifier
        return loader(path, backend, meta, threads)
    if backend == "torch":
        return TorchBackend(load_model(path), source=str(path), threads=threads)
    if is_onnx_file:
        return OnnxBackend(path, threads)
    return OnnxBackend.from_model(load_model(path), threads, source=str(path))
