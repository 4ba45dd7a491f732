"""The seed's MNIST-rows classifier through the scikit-learn estimator: each 28x28 image is read as 28
rows of 28 pixels by an LSTM(128), whose last hidden state goes through a dense softmax layer.

It trains on MNIST or Fashion-MNIST when their files are on this machine (``data_dir``, the Debian package
``dataset-fashion-mnist`` in /usr/share/datasets/fashion-mnist, or lstmkit's cache; nothing is downloaded)
and falls back to scikit-learn's bundled 8x8 digits when neither is.

    python examples/mnist_rows.py                  # about 13 s per epoch on Fashion-MNIST on 2 CPU cores
    EXAMPLE_FAST=1 python examples/mnist_rows.py   # a few seconds: 1,000 images, a small LSTM, one epoch
"""

import os
import time

import numpy as np

from lstmkit import LSTMClassifier
from lstmkit.data import load_source
from lstmkit.errors import LstmkitError

FAST = os.environ.get("EXAMPLE_FAST") == "1"


def load_images():
    """The first of MNIST, Fashion-MNIST and digits whose files are here: (source, name)."""
    for name in ("mnist", "fashion-mnist"):
        try:
            return load_source(name, download=False), name
        except LstmkitError as exc:  # files not on this machine
            print(f"{name}: not available ({exc}); trying the next source")
    return load_source("digits"), "digits"


source, name = load_images()
x_train, y_train = source.train.x, source.train.y  # (N, 28, 28) raw pixels 0..255 (digits: (N, 8, 8), 0..16)
x_test, y_test = source.test.x, source.test.y
labels = np.asarray(source.label_names)
if FAST:
    x_train, y_train, x_test, y_test = x_train[:1000], y_train[:1000], x_test[:300], y_test[:300]
print(f"{name}: {len(x_train)} training and {len(x_test)} test images of {x_train.shape[1]} rows x "
      f"{x_train.shape[2]} pixels")

# The seed model: LSTM(128) -> Dense(10, softmax), Adam. The estimator standardises the pixels with the
# training split's statistics, holds out val_fraction of it and keeps the epoch that did best there.
clf = LSTMClassifier(
    hidden_size=16 if FAST else 128,
    epochs=1 if FAST else 12,
    batch_size=64,
    lr=3e-3,
    schedule="cosine",
    val_fraction=0.1,
    random_state=0,
    num_threads=int(os.environ.get("EXAMPLE_THREADS", "0")),
    verbose=0 if FAST else 1,
)
started = time.perf_counter()
clf.fit(x_train, labels[y_train])  # labels by name: "T-shirt/top", "Trouser", ... or "0".."9"
print(f"trained {len(clf.history_)} epoch(s) in {time.perf_counter() - started:.1f} s; "
      f"best epoch {clf.best_epoch_} (validation accuracy {clf.history_[clf.best_epoch_ - 1]['val_accuracy']:.4f})")

accuracy = clf.score(x_test, labels[y_test])
print(f"test accuracy {accuracy:.4f}")
for image, truth in zip(x_test[:3], labels[y_test[:3]]):
    proba = clf.predict_proba(image[None])[0]
    print(f"  true {truth:>12}   predicted {clf.classes_[proba.argmax()]:>12}   p={proba.max():.3f}")
assert accuracy > 1.5 / len(labels), "the classifier should beat chance"
