"""Helpers of the restoration benchmarks: where the data is, metrics on uint8 images, tables."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from resgan.metrics.psnr_ssim import psnr, ssim

REPO = Path(__file__).resolve().parents[1]


def data_root(arg: str | None) -> Path:
    """--data, else $RESGAN_DATA, else ../shared/data beside the repository."""
    root = Path(arg or os.environ.get("RESGAN_DATA") or REPO.parent / "shared" / "data")
    if not root.is_dir():
        sys.exit(f"benchmark data not found at {root} (pass --data DIR or set RESGAN_DATA)")
    return root


def psnr_u8(a: np.ndarray, b: np.ndarray) -> float:
    return psnr(a, b)


def ssim_u8(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of uint8 (H, W) or (H, W, C) images (Gaussian window 11 / 1.5, channel mean)."""
    return ssim(a, b)


def to_u8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


def table(header: list[str], rows: list[list]) -> str:
    def cell(v) -> str:
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def command() -> str:
    return "python " + " ".join([str(Path(sys.argv[0]).relative_to(REPO)) if Path(sys.argv[0]).is_absolute()
                                 else sys.argv[0], *sys.argv[1:]])
