"""Frames: the Moving-digits generator, SSIM, the copy-last-frame baseline and the ConvLSTM forecaster."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmkit.data.moving_digits import digit_images, moving_digits
from lstmkit.errors import ConfigError, ShapeError
from lstmkit.frames import copy_last_frame, frame_metrics, load_config, ssim
from lstmkit.models.frame_forecaster import ConvLSTMForecaster


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def images():
    return digit_images("digits", size=12)


def test_moving_digits_repeat_under_a_seed(images):
    train, test = images
    assert train.shape[1:] == (12, 12) and 0.0 <= train.min() and train.max() <= 1.0
    a = moving_digits(train, 3, np.random.default_rng(5), length=6, frame_size=32, num_digits=2, speed=2.5)
    b = moving_digits(train, 3, np.random.default_rng(5), length=6, frame_size=32, num_digits=2, speed=2.5)
    c = moving_digits(train, 3, np.random.default_rng(6), length=6, frame_size=32, num_digits=2, speed=2.5)
    assert a.shape == (3, 6, 32, 32) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert 0.0 <= a.min() and a.max() <= 1.0 and (a.reshape(3, 6, -1).max(-1) > 0.5).all()  # a digit in every frame


def test_digits_move_and_stay_inside_the_frame(images):
    train, _ = images
    frames = moving_digits(train, 1, np.random.default_rng(0), length=40, frame_size=32, num_digits=1, speed=4.0)[0]
    mass = frames.sum(axis=(1, 2))
    assert np.allclose(mass, mass[0], rtol=1e-5)  # the whole digit is inside in every frame (it bounces)
    assert not np.array_equal(frames[0], frames[1])


def test_unavailable_mnist_falls_back_to_the_bundled_digits(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))  # no cache there
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    train, test = digit_images("mnist", size=12)
    assert train.shape[1:] == (12, 12) and len(train) + len(test) > 0


def test_ssim_of_identical_frames_is_one_and_lower_otherwise():
    g = torch.Generator().manual_seed(0)
    frames = torch.rand(4, 3, 1, 32, 32, generator=g)
    torch.testing.assert_close(ssim(frames, frames), torch.ones(4, 3, 1))
    noisy = (frames + 0.2 * torch.randn(frames.shape, generator=g)).clamp(0, 1)
    assert (ssim(frames, noisy) < 0.95).all()
    assert (ssim(frames, 1 - frames) < 0).all()  # inverted structure
    with pytest.raises(ValueError, match="expected two tensors of one shape"):
        ssim(frames, frames[:, :2])


def test_copy_last_frame_baseline():
    inputs = torch.rand(2, 3, 1, 16, 16)
    baseline = copy_last_frame(inputs, 5)
    assert baseline.shape == (2, 5, 1, 16, 16)
    assert torch.equal(baseline[:, 4], inputs[:, -1])
    assert frame_metrics(baseline, baseline) == {"mse": 0.0, "ssim": pytest.approx(1.0)}


@pytest.mark.parametrize("patch,hidden", [(1, [4]), (4, [6, 5])])
def test_forecaster_shapes_and_gradients(patch, hidden):
    torch.manual_seed(0)
    model = ConvLSTMForecaster(1, hidden, kernel_size=3, patch=patch)
    frames = torch.rand(2, 4, 1, 16, 16)
    logits = model(frames, future=3)
    assert logits.shape == (2, 3, 1, 16, 16)
    logits.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    with pytest.raises(ShapeError, match="divisible by patch=4"):
        ConvLSTMForecaster(1, [4], 3, patch=4)(torch.rand(1, 2, 1, 10, 10), future=1)


def test_frames_config_is_strict(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'model.channels'"):
        load_config(None, ["model.channels=3"])
    with pytest.raises(ConfigError, match=r"\[model\] patch: expected a divisor of \[data\] frame_size"):
        load_config(None, ["model.patch=5"])
