"""Metrics against values known by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from xraystudio import metrics


@pytest.fixture
def texture() -> np.ndarray:
    rng = np.random.default_rng(0)
    smooth = ndimage.gaussian_filter(rng.random((96, 96)), 1.0)
    return (0.3 + 0.5 * (smooth - smooth.min()) / np.ptp(smooth)).astype(np.float32)


def box(shape=(96, 96), y=slice(20, 70), x=slice(10, 50)) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[y, x] = True
    return m


def test_psnr_of_a_constant_offset_is_20_db(texture):
    ref = texture.astype(np.float64) * 0.9
    assert metrics.psnr(ref, ref + 0.1) == pytest.approx(20.0, abs=1e-9)
    assert metrics.psnr(ref, ref + 0.1, box()) == pytest.approx(20.0, abs=1e-9)
    assert metrics.psnr(ref, ref + 0.01) == pytest.approx(40.0, abs=1e-6)


def test_psnr_region_sees_only_the_region(texture):
    img = texture.copy()
    img[box()] += 0.1
    assert metrics.psnr(texture, img, ~box()) == math.inf
    assert metrics.psnr(texture, img, box()) == pytest.approx(20.0, abs=1e-4)
    assert 20.0 < metrics.psnr(texture, img) < math.inf


def test_identical_images_give_inf_psnr_and_ssim_one(texture):
    assert metrics.psnr(texture, texture) == math.inf
    assert metrics.ssim(texture, texture) == pytest.approx(1.0)
    assert metrics.ssim(texture, texture, box()) == pytest.approx(1.0)


def test_ssim_region_drops_where_the_damage_is(texture):
    noisy = texture.copy()
    rng = np.random.default_rng(1)
    noisy[box()] = np.clip(noisy[box()] + rng.normal(0, 0.2, box().sum()), 0, 1)
    inside = metrics.ssim(texture, noisy, box())
    far = box(y=slice(80, 96), x=slice(70, 96))
    assert inside < 0.5
    assert metrics.ssim(texture, noisy, far) == pytest.approx(1.0, abs=1e-6)
    assert inside < metrics.ssim(texture, noisy) < 1.0


def test_shape_and_dtype_checks(texture):
    with pytest.raises(ValueError, match="differ in size"):
        metrics.ssim(texture, texture[:50])
    with pytest.raises(ValueError, match="differ in size"):
        metrics.psnr(texture, texture[:, :50])
    with pytest.raises(ValueError, match="float"):
        metrics.psnr((texture * 255).astype(np.uint8), texture)
    with pytest.raises(ValueError, match="region"):
        metrics.psnr(texture, texture, box((10, 10)))
    with pytest.raises(ValueError, match="empty"):
        metrics.ssim(texture, texture, np.zeros_like(texture, bool))


def test_hf_ratio_rewards_texture_and_punishes_blur(texture):
    rng = np.random.default_rng(2)
    real = np.clip(texture + rng.normal(0, 0.05, texture.shape), 0, 1)
    blurred = ndimage.gaussian_filter(real, 2.0)
    lungs = box()
    assert metrics.hf_ratio(real, real, lungs) == pytest.approx(1.0)
    assert metrics.hf_ratio(real, blurred, lungs) < 0.5
    assert metrics.hf_energy(real, lungs) > metrics.hf_energy(blurred, lungs) > 0
    flat = np.full_like(real, 0.5)
    assert math.isnan(metrics.hf_ratio(flat, real, lungs))


def test_nodule_contrast_of_a_bright_disc():
    img = np.full((120, 120), 0.3)
    yy, xx = np.mgrid[:120, :120]
    img[(xx - 60) ** 2 + (yy - 50) ** 2 <= 10**2] += 0.25
    assert metrics.nodule_contrast(img, 60, 50, 10) == pytest.approx(0.25, abs=1e-9)
    assert metrics.nodule_contrast(img, 20, 100, 10) == pytest.approx(0.0, abs=1e-9)
    # Near the border the ring is clipped, not padded.
    img[(xx - 2) ** 2 + (yy - 2) ** 2 <= 6**2] = 0.9
    assert metrics.nodule_contrast(img, 2, 2, 6) == pytest.approx(0.6, abs=1e-9)
    with pytest.raises(ValueError, match="outside"):
        metrics.nodule_contrast(img, 130, 5, 4)
    with pytest.raises(ValueError, match="positive"):
        metrics.nodule_contrast(img, 10, 5, 0)


def test_dice_known_values():
    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    assert metrics.dice(a, b) == 1.0
    a[0:2, 0:5] = True  # 10 pixels
    b[1:3, 0:5] = True  # 10 pixels, 5 shared
    assert metrics.dice(a, b) == pytest.approx(0.5)
    assert metrics.dice(a, a) == 1.0
    assert metrics.dice(a, np.zeros_like(a)) == 0.0
    with pytest.raises(ValueError):
        metrics.dice(a, b[:5])


def test_diversity_is_the_mean_absolute_difference_in_the_region(texture):
    other = texture.copy()
    other[box()] += 0.2
    assert metrics.diversity(texture, other, box()) == pytest.approx(0.2, abs=1e-6)
    assert metrics.diversity(texture, other, ~box()) == 0.0


def test_compare_adds_lung_figures_only_with_lungs(texture):
    img = texture + 0.05
    plain = metrics.compare(texture, img)
    assert set(plain) == {"psnr", "ssim"}
    assert plain["psnr"] == pytest.approx(metrics.psnr(texture, img))
    assert plain["ssim"] == pytest.approx(metrics.ssim(texture, img))
    full = metrics.compare(texture, img, box())
    assert set(full) == {"psnr", "ssim", "psnr_lungs", "ssim_lungs"}
    assert full["psnr_lungs"] == pytest.approx(metrics.psnr(texture, img, box()))
    assert full["ssim_lungs"] == pytest.approx(metrics.ssim(texture, img, box()))
    assert set(metrics.compare(texture, img, np.zeros_like(box()))) == {"psnr", "ssim"}


def test_hf_energy_ignores_brightness(texture):
    region = box()
    flat_dark, flat_bright = np.full_like(texture, 0.1), np.full_like(texture, 0.9)
    assert metrics.hf_energy(flat_dark, region) == pytest.approx(0.0, abs=1e-12)
    assert metrics.hf_energy(flat_bright, region) == pytest.approx(0.0, abs=1e-12)
    assert metrics.hf_energy(texture + 0.1, region) == pytest.approx(
        metrics.hf_energy(texture, region), rel=1e-6
    )
