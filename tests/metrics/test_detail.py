"""The detail ratio (resgan.metrics.detail): smooth fills score ~0, the truth itself 1, noise above 1."""

import numpy as np
import pytest
import torch

from resgan.errors import ResganError
from resgan.metrics.detail import detail_ratio, laplacian_variance

skimage_data = pytest.importorskip("skimage.data", reason="the test photos come from scikit-image")


@pytest.fixture(scope="module")
def photos():
    return [skimage_data.astronaut()[100:228, 150:310], skimage_data.coffee()[:128, :160]]


def hole_mask(shape, top=30, left=40, h=60, w=70):
    m = np.zeros(shape[:2], bool)
    m[top:top + h, left:left + w] = True
    return m


def test_identical_is_one_smooth_fills_near_zero_noise_above_one(photos):
    from resgan.restore.ffc import pushpull_fill

    masks = [hole_mask(p.shape) for p in photos]
    assert detail_ratio(photos, photos, masks) == 1.0
    assert detail_ratio(photos, photos) == 1.0
    flat = [np.where(m[:, :, None], p[m].mean(0).astype(np.uint8), p) for p, m in zip(photos, masks)]
    assert detail_ratio(flat, photos, masks) == 0.0
    harmonic = []
    for p, m in zip(photos, masks):
        x = torch.from_numpy(p.transpose(2, 0, 1).astype(np.float32) / 255)[None]
        f = pushpull_fill(x, torch.from_numpy(m)[None, None], 30)[0].numpy().transpose(1, 2, 0)
        harmonic.append(np.round(f * 255).astype(np.uint8))
    assert detail_ratio(harmonic, photos, masks) < 0.05  # a smooth fill: ~0 (8-bit rounding leaves a little)
    rng = np.random.default_rng(0)
    noisy = [np.clip(p + rng.normal(0, 20, p.shape), 0, 255).astype(np.uint8) for p in photos]
    assert detail_ratio(noisy, photos, masks) > 1.2
    # whole images: a 4x box blur loses most of the detail; scale-free ([0, 1] floats give the same ratio)
    chw = [torch.from_numpy(p.transpose(2, 0, 1)).float()[None] for p in photos]
    blur = [torch.nn.functional.avg_pool2d(x, 4, 1, 2)[0, :, :-1, :-1] for x in chw]
    r = detail_ratio(blur, photos)
    assert 0 < r < 0.2
    assert detail_ratio([b / 255 for b in blur], [p.astype(np.float32) / 255 for p in photos]) == pytest.approx(r)


def test_only_the_hole_interior_counts(photos):
    p = photos[0]
    m = hole_mask(p.shape)
    seam = p.copy()
    seam[m] = 0  # a black fill: a strong seam at the hole's edge, nothing inside
    assert laplacian_variance(seam, m) == 0.0
    outside = p.copy()
    outside[~m] = 0  # what lies outside the hole never matters
    assert laplacian_variance(outside, m) == laplacian_variance(p, m)
    thin = np.zeros(p.shape[:2], bool)
    thin[50, 10:100] = True  # 1 px wide: no interior pixel
    assert laplacian_variance(p, thin) is None
    assert detail_ratio([p, p], [p, p], [thin, m]) == 1.0
    with pytest.raises(ResganError, match="no image has a masked region"):
        detail_ratio([p], [p], [thin])
    with pytest.raises(ResganError, match="mask shape"):
        detail_ratio([p], [p], [m[:-1]])
    with pytest.raises(ResganError, match="1 outputs, 2 truths"):
        detail_ratio([p], [p, p])
