"""The audio front end (lstmkit.data.audio) and the audio-folder source, on made-up and real recordings."""

import wave
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("kaldi_native_fbank")  # the [audio] extra

from lstmkit.config import DataConfig
from lstmkit.data import load_source
from lstmkit.data.audio import FrontEnd, read_wav
from lstmkit.errors import DataError

FSDD = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "fsdd" / "recordings"
needs_fsdd = pytest.mark.skipif(not FSDD.is_dir(), reason=f"needs the shared FSDD recordings at {FSDD}")


def write_wav(path, samples, rate=8000, width=2, channels=1):
    """``samples`` (float, on the 16-bit scale) as PCM of ``width`` bytes."""
    samples = np.asarray(samples, dtype=np.float64)
    if width == 1:
        raw = np.clip(np.round(samples / 256.0) + 128, 0, 255).astype(np.uint8).tobytes()
    elif width == 2:
        raw = np.round(samples).astype("<i2").tobytes()
    elif width == 3:
        value = np.round(samples * 256.0).astype(np.int64) & 0xFFFFFF
        raw = np.stack([value & 0xFF, (value >> 8) & 0xFF, value >> 16], 1).astype(np.uint8).tobytes()
    else:
        raw = np.round(samples * 65536.0).astype("<i4").tobytes()
    with wave.open(str(path), "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(width)
        f.setframerate(rate)
        f.writeframes(raw)
    return path


def tone(hz, seconds=0.5, rate=8000, amplitude=8000.0):
    t = np.arange(int(seconds * rate)) / rate
    return amplitude * np.sin(2 * np.pi * hz * t)


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_read_wav_gives_every_sample_width_on_the_16_bit_scale(tmp_path, width):
    signal = np.round(tone(440, 0.1))
    samples, rate = read_wav(write_wav(tmp_path / "a.wav", signal, width=width))
    assert rate == 8000 and samples.dtype == np.float32 and samples.shape == signal.shape
    # 8-bit PCM keeps 1/256 of the 16-bit resolution
    np.testing.assert_allclose(samples, signal, atol=128.0 if width == 1 else 1e-3)


def test_read_wav_refuses_what_it_cannot_read(tmp_path):
    with pytest.raises(DataError, match=r"audio .*stereo.wav: expected mono audio \(1 channel\), got 2 channels"):
        read_wav(write_wav(tmp_path / "stereo.wav", np.zeros(200), channels=2))
    (tmp_path / "text.wav").write_text("not audio")
    with pytest.raises(DataError, match=r"audio .*text.wav: expected a PCM WAV file, got one that cannot be read"):
        read_wav(tmp_path / "text.wav")
    with pytest.raises(DataError, match=r"audio .*missing.wav: expected an existing WAV file, got no such file"):
        read_wav(tmp_path / "missing.wav")
    with pytest.raises(DataError, match=r"expected audio samples, got an empty file"):
        read_wav(write_wav(tmp_path / "empty.wav", np.zeros(0)))


def test_frames_follow_the_window_and_shift():
    """T = 1 + (S - W) // shift frames of F features: 25 ms windows every 10 ms at 8 kHz (W = 200, shift 80)."""
    signal = tone(300, 0.5)  # S = 4000
    assert FrontEnd(8000).features(signal, 8000).shape == (1 + (4000 - 200) // 80, 13)
    fbank = FrontEnd(8000, kind="fbank", mel_bins=40, frame_shift_ms=20.0)
    assert fbank.features(signal, 8000).shape == (1 + (4000 - 200) // 160, 40)


def test_a_tone_lights_the_mel_filter_around_its_frequency():
    """The log-mel energy of a pure tone peaks in the filter whose centre is nearest the tone, and rises with it."""
    front = FrontEnd(8000, kind="fbank", mel_bins=40)
    low_hz, high_hz = 20.0, 4000.0

    def mel(hz):
        return 1127.0 * np.log(1.0 + hz / 700.0)

    centres_mel = np.linspace(mel(low_hz), mel(high_hz), front.mel_bins + 2)[1:-1]
    peaks = []
    for hz in (250.0, 1000.0, 2500.0):
        frames = front.features(tone(hz), 8000)
        peak = int(frames.mean(0).argmax())
        assert abs(peak - int(np.abs(centres_mel - mel(hz)).argmin())) <= 1, hz
        peaks.append(peak)
    assert peaks == sorted(peaks) and len(set(peaks)) == 3


def test_online_frames_equal_the_whole_signal_frames_whatever_the_chunks():
    rng = np.random.default_rng(0)
    signal = rng.normal(0, 3000, size=6000)
    for kind in ("mfcc", "fbank"):
        front = FrontEnd(8000, kind=kind)
        whole = front.features(signal, 8000)
        stream, parts, start = front.online(), [], 0
        while start < signal.size:
            stop = start + int(rng.integers(1, 700))
            parts.append(stream.accept(signal[start:stop]))
            start = stop
        parts.append(stream.finish())
        assert all(p.shape[1] == front.num_features for p in parts)
        np.testing.assert_array_equal(np.concatenate(parts), whole)
        np.testing.assert_array_equal(front.features(signal, 8000), whole)  # no dither: the same every time


def test_front_end_settings_are_checked_and_round_trip():
    front = FrontEnd(16000, kind="fbank", mel_bins=64, frame_shift_ms=5.0)
    assert FrontEnd.from_meta(front.to_meta()) == front
    with pytest.raises(DataError, match=r"audio front end: expected a table with sample_rate"):
        FrontEnd.from_meta({"sample_rate": 8000, "hop": 3})
    with pytest.raises(DataError, match=r"audio front end num_ceps: expected an integer in 1..mel_bins \(23\), got 40"):
        FrontEnd(8000, num_ceps=40)
    with pytest.raises(DataError, match=r"audio front end sample_rate: expected an integer in 8000..96000 Hz, got 100"):
        FrontEnd(100)
    with pytest.raises(DataError, match=r'audio front end kind: expected "mfcc" or "fbank", got \'plp\''):
        FrontEnd(8000, kind="plp")
    with pytest.raises(DataError, match=r"clip: expected audio sampled at 8000 Hz \(as in training\), got 16000 Hz"):
        FrontEnd(8000).features(np.zeros(4000), 16000, "clip")
    with pytest.raises(DataError, match=r"clip: expected at least 200 samples \(one 25 ms frame at 8000 Hz\), got 50"):
        FrontEnd(8000).features(np.zeros(50), 8000, "clip")


def _folder(tmp_path, names, rate=8000):
    for i, name in enumerate(names):
        write_wav(tmp_path / name, tone(200 + 100 * i, 0.2 + 0.05 * i, rate))
    return tmp_path


def test_audio_folder_reads_names_splits_and_pads(tmp_path):
    folder = _folder(tmp_path, ["10_ann_0.wav", "2_ann_7.wav", "2_bob_1.wav", "10_bob_9.wav", "2_cy_x_5.wav"])
    (folder / "README.md").write_text("not a recording")  # other files are left alone
    source = load_source("audio-folder", config=DataConfig(name="audio-folder", path=str(folder)))
    assert source.label_names == ["2", "10"]  # integers sort as numbers
    assert source.meta["audio_front_end"]["sample_rate"] == 8000
    assert (len(source.train), len(source.test)) == (3, 2)  # index 0-4 test: 10_ann_0 and 2_bob_1
    assert sorted(source.test.y.tolist()) == [0, 1]
    assert source.train.x.shape[1:] == source.test.x.shape[1:] == (source.train.lengths.max(), 13)
    by_speaker = load_source("audio-folder", config=DataConfig(name="audio-folder", path=str(folder),
                                                               split="speaker", test_speakers=["cy_x", "bob"]))
    assert (len(by_speaker.train), len(by_speaker.test)) == (2, 3)


def test_audio_folder_errors_name_the_problem(tmp_path):
    def load(**settings):
        return load_source("audio-folder", config=DataConfig(name="audio-folder", **settings))

    with pytest.raises(DataError, match=r"audio-folder: expected \[data\] path naming the folder"):
        load()
    with pytest.raises(DataError, match=r"audio-folder: \[data\] path .*nope: expected a folder of .wav files, "
                                        r"got no such folder"):
        load(path=str(tmp_path / "nope"))
    with pytest.raises(DataError, match=r"audio-folder: \[data\] path .*: expected .wav files named .*, got none"):
        load(path=str(tmp_path))
    _folder(tmp_path, ["1_ann_0.wav", "1_ann_6.wav", "2_bob_7.wav"])
    with pytest.raises(DataError, match=r'split = "speaker" needs test_speakers, .*\(this folder has ann, bob\), got none'):
        load(path=str(tmp_path), split="speaker")
    with pytest.raises(DataError, match=r"test_speakers: expected speakers of this folder \(ann, bob\), got 'cy'"):
        load(path=str(tmp_path), split="speaker", test_speakers=["cy"])
    with pytest.raises(DataError, match=r"test_speakers: expected some speakers left for training, got all of them"):
        load(path=str(tmp_path), split="speaker", test_speakers=["ann", "bob"])
    write_wav(tmp_path / "3_cy_8.wav", tone(300, 0.3, 16000), 16000)
    with pytest.raises(DataError, match=r"3_cy_8.wav: expected audio sampled at 8000 Hz \(as in training\), got 16000"):
        load(path=str(tmp_path))
    (tmp_path / "3_cy_8.wav").unlink()
    write_wav(tmp_path / "seven.wav", tone(300))
    with pytest.raises(DataError, match=r"seven.wav: expected a file name \{label\}_\{speaker\}_\{index\}.wav"):
        load(path=str(tmp_path))


@needs_fsdd
def test_fsdd_official_and_speaker_splits():
    official = load_source("audio-folder", config=DataConfig(name="audio-folder", path=str(FSDD)))
    assert official.label_names == [str(d) for d in range(10)]
    assert (len(official.train), len(official.test)) == (2250, 250)
    assert np.bincount(official.test.y).tolist() == [25] * 10  # 5 speakers x index 0-4
    held_out = load_source("audio-folder", config=DataConfig(name="audio-folder", path=str(FSDD), split="speaker",
                                                             test_speakers=["theo"], features="fbank"))
    assert (len(held_out.train), len(held_out.test)) == (2000, 500)
    assert held_out.train.x.shape[2] == 40
