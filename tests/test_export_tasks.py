"""Every sequence task exports: each graph, run in ONNX Runtime from the written files only, answers as
``lstmkit.load(...)`` does (predict, forecast, classify, tag, generate) within 1e-4."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
from task_folders import (
    TEXTS,
    forecaster_folder,
    next_symbols_folder,
    regressor_folder,
    text_folder,
)

import lstmkit
from lstmkit.data.text import Tokenizer, pad_ids
from lstmkit.export import ExportError, export_onnx, read_onnx_meta
from lstmkit.tasks import trained_schema

TOLERANCE = 1e-4


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def tokenizer_beside(result):
    return Tokenizer.from_dict(json.loads(result.paths["tokenizer.json"].read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def forecaster(tmp_path_factory):
    folder = forecaster_folder(tmp_path_factory.mktemp("airline") / "run")
    return folder, export_onnx(folder, folder.parent / "airline.onnx")


def test_regressor_graphs_follow_the_schema_and_answer_as_load_predict(tmp_path):
    folder = regressor_folder(tmp_path / "model")
    result = export_onnx(folder, tmp_path / "reg.onnx")
    assert set(result.paths) == {"predict", "step"} and max(result.checks.values()) <= TOLERANCE
    meta = read_onnx_meta(result.path)
    schema = trained_schema(folder)
    assert [(p["name"], p["dtype"]) for p in meta["inputs"]] == [(p.name, p.dtype) for p in schema.inputs]
    assert [(p["name"], p["dtype"]) for p in meta["outputs"]] == [(p.name, p.dtype) for p in schema.outputs]
    rng = np.random.default_rng(3)
    x = rng.normal(3.0, 2.0, size=(5, 7, 3)).astype(np.float32)
    lengths = np.array([7, 2, 5, 7, 1])
    padded = x.copy()
    for i, n in enumerate(lengths):
        padded[i, n:] = 1e4  # garbage that must not reach the answer
    (values,) = session(result.path).run(["values"], {"sequences": padded, "lengths": lengths})
    expected = lstmkit.load(folder).predict(x, lengths)  # (N, 2)
    np.testing.assert_allclose(values, expected, atol=TOLERANCE)
    # The step graph, fed two chunks, ends where the whole sequence does.
    step = session(result.paths["step"])
    h = c = np.zeros((1, 5, 8), np.float32)
    for start, stop in ((0, 3), (3, 7)):
        chunk = np.clip(lengths - start, 0, stop - start)
        out, h, c = step.run(["values", "h_n", "c_n"], {"sequences": padded[:, start:stop], "lengths": chunk,
                                                        "h0": h, "c0": c})
        for i in np.flatnonzero(lengths > start):
            if lengths[i] <= stop:
                np.testing.assert_allclose(out[i, lengths[i] - start - 1], expected[i], atol=TOLERANCE)


def test_forecaster_takes_raw_values_and_forecasts_on_the_raw_scale(forecaster):
    folder, result = forecaster
    assert set(result.paths) == {"predict"} and max(result.checks.values()) <= TOLERANCE
    assert {"fixed_length", "older_values_ignored", "reference"} <= set(result.checks)
    meta = read_onnx_meta(result.path)
    assert (meta["window"], meta["horizon"], meta["difference"], meta["log"]) == (36, 12, 1, True)
    model = lstmkit.load(folder)
    expected = model.forecast()  # the 12 months after the bundled series, on the original scale
    history = expected.history[None].astype(np.float32)  # (1, 144, 1): all of it; the graph reads the last 37
    (forecast,) = session(result.path).run(["forecast"], {"history": history})
    assert forecast.dtype == np.float64 and forecast.shape == (1, 12, 1)
    np.testing.assert_allclose(forecast[0], expected.forecast, atol=TOLERANCE)
    assert 100 < float(forecast.min())  # passengers, not log-differences


def test_forecaster_with_a_window_level_folds_it_into_the_graph(tmp_path):
    folder = forecaster_folder(tmp_path / "run", "data.difference=0", "data.level=12", "train.epochs=3")
    result = export_onnx(folder, tmp_path / "level.onnx")
    assert max(result.checks.values()) <= TOLERANCE
    meta = read_onnx_meta(result.path)
    assert (meta["difference"], meta["level"], meta["min_history"]) == (0, 12, 36)
    model = lstmkit.load(folder)
    expected = model.forecast()
    (forecast,) = session(result.path).run(["forecast"], {"history": expected.history[None].astype(np.float32)})
    np.testing.assert_allclose(forecast[0], expected.forecast, atol=TOLERANCE)
    # log values less the window's level: a history 1.5 times higher gives a forecast 1.5 times higher
    raised = expected.history[None].astype(np.float32) * 1.5
    (higher,) = session(result.path).run(["forecast"], {"history": raised})
    np.testing.assert_allclose(higher[0], expected.forecast * 1.5, rtol=1e-3)


def test_text_classifier_takes_token_ids_with_its_tokenizer_beside(tmp_path):
    folder = text_folder(tmp_path / "model", "text-classifier", bidirectional=True, merge_mode="sum")
    result = export_onnx(folder, tmp_path / "reviews.onnx")
    assert set(result.paths) == {"predict", "tokenizer.json"} and max(result.checks.values()) <= TOLERANCE
    assert read_onnx_meta(result.path)["files"] == {"predict": "reviews.onnx"}
    tokenizer = tokenizer_beside(result)
    ids, lengths = pad_ids([tokenizer.encode(t) for t in TEXTS])
    probabilities, = session(result.path).run(["probabilities"], {"ids": ids[..., 0].astype(np.int64),
                                                                  "lengths": lengths.astype(np.int64)})
    expected = lstmkit.load(folder).classify(TEXTS)
    for row, want in zip(probabilities, expected):
        assert dict(zip(["low", "high"], row.tolist())) == pytest.approx(want["probabilities"], abs=TOLERANCE)


def test_tagger_tags_every_token_as_load_tag(tmp_path):
    folder = text_folder(tmp_path / "model", "tagger", bidirectional=True)
    result = export_onnx(folder, tmp_path / "tags.onnx")
    assert set(result.paths) == {"predict", "tokenizer.json"}
    assert "bidirectional" in result.streaming_unsupported
    tokenizer = tokenizer_beside(result)
    ids, lengths = pad_ids([tokenizer.encode(t) for t in TEXTS])
    probabilities, = session(result.path).run(["probabilities"], {"ids": ids[..., 0].astype(np.int64),
                                                                  "lengths": lengths.astype(np.int64)})
    model = lstmkit.load(folder)
    for text, row, n, want in zip(TEXTS, probabilities, lengths, model.tag(TEXTS)):
        assert [model.label_names[i] for i in row[:n].argmax(-1)] == want["labels"], text


def test_char_lm_step_graph_generates_what_generate_does(tmp_path):
    folder = text_folder(tmp_path / "model", "char-lm")
    result = export_onnx(folder, tmp_path / "chars.onnx")
    assert set(result.paths) == {"predict", "step", "tokenizer.json"} and max(result.checks.values()) <= TOLERANCE
    tokenizer = tokenizer_beside(result)
    step = session(result.paths["step"])
    prompt = tokenizer.encode("the ")
    h = c = np.zeros((1, 1, 8), np.float32)
    logits, h, c = step.run(["logits", "h_n", "c_n"], {"ids": np.array([prompt]), "lengths": np.array([len(prompt)]),
                                                       "h0": h, "c0": c})
    logits = logits[:, -1]
    out = []
    for _ in range(12):  # greedy: the most likely token, <pad> and <unk> never
        logits[:, :2] = -np.inf
        token = int(logits.argmax())
        out.append(token)
        logits, h, c = step.run(["logits", "h_n", "c_n"], {"ids": np.array([[token]]), "lengths": np.array([1]),
                                                           "h0": h, "c0": c})
        logits = logits[:, -1]
    assert tokenizer.decode(out) == lstmkit.load(folder).generate("the ", length=12, temperature=0)


def test_next_symbols_answers_per_step_as_load_predict(tmp_path):
    folder = next_symbols_folder(tmp_path / "model")
    result = export_onnx(folder, tmp_path / "reber.onnx")
    assert set(result.paths) == {"predict", "step"} and max(result.checks.values()) <= TOLERANCE
    x = np.eye(7, dtype=np.float32)[np.random.default_rng(0).integers(0, 7, size=(3, 6))]  # (3, 6, 7) one-hot
    lengths = np.array([6, 3, 1])
    (values,) = session(result.path).run(["values"], {"sequences": x, "lengths": lengths})
    expected = lstmkit.load(folder).predict(x, lengths)  # (3, 6, 7)
    for i, n in enumerate(lengths):
        np.testing.assert_allclose(values[i, :n], expected[i, :n], atol=TOLERANCE)


def test_token_models_with_lstm_variants_export(tmp_path):
    """Two bidirectional layers merged by their mean, with layer norm (a Scan loop); a projected tagger streams."""
    folder = text_folder(tmp_path / "tc", "text-classifier", bidirectional=True, merge_mode="mean", num_layers=2,
                         layer_norm=True)
    result = export_onnx(folder, tmp_path / "tc.onnx")
    ids, lengths = pad_ids([tokenizer_beside(result).encode(t) for t in TEXTS])
    probabilities, = session(result.path).run(["probabilities"], {"ids": ids[..., 0].astype(np.int64),
                                                                  "lengths": lengths.astype(np.int64)})
    for row, want in zip(probabilities, lstmkit.load(folder).classify(TEXTS)):
        assert dict(zip(["low", "high"], row.tolist())) == pytest.approx(want["probabilities"], abs=TOLERANCE)
    tagger = export_onnx(text_folder(tmp_path / "tag", "tagger", proj_size=4), tmp_path / "tag.onnx")
    assert "step" in tagger.paths and max(tagger.checks.values()) <= TOLERANCE
    assert read_onnx_meta(tagger.paths["step"])["output_size"] == 4  # h0 is proj_size wide


def test_a_token_model_without_its_tokenizer_is_refused(tmp_path):
    from lstmkit.artifacts.model_folder import load_model, save_model

    model = load_model(text_folder(tmp_path / "with", "tagger"))
    meta = {k: v for k, v in model.meta.items() if k == "targets"}
    spec = lstmkit.models.InputSpec(input_size=1, num_outputs=len(model.label_names))
    folder = save_model(tmp_path / "without", model.module, model.config, spec, model.label_names, None,
                        extra_meta=meta)
    with pytest.raises(ExportError, match="a tagger model folder without its tokenizer .* cannot export"):
        export_onnx(folder, tmp_path / "x.onnx")
    assert not list(tmp_path.glob("x*"))
