"""Degradations: seeded, measurable, composable."""

import numpy as np
import pytest
import torch

from resgan.metrics.psnr_ssim import psnr, ssim
from resgan.restore import degradations as dg

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny nets: one thread (conftest)


def clean(n=2, c=1, h=64, w=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, c, h // 8, w // 8, generator=g)
    return torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)


def test_same_seed_same_degradation():
    x = clean(c=3)
    for fn in (lambda g: dg.add_gaussian_noise(x, (5, 50), g)[0], lambda g: dg.add_poisson_noise(x, (10, 50), g),
               lambda g: dg.gaussian_blur(x, (0.5, 3.0), g), lambda g: dg.realworld(x, g),
               lambda g: dg.blur(x, dg.random_blur_kernels(2, generator=g))):
        a, b = fn(torch.Generator().manual_seed(3)), fn(torch.Generator().manual_seed(3))
        assert torch.equal(a, b)
        assert not torch.equal(a, fn(torch.Generator().manual_seed(4)))
    m1 = dg.random_mask(64, 64, np.random.default_rng(1))
    assert np.array_equal(m1, dg.random_mask(64, 64, np.random.default_rng(1)))
    j1 = dg.jpeg(x, (10, 90), np.random.default_rng(5))
    assert torch.equal(j1, dg.jpeg(x, (10, 90), np.random.default_rng(5)))


@pytest.mark.parametrize("sigma", [5.0, 25.0, 50.0])
def test_measured_noise_sigma(sigma):
    x = clean(n=4, h=128, w=128)
    y, s = dg.add_gaussian_noise(x, sigma, torch.Generator().manual_seed(0))
    measured = (y - x).std().item() * 255
    assert abs(measured - sigma) / sigma < 0.02
    assert torch.allclose(s, torch.full((4,), sigma / 255))


def test_blind_sigma_range_and_poisson():
    x = clean(n=64, h=32, w=32)
    _, s = dg.add_gaussian_noise(x, (10, 30), torch.Generator().manual_seed(0))
    assert (s * 255).min() >= 10 and (s * 255).max() <= 30 and (s * 255).std() > 3
    y = dg.add_poisson_noise(torch.full((1, 1, 128, 128), 0.5), 20.0, torch.Generator().manual_seed(0))
    # Poisson: variance of counts = mean -> std of y = sqrt(0.5 * 20) / 20
    assert abs(y.std().item() - (0.5 * 20) ** 0.5 / 20) < 0.01 and abs(y.mean().item() - 0.5) < 0.01


def test_blur_kernels_and_resize():
    for k in (dg.gaussian_kernel(2.0), dg.motion_kernel(9, 30, 21)):
        assert abs(k.sum().item() - 1) < 1e-5 and (k >= 0).all()
    x = clean(c=3)
    assert torch.allclose(dg.blur(torch.full_like(x, 0.3), dg.gaussian_kernel(2.0)), torch.full_like(x, 0.3), atol=1e-6)
    b = dg.gaussian_blur(x, 2.0)
    assert (b - x).abs().mean() > 0 and b.std() < x.std()
    for s in (2, 3, 4):
        lr = dg.bicubic_down(clean(h=48, w=48), s)
        assert lr.shape[-2:] == (48 // s, 48 // s)
    with pytest.raises(Exception, match="scale"):
        dg.bicubic_down(x, 5)


def test_mask_hole_ratios_within_bounds():
    rng = np.random.default_rng(0)
    for kind in ("strokes", "boxes", "mixed"):
        ratios = [dg.random_mask(128, 128, rng, kind).mean() for _ in range(30)]
        assert min(ratios) > 0 and max(ratios) <= 0.6, kind
    widths = {w: np.mean([dg.stroke_mask(256, 256, np.random.default_rng(i), w).mean() for i in range(20)])
              for w in ("thin", "medium", "thick")}
    assert widths["thin"] < widths["medium"] < widths["thick"]
    m = dg.random_masks(3, 32, 48, rng)
    assert m.shape == (3, 1, 32, 48) and set(m.unique().tolist()) <= {0.0, 1.0}


def test_mask_folder(tmp_path):
    from PIL import Image
    a = np.zeros((40, 40), np.uint8)
    a[10:20, 10:30] = 255
    Image.fromarray(a).save(tmp_path / "m1.png")
    mf = dg.MaskFolder(tmp_path)
    m = mf.sample(20, 20, np.random.default_rng(0))
    assert m.shape == (20, 20) and abs(m.mean() - a.mean() / 255) < 0.05


def test_jpeg_quality_changes_error():
    x = clean(n=1, c=3, h=96, w=96) * 0.6 + 0.2 * torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    err = {q: (dg.jpeg(x, q) - x).abs().mean().item() for q in (10, 50, 95)}
    assert err[10] > err[50] > err[95] > 0
    assert psnr(dg.jpeg(x, 95), x, peak=1.0) > psnr(dg.jpeg(x, 10), x, peak=1.0) + 3


def test_jpeg_quality_draws():
    rng = np.random.default_rng(0)
    uniform = np.array([dg.jpeg_quality((5, 95), rng) for _ in range(4000)])
    low = np.array([dg.jpeg_quality((5, 95), rng, "low") for _ in range(4000)])
    for q in (uniform, low):
        assert q.min() == 5 and q.max() <= 95 and q.max() >= 90
    assert abs((uniform <= 10).mean() - 6 / 91) < 0.02
    assert abs((low <= 10).mean() - np.sqrt(6 / 91)) < 0.03  # P(lo + 91 u^2 < 11) = sqrt(6 / 91)
    assert np.median(low) < 35 < np.median(uniform)
    assert dg.jpeg_quality(40, rng, "low") == 40


def test_psnr_ssim():
    x = clean(c=1)
    assert ssim(x, x, peak=1.0) == pytest.approx(1.0)
    y, _ = dg.add_gaussian_noise(x, 25.0, torch.Generator().manual_seed(0))
    assert psnr(y, x, peak=1.0) == pytest.approx(20 * np.log10(255 / 25), abs=0.2)
    assert ssim(y, x, peak=1.0) < 0.9
