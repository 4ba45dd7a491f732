"""Backends of the tasks that have endpoints of their own: seq2seq (``/v1/translate``) and frames
(``/v1/frames``), each from a model folder (PyTorch) or from the files ``lstmkit export`` wrote (ONNX Runtime).

Both backends of a task answer the same calls, and the same answers (within 1e-4; seq2seq: the same strings):

* seq2seq: ``translate(texts, beam) -> [Translated]``: each text decoded greedily (``beam=1``) or by beam
  search, as ``lstmkit.load(folder).translate`` does; the ONNX backend runs
  ``lstmkit.export.seq2seq_decode.OnnxTranslator`` over the encoder and decoder step graphs;
* frames: ``forecast(sequences) -> [frames (K, C, H, W)]``: each sequence of input frames (L_i, C, H, W)
  forecast, as ``lstmkit.load(folder).predict`` does; the ONNX backend pads them into one call with lengths.

``load_seq2seq_backend`` and ``load_frames_backend`` are the loaders ``lstmkit.serve.backends.BACKEND_LOADERS``
names for the two tasks; each backend's
``add_routes`` adds its endpoints (``lstmkit.serve.seq2seq_routes``, ``lstmkit.serve.frames_routes``) to the
app that ``lstmkit.serve.endpoints_app`` builds. None is thread-safe; the server calls them from one worker thread.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit.errors import LstmkitError

__all__ = ["FramesOnnxBackend", "FramesTorchBackend", "Seq2SeqOnnxBackend", "Seq2SeqTorchBackend", "TaskInfo",
           "Translated", "load_frames_backend", "load_seq2seq_backend"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskInfo:
    """What ``/healthz`` and request validation need to know of a task's model."""

    task: str
    source: str
    details: dict[str, Any]
    """seq2seq: ``tokens`` (char or word); frames: ``channels``, ``frame_size``, ``output_frames``."""


@dataclass
class Translated:
    """One decoded text with its tokens and attention (T, S)."""

    text: str
    source_tokens: list[str]
    output_tokens: list[str]
    attention: np.ndarray


def _set_threads(threads: int) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


class _Seq2SeqRoutes:
    def add_routes(self, app: Any, options: Any, call: Any) -> None:
        from lstmkit.serve.seq2seq_routes import add_seq2seq_routes

        add_seq2seq_routes(app, self, options, call)


class Seq2SeqTorchBackend(_Seq2SeqRoutes):
    """A seq2seq model folder decoded in PyTorch (``lstmkit.tasks.seq2seq.Translator``)."""

    name = "torch"

    def __init__(self, folder: Path, source: str = "", threads: int = 1) -> None:
        from lstmkit.tasks.seq2seq import Translator

        self.translator = Translator.load(folder)
        self.threads = threads
        self.info = TaskInfo("seq2seq", source, {"tokens": self.translator.source_vocab.tokens})

    def thread_init(self) -> None:
        _set_threads(self.threads)

    def translate(self, texts: list[str], beam: int) -> list[Translated]:
        out = []
        for text in texts:
            t = self.translator.translate(text, beam)
            out.append(Translated(t.text, t.source_tokens, t.output_tokens, t.attention))
        return out


class Seq2SeqOnnxBackend(_Seq2SeqRoutes):
    """An exported seq2seq model decoded with numpy and ONNX Runtime (``OnnxTranslator``)."""

    name = "onnx"

    def __init__(self, translator: Any, source: str) -> None:
        self.translator = translator
        self.info = TaskInfo("seq2seq", source, {"tokens": self.translator.tokens})

    @classmethod
    def from_file(cls, path: Path, threads: int = 1) -> Seq2SeqOnnxBackend:
        from lstmkit.export.seq2seq_decode import OnnxTranslator

        try:
            return cls(OnnxTranslator(path, threads), str(path))
        except (OSError, KeyError, ValueError) as exc:
            raise LstmkitError(f"serve: {path}: cannot open the exported seq2seq model ({exc}); export it again") \
                from None

    @classmethod
    def from_graphs(cls, graph_set: Any, source: str, threads: int = 1) -> Seq2SeqOnnxBackend:
        from lstmkit.export.seq2seq_decode import OnnxTranslator

        vocab = json.loads(graph_set.side_files["vocab.json"].decode("utf-8"))
        translator = OnnxTranslator.from_bytes(graph_set.graphs["predict"].SerializeToString(),
                                               graph_set.graphs["decoder_step"].SerializeToString(), vocab, threads)
        return cls(translator, source)

    def thread_init(self) -> None:
        pass  # ONNX Runtime's threads are set per session

    def translate(self, texts: list[str], beam: int) -> list[Translated]:
        out = []
        for text in texts:
            t = self.translator.translate(text, beam)
            tokens = [self.translator.target_itos[i] for i in t.output_ids]
            out.append(Translated(t.text, t.source_tokens or ["<pad>"], tokens, t.attention))
        return out


class _FramesRoutes:
    def add_routes(self, app: Any, options: Any, call: Any) -> None:
        from lstmkit.serve.frames_routes import add_frames_routes

        add_frames_routes(app, self, options, call)


class FramesTorchBackend(_FramesRoutes):
    """A frames model folder forecasting in PyTorch (``lstmkit.tasks.frames.FrameForecaster``)."""

    name = "torch"

    def __init__(self, folder: Path, source: str = "", threads: int = 1) -> None:
        from lstmkit.tasks.frames import FrameForecaster

        self.forecaster = FrameForecaster.load(folder)
        self.threads = threads
        d = self.forecaster.config.data
        self.info = TaskInfo("frames", source, {"channels": self.forecaster.model.channels,
                                                "frame_size": d.frame_size, "output_frames": d.output_frames})

    def thread_init(self) -> None:
        _set_threads(self.threads)

    def forecast(self, sequences: list[np.ndarray]) -> list[np.ndarray]:
        out: list[np.ndarray | None] = [None] * len(sequences)
        lengths = np.array([len(s) for s in sequences])
        for length in np.unique(lengths):  # the sequences of one length in one call
            rows = np.flatnonzero(lengths == length)
            predicted = self.forecaster.predict(np.stack([sequences[i] for i in rows]))
            for i, frames in zip(rows, predicted):
                out[i] = frames
        return out  # type: ignore[return-value]


class FramesOnnxBackend(_FramesRoutes):
    """An exported frames model in ONNX Runtime: every sequence of a request in one call, padded, with lengths."""

    name = "onnx"

    def __init__(self, model: str | bytes, meta: dict[str, Any], source: str, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        try:
            details = {key: int(meta[key]) for key in ("channels", "frame_size", "output_frames")}
        except (KeyError, TypeError, ValueError) as exc:
            raise LstmkitError(f"serve: {source}: its lstmkit metadata lacks {exc}; export it again") from None
        self.info = TaskInfo("frames", source, details)

    def thread_init(self) -> None:
        pass

    def forecast(self, sequences: list[np.ndarray]) -> list[np.ndarray]:
        lengths = np.array([len(s) for s in sequences], dtype=np.int64)
        frames = np.zeros((len(sequences), int(lengths.max()), *sequences[0].shape[1:]), np.float32)
        for i, sequence in enumerate(sequences):
            frames[i, :len(sequence)] = sequence
        (predicted,) = self.session.run(["predicted"], {"frames": frames, "lengths": lengths})
        return list(predicted)


def _graphs_in_memory(folder: Path, meta: dict[str, Any], source: str) -> Any:
    """``--backend onnx`` with a model folder: the task's graphs built and verified in memory, as ``lstmkit export``
    would write them."""
    from lstmkit.export import ExportRequest, exporter_for

    graph_set = exporter_for(meta.get("task"))(ExportRequest(folder, meta, target="the in-memory ONNX graph"))
    log.info("serve: exported %s to ONNX in memory (max abs difference %.2g)", source, max(graph_set.checks.values()))
    return graph_set


def load_seq2seq_backend(path: Path, backend: str, meta: dict[str, Any], threads: int = 1) -> Any:
    """A seq2seq model at ``path``: its model folder in PyTorch (``backend`` ``torch``), or in ONNX Runtime (an
    exported encoder file, or the folder exported in memory)."""
    from lstmkit.runs.folder import resolve_model_folder

    if path.is_file():
        return Seq2SeqOnnxBackend.from_file(path, threads)
    folder = resolve_model_folder(path)
    if backend == "onnx":
        graph_set = _graphs_in_memory(folder, meta, str(path))
        return Seq2SeqOnnxBackend.from_graphs(graph_set, f"{path} (exported to ONNX in memory)", threads)
    return Seq2SeqTorchBackend(folder, str(path), threads)


def load_frames_backend(path: Path, backend: str, meta: dict[str, Any], threads: int = 1) -> Any:
    """A frames model at ``path``: its model folder in PyTorch (``backend`` ``torch``), or in ONNX Runtime (the
    exported predict file, or the folder exported in memory)."""
    from lstmkit.export import META_KEY
    from lstmkit.runs.folder import resolve_model_folder

    if path.is_file():
        if meta.get("graph") != "predict":
            raise LstmkitError(f"serve: {path} is a {meta.get('graph')} graph; give the predict graph (the file "
                               "`lstmkit export --out` names)")
        return FramesOnnxBackend(str(path), meta, str(path), threads)
    folder = resolve_model_folder(path)
    if backend == "onnx":
        proto = _graphs_in_memory(folder, meta, str(path)).graphs["predict"]
        graph_meta = json.loads({p.key: p.value for p in proto.metadata_props}[META_KEY])
        return FramesOnnxBackend(proto.SerializeToString(), graph_meta, f"{path} (exported to ONNX in memory)", threads)
    return FramesTorchBackend(folder, str(path), threads)
