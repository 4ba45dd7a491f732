"""Spoken digits end to end on the real FSDD recordings: the shipped recipe, trained briefly (the ``speech_run``
fixture), learns, and ``lstmkit predict`` reads .wav files through the front end saved with the model."""

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("kaldi_native_fbank")  # the [audio] extra

from lstmkit.cli import main
from lstmkit.data.audio import FrontEnd
from lstmkit.errors import DataError
from lstmkit.tasks import load_trained

FSDD = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "fsdd" / "recordings"  # as the speech_run fixture
pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_recipe_learns_the_digits_far_above_chance(speech_run):
    metrics = json.loads((speech_run / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.6, metrics  # chance is 0.1; the full recipe reaches >= 0.97
    meta = json.loads((speech_run / "model" / "meta.json").read_text())
    assert meta["audio_front_end"] == FrontEnd(8000).to_meta()
    assert meta["label_names"] == [str(d) for d in range(10)]


def test_predict_reads_wav_files_through_the_saved_front_end(speech_run, capsys):
    files = [FSDD / f"{digit}_jackson_{digit % 5}.wav" for digit in range(10)]  # official test recordings
    assert main(["predict", str(speech_run / "model"), *map(str, files), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["input"] for r in results] == list(map(str, files))
    assert sum(r["label"] == str(digit) for digit, r in enumerate(results)) >= 6
    # the same as the model's answer on the frames computed here
    model = load_trained(speech_run / "model")
    frames = FrontEnd(8000).file_features(files[3])
    np.testing.assert_allclose(model.predict_proba(frames[None])[0],
                               [results[3]["probabilities"][str(d)] for d in range(10)], atol=1e-6)


def test_predict_refuses_audio_at_another_rate(speech_run, tmp_path, capsys):
    import wave

    with wave.open(str(tmp_path / "fast.wav"), "wb") as f:
        f.setnchannels(1), f.setsampwidth(2), f.setframerate(16000)
        f.writeframes(np.zeros(8000, "<i2").tobytes())
    assert main(["predict", str(speech_run / "model"), str(tmp_path / "fast.wav")]) != 0
    assert "expected audio sampled at 8000 Hz (as in training), got 16000 Hz" in capsys.readouterr().err


def test_a_model_without_a_front_end_refuses_wav_files(digits_run, capsys):
    assert main(["predict", str(digits_run / "model"), str(FSDD / "0_theo_0.wav")]) != 0
    assert ("0_theo_0.wav: expected the sequences this model reads (.npy or .csv), got a .wav file, but the model "
            "was not trained on audio") in capsys.readouterr().err
    with pytest.raises(DataError, match=r"audio front end: expected a table"):
        FrontEnd.from_meta(["8000"])
