"""Backends of the tasks other than the classifier: regressor, forecaster, text classifier, tagger, char-lm and
next-symbols, in PyTorch (a model folder) or in ONNX Runtime (the files ``lstmkit export`` wrote).

They offer the two calls of ``lstmkit.serve.backends.Backend``, each for a whole micro-batch, and answer with
the *first output the task declares* (``Task.schema``): values, forecasts or class probabilities.

* ``predict(x (N, L, F), lengths (N,))``: whole inputs, padded to L (token models get their ids as floats,
  F = 1; a forecaster gets histories of the window plus the differencing lag): ``(N, ...)``;
* ``steps(x (N, K, F), lengths, h, c)``: continue N streams by ``lengths[n]`` steps: the answer after every
  step ``(N, K, ...)`` and the states after each stream's last step.

Each backend also carries ``io`` (``lstmkit.serve.task_io``): how its requests are read and answered.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lstmkit.errors import LstmkitError
from lstmkit.serve.backends import ModelInfo, OnnxBackend

__all__ = ["OnnxTaskBackend", "TorchTaskBackend", "load_task_backend"]

log = logging.getLogger(__name__)

#: The ``[model] task``s served here; the classifier keeps ``lstmkit.serve.backends``.
def _info(meta: dict[str, Any], num_layers: int, hidden: int, output_size: int, streaming_unsupported: str | None,
          source: str, standardizer: Any = None) -> ModelInfo:
    inputs = meta["inputs"]
    first = inputs[0]
    forecast = meta.get("forecast") or {}
    return ModelInfo(
        label_names=list(meta.get("label_names") or []),
        input_size=1 if first["dtype"] in ("string", "int64") else int(first["shape"][-1]),
        min_length=1,
        streaming_unsupported=streaming_unsupported,
        num_layers=num_layers,
        state_sizes=(output_size, hidden),
        source=source,
        texts=first["dtype"] in ("string", "int64"),
        standardizer=standardizer if not forecast else None,
    )


class TorchTaskBackend:
    """A model folder of a task other than the classifier (``lstmkit.serve.backends.BACKEND_LOADERS``), run in PyTorch."""

    name = "torch"

    def __init__(self, loaded: Any, source: str = "", threads: int = 1) -> None:
        from lstmkit.export.common import declared_schema
        from lstmkit.serve.backends import _stats
        from lstmkit.serve.task_io import task_io
        from lstmkit.tasks.sequence_model import Model

        self.loaded = loaded
        self.threads = threads
        self.module = loaded.module.eval()
        self.objective = Model.from_loaded(loaded).objective
        schema = declared_schema(loaded)
        meta = {**loaded.meta, **schema.to_dict(), "label_names": loaded.label_names}
        self.forecast = loaded.meta.get("forecast")
        lstm = self.module.lstm
        self.info = _info(meta, lstm.num_layers, lstm.hidden_size, lstm.output_size, self._streaming_unsupported(),
                          source, _stats(loaded.standardizer))
        self.io = task_io(meta, self.info)

    def _streaming_unsupported(self) -> str | None:
        module = self.module
        if self.forecast is not None:
            return "a forecaster answers a whole horizon from a whole window"
        if hasattr(module, "streaming_unsupported_reason"):
            return module.streaming_unsupported_reason()
        if hasattr(module, "attention"):
            return "a text classifier reads whole texts (attention pools over every token)"
        if module.lstm.bidirectional:
            return "its LSTM is bidirectional (the reverse direction needs the whole text)"
        return None

    def thread_init(self) -> None:
        if self.threads:
            torch.set_num_threads(self.threads)

    def _answer(self, outputs: torch.Tensor) -> np.ndarray:
        """The first declared output from the network's raw outputs: probabilities or values."""
        if self.objective.targets == "classes":
            return torch.softmax(outputs, dim=-1).numpy()
        return self.objective.predict(outputs).numpy()

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """What the LSTM reads from raw inputs (N, L, F): embeddings of token ids, or standardised values."""
        if hasattr(self.module, "embedding"):
            return self.module.embedding(x)
        from lstmkit.export import standardize

        return standardize(self.loaded, x.numpy())

    @torch.inference_mode()
    def predict(self, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        if self.forecast is not None:
            return self._forecast(x)
        inputs = torch.from_numpy(x)
        if not hasattr(self.module, "embedding"):
            inputs = self._features(inputs)
        full = bool((lengths == x.shape[1]).all())
        return self._answer(self.module(inputs, None if full else torch.from_numpy(lengths)))

    def _forecast(self, history: np.ndarray) -> np.ndarray:
        """Forecasts (N, H, S) on the raw scale, as ``lstmkit.load(...).forecast`` makes them."""
        from lstmkit.data.windows import SeriesScaler
        from lstmkit.tasks.forecasting import forecast_paths

        scaler = SeriesScaler.from_dict(self.forecast["scaler"])
        window, horizon = int(self.forecast["window"]), int(self.forecast["horizon"])

        def network(z: np.ndarray) -> np.ndarray:
            return self.module(self.loaded.prepare(z)).numpy()

        return np.stack(forecast_paths(network, scaler, list(history.astype(np.float64)), horizon, window, horizon))

    @torch.inference_mode()
    def steps(self, x: np.ndarray, lengths: np.ndarray, h: np.ndarray, c: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The LSTM's ``step`` then the head, one step at a time; rows past their length keep their state."""
        module = self.module
        features = self._features(torch.from_numpy(x))  # (N, K, E)
        h_t, c_t = torch.from_numpy(h), torch.from_numpy(c)
        answers = []
        lengths_t = torch.from_numpy(lengths)
        for t in range(x.shape[1]):
            out, (h_new, c_new) = module.lstm.step(features[:, t], (h_t, c_t))
            answers.append(self._answer(module.head(out)))
            active = (lengths_t > t)[None, :, None]
            h_t, c_t = torch.where(active, h_new, h_t), torch.where(active, c_new, c_t)
        return np.stack(answers, axis=1), h_t.numpy(), c_t.numpy()


class OnnxTaskBackend:
    """The graphs ``lstmkit export`` wrote for a task other than the classifier, run in ONNX Runtime; the tokenizer of a
    token model is read from the side file beside them."""

    name = "onnx"

    def __init__(self, graphs: dict[str, bytes], side_files: dict[str, bytes], meta: dict[str, Any], source: str,
                 threads: int = 1) -> None:
        import onnxruntime as ort

        from lstmkit.serve.task_io import task_io

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        providers = ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(graphs["predict"], options, providers=providers)
        self.step_session = (ort.InferenceSession(graphs["step"], options, providers=providers)
                             if "step" in graphs else None)
        self.meta = meta
        self.input_name = meta["inputs"][0]["name"]
        self.token_ids = meta["inputs"][0]["dtype"] == "int64"
        self.uses_lengths = any(p["name"] == "lengths" for p in meta["inputs"])
        self.output_name = meta["outputs"][0]["name"]
        reason = meta.get("streaming_unsupported")
        if reason is None and self.step_session is None:
            reason = "the ONNX step graph was not found beside the predict graph; export again without --no-step"
        hidden = int(meta["hidden_size"])
        tokenizer = side_files.get(meta.get("tokenizer_file") or "")
        io_meta = {**meta, "tokenizer": None if tokenizer is None else json.loads(tokenizer)}
        self.info = _info(io_meta, int(meta["num_layers"]), hidden, int(meta.get("output_size", hidden)), reason, source,
                          OnnxBackend._graph_standardizer(graphs["predict"], meta, self.input_name))
        self.io = task_io(io_meta, self.info)

    @classmethod
    def from_file(cls, path: Path, meta: dict[str, Any], threads: int = 1) -> OnnxTaskBackend:
        """The set beside ``path`` (the predict graph): the other graphs and side files its metadata names."""
        def beside(name: Any, what: str) -> Path:
            if not isinstance(name, str) or Path(name).name != name or name in ("", ".", "..") or "\\" in name:
                raise LstmkitError(f"serve: {path}: its {what} {name!r} is not a plain file name next to it; "
                                   "export it again")
            return path.with_name(name)

        graphs = {"predict": path.read_bytes()}
        for role, name in (meta.get("files") or {}).items():
            if role != "predict" and beside(name, f"{role} graph").is_file():
                graphs[role] = beside(name, f"{role} graph").read_bytes()
        side = {}
        for name, file in (meta.get("side_files") or {}).items():
            where = beside(file, "side file")
            if not where.is_file():
                raise LstmkitError(f"serve: {path}: expected its {name} beside it as {where.name}; export it again")
            side[name] = where.read_bytes()
        return cls(graphs, side, meta, str(path), threads)

    @classmethod
    def from_folder(cls, folder: Path, meta: dict[str, Any], threads: int = 1) -> OnnxTaskBackend:
        """Export the model folder in memory, verified as ``lstmkit export`` does, and serve that."""
        from lstmkit.export import ExportRequest, exporter_for
        from lstmkit.export.writer import META_KEY

        graph_set = exporter_for(meta.get("task"))(ExportRequest(folder, meta, target="the in-memory ONNX graph"))
        log.info("serve: exported %s to ONNX in memory (max abs difference %.2g)", folder,
                 max(graph_set.checks.values()))
        predict = graph_set.graphs["predict"]
        graph_meta = json.loads({p.key: p.value for p in predict.metadata_props}[META_KEY])
        return cls({role: proto.SerializeToString() for role, proto in graph_set.graphs.items()},
                   graph_set.side_files, {**graph_meta, "tokenizer_file": "tokenizer.json"},
                   f"{folder} (exported to ONNX in memory)", threads)

    def thread_init(self) -> None:
        pass  # ONNX Runtime's threads are set per session

    def _feeds(self, x: np.ndarray, lengths: np.ndarray) -> dict[str, np.ndarray]:
        feeds = {self.input_name: x[..., 0].astype(np.int64) if self.token_ids else x}
        if self.uses_lengths:
            feeds["lengths"] = lengths.astype(np.int64)
        return feeds

    def predict(self, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        (answer,) = self.session.run([self.output_name], self._feeds(x, lengths))
        return answer

    def steps(self, x: np.ndarray, lengths: np.ndarray, h: np.ndarray, c: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        assert self.step_session is not None, "the server refuses sessions without a step graph"
        answer, h_n, c_n = self.step_session.run([self.output_name, "h_n", "c_n"],
                                                 {**self._feeds(x, lengths), "h0": h, "c0": c})
        return answer, h_n, c_n


def load_task_backend(path: Path, backend: str, meta: dict[str, Any], threads: int = 1) -> Any:
    """A backend for ``path``: a model folder (``backend`` ``torch``, or ``onnx`` to export it in memory) or an
    exported predict graph (``onnx``), whose metadata is ``meta``."""
    from lstmkit.artifacts.model_folder import load_model

    if path.is_file():
        if meta.get("graph") != "predict":
            raise LstmkitError(f"serve: {path} is a {meta.get('graph')} graph; give the predict graph (the file "
                               "`lstmkit export --out` names)")
        return OnnxTaskBackend.from_file(path, meta, threads)
    if backend == "onnx":
        return OnnxTaskBackend.from_folder(path, meta, threads)
    return TorchTaskBackend(load_model(path), source=str(path), threads=threads)
