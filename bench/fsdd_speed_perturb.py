"""A folder for one leave-one-speaker-out run with speed-perturbed copies of the training speakers' recordings.

Speed perturbation (Ko et al. 2015, Kaldi's 3-way 0.9 / 1.0 / 1.1) plays a recording ``a`` times faster, which
shifts its pitch and formants as well as its tempo: a cheap stand-in for more speakers. This script tries it on
FSDD before anything of it is built into lstmkit: it writes ``--out`` with a link to every recording of
``--data`` and, for every speaker but ``--held-out``, two more copies of each recording resampled with
``scipy.signal.resample_poly`` by 1/0.9 and 1/1.1 and written at the original rate, named with index
``1000 + i`` and ``2000 + i`` so that ``{label}_{speaker}_{index}.wav`` still holds. The held-out speaker's
recordings are left as they are, so the test split of ``split = "speaker"`` is the same 500 recordings.

    python bench/fsdd_speed_perturb.py --data ../shared/datasets/fsdd/recordings --held-out george --out /tmp/sp/george
    python bench/spoken_digits.py --data /tmp/sp/george --seeds --speakers george --out /tmp/sp/run-george

(The validation part that ``lstmkit train`` holds out of the training split may then hold a copy of a
recording whose original trains: it only picks the best epoch, and the test speaker has no copies.)
"""

from __future__ import annotations

import argparse
import os
import sys
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from lstmkit.data.audio import read_wav

FACTORS = (0.9, 1.1)


def write(path: Path, samples: np.ndarray, rate: int) -> None:
    """16-bit mono PCM, rounded and clipped."""
    with wave.open(str(path), "wb") as fh:
        fh.setnchannels(1)
        fh.setsampwidth(2)
        fh.setframerate(rate)
        fh.writeframes(np.clip(np.round(samples), -32768, 32767).astype(np.int16).tobytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the FSDD recordings folder")
    parser.add_argument("--held-out", required=True, help="the test speaker, whose recordings get no copies")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for path in sorted(args.data.glob("*.wav")):
        label, speaker, index = path.stem.split("_")
        link = args.out / path.name
        if not link.exists():
            os.symlink(path.resolve(), link)
        if speaker == args.held_out:
            continue
        samples, rate = read_wav(path)  # float32 on the 16-bit scale
        for k, factor in enumerate(FACTORS, start=1):
            ratio = Fraction(factor).limit_denominator(100)  # a times faster: resample by 1 / a
            write(args.out / f"{label}_{speaker}_{int(index) + 1000 * k}.wav",
                  resample_poly(samples.astype(np.float64), ratio.denominator, ratio.numerator), rate)


if __name__ == "__main__":
    main()
