"""Helpers shared by the tests (no tests, no fixtures here: those are in conftest.py): test images,
image files of every awkward kind made in memory, tiny untrained models saved as checkpoints, and the
command line run as a test sees it. Import them as ``from helpers import ...`` (``tests/`` is on
``sys.path``: pytest puts the folder of the root ``conftest.py`` there)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

# ---------------------------------------------------------------- images


def photo(h: int = 64, w: int = 80, c: int = 3, seed: int = 0) -> np.ndarray:
    """A smooth uint8 test image (H, W, C) or (H, W) for c == 1."""
    rng = np.random.default_rng(seed)
    small = rng.random((h // 8 + 2, w // 8 + 2, c))
    yy, xx = np.meshgrid(np.linspace(0, small.shape[0] - 1.001, h), np.linspace(0, small.shape[1] - 1.001, w),
                         indexing="ij")
    y0, x0 = yy.astype(int), xx.astype(int)
    fy, fx = (yy - y0)[..., None], (xx - x0)[..., None]
    img = (small[y0, x0] * (1 - fy) * (1 - fx) + small[y0 + 1, x0] * fy * (1 - fx)
           + small[y0, x0 + 1] * (1 - fy) * fx + small[y0 + 1, x0 + 1] * fy * fx)
    out = (img * 255).round().astype(np.uint8)
    return out[:, :, 0] if c == 1 else out


def encoded(img: Image.Image | np.ndarray, fmt: str = "PNG", **kw) -> bytes:
    """An image (PIL, or a uint8 / uint16 array) encoded as ``fmt``, in memory."""
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def png_bytes(arr: np.ndarray) -> bytes:
    return encoded(arr, "PNG")


def repeated_scans(copies: int, size: int = 16) -> bytes:
    """A progressive JPEG whose last scan is written ``copies`` times (marker by marker): the shape of a
    decode-time bomb, each scan being a full pass of the decoder over the image."""
    data = encoded(Image.fromarray(photo(size, size, 1)), "JPEG", progressive=True)
    last = data.rindex(b"\xff\xda")
    return data[:-2] + data[last:-2] * copies + b"\xff\xd9"


def animated_gif(frames: int = 3, size: int = 16) -> bytes:
    imgs = [Image.fromarray(photo(size, size, seed=i)).convert("P") for i in range(frames)]
    buf = io.BytesIO()
    imgs[0].save(buf, format="GIF", save_all=True, append_images=imgs[1:], duration=50, loop=0)
    return buf.getvalue()


def png_claiming(w: int, h: int) -> bytes:
    """A valid tiny PNG whose header claims w x h (a decompression bomb's shape)."""
    import struct
    import zlib

    data = bytearray(png_bytes(np.zeros((8, 8), np.uint8)))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


# ---------------------------------------------------------------- files


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` and its bytes: compare before and after to see that nothing changed."""
    root = Path(root)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def files_under(root: Path) -> list[str]:
    root = Path(root)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []
