"""PSNR and SSIM for restoration results, computed as BasicSR reports them: the one implementation
that ``resgan evaluate``, the restore task's validation and the benchmarks all call.

Images are (C, H, W), (H, W, C) or (N, C, H, W) arrays or tensors, uint8 on the 0-255 scale by
default, or any range with its ``peak`` (the restore task's [0, 1] tensors: ``peak=1.0``). ``crop_border``
pixels are removed on every side first. ``y=True`` measures the luma channel only (ITU-R BT.601,
``16 + (65.481 R + 128.553 G + 24.966 B) / 255``, not rounded), the figure most SR papers quote.
SSIM: Gaussian window 11x11, sigma 1.5, 'valid' filtering, C1 = (0.01 * 255)^2, C2 = (0.03 * 255)^2,
averaged over channels; all in float64.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

from ..errors import ResganError


def _chw(img) -> torch.Tensor:
    if isinstance(img, torch.Tensor):
        t = img.detach().cpu()
    else:
        a = np.asarray(img)
        t = torch.from_numpy(a if a.flags.writeable else a.copy())  # read-only arrays, e.g. from a PIL image
    if t.dim() == 4:  # a batch: its images side by side as channels (the same mean over pixels)
        t = t.reshape(-1, *t.shape[2:])
    if t.dim() == 2:
        t = t[None]
    if t.dim() != 3:
        raise ResganError(f"an image must be (C, H, W), (H, W, C) or (N, C, H, W), got shape {tuple(t.shape)}")
    if t.shape[0] not in (1, 3) and t.shape[-1] in (1, 3):
        t = t.permute(2, 0, 1)
    return t.double()


def to_y(img: torch.Tensor) -> torch.Tensor:
    """RGB (3, H, W) on 0-255 -> Y (1, H, W) on 16-235 (grey images pass through)."""
    if img.shape[0] == 1:
        return img
    r, g, b = img[0], img[1], img[2]
    return (16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0)[None]


def _prepare(img, ref, crop_border: int, y: bool, peak: float) -> tuple[torch.Tensor, torch.Tensor]:
    if y and peak != 255.0:
        raise ResganError("y=True measures BT.601 luma of 0-255 images (peak 255)")
    a, b = _chw(img), _chw(ref)
    if y and a.shape[0] not in (1, 3):
        raise ResganError(f"y=True measures one grey or RGB image, got {a.shape[0]} channels")
    if a.shape != b.shape:
        raise ResganError(f"image shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    if isinstance(crop_border, bool) or not isinstance(crop_border, numbers.Integral) or crop_border < 0:
        raise ResganError(f"crop border must be a whole number of pixels >= 0, got {crop_border!r}")
    if crop_border:
        c = int(crop_border)
        if 2 * c >= min(a.shape[1:]):
            raise ResganError(f"a crop border of {c} pixels leaves nothing of a {a.shape[2]}x{a.shape[1]} image "
                              f"(at most {(min(a.shape[1:]) - 1) // 2})")
        a, b = a[:, c:-c, c:-c], b[:, c:-c, c:-c]
    if y:
        a, b = to_y(a), to_y(b)
    return a, b


def psnr(img, ref, crop_border: int = 0, y: bool = False, peak: float = 255.0) -> float:
    """PSNR in dB (inf for identical images)."""
    a, b = _prepare(img, ref, crop_border, y, peak)
    mse = float(((a - b) ** 2).mean())
    return math.inf if mse == 0 else 10.0 * math.log10(peak**2 / mse)


def gaussian_1d(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """'valid' correlation of (C, H, W) with the separable window outer(g, g)."""
    from scipy.ndimage import correlate1d

    r = len(g) // 2
    out = correlate1d(correlate1d(img, g, axis=1, mode="constant"), g, axis=2, mode="constant")
    return out[:, r:-r, r:-r]


def ssim(img, ref, crop_border: int = 0, y: bool = False, peak: float = 255.0) -> float:
    """Mean SSIM (per channel, then averaged)."""
    a, b = _prepare(img, ref, crop_border, y, peak)
    if min(a.shape[1:]) < 11:
        raise ResganError("SSIM needs images of at least 11x11 pixels (after the border crop)")
    x, z = a.numpy(), b.numpy()
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    g = gaussian_1d()
    mu_x, mu_z = _filter_valid(x, g), _filter_valid(z, g)
    sxx = _filter_valid(x * x, g) - mu_x**2
    szz = _filter_valid(z * z, g) - mu_z**2
    sxz = _filter_valid(x * z, g) - mu_x * mu_z
    m = ((2 * mu_x * mu_z + c1) * (2 * sxz + c2)) / ((mu_x**2 + mu_z**2 + c1) * (sxx + szz + c2))
    return float(m.mean(axis=(1, 2)).mean())
