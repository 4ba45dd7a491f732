"""``audio-folder``: labelled recordings in one folder, named ``{label}_{speaker}_{index}.wav``.

This is the layout of the Free Spoken Digit Dataset (FSDD: ``7_jackson_32.wav`` is jackson's 33rd "seven").
Each recording becomes a sequence of feature frames (``lstmkit.data.audio.FrontEnd``: MFCCs or log-mel
filterbanks, one frame per ``frame_shift_ms``); recordings of different lengths are zero-padded and carry
their ``lengths``, so the padding never reaches the answer. The front end's settings go into the model
folder, so ``lstmkit predict MODEL file.wav`` computes the same features.

``[data]`` settings:

- ``path``: the folder (relative paths start at ``data_dir`` when that is given);
- ``split = "official"``: recordings with index 0-4 are the test split, the rest train (FSDD's own split);
  ``split = "speaker"``: the recordings of ``test_speakers`` are the test split, everyone else's train
  (how well the model hears a voice it never heard);
- ``features`` (``"mfcc"`` or ``"fbank"``), ``mel_bins`` (0: 23 for MFCCs, 40 for filterbanks), ``num_ceps``,
  ``frame_length_ms``, ``frame_shift_ms``: the front end;
- ``cmn`` (``"none"``, ``"mean"`` or ``"mean-variance"``): per-recording cepstral mean (and variance)
  normalisation, which takes some of the speaker out of the features; ``"speaker"``: mean and variance over
  all the recordings of each speaker (the file names' speakers, the test speakers' over their own recordings,
  whose labels it never reads). Both need whole recordings, so a model trained with them cannot stream.

Labels are sorted (numerically when they are all integers, so the digits keep their order). Every file must
have the same sample rate; files at other rates are refused, not resampled.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstmkit.data.audio import FrontEnd, normalize_speaker, read_wav
from lstmkit.data.base import ArrayDataset, SourceData, register_source
from lstmkit.errors import DataError

__all__ = ["OFFICIAL_TEST_INDICES", "Recording", "front_end_from_config", "list_recordings"]

log = logging.getLogger(__name__)

OFFICIAL_TEST_INDICES = range(5)
"""FSDD's official split: recordings with these indices are the test set."""

_NAME = re.compile(r"^(?P<label>[^_]+)_(?P<speaker>.+)_(?P<index>\d+)\.wav$", re.IGNORECASE)

DEFAULT_MEL_BINS = {"mfcc": 23, "fbank": 40}


@dataclass(frozen=True)
class Recording:
    """One file of the folder and what its name says."""

    path: Path
    label: str
    speaker: str
    index: int


def list_recordings(folder: Path) -> list[Recording]:
    """The ``.wav`` files of ``folder``, sorted by name, with their label, speaker and index.

    Raises:
        DataError: the folder is missing, holds no ``.wav`` file, or one is named otherwise.
    """
    if not folder.is_dir():
        raise DataError(f"audio-folder: [data] path {folder}: expected a folder of .wav files, got "
                        f"{'a file' if folder.exists() else 'no such folder'}")
    recordings = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() != ".wav":
            continue
        match = _NAME.match(path.name)
        if match is None:
            raise DataError(f"audio-folder: {path}: expected a file name {{label}}_{{speaker}}_{{index}}.wav "
                            f"(such as 7_jackson_32.wav), got {path.name!r}")
        recordings.append(Recording(path, match["label"], match["speaker"], int(match["index"])))
    if not recordings:
        raise DataError(f"audio-folder: [data] path {folder}: expected .wav files named {{label}}_{{speaker}}_{{index}}.wav, "
                        f"got none")
    return recordings


def front_end_from_config(config, sample_rate: int) -> FrontEnd:
    """The ``FrontEnd`` that the ``[data]`` table asks for, at the files' ``sample_rate``."""
    mel_bins = config.mel_bins or DEFAULT_MEL_BINS[config.features]
    return FrontEnd(sample_rate=sample_rate, kind=config.features, mel_bins=mel_bins, num_ceps=config.num_ceps,
                    frame_length_ms=config.frame_length_ms, frame_shift_ms=config.frame_shift_ms, cmn=config.cmn)


def _sorted_labels(labels: set[str]) -> list[str]:
    if all(label.isdigit() for label in labels):
        return sorted(labels, key=int)
    return sorted(labels)


def _is_test(recordings: list[Recording], config) -> np.ndarray:
    speakers = sorted({r.speaker for r in recordings})
    if config.split == "official":
        return np.array([r.index in OFFICIAL_TEST_INDICES for r in recordings])
    if not config.test_speakers:
        raise DataError(f'audio-folder: [data] split = "speaker" needs test_speakers, the speakers held out for '
                        f"testing (this folder has {', '.join(speakers)}), got none")
    unknown = [s for s in config.test_speakers if s not in speakers]
    if unknown:
        raise DataError(f"audio-folder: [data] test_speakers: expected speakers of this folder ({', '.join(speakers)}), "
                        f"got {unknown[0]!r}")
    if set(config.test_speakers) == set(speakers):
        raise DataError("audio-folder: [data] test_speakers: expected some speakers left for training, got all of "
                        f"them ({', '.join(speakers)})")
    return np.array([r.speaker in config.test_speakers for r in recordings])


def _pad(frames: list[np.ndarray], labels: np.ndarray, length: int) -> ArrayDataset:
    """Frames of different lengths, zero-padded at the end to ``length`` steps, with their ``lengths``."""
    lengths = np.array([len(f) for f in frames], dtype=np.int64)
    x = np.zeros((len(frames), length, frames[0].shape[1]), dtype=np.float32)  # (N, L, F)
    for i, f in enumerate(frames):
        x[i, : len(f)] = f
    return ArrayDataset(x, labels, lengths, "classes")


def _normalize_each_speaker(frames: list[np.ndarray], speakers: list[str]) -> list[np.ndarray]:
    """``normalize_speaker`` over each speaker's recordings: ``frames[i]`` belongs to ``speakers[i]``."""
    out = list(frames)
    for speaker in sorted(set(speakers)):
        rows = [i for i, who in enumerate(speakers) if who == speaker]
        for i, normalised in zip(rows, normalize_speaker([frames[i] for i in rows])):
            out[i] = normalised
    return out


@register_source("audio-folder", configurable=True)
def load_audio_folder(data_dir: Path | None, download: bool, config) -> SourceData:
    """The recordings of the folder ``[data] path`` as feature sequences, split as ``[data] split`` says."""
    if not config.path:
        raise DataError('audio-folder: expected [data] path naming the folder of {label}_{speaker}_{index}.wav '
                        'files, e.g. path = "fsdd/recordings", got none')
    folder = Path(config.path).expanduser()
    if data_dir is not None and not folder.is_absolute():
        folder = data_dir / folder
    recordings = list_recordings(folder)
    front, frames = None, []
    for recording in recordings:
        samples, rate = read_wav(recording.path)
        if front is None:
            front = front_end_from_config(config, rate)
        frames.append(front.features(samples, rate, f"audio-folder: {recording.path}"))
    if front.cmn == "speaker":
        frames = _normalize_each_speaker(frames, [r.speaker for r in recordings])
    label_names = _sorted_labels({r.label for r in recordings})
    index = {label: i for i, label in enumerate(label_names)}
    labels = np.array([index[r.label] for r in recordings], dtype=np.int64)
    test = _is_test(recordings, config)
    if test.all() or not test.any():
        raise DataError(f"audio-folder: {folder}: the {config.split} split leaves the "
                        f"{'training' if test.all() else 'test'} split empty (the official split tests the "
                        f"recordings with index {OFFICIAL_TEST_INDICES.start}-{OFFICIAL_TEST_INDICES.stop - 1})")
    train_rows, test_rows = np.flatnonzero(~test), np.flatnonzero(test)
    log.info("audio-folder: %d recordings (%d train, %d test) of %d speakers, %s at %d Hz", len(recordings),
             len(train_rows), len(test_rows), len({r.speaker for r in recordings}), front.kind, front.sample_rate)
    length = max(len(f) for f in frames)  # both splits share (L, F)
    train = _pad([frames[i] for i in train_rows], labels[train_rows], length)
    test_set = _pad([frames[i] for i in test_rows], labels[test_rows], length)
    return SourceData(train=train, test=test_set, label_names=label_names, image_shape=None, pixel_max=None,
                      name="audio-folder", meta={"audio_front_end": front.to_meta()})

