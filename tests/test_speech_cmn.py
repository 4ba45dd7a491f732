"""A spoken-digits model trained with cepstral mean normalisation, per recording (the ``speech_cmn_run`` fixture)
and per speaker (``speech_speaker_cmvn_run``): the setting is saved with the model, ``lstmkit predict`` applies it
to .wav files, and what cannot apply it refuses."""

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("kaldi_native_fbank")  # the [audio] extra

from lstmkit.cli import main
from lstmkit.data.audio import FrontEnd, normalize_speaker
from lstmkit.tasks import load_trained

FSDD = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "fsdd" / "recordings"  # as the fixture
pytestmark = pytest.mark.usefixtures("one_thread")

CMN_REASON = ('its audio front end normalises each recording by its whole-utterance statistics (cmn = "mean"), '
              'which a stream does not know until it ends; train with [data] cmn = "none" to stream')


@pytest.mark.parametrize("run, cmn", [("speech_cmn_run", "mean"), ("speech_speaker_cmvn_run", "speaker")])
def test_the_cmn_recipes_learn_and_save_their_front_end(request, run, cmn):
    folder = request.getfixturevalue(run)
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.6, metrics  # chance is 0.1
    meta = json.loads((folder / "model" / "meta.json").read_text())
    assert meta["audio_front_end"] == FrontEnd(8000, cmn=cmn).to_meta()
    assert meta["audio_front_end"]["cmn"] == cmn


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


SPEAKER_REASON = ('its audio front end normalises each recording by its speaker\'s statistics over many recordings '
                  '(cmn = "speaker"), which a stream of one recording does not have; train with [data] cmn = "none" '
                  'to stream')


def test_predict_normalises_the_wav_files_together_as_one_speakers(speech_speaker_cmvn_run, capsys, caplog):
    files = [FSDD / f"{digit}_theo_{digit % 5}.wav" for digit in range(10)]  # official test recordings
    with caplog.at_level("INFO", logger="lstmkit.tasks.sequence"):
        assert main(["predict", str(speech_speaker_cmvn_run / "model"), *map(str, files), "--json"]) == 0
    assert 'normalising the 10 .wav files together as one speaker\'s recordings (cmn = "speaker")' in caplog.text
    results = json.loads(capsys.readouterr().out)
    assert sum(r["label"] == str(digit) for digit, r in enumerate(results)) >= 6
    model = load_trained(speech_speaker_cmvn_run / "model")
    together = normalize_speaker([FrontEnd(8000).file_features(f) for f in files])
    for index in (2, 7):
        answered = [results[index]["probabilities"][str(d)] for d in range(10)]
        np.testing.assert_allclose(model.predict_proba(together[index][None])[0], answered, atol=1e-6)
        alone = FrontEnd(8000, cmn="mean-variance").file_features(files[index])[None]  # its own statistics only
        assert np.abs(model.predict_proba(alone)[0] - answered).max() > 1e-3


def test_predict_refuses_a_single_recording_for_a_speaker_normalised_model(speech_speaker_cmvn_run, capsys):
    one = FSDD / "3_theo_3.wav"
    assert main(["predict", str(speech_speaker_cmvn_run / "model"), str(one)]) != 0
    assert (f"predict {one}: this model normalises its features by a speaker's statistics over several recordings "
            '([data] cmn = "speaker"); expected two or more .wav files of the same speaker, got 1') in \
        capsys.readouterr().err


def test_a_speaker_normalised_model_exports_no_step_graph_and_says_why(speech_speaker_cmvn_run, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "digits.onnx"
    assert main(["export", str(speech_speaker_cmvn_run / "model"), "--out", str(out)]) == 0
    assert f"no step graph: {SPEAKER_REASON}" in capsys.readouterr().out
    assert out.is_file() and not list(tmp_path.glob("*step*"))
