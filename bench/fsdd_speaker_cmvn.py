"""Leave-one-speaker-out on FSDD with per-speaker cepstral mean (and variance) normalisation, a prototype.

Per-recording CMN (``[data] cmn``) did not help held-out speakers (RESULTS.md): a spoken digit is one short
word, so a recording's mean cepstrum is largely the word's own shape. Kaldi normalises by a *speaker's*
statistics over many recordings instead, which averages the words out and leaves the voice and channel. This
script measures that before anything is built into lstmkit:

    mu_s, sigma_s = mean and standard deviation over every frame of every recording of speaker s   (F,)
    x'_t = (x_t - mu_s) / sigma_s        ("speaker-mean-variance";  "speaker-mean": x_t - mu_s)

for the training speakers and the held-out one alike. The held-out speaker's statistics come from its own
500 recordings, without their labels: unsupervised adaptation to the new voice, which at prediction time
needs several recordings of that speaker.

The features are lstmkit's (13 MFCCs per 10 ms frame, ``FrontEnd``), and the model and training are
``configs/spoken_digits.toml``'s through ``LSTMClassifier`` (LSTM(128) read at its last state, head dropout
0.1, AdamW 3e-3 with weight decay 0.01 and cosine decay, 30 epochs, batch 32, clipping 1.0, the best of a
10% validation split, features standardised on the training data). ``none`` runs the same path without
speaker normalisation, so both are compared on one footing.

Usage::

    python bench/fsdd_speaker_cmvn.py --data ../shared/datasets/fsdd/recordings --cmvn speaker-mean-variance --speaker george --seed 0
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from lstmkit.data.audio import FrontEnd, read_wav
from lstmkit.data.audio_folder import list_recordings
from lstmkit.estimators import LSTMClassifier

MODES = ("none", "speaker-mean", "speaker-mean-variance")


def speaker_normalised(frames: list[np.ndarray], speakers: list[str], mode: str) -> list[np.ndarray]:
    """Each recording's frames (L_i, F) less its speaker's mean (and over its standard deviation)."""
    if mode == "none":
        return frames
    out = list(frames)
    for speaker in sorted(set(speakers)):
        rows = [i for i, s in enumerate(speakers) if s == speaker]
        stacked = np.concatenate([frames[i] for i in rows])
        mean, std = stacked.mean(axis=0), stacked.std(axis=0)
        for i in rows:
            out[i] = (frames[i] - mean) / (std if mode == "speaker-mean-variance" else 1.0)
    return [f.astype(np.float32) for f in out]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="the FSDD recordings folder")
    parser.add_argument("--cmvn", choices=MODES, default="speaker-mean-variance")
    parser.add_argument("--speaker", required=True, help="the speaker held out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="append the result as a JSON line to this file")
    args = parser.parse_args()
    started = time.perf_counter()
    recordings = list_recordings(Path(args.data))
    front = FrontEnd(sample_rate=8000, kind="mfcc", num_ceps=13)
    frames = [front.features(*read_wav(r.path), str(r.path)) for r in recordings]
    speakers = [r.speaker for r in recordings]
    frames = speaker_normalised(frames, speakers, args.cmvn)
    test = np.array([s == args.speaker for s in speakers])
    if not test.any():
        raise SystemExit(f"no recordings of speaker {args.speaker!r} in {args.data}")
    labels = np.array([r.label for r in recordings])
    model = LSTMClassifier(hidden_size=128, readout="last", head_dropout=0.1, epochs=30, batch_size=32,
                           optimizer="adamw", lr=3e-3, weight_decay=0.01, schedule="cosine", grad_clip=1.0,
                           val_fraction=0.1, normalize=True, monitor="val_accuracy", random_state=args.seed,
                           num_threads=1, verbose=0)
    model.fit([f for f, t in zip(frames, test) if not t], labels[~test])
    predicted = model.predict([f for f, t in zip(frames, test) if t])
    accuracy = float(np.mean(predicted == labels[test]))
    result = {"speaker": args.speaker, "cmvn": args.cmvn, "seed": args.seed, "test_accuracy": round(accuracy, 4),
              "wall_seconds": round(time.perf_counter() - started, 1)}
    print(json.dumps(result), flush=True)
    if args.out:
        with open(args.out, "a") as fh:
            fh.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
