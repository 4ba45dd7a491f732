"""Time to 88% Fashion-MNIST test accuracy and peak memory: lstmkit's recipe against the seed's Keras model.

Each system trains in its own process (so its peak RSS is its own), one after the other, on the full
60,000 training images, and is scored on the 10,000 test images after every epoch (scoring time is not
counted). Reported per system: seconds of training until the test accuracy first reaches the target,
the epoch, the final accuracy, seconds per epoch, and the peak resident memory of the process.

- Keras: the seed example, ``LSTM(128, activation="relu")`` + ``Dense(10, softmax)``, Adam, batch 128,
  pixels scaled to [0, 1], up to ``--keras-epochs`` epochs.
- lstmkit: ``configs/fashion_mnist.toml`` as shipped, through ``lstmkit.tasks.sequence_model.Model.fit`` (the path
  ``lstmkit train`` runs), without its validation split so both see all 60,000 images.

Run (needs TensorFlow: ``make bench``, or ``pip install -e .[bench]``)::

    python bench/time_to_accuracy.py --json bench/time_to_accuracy.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import machine_info, markdown_table  # noqa: E402

ROOT = Path(__file__).parent.parent


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_keras(epochs: int, target: float) -> dict:
    import tensorflow as tf

    from lstmkit.data import load_source

    source = load_source("fashion-mnist")
    x, y = source.train.x / 255.0, source.train.y
    xt, yt = source.test.x / 255.0, source.test.y
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([tf.keras.Input((28, 28)), tf.keras.layers.LSTM(128, activation="relu"),
                                 tf.keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history, seconds = [], 0.0
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        model.fit(x, y, batch_size=128, epochs=1, verbose=0)
        seconds += time.perf_counter() - start
        accuracy = float((model.predict(xt, batch_size=1024, verbose=0).argmax(-1) == yt).mean())
        history.append({"epoch": epoch, "seconds": seconds, "test_accuracy": accuracy})
        print(f"keras epoch {epoch}: {seconds:.1f} s, test accuracy {accuracy:.4f}", file=sys.stderr)
    return {"history": history, "peak_rss_mb": _peak_rss_mb()}


def run_lstmkit(target: float) -> dict:
    import torch

    from lstmkit.training.callbacks import Callback
    from lstmkit.config import load_config
    from lstmkit.data import load_source
    from lstmkit.tasks.sequence_model import Model
    from lstmkit.training.trainer import predict_outputs

    config = load_config(ROOT / "configs" / "fashion_mnist.toml", ["train.progress=false", "data.val_fraction=0"])
    source = load_source("fashion-mnist")
    model = Model(config)
    history: list[dict] = []
    clock = {"seconds": 0.0, "start": 0.0}

    class ScoreOnTest(Callback):
        """Test accuracy after each epoch; only the training time between the hooks is counted."""

        def on_epoch_start(self, trainer, epoch):
            clock["start"] = time.perf_counter()

        def on_epoch_end(self, trainer, epoch, row):
            clock["seconds"] += time.perf_counter() - clock["start"]
            with torch.no_grad():
                outputs = predict_outputs(trainer.module, model._prepare_dataset(source.test), batch_size=1024)
            accuracy = float((outputs.argmax(-1).numpy() == source.test.y).mean())
            history.append({"epoch": epoch, "seconds": clock["seconds"], "test_accuracy": accuracy})
            print(f"lstmkit epoch {epoch}: {clock['seconds']:.1f} s, test accuracy {accuracy:.4f}", file=sys.stderr)

    model.fit(source.train, callbacks=[ScoreOnTest()])
    return {"history": history, "peak_rss_mb": _peak_rss_mb()}


def first_reaching(history: list[dict], target: float) -> dict | None:
    return next((row for row in history if row["test_accuracy"] >= target), None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=float, default=0.88)
    parser.add_argument("--keras-epochs", type=int, default=20)
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--system", choices=["keras", "lstmkit"], help=argparse.SUPPRESS)  # one child process
    args = parser.parse_args()
    if args.system:
        result = run_keras(args.keras_epochs, args.target) if args.system == "keras" else run_lstmkit(args.target)
        print(json.dumps(result))
        return 0

    results = {}
    for system in ("lstmkit", "keras"):
        proc = subprocess.run([sys.executable, __file__, "--system", system, "--target", str(args.target),
                               "--keras-epochs", str(args.keras_epochs)], capture_output=True, text=True, check=True)
        results[system] = json.loads(proc.stdout.strip().splitlines()[-1])
    rows = []
    keras_hit = first_reaching(results["keras"]["history"], args.target)
    for system, label in (("keras", "Keras seed model: LSTM(128, relu) + Dense(softmax), Adam"),
                          ("lstmkit", "lstmkit configs/fashion_mnist.toml")):
        history = results[system]["history"]
        hit = first_reaching(history, args.target)
        ratio = ("" if hit is None or keras_hit is None else f"{keras_hit['seconds'] / hit['seconds']:.2f}x")
        rows.append({
            "system": label,
            f"s to {args.target:.0%} test acc": "not reached" if hit is None else f"{hit['seconds']:.1f}",
            "at epoch": "-" if hit is None else str(hit["epoch"]),
            "speed-up vs Keras": ratio,
            "s/epoch (mean)": f"{history[-1]['seconds'] / len(history):.2f}",
            "final test acc": f"{history[-1]['test_accuracy']:.4f} ({len(history)} epochs)",
            "peak RSS": f"{results[system]['peak_rss_mb']:.0f} MB",
        })
    info = machine_info()
    print(f"Fashion-MNIST, 60,000 training images, test accuracy after every epoch (target {args.target})")
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    print()
    print(markdown_table(rows))
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    sys.exit(main())
