"""Frames: the Moving-digits generator, SSIM, the copy-last-frame baseline and the ConvLSTM forecaster."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmkit.data.moving_digits import digit_images, moving_digits
from lstmkit.errors import ConfigError, ShapeError
from lstmkit.tasks.frames import copy_last_frame, frame_loss, frame_metrics, load_config, ssim
from lstmkit.models.frame_forecaster import ConvLSTMForecaster, warp


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


def test_metrics_by_predicted_frame():
    target = torch.zeros(2, 3, 1, 16, 16)
    predicted = target.clone()
    predicted[:, 2] = 0.5  # only the third frame is wrong
    metrics = frame_metrics(predicted, target, by_step=True)
    assert metrics["mse_by_step"] == [0.0, 0.0, 0.25]
    assert metrics["ssim_by_step"][:2] == [1.0, 1.0] and metrics["ssim_by_step"][2] < 0.01
    assert metrics["mse"] == pytest.approx(0.25 / 3)


@pytest.mark.parametrize("patch,hidden,head", [(1, [4], "pixels"), (4, [6, 5], "pixels"), (4, [6, 5], "warp")])
def test_forecaster_shapes_and_gradients(patch, hidden, head):
    torch.manual_seed(0)
    model = ConvLSTMForecaster(1, hidden, kernel_size=3, patch=patch, head=head, warp_kernel=5)
    frames = torch.rand(2, 4, 1, 16, 16)
    predicted = model(frames, future=3)
    assert predicted.shape == (2, 3, 1, 16, 16)
    assert 0.0 <= predicted.min() and predicted.max() <= 1.0
    frame_loss(predicted, torch.rand_like(predicted), "bce").backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_warp_moves_each_patch_by_its_kernel():
    frame = torch.zeros(1, 1, 8, 8)
    frame[0, 0, 1, 1] = 1.0  # in the top-left 4x4 patch
    frame[0, 0, 5, 6] = 0.5  # in the bottom-right one
    kernels = torch.zeros(1, 9, 2, 2)
    kernels[0, 4] = 1.0  # identity (the centre) everywhere ...
    kernels[0, 4, 0, 0], kernels[0, 0, 0, 0] = 0.0, 1.0  # ... but the top-left patch reads one row up, one left
    kernels[0, 4, 1, 1], kernels[0, 5, 1, 1] = 0.0, 1.0  # and the bottom-right one reads one column right
    moved = warp(frame, kernels, patch=4)
    expected = torch.zeros(1, 1, 8, 8)
    expected[0, 0, 2, 2] = 1.0  # moved down and right by one
    expected[0, 0, 5, 5] = 0.5  # moved left by one
    torch.testing.assert_close(moved, expected)
    with pytest.raises(ShapeError, match="expected kernels of shape"):
        warp(frame, torch.zeros(1, 9, 3, 3), patch=4)


@pytest.mark.parametrize("channels", [1, 2])
def test_warp_matches_the_neighbourhood_reference(channels):
    g = torch.Generator().manual_seed(0)
    frame = torch.rand(2, channels, 8, 12, dtype=torch.float64, generator=g, requires_grad=True)
    kernels = torch.rand(2, 9, 2, 3, dtype=torch.float64, generator=g, requires_grad=True)
    # the reference: every pixel's 3x3 neighbourhood (unfold) times its 4x4 patch's kernel, summed
    neighbours = torch.nn.functional.unfold(frame, 3, padding=1).view(2, channels, 9, 2, 4, 3, 4)
    reference = (neighbours * kernels[:, None, :, :, None, :, None]).sum(2).reshape(2, channels, 8, 12)
    moved = warp(frame, kernels, patch=4)
    torch.testing.assert_close(moved, reference)
    grad = torch.rand(moved.shape, dtype=torch.float64, generator=g)
    for a, b in zip(torch.autograd.grad(moved, (frame, kernels), grad),
                    torch.autograd.grad(reference, (frame, kernels), grad)):
        torch.testing.assert_close(a, b)


def test_warp_forecaster_keeps_black_frames_black():
    model = ConvLSTMForecaster(1, [4], kernel_size=3, patch=4, head="warp", warp_kernel=3)
    assert torch.equal(model(torch.zeros(1, 3, 1, 8, 8), future=2), torch.zeros(1, 2, 1, 8, 8))
    with pytest.raises(ShapeError, match="divisible by patch=4"):
        ConvLSTMForecaster(1, [4], 3, patch=4)(torch.rand(1, 2, 1, 10, 10), future=1)


def test_frames_config_is_strict(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'model.channels'"):
        load_config(None, ["model.channels=3"])
    with pytest.raises(ConfigError, match=r"\[model\] patch: expected a divisor of \[data\] frame_size"):
        load_config(None, ["model.patch=5"])
    with pytest.raises(ConfigError, match=r"\[model\] warp_kernel: expected an odd integer, got 4"):
        load_config(None, ["model.warp_kernel=4"])
    with pytest.raises(ConfigError, match=r"\[model\] head: expected one of"):
        load_config(None, ["model.head=flow"])


def test_forecaster_argument_errors():
    with pytest.raises(ValueError, match=r"ConvLSTMForecaster: head: expected one of .*, got 'paint'"):
        ConvLSTMForecaster(1, [4], kernel_size=3, patch=4, head="paint")
    with pytest.raises(ValueError, match=r"ConvLSTMForecaster: warp_kernel: expected an odd integer >= 1, got 4"):
        ConvLSTMForecaster(1, [4], kernel_size=3, patch=4, head="warp", warp_kernel=4)
