"""Source ``digits``: scikit-learn's bundled 8x8 handwritten digits, each image read as 8 rows of 8 pixels.

1797 images with values 0..16, no download. The train/test split is fixed (stratified, 25% test,
seed 0), so every run, machine and saved model sees the same test set.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from lstmkit.data.base import ArrayDataset, SourceData, register_source

__all__ = ["TEST_FRACTION", "SPLIT_SEED", "load_digits_source"]

log = logging.getLogger(__name__)

TEST_FRACTION = 0.25
SPLIT_SEED = 0


@register_source("digits")
def load_digits_source(data_dir: Path | None, download: bool) -> SourceData:
    """x: (N, 8, 8) float32 in 0..16 (row r of the image is step r); y: the digit 0..9."""
    if data_dir is not None:
        log.info("digits: the data ships with scikit-learn; ignoring data_dir %s", data_dir)
    bunch = load_digits()
    images = bunch.images.astype(np.float32)  # (1797, 8, 8)
    labels = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=TEST_FRACTION, stratify=labels, random_state=SPLIT_SEED
    )
    return SourceData(
        train=ArrayDataset(x_train, y_train),
        test=ArrayDataset(x_test, y_test),
        label_names=[str(digit) for digit in range(10)],
        image_shape=(8, 8),
        pixel_max=16.0,
        name="digits",
    )
