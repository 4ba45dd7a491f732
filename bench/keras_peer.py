"""Keras/TensorFlow as a peer in ``bench/engine.py``: the same shapes, built and run the way a Keras user
gets the best of it on a CPU (the training step and the forward pass compiled once with ``tf.function``).

TensorFlow is a bench-only extra (``pip install -e .[bench]``), never a dependency of lstmkit. Every
function returns a runner (a callable doing one step), or a string that says why Keras is not measured.
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np

Runner = Callable[[], None]

_tf = None


def tensorflow(threads: int):
    """TensorFlow, configured once for ``threads`` threads, or a string saying why it is unavailable."""
    global _tf
    if _tf is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        try:
            import tensorflow as tf
        except ImportError as exc:
            return f"Keras not measured: {exc} (pip install -e .[bench])"
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        _tf = tf
    return _tf


def _model(tf, steps: int, features: int, hidden: int, outputs: int, activation: str, num_layers: int,
           bidirectional: bool):
    layers = [tf.keras.Input((steps, features))]
    for layer in range(num_layers):
        lstm = tf.keras.layers.LSTM(hidden, activation=activation, return_sequences=layer < num_layers - 1)
        layers.append(tf.keras.layers.Bidirectional(lstm) if bidirectional else lstm)
    layers.append(tf.keras.layers.Dense(outputs))
    return tf.keras.Sequential(layers)


def training_step(threads: int, x: np.ndarray, y: np.ndarray, hidden: int, classes: int | None,
                  activation: str = "tanh", num_layers: int = 1, bidirectional: bool = False) -> Runner | str:
    """Forward, loss, backward and Adam for a Keras LSTM with a dense head on the last step: cross-entropy
    on logits for ``classes``, else MSE; one ``tf.function``."""
    tf = tensorflow(threads)
    if isinstance(tf, str):
        return tf
    _, steps, features = x.shape
    model = _model(tf, steps, features, hidden, classes or 1, activation, num_layers, bidirectional)
    optimizer = tf.keras.optimizers.Adam(1e-3)
    if classes:
        loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    else:
        loss_fn = tf.keras.losses.MeanSquaredError()
    xt, yt = tf.constant(x), tf.constant(y if classes else y.reshape(-1, 1))

    @tf.function
    def step(inputs, targets):
        with tf.GradientTape() as tape:
            loss = loss_fn(targets, model(inputs, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))

    return lambda: step(xt, yt)


def inference(threads: int, x: np.ndarray, hidden: int, classes: int, activation: str = "tanh") -> Runner | str:
    """The forward pass of the same model, ``training=False``, in one ``tf.function``."""
    tf = tensorflow(threads)
    if isinstance(tf, str):
        return tf
    _, steps, features = x.shape
    model = _model(tf, steps, features, hidden, classes, activation, 1, False)
    xt = tf.constant(x)
    forward = tf.function(lambda inputs: model(inputs, training=False))
    return lambda: forward(xt)


def stream_step(threads: int, hidden: int) -> Runner | str:
    """One step of a Keras ``LSTMCell`` at batch 1 with its state carried in variables, in one
    ``tf.function`` (the closest Keras gets to a stateful step-per-call loop)."""
    tf = tensorflow(threads)
    if isinstance(tf, str):
        return tf
    cell = tf.keras.layers.LSTMCell(hidden)
    x = tf.constant(np.random.default_rng(0).standard_normal((1, hidden)).astype(np.float32))
    h = tf.Variable(tf.zeros((1, hidden)))
    c = tf.Variable(tf.zeros((1, hidden)))
    cell(x, [h, c])  # build the weights

    @tf.function
    def step(inputs):
        output, (h_new, c_new) = cell(inputs, [h, c])
        h.assign(h_new)
        c.assign(c_new)
        return output

    return lambda: step(x)
