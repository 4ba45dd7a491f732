"""configs/spoken_digits.toml on the real FSDD recordings: the official split over several seeds, and
leave-one-speaker-out (each speaker in turn is the test split), with each run's confusion matrix.

Each run is ``lstmkit train`` exactly as the README gives it, one process after another (one thread each by
default, so the runs do not fight over the cores). Prints a Markdown table and writes every number (with the
command, wall time and confusion matrices) to ``--out``/results.json.

    python bench/spoken_digits.py --data ../shared/datasets/fsdd/recordings --seeds 0 1 2 --out runs/fsdd

``--set`` adds a setting to every run, e.g. per-recording cepstral mean normalisation:

    python bench/spoken_digits.py --data ../shared/datasets/fsdd/recordings --seeds 0 --set data.cmn=mean --out runs/fsdd-cmn
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import machine_info

ROOT = Path(__file__).resolve().parent.parent
SPEAKERS = ["george", "jackson", "nicolas", "theo", "yweweler"]


def train(name: str, out: Path, settings: list[str], threads: int) -> dict:
    """One ``lstmkit train`` run; its metrics, confusion matrix, command and wall time."""
    command = [sys.executable, "-m", "lstmkit", "train", str(ROOT / "configs" / "spoken_digits.toml"),
               "--out", str(out / name), "--set", "train.report=false", "--set", "train.tensorboard=false",
               "--set", f"train.num_threads={threads}"]
    for setting in settings:
        command += ["--set", setting]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    metrics = json.loads((out / name / "metrics.json").read_text())
    report = json.loads((out / name / "evaluation.json").read_text())
    shown = ["lstmkit", "train", "configs/spoken_digits.toml"] + [f"--set {s}" for s in settings]
    return {"name": name, "command": " ".join(shown), "wall_seconds": round(seconds, 1),
            "test_accuracy": metrics["test_accuracy"], "test_f1_macro": metrics["test_f1_macro"],
            "confusion_matrix": report["confusion_matrix"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the FSDD recordings folder")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "fsdd")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2], help="seeds of the official split")
    parser.add_argument("--speakers", nargs="*", default=SPEAKERS, help="speakers held out in turn (seed 0)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting added to every run, as lstmkit train --set (repeatable)")
    args = parser.parse_args()
    data = [f"data.path={Path(args.data).resolve()}", *args.settings]
    runs = [train(f"official-seed{seed}", args.out, data + [f"train.seed={seed}"], args.threads)
            for seed in args.seeds]
    runs += [train(f"speaker-{speaker}", args.out, data + ["data.split=speaker", f'data.test_speakers=["{speaker}"]'],
                   args.threads) for speaker in args.speakers]
    results = {"machine": machine_info(), "load_average_at_end": os.getloadavg(), "runs": runs}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print("| run | test accuracy | macro F1 | wall time (s) |\n|---|---|---|---|")
    for run in runs:
        print(f"| {run['name']} | {run['test_accuracy']:.4f} | {run['test_f1_macro']:.4f} | {run['wall_seconds']} |")
    official = [r["test_accuracy"] for r in runs if r["name"].startswith("official")]
    if len(official) > 1:
        print(f"\nofficial split over {len(official)} seeds: mean {statistics.mean(official):.4f}, "
              f"min {min(official):.4f}, max {max(official):.4f}")
    for run in runs:
        print(f"\n{run['name']} confusion matrix (rows: true digit, columns: predicted):")
        for digit, row in enumerate(run["confusion_matrix"]):
            print(f"  {digit}: " + " ".join(f"{v:3d}" for v in row))


if __name__ == "__main__":
    main()
