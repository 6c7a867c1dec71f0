"""Inception input preprocessing, identical to torch-fidelity's: uint8 images, TensorFlow 1.x
bilinear resize to 299x299 (``align_corners=False``, no half-pixel offset: source coordinate =
destination index * in/out, computed in float32 as torch-fidelity's ``interpolate_bilinear_2d_like_tensorflow1x``
does), then ``(x - 128) / 128``; grey images are replicated to 3 channels.

The resize is separable: interpolating the rows first and then the columns gives bit-for-bit the
values of the reference's four-corner formula, since the reference lerps along x first as well.
Grey images are resized once and replicated afterwards (the same numbers, a third of the work).
"""

from __future__ import annotations

import torch

from ..errors import ResganError

INCEPTION_SIZE = 299


def _axis(in_size: int, out_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(lo index, hi index, fraction) per output coordinate, TF1 semantics, float32 arithmetic."""
    scale = torch.tensor(in_size / out_size, dtype=torch.float32)
    grid = torch.arange(out_size, dtype=torch.float32) * scale
    lo = grid.long()
    hi = (lo + 1).clamp_max(in_size - 1)
    frac = grid - lo.float()
    return lo.to(device), hi.to(device), frac.to(device)


def resize_tf1x(x: torch.Tensor, size: int | tuple[int, int] = INCEPTION_SIZE) -> torch.Tensor:
    """Bilinear resize of a float (N, C, H, W) batch the way TensorFlow 1.x ``resize_bilinear``
    (align_corners=False) does it. Returns float32 (N, C, size, size)."""
    if x.dim() != 4 or not x.is_floating_point():
        raise ResganError("resize_tf1x wants a float (N, C, H, W) tensor")
    oh, ow = (size, size) if isinstance(size, int) else size
    x = x.float()
    ylo, yhi, dy = _axis(x.shape[2], oh, x.device)
    xlo, xhi, dx = _axis(x.shape[3], ow, x.device)
    left, right = x.index_select(3, xlo), x.index_select(3, xhi)
    rows = left + (right - left) * dx.view(1, 1, 1, ow)  # (N, C, H, ow): every source row lerped along x
    top, bottom = rows.index_select(2, ylo), rows.index_select(2, yhi)
    return top + (bottom - top) * dy.view(1, 1, oh, 1)


def preprocess(images: torch.Tensor, size: int = INCEPTION_SIZE) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 (N, 3, size, size) in [-1, 1) for :class:`FIDInception`."""
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ResganError(f"metrics want uint8 (N, C, H, W) images, got {images.dtype} {tuple(images.shape)}")
    c = images.shape[1]
    if c not in (1, 3, 4):
        raise ResganError(f"images must have 1 or 3 channels, got {c}")
    x = images[:, :3].float()
    if x.shape[2:] != (size, size):
        x = resize_tf1x(x, size)
    x = (x - 128) / 128
    return x.expand(-1, 3, -1, -1) if c == 1 else x
