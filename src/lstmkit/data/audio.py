"""The audio front end: WAV files in, one feature frame per 10 ms out (log-mel filterbanks or MFCCs).

The features come from ``kaldi-native-fbank`` (the k2-fsa project's C++ port of Kaldi's ``compute-fbank-feats``
and ``compute-mfcc-feats``). Training, ``lstmkit predict`` and the streaming demo all go through
``FrontEnd``, whose settings travel in the model folder's ``meta.json`` (``FrontEnd.to_meta``), so a model
always hears its inputs exactly as it heard its training data.

Each frame covers ``frame_length_ms`` of audio and starts ``frame_shift_ms`` after the previous one (frames
lie wholly inside the signal: ``T = 1 + (S - W) // shift`` frames from S samples with a window of W).
Before the mel filterbank, Kaldi removes each frame's DC offset, applies pre-emphasis
``x'[n] = x[n] - 0.97 x[n-1]`` and a Povey window, and takes the power spectrum ``|X(f)|^2``:

* ``fbank``: ``log(sum_f M_m(f) |X(f)|^2)`` for each of the ``mel_bins`` triangular filters ``M_m``;
* ``mfcc``: the first ``num_ceps`` coefficients of the DCT-II of those log energies, the first replaced by the
  frame's log energy, then liftered: ``c_k * (1 + 11 sin(pi k / 22))``.

No dither is added, so the same file always gives the same features. Samples are read on the 16-bit scale
(-32768..32767), as Kaldi expects.

Cepstral mean (and variance) normalisation, ``cmn``, takes the speaker and the channel out of each recording.
Over the T frames ``x_1..x_T`` of one recording, for each coefficient separately,

* ``"mean"``: ``y_t = x_t - mu`` with ``mu = (1/T) sum_t x_t``;
* ``"mean-variance"``: ``y_t = (x_t - mu) / max(sigma, 1e-5)`` with ``sigma^2 = (1/T) sum_t (x_t - mu)^2``;
* ``"none"``: ``y_t = x_t``;
* ``"speaker"``: ``"mean-variance"`` with ``mu`` and ``sigma`` taken over every frame of every recording of one
  speaker (Kaldi's per-speaker CMVN). A digit is one short word, so one recording's mean is largely the
  word's own spectrum; over a speaker's many recordings the words average out and the voice and the channel
  remain. ``features`` and ``file_features`` leave each recording as it is; ``normalize_speaker`` takes the
  frames of one speaker's recordings together (``lstmkit predict`` takes the ``.wav`` files it is given
  as one speaker's; the ``audio-folder`` source takes the file names' speakers).

``mu`` and ``sigma`` are statistics of a whole recording (or of many), which a stream does not know until it
ends, so a front end with ``cmn`` other than ``"none"`` refuses ``online()``, and models trained with it
cannot stream (``streaming_unsupported_reason``); ``features`` and ``file_features`` of whole signals apply
the per-recording modes.

Example::

    front = FrontEnd(sample_rate=8000)
    front.file_features("7_jackson_32.wav").shape   # (T, 13)
    stream = front.online()                          # the same frames, as the audio arrives
    stream.accept(first_chunk)                       # (k, 13): the frames complete so far
"""

from __future__ import annotations

import wave
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lstmkit.errors import DataError

__all__ = ["CMN_MODES", "FEATURE_KINDS", "FrontEnd", "OnlineFeatures", "front_end_streaming_reason",
           "normalize_cepstra", "normalize_speaker", "read_wav"]

FEATURE_KINDS = ("mfcc", "fbank")
CMN_MODES = ("none", "mean", "mean-variance", "speaker")
_CMN_EXPECTED = 'expected "none", "mean", "mean-variance" or "speaker"'
CMN_STD_FLOOR = 1e-5
"""The smallest ``sigma`` that ``"mean-variance"`` divides by (a coefficient constant over the recording)."""

_SAMPLE_RATES = (8000, 96000)  # the range accepted (Kaldi's mel banks need at least a few kHz)


def _kaldi_native_fbank() -> Any:
    try:
        import kaldi_native_fbank
    except ImportError:
        raise DataError("audio features need kaldi-native-fbank, which is not installed; install it with: "
                        "pip install 'lstmkit[audio]'") from None
    return kaldi_native_fbank


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """A mono PCM WAV file as ``(samples, sample_rate)``: float32 samples on the 16-bit scale.

    8-, 16-, 24- and 32-bit integer PCM are read (the stdlib ``wave`` module); other widths are rescaled to
    the 16-bit range. Stereo files are refused rather than mixed silently.

    Raises:
        DataError: the file is missing, not a PCM WAV file, not mono, or holds no samples.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"audio {path}: expected an existing WAV file, got {'a folder' if path.is_dir() else 'no such file'}")
    try:
        with wave.open(str(path), "rb") as f:
            channels, width, rate, count = f.getnchannels(), f.getsampwidth(), f.getframerate(), f.getnframes()
            raw = f.readframes(count)
    except (wave.Error, EOFError, OSError) as exc:
        raise DataError(f"audio {path}: expected a PCM WAV file, got one that cannot be read ({exc})") from None
    if channels != 1:
        raise DataError(f"audio {path}: expected mono audio (1 channel), got {channels} channels")
    if width == 1:  # unsigned 8-bit
        samples = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) * 256.0
    elif width == 2:
        samples = np.frombuffer(raw, "<i2").astype(np.float32)
    elif width == 3:
        bytes3 = np.frombuffer(raw[: len(raw) // 3 * 3], np.uint8).reshape(-1, 3).astype(np.int32)
        value = bytes3[:, 0] | (bytes3[:, 1] << 8) | (bytes3[:, 2] << 16)
        samples = (np.where(value >= 1 << 23, value - (1 << 24), value) / 256.0).astype(np.float32)
    elif width == 4:
        samples = (np.frombuffer(raw, "<i4").astype(np.float64) / 65536.0).astype(np.float32)
    else:
        raise DataError(f"audio {path}: expected 8-, 16-, 24- or 32-bit PCM samples, got {8 * width}-bit")
    if samples.size == 0:
        raise DataError(f"audio {path}: expected audio samples, got an empty file")
    return samples, rate


def normalize_cepstra(frames: np.ndarray, cmn: str) -> np.ndarray:
    """Per-recording cepstral mean (and variance) normalisation of ``frames`` (T, F): float32 (T, F).

    ``"mean"``: ``y_t = x_t - mu``; ``"mean-variance"``: ``y_t = (x_t - mu) / max(sigma, 1e-5)``, with ``mu`` and
    ``sigma`` the mean and (population) standard deviation of each coefficient over the T frames; ``"none"``
    and ``"speaker"`` (whose statistics span many recordings: ``normalize_speaker``): ``frames`` unchanged.
    Computed in float64.

    Raises:
        DataError: ``cmn`` is not one of ``CMN_MODES``.
    """
    if cmn not in CMN_MODES:
        raise DataError(f"audio front end cmn: {_CMN_EXPECTED}, got {cmn!r}")
    if cmn in ("none", "speaker"):
        return frames
    x = np.asarray(frames, dtype=np.float64)  # (T, F)
    y = x - x.mean(axis=0)
    if cmn == "mean-variance":
        y /= np.maximum(x.std(axis=0), CMN_STD_FLOOR)
    return y.astype(np.float32)


def normalize_speaker(recordings: list[np.ndarray]) -> list[np.ndarray]:
    """Per-speaker cepstral mean and variance normalisation: the frames (T_i, F) of several recordings of one
    speaker, each less ``mu`` and over ``max(sigma, 1e-5)``, the mean and (population) standard deviation of
    each coefficient over all their frames together; float32, computed in float64.

    Raises:
        DataError: no recordings, or recordings with different numbers of features.
    """
    if not recordings or len({np.shape(r)[-1] for r in recordings}) != 1:
        raise DataError(f"per-speaker CMVN: expected one or more recordings of the same features, got "
                        f"{[np.shape(r) for r in recordings]}")
    stacked = np.concatenate([np.asarray(r, dtype=np.float64) for r in recordings])  # (sum T_i, F)
    mu, sigma = stacked.mean(axis=0), np.maximum(stacked.std(axis=0), CMN_STD_FLOOR)
    return [((np.asarray(r, dtype=np.float64) - mu) / sigma).astype(np.float32) for r in recordings]


def front_end_streaming_reason(meta: dict[str, Any]) -> str | None:
    """Why a model whose ``meta.json`` is ``meta`` cannot stream because of its audio front end, or None."""
    front_end = meta.get("audio_front_end") if isinstance(meta, dict) else None
    if not isinstance(front_end, dict):
        return None
    return FrontEnd.from_meta(front_end).streaming_unsupported_reason()


@dataclass(frozen=True)
class FrontEnd:
    """Log-mel filterbank or MFCC features of a mono signal, computed by kaldi-native-fbank.

    Attributes:
        sample_rate: the rate (Hz) of every signal it reads; a file at another rate is refused, not resampled.
        kind: ``"mfcc"`` (``num_ceps`` cepstra per frame) or ``"fbank"`` (``mel_bins`` log-mel energies).
        mel_bins: triangular mel filters between 20 Hz and the Nyquist frequency.
        num_ceps: MFCC coefficients kept (at most ``mel_bins``); unused by ``fbank``.
        frame_length_ms: the window of each frame.
        frame_shift_ms: the step between frames (10 ms: 100 frames a second).
        cmn: per-recording cepstral normalisation, ``"none"``, ``"mean"`` or ``"mean-variance"`` (see the
            module's docstring); anything but ``"none"`` needs the whole recording, so it cannot stream.
    """

    sample_rate: int
    kind: Literal["mfcc", "fbank"] = "mfcc"
    mel_bins: int = 23
    num_ceps: int = 13
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    cmn: Literal["none", "mean", "mean-variance"] = "none"

    def __post_init__(self) -> None:
        if self.kind not in FEATURE_KINDS:
            raise DataError(f'audio front end kind: expected "mfcc" or "fbank", got {self.kind!r}')
        if self.cmn not in CMN_MODES:
            raise DataError(f"audio front end cmn: {_CMN_EXPECTED}, got {self.cmn!r}")
        if not isinstance(self.sample_rate, int) or not _SAMPLE_RATES[0] <= self.sample_rate <= _SAMPLE_RATES[1]:
            raise DataError(f"audio front end sample_rate: expected an integer in {_SAMPLE_RATES[0]}..{_SAMPLE_RATES[1]} "
                            f"Hz, got {self.sample_rate!r}")
        if not isinstance(self.mel_bins, int) or not 3 <= self.mel_bins <= 256:
            raise DataError(f"audio front end mel_bins: expected an integer in 3..256, got {self.mel_bins!r}")
        if not isinstance(self.num_ceps, int) or not 1 <= self.num_ceps <= self.mel_bins:
            raise DataError(f"audio front end num_ceps: expected an integer in 1..mel_bins ({self.mel_bins}), "
                            f"got {self.num_ceps!r}")
        for name in ("frame_length_ms", "frame_shift_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1.0 <= value <= 1000.0:
                raise DataError(f"audio front end {name}: expected milliseconds in 1..1000, got {value!r}")
        if self.frame_shift_ms > self.frame_length_ms:
            raise DataError(f"audio front end: expected frame_shift_ms <= frame_length_ms ({self.frame_length_ms}), "
                            f"got {self.frame_shift_ms}")

    @property
    def num_features(self) -> int:
        """F, the features of each frame."""
        return self.num_ceps if self.kind == "mfcc" else self.mel_bins

    @property
    def window_samples(self) -> int:
        """W, the samples of one frame."""
        return int(self.sample_rate * self.frame_length_ms / 1000.0)

    def _options(self) -> Any:
        knf = _kaldi_native_fbank()

        options = knf.MfccOptions() if self.kind == "mfcc" else knf.FbankOptions()
        options.frame_opts.samp_freq = float(self.sample_rate)
        options.frame_opts.frame_length_ms = float(self.frame_length_ms)
        options.frame_opts.frame_shift_ms = float(self.frame_shift_ms)
        options.frame_opts.dither = 0.0  # deterministic: the same file, the same features
        options.frame_opts.snip_edges = True  # frames wholly inside the signal: online == offline
        options.mel_opts.num_bins = self.mel_bins
        if self.kind == "mfcc":
            options.num_ceps = self.num_ceps
        return options

    def streaming_unsupported_reason(self) -> str | None:
        """Why these features cannot be computed frame by frame as the audio arrives, or None when they can."""
        if self.cmn == "none":
            return None
        if self.cmn == "speaker":
            return ('its audio front end normalises each recording by its speaker\'s statistics over many '
                    'recordings (cmn = "speaker"), which a stream of one recording does not have; train with '
                    '[data] cmn = "none" to stream')
        return (f'its audio front end normalises each recording by its whole-utterance statistics (cmn = '
                f'"{self.cmn}"), which a stream does not know until it ends; train with [data] cmn = "none" to stream')

    def online(self) -> OnlineFeatures:
        """An extractor that takes the signal in chunks and gives each frame as soon as its window is in.

        Raises:
            DataError: ``cmn`` is not ``"none"`` (see ``streaming_unsupported_reason``).
        """
        reason = self.streaming_unsupported_reason()
        if reason is not None:
            raise DataError(f"audio front end: cannot stream: {reason}")
        return OnlineFeatures(self)

    def features(self, samples: np.ndarray, sample_rate: int, what: str = "signal") -> np.ndarray:
        """The frames of a whole signal, normalised as a per-recording ``cmn`` says (``"speaker"``: as they
        are, for ``normalize_speaker``): float32 of shape (T, F).

        Raises:
            DataError: the rate differs from ``sample_rate``, or the signal is shorter than one frame.
        """
        self.check_rate(sample_rate, what)
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim != 1 or samples.size < self.window_samples:
            raise DataError(f"{what}: expected at least {self.window_samples} samples (one {self.frame_length_ms:g} ms "
                            f"frame at {self.sample_rate} Hz), got {samples.size}")
        stream = OnlineFeatures(self)  # the raw frames; cmn below needs them all
        frames = stream.accept(samples)
        return normalize_cepstra(np.concatenate([frames, stream.finish()]), self.cmn)

    def file_features(self, path: str | Path) -> np.ndarray:
        """The frames of a WAV file (``read_wav``): float32 (T, F)."""
        samples, rate = read_wav(path)
        return self.features(samples, rate, f"audio {path}")

    def check_rate(self, sample_rate: int, what: str) -> None:
        if sample_rate != self.sample_rate:
            raise DataError(f"{what}: expected audio sampled at {self.sample_rate} Hz (as in training), got "
                            f"{sample_rate} Hz; resample it first")

    def to_meta(self) -> dict[str, Any]:
        """The settings as JSON values, for a model folder's ``meta.json``."""
        return asdict(self)

    @classmethod
    def from_meta(cls, meta: Any) -> FrontEnd:
        """The front end that ``to_meta`` wrote, with every value checked.

        Raises:
            DataError: ``meta`` is not a table of the known keys, or a value is out of range.
        """
        known = {f.name for f in fields(cls)}
        if not isinstance(meta, dict) or not set(meta) <= known or "sample_rate" not in meta:
            raise DataError(f"audio front end: expected a table with sample_rate and some of {sorted(known)}, "
                            f"got {str(meta)[:80]!r}")
        return cls(**meta)


class OnlineFeatures:
    """The frames of a signal that arrives in chunks, equal to ``FrontEnd.features`` of the whole signal (before
    any ``cmn``: ``FrontEnd.online`` refuses a front end that normalises whole recordings).

    ``accept(chunk)`` returns the frames whose windows are now complete, (k, F) with k >= 0; ``finish()``
    returns any left (none, with frames wholly inside the signal, but it closes the stream).
    """

    def __init__(self, front: FrontEnd) -> None:
        knf = _kaldi_native_fbank()

        self.front = front
        options = front._options()
        self._extractor = knf.OnlineMfcc(options) if front.kind == "mfcc" else knf.OnlineFbank(options)
        self._taken = 0

    def _ready(self) -> np.ndarray:
        ready = self._extractor.num_frames_ready
        frames = [np.array(self._extractor.get_frame(i), dtype=np.float32) for i in range(self._taken, ready)]
        self._taken = ready
        if not frames:
            return np.zeros((0, self.front.num_features), np.float32)
        return np.stack(frames)  # (k, F)

    def accept(self, samples: np.ndarray) -> np.ndarray:
        """Add samples (1-D, on the 16-bit scale); the frames completed by them, (k, F)."""
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim != 1:
            raise DataError(f"audio stream: expected a 1-D chunk of samples, got shape {samples.shape}")
        if not np.all(np.isfinite(samples)):
            raise DataError("audio stream: expected finite samples, got NaN or Inf")
        self._extractor.accept_waveform(float(self.front.sample_rate), samples)
        return self._ready()

    def finish(self) -> np.ndarray:
        """End the signal; the frames it completes, (k, F)."""
        self._extractor.input_finished()
        return self._ready()
