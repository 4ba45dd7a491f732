"""Streaming inference: feed an image to a trained LSTM one row at a time and watch its answer form.

A classifier with a unidirectional LSTM, no conv front end and the ``last`` readout can stream: its output
after row t is the whole-sequence prediction for the first t rows. This trains a tiny one on the bundled
8x8 digits, then runs a test image through ``LSTMStream`` (lstmkit's inference path: the state is kept
inside and each step is one call) row by row, and checks that the last step equals ``predict_proba`` on
the whole image. ``lstmkit serve`` does the same per session (``POST /v1/sessions/{id}/step``).

    python examples/streaming.py
    EXAMPLE_FAST=1 python examples/streaming.py    # fewer epochs
"""

import os

import numpy as np
import torch

from lstmkit import LSTMClassifier
from lstmkit.data import load_source

FAST = os.environ.get("EXAMPLE_FAST") == "1"

source = load_source("digits")  # (N, 8, 8): 8 rows of 8 pixels
clf = LSTMClassifier(hidden_size=32, epochs=2 if FAST else 15, lr=1e-2, random_state=0,
                     num_threads=int(os.environ.get("EXAMPLE_THREADS", "0")), verbose=0)
clf.fit(source.train.x, source.train.y)
print(f"test accuracy {clf.score(source.test.x, source.test.y):.4f}")

network = clf.model_.module  # lstmkit.models.SequenceClassifier, in evaluation mode
assert network.streaming_unsupported_reason() is None
image, truth = source.test.x[0], source.test.y[0]
rows = clf.model_.standardizer.transform(image)  # the preprocessing predict applies: (8, 8) float32

stream = network.lstm.stream()  # LSTMStream: one sequence, state (h, c) kept between steps
print(f"a test image of a {truth}, fed one row at a time:")
with torch.no_grad():
    for t, row in enumerate(rows):
        h_t = stream.step(torch.from_numpy(row))  # (H,): the top layer's output after this row
        proba = torch.softmax(network.head(h_t), dim=-1).numpy()  # (10,)
        top = proba.argsort()[::-1][:3]
        print(f"  after row {t + 1}: " + "  ".join(f"{clf.classes_[k]} {proba[k]:.3f}" for k in top))

whole = clf.predict_proba(image[None])[0]
np.testing.assert_allclose(proba, whole, rtol=1e-4, atol=1e-6)
print(f"the last step equals the whole-image prediction: {clf.classes_[whole.argmax()]} "
      f"(max difference {np.abs(proba - whole).max():.1e})")

# The autograd-friendly step API gives the same, with the state passed explicitly.
state = None
with torch.no_grad():
    for row in rows:
        logits, state = network.step(torch.from_numpy(row)[None], state)
np.testing.assert_allclose(torch.softmax(logits, -1)[0].numpy(), whole, rtol=1e-4, atol=1e-6)
