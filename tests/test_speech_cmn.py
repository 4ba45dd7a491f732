"""A spoken-digits model trained with cepstral mean normalisation (the ``speech_cmn_run`` fixture): the setting
is saved with the model, ``lstmkit predict`` applies it to .wav files, and what cannot apply it refuses."""

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("kaldi_native_fbank")  # the [audio] extra

from lstmkit.cli import main
from lstmkit.data.audio import FrontEnd
from lstmkit.tasks import load_trained

FSDD = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "fsdd" / "recordings"  # as the fixture
pytestmark = pytest.mark.usefixtures("one_thread")

CMN_REASON = ('its audio front end normalises each recording by its whole-utterance statistics (cmn = "mean"), '
              'which a stream does not know until it ends; train with [data] cmn = "none" to stream')


def test_the_cmn_recipe_learns_and_saves_its_front_end(speech_cmn_run):
    metrics = json.loads((speech_cmn_run / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.6, metrics  # chance is 0.1
    meta = json.loads((speech_cmn_run / "model" / "meta.json").read_text())
    assert meta["audio_front_end"] == FrontEnd(8000, cmn="mean").to_meta()
    assert meta["audio_front_end"]["cmn"] == "mean"


def test_predict_normalises_wav_files_as_training_did(speech_cmn_run, capsys):
    files = [FSDD / f"{digit}_theo_{digit % 5}.wav" for digit in range(10)]  # official test recordings
    assert main(["predict", str(speech_cmn_run / "model"), *map(str, files), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert sum(r["label"] == str(digit) for digit, r in enumerate(results)) >= 6
    model = load_trained(speech_cmn_run / "model")
    for index in (2, 7):
        answered = [results[index]["probabilities"][str(d)] for d in range(10)]
        normalised = FrontEnd(8000, cmn="mean").file_features(files[index])[None]  # (1, T, 13)
        np.testing.assert_allclose(model.predict_proba(normalised)[0], answered, atol=1e-6)
        raw = FrontEnd(8000).file_features(files[index])[None]  # what a predict without cmn would feed it
        assert np.abs(model.predict_proba(raw)[0] - answered).max() > 1e-3


def test_export_writes_no_step_graph_and_says_why(speech_cmn_run, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "digits.onnx"
    assert main(["export", str(speech_cmn_run / "model"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"no step graph: {CMN_REASON}" in printed
    assert out.is_file() and not list(tmp_path.glob("*step*"))
