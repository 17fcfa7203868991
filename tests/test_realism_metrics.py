"""The whole-film realism measures on synthetic data: grain (NPS), texture at a size, nearest
training film, and the classifier two-sample test."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from xraystudio.evaluation import memorisation, texture
from xraystudio.evaluation.realism import auc, two_sample_auc, zscore


def _noise(rng: np.random.Generator, shape=(256, 256), sigma: float = 0.0) -> np.ndarray:
    n = rng.standard_normal(shape)
    return ndimage.gaussian_filter(n, sigma) if sigma else n


def test_nps_of_white_noise_is_flat_at_its_variance_and_of_blurred_noise_falls() -> None:
    rng = np.random.default_rng(0)
    mask = np.ones((256, 256), bool)
    # A slow tilt and curvature (lung shading) is taken out by the detrending.
    yy, xx = np.mgrid[0:256, 0:256] / 256
    shading = 3 * xx + 2 * (yy - 0.5) ** 2
    freqs, white, n = texture.lung_nps(0.5 + 0.1 * _noise(rng) + shading, mask, 64)
    assert n == 49 and freqs[0] == pytest.approx(1 / 64) and freqs[-1] == 0.5
    bands = texture.band_means(freqs, white)
    np.testing.assert_allclose(bands, 0.01, rtol=0.15)
    _, blurred, _ = texture.lung_nps(_noise(rng, sigma=1.5), mask, 64)
    b = texture.band_means(freqs, blurred)
    assert b[0] > b[1] > b[2] > 10 * b[3]


def test_rois_lie_wholly_inside_the_mask() -> None:
    mask = np.zeros((100, 120), bool)
    mask[10:60, 20:110] = True
    corners = texture.flat_rois(mask, 16)
    assert corners and all(mask[y:y + 16, x:x + 16].all() for y, x in corners)
    assert len(corners) == len(range(16, 44 + 1, 8)) * len(range(24, 94 + 1, 8))
    assert texture.flat_rois(np.zeros((50, 50), bool), 16) == []
    freqs, nps, n = texture.lung_nps(np.zeros((50, 50)), np.zeros((50, 50), bool), 16)
    assert n == 0 and np.isnan(nps).all()


def test_compare_nps_pools_films_and_judges_every_band() -> None:
    freqs = np.arange(1, 33) / 64
    flat = np.full(32, 2.0)
    same = texture.compare_nps([(flat, 3), (flat, 1)], [(flat * 1.2, 2)], freqs)
    assert same["ratio"] == pytest.approx([1.2] * 4) and same["within_factor"] is True
    assert same["rois_real"] == 4
    smooth = texture.compare_nps([(flat, 3)], [(flat * np.where(freqs > 0.25, 0.1, 1.0), 2)],
                                 freqs)
    assert smooth["ratio"][-1] < 0.2 and smooth["within_factor"] is False
    empty = texture.compare_nps([(flat, 3)], [(flat, 0)], freqs)
    assert empty["within_factor"] is None


def test_texture_ratio_at_each_size_sees_what_an_upsampled_film_lacks() -> None:
    """A film upsampled from 64 px keeps most of its texture at 64 px (bicubic interpolation
    and the box average back soften the finest 64 px detail a little) and little at 256."""
    from xraystudio.synthesis.condition import resize

    rng = np.random.default_rng(1)
    real = np.clip(0.5 + 0.1 * _noise(rng, sigma=0.7), 0, 1).astype(np.float32)
    lungs = np.zeros(real.shape, bool)
    lungs[32:224, 32:224] = True
    up = resize(resize(real, (64, 64)), (256, 256), smooth=True)
    assert texture.texture_ratio(real, real, lungs, 256) == pytest.approx(1.0)
    coarse, fine = (texture.texture_ratio(real, up, lungs, s) for s in (64, 256))
    assert 0.6 < coarse < 1.1 and fine < 0.3 and coarse > 3 * fine


def test_nearest_distance_finds_a_copy_and_ignores_exposure() -> None:
    rng = np.random.default_rng(2)
    library = [_noise(rng, (200, 180), sigma=4) for _ in range(5)]
    thumbs = np.stack([memorisation.thumbnail(f) for f in library])
    copy = memorisation.thumbnail(0.3 + 2.0 * library[3] + 0.05 * _noise(rng, (200, 180)))
    new = memorisation.thumbnail(_noise(rng, (200, 180), sigma=4))
    d = memorisation.nearest_distances(np.stack([copy, new]), thumbs)
    assert d[0] < 0.05 and d[1] > 0.5
    same = rng.uniform(0.05, 0.2, (2, 30))
    s = memorisation.summary(same[0], same[1])
    assert s["not_below_real"] is True and s["generated_median"] == pytest.approx(np.median(same[0]))
    copies = memorisation.summary(np.r_[same[0][:20], np.full(10, 0.01)], same[1])
    assert copies["not_below_real"] is False and copies["closer_than_every_real"] == 10


def test_auc_counts_pairs() -> None:
    assert auc(np.array([0.1, 0.2]), np.array([0.3, 0.4])) == 1.0
    assert auc(np.array([0.3]), np.array([0.3])) == 0.5


def _films(rng: np.random.Generator, n: int, sigma: float) -> list[np.ndarray]:
    return [zscore(_noise(rng, (32, 32), sigma)) for _ in range(n)]


def test_two_sample_test_is_near_chance_on_one_distribution_and_sure_on_two() -> None:
    import torch

    torch.set_num_threads(1)
    rng = np.random.default_rng(3)
    groups = [f"c{i}" for i in range(24)]
    same = two_sample_auc(_films(rng, 24, 1.0), groups, _films(rng, 24, 1.0), groups,
                         steps=40, batch=16)
    differ = two_sample_auc(_films(rng, 24, 1.0), groups, _films(rng, 24, 0.0), groups,
                           steps=40, batch=16)
    assert 0.25 < same < 0.75 and differ > 0.95


def test_two_sample_test_scores_a_film_by_its_patches_and_takes_large_films() -> None:
    import torch

    torch.set_num_threads(1)
    rng = np.random.default_rng(4)
    groups = [f"c{i}" for i in range(12)]

    def stacks(sigma: float) -> list[np.ndarray]:
        return [np.stack(_films(rng, 4, sigma)) for _ in range(12)]

    assert two_sample_auc(stacks(1.0), groups, stacks(0.0), groups, steps=30, batch=16) > 0.95
    big = [zscore(_noise(rng, (160, 160), s)) for s in [1.0] * 8 + [0.0] * 8]
    g = [f"c{i}" for i in range(8)]
    assert two_sample_auc(big[:8], g, big[8:], g, steps=30, batch=8) > 0.9
