"""The detail ratio: how much fine structure a restoration has next to the ground truth.

``detail_ratio(outputs, truths, masks)`` = (mean over images of the variance of the Laplacian of the
output's luma) / (the same for the ground truth), over the masked pixels (inpainting: the holes) or
the whole image. 0 is perfectly smooth (a flat or harmonic fill, a bicubic blur tends there), 1 is as
rich in high frequencies as the photo; noise or ringing push it above 1. It is a ratio of the two means,
so one photo whose hole happens to be flat (a clear sky) cannot dominate it.

The Laplacian is the 4-neighbour one (``[[0, 1, 0], [1, -4, 1], [0, 1, 0]]``) on BT.601 luma (grey images
as they are); a masked pixel counts only when its whole stencil lies inside the mask, so the seam
between a fill and the known pixels around it is not counted as detail. Scale-free: uint8 or [0, 1]
images give the same ratio. Inputs are what :mod:`resgan.metrics.psnr_ssim` takes (arrays or tensors,
(H, W), (H, W, C) or (C, H, W)); masks are (H, W), non-zero / True = counted.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..errors import ResganError
from .psnr_ssim import _chw, to_y


def _luma(img) -> np.ndarray:
    t = _chw(img)
    if t.shape[0] not in (1, 3):
        raise ResganError(f"the detail ratio takes grey or RGB images, got {t.shape[0]} channels")
    return to_y(t)[0].numpy()


def _interior(mask, shape: tuple[int, int]) -> np.ndarray:
    """Pixels whose 4-neighbour stencil lies inside ``mask`` (the image's border pixels never count)."""
    m = np.asarray(mask.detach().cpu() if isinstance(mask, torch.Tensor) else mask).squeeze().astype(bool)
    if m.shape != shape:
        raise ResganError(f"mask shape {m.shape} does not match the image's {shape}")
    inner = np.zeros_like(m)
    inner[1:-1, 1:-1] = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    return inner


def laplacian_variance(img, mask=None) -> float | None:
    """Variance of the luma's Laplacian over ``mask``'s interior (the whole image without its 1-px
    border when ``mask`` is None); None where no pixel counts (a mask thinner than 3 px)."""
    y = _luma(img)
    if min(y.shape) < 3:
        raise ResganError(f"the detail ratio needs images of at least 3x3 pixels, got {y.shape}")
    lap = y[:-2, 1:-1] + y[2:, 1:-1] + y[1:-1, :-2] + y[1:-1, 2:] - 4 * y[1:-1, 1:-1]
    if mask is None:
        return float(lap.var())
    inner = _interior(mask, y.shape)[1:-1, 1:-1]
    return float(lap[inner].var()) if inner.any() else None


def detail_ratio(outputs: Sequence, truths: Sequence, masks: Sequence | None = None) -> float:
    """Mean Laplacian variance of ``outputs`` over that of ``truths`` (image pairs whose mask has no
    interior pixel are skipped; ``masks=None``: whole images). NaN when the truths have no detail at all."""
    if len(outputs) != len(truths) or (masks is not None and len(masks) != len(outputs)):
        raise ResganError(f"detail_ratio: {len(outputs)} outputs, {len(truths)} truths"
                          + (f", {len(masks)} masks" if masks is not None else ""))
    num = den = 0.0
    counted = 0
    for i, (out, truth) in enumerate(zip(outputs, truths)):
        m = None if masks is None else masks[i]
        a, b = laplacian_variance(out, m), laplacian_variance(truth, m)
        if a is None or b is None:
            continue
        num, den, counted = num + a, den + b, counted + 1
    if not counted:
        raise ResganError("detail_ratio: no image has a masked region of at least 3x3 pixels")
    return num / den if den > 0 else float("nan")
