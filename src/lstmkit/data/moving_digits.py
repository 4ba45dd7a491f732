"""Moving digits: handwritten digits bouncing inside a square frame (Srivastava et al., 2015), generated.

Each sequence places ``num_digits`` digit images at random positions with random directions and moves them
``speed`` pixels per frame; a digit that reaches an edge bounces back. Overlapping digits combine by their
pixel-wise maximum. Frames are float32 in 0..1.

The digits come from scikit-learn's bundled 8x8 ``digits`` (no download), upscaled to ``digit_size``, or
from MNIST / Fashion-MNIST when their files are already on this machine. Training sequences use the
source's training images and held-out sequences its test images, so a model is judged on digits it never saw.

Example::

    train_images, test_images = digit_images("digits", size=16)
    frames = moving_digits(train_images, 4, np.random.default_rng(0), length=20)   # (4, 20, 64, 64)
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch.nn import functional as F

from lstmkit.errors import DataError

__all__ = ["digit_images", "moving_digits", "IMAGE_SOURCES"]

log = logging.getLogger(__name__)

IMAGE_SOURCES = ("digits", "mnist", "fashion-mnist")


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    tensor = torch.from_numpy(images.astype(np.float32)).unsqueeze(1)  # (N, 1, h, w)
    if tensor.shape[-1] != size:
        tensor = F.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False)
    return tensor.squeeze(1).clamp(0.0, 1.0).numpy()


def digit_images(source: str = "digits", size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Training and test digit images, float32 (N, size, size) in 0..1.

    ``mnist`` and ``fashion-mnist`` are read only when their files are already here (never downloaded); when
    they are not, the bundled ``digits`` are used instead, with a warning.
    """
    from lstmkit.data import load_source

    if source not in IMAGE_SOURCES:
        raise DataError(f"moving digits source: expected one of {', '.join(IMAGE_SOURCES)}, got {source!r}")
    data = None
    if source != "digits":
        try:
            data = load_source(source, download=False)
        except DataError as exc:
            log.warning("moving digits: %s is not available here (%s); using the bundled digits", source, exc)
    if data is None:
        data = load_source("digits")
    scale = float(data.pixel_max or 1.0)
    return _resize(data.train.x / scale, size), _resize(data.test.x / scale, size)


def moving_digits(images: np.ndarray, n: int, rng: np.random.Generator, length: int = 20, frame_size: int = 64,
                  num_digits: int = 2, speed: float = 3.0) -> np.ndarray:
    """``n`` sequences of ``length`` frames (n, length, frame_size, frame_size), float32 in 0..1.

    Args:
        images: digit images (M, s, s) in 0..1 to draw from, s < frame_size.
        rng: the only source of randomness (images, positions, directions).
        num_digits: digits per sequence.
        speed: pixels moved per frame, in a uniformly random direction.
    """
    size = images.shape[-1]
    if size >= frame_size:
        raise DataError(f"moving digits: expected digits smaller than the frame ({frame_size}), got {size}")
    if length < 1 or num_digits < 1 or n < 0:
        raise DataError(f"moving digits: expected n >= 0, length >= 1 and num_digits >= 1, "
                        f"got {n}, {length}, {num_digits}")
    limit = frame_size - size
    frames = np.zeros((n, length, frame_size, frame_size), dtype=np.float32)
    for i in range(n):
        for _ in range(num_digits):
            image = images[rng.integers(len(images))]
            position = rng.uniform(0, limit, size=2)
            angle = rng.uniform(0, 2 * np.pi)
            velocity = speed * np.array([np.sin(angle), np.cos(angle)])
            for t in range(length):
                row, col = np.rint(position).astype(int)
                window = frames[i, t, row:row + size, col:col + size]
                np.maximum(window, image, out=window)
                position = position + velocity
                for axis in range(2):  # bounce off the edges
                    if position[axis] < 0:
                        position[axis], velocity[axis] = -position[axis], -velocity[axis]
                    elif position[axis] > limit:
                        position[axis], velocity[axis] = 2 * limit - position[axis], -velocity[axis]
    return frames
