"""int8 export: ONNX Runtime's quantized LSTM and MatMul kernels, judged by test accuracy, refused when it drops."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from lstmkit.cli import main
from lstmkit.data import load_source
from lstmkit.export import ExportError, export_onnx, read_onnx_meta
from lstmkit.export import quantize as quantize_module
from lstmkit.serve import load_backend


def accuracy_of(session_path, rows):
    """One sample per call on one thread, as export measures: int8's activation range is taken per call, so
    batch-mates would change answers, and ONNX Runtime's threaded int8 LSTM rounds a little differently."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(session_path), options, providers=["CPUExecutionProvider"])
    length = np.array([rows.x.shape[1]], np.int64)
    labels = [session.run(["probabilities"], {"input": x[None].astype(np.float32), "lengths": length})[0].argmax()
              for x in rows.x]
    return float((np.array(labels) == rows.y).mean())


@pytest.fixture(scope="module")
def exported(digits_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8")
    float_result = export_onnx(digits_run, out / "float.onnx")
    int8_result = export_onnx(digits_run, out / "int8.onnx", quantize="int8", max_accuracy_drop=100.0)
    return float_result, int8_result


def test_int8_export_runs_the_quantized_lstm_and_reports_the_accuracy_it_measured(exported):
    float_result, int8_result = exported
    ops = {node.op_type for node in onnx.load(str(int8_result.path)).graph.node}
    assert "DynamicQuantizeLSTM" in ops and "LSTM" not in ops  # ONNX Runtime's int8 LSTM kernel
    assert {"MatMulInteger", "DynamicQuantizeLinear"} <= ops or "DynamicQuantizeMatMul" in ops
    assert read_onnx_meta(int8_result.path)["quantized"] == "int8"
    assert int8_result.path.stat().st_size < 0.5 * float_result.path.stat().st_size
    # The report's numbers are those of the written files on the digits test split.
    rows = load_source("digits", download=False).test
    report = int8_result.quantization
    assert report.samples == len(rows) == 450
    assert report.float_accuracy == pytest.approx(accuracy_of(float_result.path, rows), abs=1e-9)
    assert report.int8_accuracy == pytest.approx(accuracy_of(int8_result.path, rows), abs=1e-9)
    assert report.drop_points == pytest.approx(100 * (report.float_accuracy - report.int8_accuracy))
    assert report.int8_accuracy > 0.5  # far above chance (0.1): int8 still classifies


def test_serve_loads_the_int8_file_and_answers_like_onnx_runtime(exported):
    _, int8_result = exported
    backend = load_backend(int8_result.path)
    rows = load_source("digits", download=False).test
    x = rows.x[:5].astype(np.float32)
    got = backend.predict(x, np.full(5, x.shape[1], np.int64))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # as the server runs it: int8 LSTM answers change a little with the threads
    session = ort.InferenceSession(str(int8_result.path), options, providers=["CPUExecutionProvider"])
    want = session.run(["probabilities"], {"input": x, "lengths": np.full(5, x.shape[1], np.int64)})[0]
    np.testing.assert_allclose(got, want, atol=1e-6)


_REAL_QUANTIZER = quantize_module.quantize_graph


def _broken_quantizer(proto):
    """A "quantizer" that zeroes the LSTM input weights: a real graph whose accuracy collapses."""
    broken = _REAL_QUANTIZER(proto)
    for init in broken.graph.initializer:
        if init.name.startswith("W_l0"):
            init.CopyFrom(numpy_helper.from_array(np.zeros_like(numpy_helper.to_array(init)), init.name))
    return broken


def test_int8_export_is_refused_when_accuracy_drops_more_than_allowed(digits_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(quantize_module, "quantize_graph", _broken_quantizer)
    out = tmp_path / "bad.onnx"
    assert main(["export", str(digits_run), "--out", str(out), "--quantize", "int8"]) == 2
    err = capsys.readouterr().err
    assert "export --quantize int8: int8 accuracy" in err
    assert "more than --max-accuracy-drop 1; " in err and "bad.onnx was not written" in err
    assert not list(tmp_path.iterdir())


def test_cli_prints_the_accuracy_change(digits_run, tmp_path, capsys):
    out = tmp_path / "q.onnx"
    assert main(["export", str(digits_run), "--out", str(out), "--quantize", "int8", "--max-accuracy-drop", "100"]) == 0
    printed = capsys.readouterr().out
    assert "quantized to int8: int8 accuracy " in printed and "digits (test split, 450 samples)" in printed
    meta = read_onnx_meta(out)
    assert json.dumps(meta["files"]) == json.dumps({"predict": "q.onnx"})  # digits is bidirectional: no step file


def test_int8_refusals_name_the_problem(digits_run, tmp_path, capsys):
    assert main(["export", str(digits_run), "--out", str(tmp_path / "q.onnx"), "--quantize", "int8",
                 "--max-accuracy-drop", "-1"]) == 2
    assert "export --max-accuracy-drop: expected points >= 0, got -1.0" in capsys.readouterr().err
    with pytest.raises(ExportError, match="export --quantize: expected 'int8', got 'int4'"):
        export_onnx(digits_run, tmp_path / "q.onnx", quantize="int4")
