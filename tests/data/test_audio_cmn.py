"""Cepstral mean (and variance) normalisation, ``[data] cmn``, per recording and per speaker, against NumPy."""

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("kaldi_native_fbank")  # the [audio] extra

from lstmkit.config import DataConfig, load_config
from lstmkit.data import load_source
from lstmkit.data.audio import FrontEnd, front_end_streaming_reason, normalize_cepstra, normalize_speaker
from lstmkit.errors import ConfigError, DataError

FSDD = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "fsdd" / "recordings"
needs_fsdd = pytest.mark.skipif(not FSDD.is_dir(), reason=f"needs the shared FSDD recordings at {FSDD}")
RECORDING = FSDD / "7_jackson_32.wav"

STREAM_REFUSAL = ('audio front end: cannot stream: its audio front end normalises each recording by its '
                  'whole-utterance statistics (cmn = "mean"), which a stream does not know until it ends; train '
                  'with [data] cmn = "none" to stream')


@needs_fsdd
@pytest.mark.parametrize("kind", ["mfcc", "fbank"])
def test_cmn_equals_the_numpy_reference_on_a_real_recording(kind):
    raw = FrontEnd(8000, kind=kind).file_features(RECORDING).astype(np.float64)  # (T, F)
    mean = raw.mean(axis=0)
    std = np.sqrt(((raw - mean) ** 2).mean(axis=0))
    np.testing.assert_allclose(FrontEnd(8000, kind=kind, cmn="mean").file_features(RECORDING), raw - mean,
                               atol=1e-4)
    np.testing.assert_allclose(FrontEnd(8000, kind=kind, cmn="mean-variance").file_features(RECORDING),
                               (raw - mean) / std, atol=1e-5)
    np.testing.assert_array_equal(FrontEnd(8000, kind=kind, cmn="none").file_features(RECORDING),
                                  raw.astype(np.float32))


@needs_fsdd
def test_cmn_takes_out_a_change_of_loudness():
    """Louder by a factor g adds log(g^2) to every log-mel energy (and to c0, the log energy) and leaves
    the other cepstra alone: the per-recording mean takes it all out; the raw features keep it."""
    from lstmkit.data.audio import read_wav

    samples, rate = read_wav(RECORDING)
    for kind in ("mfcc", "fbank"):
        raw, louder = (FrontEnd(rate, kind=kind).features(s, rate) for s in (samples, 3.0 * samples))
        assert np.abs(louder - raw).max() > 1.0
        normalised = FrontEnd(rate, kind=kind, cmn="mean")
        np.testing.assert_allclose(normalised.features(3.0 * samples, rate), normalised.features(samples, rate),
                                   atol=2e-3)


def test_a_constant_coefficient_is_centred_not_divided_by_zero():
    frames = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]], np.float32)  # the second coefficient never moves
    out = normalize_cepstra(frames, "mean-variance")
    assert out.dtype == np.float32 and np.all(np.isfinite(out))
    np.testing.assert_allclose(out, [[-np.sqrt(1.5), 0.0], [0.0, 0.0], [np.sqrt(1.5), 0.0]], atol=1e-6)
    np.testing.assert_allclose(normalize_cepstra(frames, "mean"), [[-2.0, 0.0], [0.0, 0.0], [2.0, 0.0]])


def test_cmn_travels_in_the_meta_and_old_meta_means_none():
    front = FrontEnd(8000, cmn="mean-variance")
    assert front.to_meta()["cmn"] == "mean-variance"
    assert FrontEnd.from_meta(front.to_meta()) == front
    old = {k: v for k, v in FrontEnd(8000).to_meta().items() if k != "cmn"}  # a model saved before cmn existed
    assert FrontEnd.from_meta(old).cmn == "none"
    assert front_end_streaming_reason({"audio_front_end": old}) is None
    assert front_end_streaming_reason({}) is None
    assert front_end_streaming_reason({"audio_front_end": FrontEnd(8000, cmn="mean").to_meta()}) == \
        STREAM_REFUSAL.removeprefix("audio front end: cannot stream: ")


def test_cmn_errors_name_the_setting_and_what_was_received():
    with pytest.raises(DataError, match=r'audio front end cmn: expected "none", "mean", "mean-variance" or '
                                        r'"speaker", got \'cepstral\''):
        FrontEnd(8000, cmn="cepstral")
    with pytest.raises(DataError, match=r"audio front end cmn: expected .*, got 'utterance'"):
        normalize_cepstra(np.zeros((3, 2), np.float32), "utterance")
    with pytest.raises(DataError) as refused:
        FrontEnd(8000, cmn="mean").online()
    assert str(refused.value) == STREAM_REFUSAL
    FrontEnd(8000, cmn="none").online()  # streams as before


def test_the_config_accepts_the_four_modes_only(tmp_path):
    recipe = tmp_path / "speech.toml"
    recipe.write_text('[data]\nname = "audio-folder"\ncmn = "mean-variance"\n')
    assert load_config(recipe).data.cmn == "mean-variance"
    recipe.write_text('[data]\nname = "audio-folder"\ncmn = "speaker"\n')
    assert load_config(recipe).data.cmn == "speaker"
    recipe.write_text('[data]\nname = "audio-folder"\ncmn = "cepstral"\n')
    with pytest.raises(ConfigError, match=r"cmn.*cepstral"):
        load_config(recipe)


def test_the_audio_folder_source_normalises_every_recording(tmp_path):
    from test_audio import tone, write_wav

    for i, name in enumerate(["1_ann_0.wav", "2_ann_7.wav", "1_bob_8.wav"]):
        write_wav(tmp_path / name, tone(300 + 200 * i, 0.2 + 0.05 * i) + 50.0 * np.sin(np.arange(1600 + 400 * i)))
    source = load_source("audio-folder", config=DataConfig(name="audio-folder", path=str(tmp_path),
                                                           cmn="mean-variance"))
    assert source.meta["audio_front_end"]["cmn"] == "mean-variance"
    for data in (source.train, source.test):
        for x, length in zip(data.x, data.lengths):
            frames = x[:length]  # the padding stays zero and outside the statistics
            np.testing.assert_allclose(frames.mean(axis=0), 0.0, atol=1e-4)
            np.testing.assert_allclose(frames.std(axis=0), 1.0, atol=1e-3)
            assert not x[length:].any()


@needs_fsdd
def test_speaker_cmvn_equals_the_numpy_reference_over_a_speakers_recordings():
    paths = [FSDD / f"{digit}_theo_{digit}.wav" for digit in range(4)]
    raw = [FrontEnd(8000).file_features(p).astype(np.float64) for p in paths]
    stacked = np.concatenate(raw)  # the statistics span every frame of every recording
    mean, std = stacked.mean(axis=0), np.sqrt(((stacked - stacked.mean(axis=0)) ** 2).mean(axis=0))
    out = normalize_speaker(raw)
    for got, frames in zip(out, raw):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, (frames - mean) / std, atol=1e-5)
    assert np.abs(out[0].mean(axis=0)).max() > 0.05  # unlike per-recording CMN, a single recording keeps its word
    assert FrontEnd(8000, cmn="speaker").file_features(paths[0]).tolist() == raw[0].astype(np.float32).tolist()


def test_speaker_cmvn_errors_and_refuses_to_stream():
    with pytest.raises(DataError, match=r"per-speaker CMVN: expected one or more recordings of the same features, "
                                        r"got \[\]"):
        normalize_speaker([])
    with pytest.raises(DataError, match=r"got \[\(3, 2\), \(3, 4\)\]"):
        normalize_speaker([np.zeros((3, 2)), np.zeros((3, 4))])
    with pytest.raises(DataError) as refused:
        FrontEnd(8000, cmn="speaker").online()
    assert str(refused.value) == (
        'audio front end: cannot stream: its audio front end normalises each recording by its speaker\'s '
        'statistics over many recordings (cmn = "speaker"), which a stream of one recording does not have; '
        'train with [data] cmn = "none" to stream')


def test_the_audio_folder_source_normalises_each_speaker_over_their_recordings(tmp_path):
    from test_audio import tone, write_wav

    names = ["1_ann_0.wav", "2_ann_7.wav", "1_ann_9.wav", "1_bob_0.wav", "2_bob_8.wav"]
    for i, name in enumerate(names):
        write_wav(tmp_path / name, tone(300 + 150 * i, 0.2 + 0.05 * i) + 50.0 * np.sin(np.arange(1600 + 400 * i)))
    source = load_source("audio-folder", config=DataConfig(name="audio-folder", path=str(tmp_path), cmn="speaker"))
    assert source.meta["audio_front_end"]["cmn"] == "speaker"
    raw = {name: FrontEnd(8000).file_features(tmp_path / name) for name in names}
    test = [n for n in sorted(names) if n.endswith("_0.wav")]  # the official split: index 0-4 tests
    train = [n for n in sorted(names) if n not in test]
    assert len(source.train) == len(train) and len(source.test) == len(test)
    for order, data in ((train, source.train), (test, source.test)):
        for name, x, length in zip(order, data.x, data.lengths):
            speaker = name.split("_")[1]
            mine = normalize_speaker([raw[n] for n in names if n.split("_")[1] == speaker])
            expected = mine[[n for n in names if n.split("_")[1] == speaker].index(name)]
            np.testing.assert_allclose(x[:length], expected, atol=1e-5)
            assert not x[length:].any()
