"""frames ONNX export: the ConvLSTM encoder and the rollout as Scans, against FrameForecaster.predict on full
and padded batches (garbage, even NaN, past each length never leaks), refusals."""

import copy

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from lstmkit.export import ExportError, export_onnx, frames_graph, read_onnx_meta
from lstmkit.tasks.frames import FrameForecaster, _save_model, build_model, load_config

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["data.frame_size=16", "data.digit_size=8", "data.input_frames=3", "data.output_frames=2", "model.patch=4"]
CASES = {
    "warp": ["model.head=\"warp\"", "model.hidden_channels=[2]", "model.warp_kernel=3"],
    "pixels_two_layers": ["model.head=\"pixels\"", "model.hidden_channels=[3,2]", "model.kernel_size=5"],
}


def make_folder(path, overrides):
    config = load_config(None, [*TINY, *overrides])
    torch.manual_seed(0)
    _save_model(path, build_model(config.model), config)
    return path


@pytest.fixture(scope="module", params=list(CASES))
def exported(request, tmp_path_factory):
    folder = make_folder(tmp_path_factory.mktemp(request.param) / "model", CASES[request.param])
    return folder, export_onnx(folder, folder.parent / "frames.onnx")


def run(path, frames, lengths):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["predicted"], {"frames": frames, "lengths": np.asarray(lengths, dtype=np.int64)})[0]


def test_export_writes_one_verified_graph_of_scans(exported):
    _, result = exported
    assert set(result.paths) == {"predict"} and result.step_path is None
    assert set(result.checks) == {"fixed_length", "variable_length", "reference"}
    assert max(result.checks.values()) <= 1e-4
    meta = read_onnx_meta(result.path)
    assert (meta["task"], meta["frame_size"], meta["output_frames"], meta["channels"]) == ("frames", 16, 2, 1)
    assert meta["inputs"] == [{"name": "frames", "dtype": "float32", "shape": ["N", "L", 1, 16, 16]},
                              {"name": "lengths", "dtype": "int64", "shape": ["N"]}]
    assert meta["outputs"] == [{"name": "predicted", "dtype": "float32", "shape": ["N", 2, 1, 16, 16]}]
    assert [n.op_type for n in onnx.load(str(result.path)).graph.node].count("Scan") == 2


def test_predicted_frames_equal_the_forecasters(exported):
    folder, result = exported
    forecaster = FrameForecaster.load(folder)
    frames = np.random.default_rng(0).random((3, 5, 1, 16, 16), dtype=np.float32)  # 5 frames, not the recipe's 3
    got = run(result.path, frames, [5, 5, 5])
    assert got.shape == (3, 2, 1, 16, 16)
    np.testing.assert_allclose(got, forecaster.predict(frames), atol=1e-5)


def test_frames_past_each_length_never_leak(exported):
    folder, result = exported
    forecaster = FrameForecaster.load(folder)
    frames = np.random.default_rng(1).random((3, 5, 1, 16, 16), dtype=np.float32)
    lengths = [5, 2, 1]
    padded = frames.copy()
    padded[1, 2:] = np.nan
    padded[2, 1:] = 1e4
    got = run(result.path, padded, lengths)
    for i, length in enumerate(lengths):
        np.testing.assert_allclose(got[i], forecaster.predict(frames[i:i + 1, :length])[0], atol=1e-5)


def test_a_wrong_graph_is_refused_and_nothing_written(tmp_path, monkeypatch):
    folder = make_folder(tmp_path / "model", CASES["warp"])
    build = frames_graph.frames_graph

    def off_by_a_little(forecaster):
        forecaster = copy.deepcopy(forecaster)
        with torch.no_grad():
            forecaster.model.forecaster.cells[0].bias += 1e-2
        return build(forecaster)

    monkeypatch.setattr(frames_graph, "frames_graph", off_by_a_little)
    with pytest.raises(ExportError, match=r"in the (fixed|variable)_length check exceeds the tolerance 0\.0001 .*"
                                          r"frames\.onnx was not written"):
        export_onnx(folder, tmp_path / "frames.onnx")
    assert not (tmp_path / "frames.onnx").exists()


def test_bad_verification_samples_are_named(tmp_path):
    folder = make_folder(tmp_path / "model", CASES["warp"])
    with pytest.raises(ExportError, match=r"frames verification samples: expected frames \(N, L, 1, 16, 16\), "
                                          r"got \(2, 3, 1, 8, 8\)"):
        export_onnx(folder, tmp_path / "frames.onnx", samples=np.zeros((2, 3, 1, 8, 8)))


def test_an_option_the_exporter_does_not_know_is_refused(tmp_path, monkeypatch):
    folder = make_folder(tmp_path / "model", CASES["pixels_two_layers"])
    monkeypatch.setattr(frames_graph, "_KNOWN_MODEL_KEYS", frames_graph._KNOWN_MODEL_KEYS - {"kernel_size"})
    with pytest.raises(ExportError, match=r"export: cannot export to ONNX: unsupported \[model\] kernel_size = 5 "):
        export_onnx(folder, tmp_path / "frames.onnx")
