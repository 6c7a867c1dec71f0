"""Sample from a generator (loaded by :func:`resgan.zoo.load_generator`): one image per seed, grids, files."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ..errors import ResganError
from ..report import make_grid, save_png
from .models import ResNetGenerator


def truncated_normal(shape: tuple[int, ...], trunc: float | None,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard normal samples; with ``trunc``, values beyond +-trunc are redrawn (BigGAN's trick)."""
    z = torch.randn(shape, generator=generator)
    if trunc is not None and trunc > 0:
        bad = z.abs() > trunc
        while bad.any():
            z[bad] = torch.randn(int(bad.sum()), generator=generator)
            bad = z.abs() > trunc
    return z


def parse_seeds(text: str) -> list[int]:
    """'0-63', '1,5,9' or '0-9,20' -> list of ints."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            if "-" in part.strip()[1:]:
                a, b = part.split("-", 1)
                lo, hi = int(a), int(b)
                if hi < lo:
                    raise ValueError
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
    except ValueError:
        raise ResganError(f"--seeds wants a list like 0-63 or 1,5,9, got {text!r}") from None
    if not seeds or min(seeds) < 0:
        raise ResganError("--seeds must name non-negative seeds")
    return seeds


@torch.no_grad()
def generate(G: ResNetGenerator, seeds: list[int], class_idx: int | None = None, trunc: float | None = None,
             batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One image per seed: z drawn from a generator seeded by the seed (so a seed is the same
    image whatever else is asked). Conditional models use ``class_idx`` or ``seed % classes``."""
    if G.num_classes:
        if class_idx is not None and not 0 <= class_idx < G.num_classes:
            raise ResganError(f"--class must be in 0..{G.num_classes - 1}")
        labels = torch.tensor([class_idx if class_idx is not None else s % G.num_classes for s in seeds])
    else:
        if class_idx is not None:
            raise ResganError("this generator is unconditional; drop --class")
        labels = None
    if trunc is not None and trunc <= 0:
        raise ResganError("--trunc must be > 0")
    z = torch.stack([truncated_normal((G.z_dim,), trunc, torch.Generator().manual_seed(s)) for s in seeds])
    device = next(G.parameters()).device
    out = []
    for i in range(0, len(seeds), batch_size):
        y = labels[i:i + batch_size].to(device) if labels is not None else None
        out.append(G(z[i:i + batch_size].to(device), y).float().cpu())
    return torch.cat(out), labels


def write_images(images: torch.Tensor, seeds: list[int], out: Path) -> list[Path]:
    """A ``.png`` path: one grid; otherwise a folder with ``seedNNNN.png`` per seed."""
    out = Path(out)
    if out.suffix.lower() == ".png":
        save_png(make_grid(images, math.ceil(math.sqrt(len(seeds)))), out)
        return [out]
    if out.suffix:
        raise ResganError(f"--out must be a .png file or a folder, got {out}")
    paths = []
    for img, s in zip(images, seeds):
        p = out / f"seed{s:04d}.png"
        save_png(make_grid(img[None], 1, pad=0), p)
        paths.append(p)
    return paths
