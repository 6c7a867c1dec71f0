"""Image degradations for training and testing restoration nets (in the spirit of BasicSR's
``degradations.py`` and LaMa's mask generator).

Small pure functions. Images are float tensors (N, C, H, W) in [0, 1] unless a function says
otherwise; masks are float (N, 1, H, W) with 1 = hole. Every random choice comes from an
explicit ``torch.Generator`` (torch functions; ``None`` = the global RNG) or
``numpy.random.Generator`` (mask drawing, JPEG), so the same seed gives the same degradation.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from ..errors import ResganError

# ---------------------------------------------------------------- helpers


def _uniform(n: int, lo: float, hi: float, generator: torch.Generator | None) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=generator)


def numpy_rng(generator: torch.Generator | None = None) -> np.random.Generator:
    """A numpy Generator seeded from ``generator`` (or the global torch RNG): keeps one RNG stream."""
    return np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator)))


# ---------------------------------------------------------------- noise


def add_gaussian_noise(x: torch.Tensor, sigma: float | tuple[float, float], generator: torch.Generator | None = None,
                       clip: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Additive white Gaussian noise; ``sigma`` on the 0-255 scale, fixed or a (lo, hi) blind range
    (one sigma per image). Returns (noisy, sigma per image /255 as (N,))."""
    n = x.shape[0]
    if isinstance(sigma, (tuple, list)):
        s = _uniform(n, float(sigma[0]), float(sigma[1]), generator) / 255.0
    else:
        s = torch.full((n,), float(sigma) / 255.0)
    noise = torch.randn(x.shape, generator=generator).to(x.device) * s.to(x.device).view(-1, 1, 1, 1)
    out = x + noise
    return (out.clamp(0, 1) if clip else out), s


def add_poisson_noise(x: torch.Tensor, peak: float | tuple[float, float] = 30.0,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Poisson (shot) noise: ``x * peak`` photons per pixel, ``peak`` fixed or a (lo, hi) range."""
    n = x.shape[0]
    if isinstance(peak, (tuple, list)):
        p = _uniform(n, float(peak[0]), float(peak[1]), generator)
    else:
        p = torch.full((n,), float(peak))
    p = p.to(x.device).view(-1, 1, 1, 1)
    counts = torch.poisson((x.clamp(0, 1) * p).cpu(), generator=generator).to(x.device)
    return counts / p


# ---------------------------------------------------------------- blur


def gaussian_kernel(sigma: float, size: int | None = None) -> torch.Tensor:
    """Normalised isotropic 2-D Gaussian kernel (size odd, default ~6 sigma)."""
    size = size or max(3, 2 * math.ceil(3 * sigma) + 1)
    ax = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(ax**2) / (2 * sigma**2))
    k = g[:, None] * g[None, :]
    return (k / k.sum()).float()


def motion_kernel(length: float, angle: float, size: int | None = None) -> torch.Tensor:
    """Normalised linear motion-blur kernel: a line of ``length`` pixels at ``angle`` degrees."""
    size = size or (2 * math.ceil(length / 2) + 1)
    img = Image.new("F", (size * 4, size * 4), 0.0)
    c = size * 2
    dx, dy = math.cos(math.radians(angle)) * length * 2, math.sin(math.radians(angle)) * length * 2
    ImageDraw.Draw(img).line([(c - dx, c - dy), (c + dx, c + dy)], fill=1.0, width=4)
    k = torch.from_numpy(np.asarray(img.resize((size, size), Image.Resampling.BOX), dtype=np.float32).copy())
    if k.sum() <= 0:
        k[size // 2, size // 2] = 1.0
    return k / k.sum()


def blur(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolve every channel with one kernel (K, K) or one per image (N, K, K); reflect padding."""
    n, c, h, w = x.shape
    if kernel.dim() == 2:
        kernel = kernel.expand(n, *kernel.shape)
    k = kernel.shape[-1]
    pad = k // 2
    mode = "reflect" if pad < min(h, w) else "replicate"
    xp = F.pad(x.reshape(1, n * c, h, w), (pad, pad, pad, pad), mode=mode)
    weight = kernel.to(x).repeat_interleave(c, 0)[:, None]
    return F.conv2d(xp, weight, groups=n * c).view(n, c, h, w)


def random_blur_kernels(n: int, sigma: tuple[float, float] = (0.5, 3.0), motion_prob: float = 0.3,
                        size: int = 21, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` kernels (n, size, size): Gaussian with sigma in the range, or motion blur (length 3-15 px)."""
    ks = []
    for _ in range(n):
        kind, a, b = torch.rand(3, generator=generator).tolist()
        if kind < motion_prob:
            ks.append(motion_kernel(3 + 12 * a, 180 * b, size))
        else:
            ks.append(gaussian_kernel(sigma[0] + (sigma[1] - sigma[0]) * a, size))
    return torch.stack(ks)


def gaussian_blur(x: torch.Tensor, sigma: float | tuple[float, float],
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Gaussian blur with a fixed sigma or one drawn per image from a (lo, hi) range."""
    if isinstance(sigma, (tuple, list)):
        return blur(x, random_blur_kernels(x.shape[0], tuple(sigma), 0.0, generator=generator))
    return blur(x, gaussian_kernel(float(sigma)))


def jpeg_quality(quality: int | tuple[int, int], rng: np.random.Generator | None, draw: str = "uniform") -> int:
    """A fixed quality, or one drawn from [lo, hi]: uniformly, or ``draw="low"``: lo + (hi - lo + 1) * u**2
    (u uniform; density falling with the quality: a quarter of the draws in the range's lowest 6%)."""
    if not isinstance(quality, (tuple, list)):
        return int(quality)
    lo, hi = quality
    if draw == "low":
        return min(hi, lo + int((hi - lo + 1) * rng.random() ** 2))
    return int(rng.integers(lo, hi + 1))


def jpeg(x: torch.Tensor, quality: int | tuple[int, int], rng: np.random.Generator | None = None,
         draw: str = "uniform") -> torch.Tensor:
    """JPEG round trip through Pillow at a fixed quality or one drawn per image from [lo, hi]
    (:func:`jpeg_quality`)."""
    out = []
    arr = (x.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    for a in arr:
        q = jpeg_quality(quality, rng, draw)
        img = Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=q)
        dec = np.asarray(Image.open(buf).convert(img.mode), dtype=np.uint8)
        out.append(dec[:, :, None] if dec.ndim == 2 else dec)
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float().div(255).to(x.device)


def bicubic_down(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic (antialiased) downscale by an integer factor 2, 3 or 4; H and W must divide."""
    if scale not in (2, 3, 4):
        raise ResganError(f"scale must be 2, 3 or 4, got {scale}")
    h, w = x.shape[-2:]
    if h % scale or w % scale:
        raise ResganError(f"image size {w}x{h} is not a multiple of the scale {scale}")
    return F.interpolate(x, size=(h // scale, w // scale), mode="bicubic", antialias=True, align_corners=False)


def bicubic_up(x: torch.Tensor, scale: int) -> torch.Tensor:
    return F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)


# ---------------------------------------------------------------- hole masks (1 = hole)

STROKE_WIDTHS = {"thin": (4, 12), "medium": (12, 28), "thick": (28, 48)}


def stroke_mask(h: int, w: int, rng: np.random.Generator, width: str = "medium", max_strokes: int = 4,
                max_vertices: int = 8) -> np.ndarray:
    """Random free-form strokes (DeepFill v2 / LaMa style): polylines of random angles and lengths
    with round joints; brush width thin | medium | thick (scaled to 256 px). float32 (H, W)."""
    lo, hi = STROKE_WIDTHS[width]
    f = min(h, w) / 256.0
    img = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(1, max_strokes + 1))):
        x, y = float(rng.integers(0, w)), float(rng.integers(0, h))
        bw = max(1, int(rng.integers(lo, hi + 1) * f))
        for _ in range(int(rng.integers(1, max_vertices + 1))):
            angle = rng.uniform(0, 2 * math.pi)
            length = rng.uniform(10, 60) * f
            nx = float(np.clip(x + length * math.cos(angle), 0, w - 1))
            ny = float(np.clip(y + length * math.sin(angle), 0, h - 1))
            draw.line([(x, y), (nx, ny)], fill=255, width=bw)
            r = bw / 2
            draw.ellipse([nx - r, ny - r, nx + r, ny + r], fill=255)
            x, y = nx, ny
    return (np.asarray(img) > 127).astype(np.float32)


def box_mask(h: int, w: int, rng: np.random.Generator, max_boxes: int = 3, min_frac: float = 0.1,
             max_frac: float = 0.4) -> np.ndarray:
    """1 to ``max_boxes`` axis-aligned rectangles, sides between min_frac and max_frac of the image."""
    m = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(1, max_boxes + 1))):
        bh = int(rng.uniform(min_frac, max_frac) * h)
        bw = int(rng.uniform(min_frac, max_frac) * w)
        y, x = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
        m[y:y + bh, x:x + bw] = 1
    return m


def random_mask(h: int, w: int, rng: np.random.Generator, kind: str = "mixed", max_ratio: float = 0.6) -> np.ndarray:
    """A hole mask of ``kind`` strokes | boxes | mixed (strokes of a random width, boxes, or both).
    Redrawn while empty or above ``max_ratio`` of the image."""
    for _ in range(20):
        if kind == "strokes":
            m = stroke_mask(h, w, rng, str(rng.choice(list(STROKE_WIDTHS))))
        elif kind == "boxes":
            m = box_mask(h, w, rng)
        elif kind == "mixed":
            r = rng.random()
            m = stroke_mask(h, w, rng, str(rng.choice(list(STROKE_WIDTHS))))
            if r < 0.3:
                m = box_mask(h, w, rng)
            elif r < 0.5:
                m = np.maximum(m, box_mask(h, w, rng, max_boxes=1, max_frac=0.3))
        else:
            raise ResganError(f"unknown mask kind {kind!r} (strokes, boxes, mixed, folder)")
        if 0 < m.mean() <= max_ratio:
            return m
    return m


# LaMa's mask generator families (Suvorov et al. 2022, configs at 256 px): irregular strokes
# (vertices, max stroke length, max brush width) plus, with probability box_p, axis-aligned boxes
LAMA_FAMILIES = {
    "thin": dict(strokes=(4, 50), vertices=(1, 4), max_len=40, width=(2, 10), box_p=0.0, box=(0, 0)),
    "medium": dict(strokes=(4, 5), vertices=(2, 8), max_len=100, width=(10, 50), box_p=0.3, box=(10, 50)),
    "thick": dict(strokes=(1, 5), vertices=(2, 8), max_len=200, width=(30, 100), box_p=0.3, box=(30, 150)),
}


def lama_mask(h: int, w: int, rng: np.random.Generator, family: str | None = None, max_ratio: float = 0.5
              ) -> np.ndarray:
    """A hole mask of one of LaMa's families (thin | medium | thick; None: one at random), sizes
    scaled from 256 px to ``min(h, w)``; redrawn while empty or above ``max_ratio`` of the image
    (after 20 tries the strokes are thinned away until it fits). float32 (H, W), 1 = hole."""
    fam = family or str(rng.choice(list(LAMA_FAMILIES)))
    if fam not in LAMA_FAMILIES:
        raise ResganError(f"unknown mask family {fam!r} ({', '.join(LAMA_FAMILIES)})")
    p, f = LAMA_FAMILIES[fam], min(h, w) / 256.0
    m = np.zeros((h, w), np.float32)
    for _ in range(20):
        img = Image.new("L", (w, h), 0)
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(p["strokes"][0], p["strokes"][1] + 1))):
            x, y = float(rng.integers(0, w)), float(rng.integers(0, h))
            bw = max(1, int(rng.integers(p["width"][0], p["width"][1] + 1) * f))
            for _ in range(int(rng.integers(p["vertices"][0], p["vertices"][1] + 1))):
                angle = rng.uniform(0, 2 * math.pi)
                length = rng.uniform(5, p["max_len"]) * f
                nx = float(np.clip(x + length * math.cos(angle), 0, w - 1))
                ny = float(np.clip(y + length * math.sin(angle), 0, h - 1))
                draw.line([(x, y), (nx, ny)], fill=255, width=bw)
                draw.ellipse([nx - bw / 2, ny - bw / 2, nx + bw / 2, ny + bw / 2], fill=255)
                x, y = nx, ny
        if rng.random() < p["box_p"]:
            for _ in range(int(rng.integers(1, 4))):
                bh, bwid = (int(rng.integers(p["box"][0], p["box"][1] + 1) * f) for _ in range(2))
                bh, bwid = min(max(bh, 1), h), min(max(bwid, 1), w)
                y0, x0 = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bwid + 1))
                draw.rectangle([x0, y0, x0 + bwid - 1, y0 + bh - 1], fill=255)
        m = (np.asarray(img) > 127).astype(np.float32)
        if 0 < m.mean() <= max_ratio:
            return m
    while m.mean() > max_ratio:  # rare: keep the strokes' skeleton
        m = -F.max_pool2d(-torch.from_numpy(m)[None, None], 3, 1, 1)[0, 0].numpy()
    return m


def random_masks(n: int, h: int, w: int, rng: np.random.Generator, kind: str = "mixed") -> torch.Tensor:
    """``n`` masks (N, 1, H, W): ``kind`` strokes | boxes | mixed (:func:`random_mask`) or lama /
    lama_thin / lama_medium / lama_thick (:func:`lama_mask`)."""
    if kind.startswith("lama"):
        fam = kind.removeprefix("lama").removeprefix("_") or None
        return torch.from_numpy(np.stack([lama_mask(h, w, rng, fam) for _ in range(n)]))[:, None]
    return torch.from_numpy(np.stack([random_mask(h, w, rng, kind) for _ in range(n)]))[:, None]


class MaskFolder:
    """Hole masks from a folder of images (white = hole), e.g. Liu et al.'s irregular masks.
    ``sample`` resizes (nearest) to the wanted size with a random flip / transpose."""

    def __init__(self, path: str | Path, limit: int | None = None):
        from .data import list_images

        self.files = list_images(Path(path))[:limit]
        if not self.files:
            raise ResganError(f"no mask images found in {path}")
        self._cache: dict[tuple[int, int, int], np.ndarray] = {}

    def load(self, i: int, h: int, w: int) -> np.ndarray:
        key = (i, h, w)
        if key not in self._cache:
            with Image.open(self.files[i]) as img:
                m = img.convert("L").resize((w, h), Image.Resampling.NEAREST)
            self._cache[key] = (np.asarray(m) > 127).astype(np.float32)
        return self._cache[key]

    def sample(self, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
        m = self.load(int(rng.integers(len(self.files))), h, w)
        if rng.random() < 0.5:
            m = m[:, ::-1]
        if rng.random() < 0.5:
            m = m[::-1]
        return np.ascontiguousarray(m)


# ---------------------------------------------------------------- a chained "real-world" mix


def realworld(x: torch.Tensor, generator: torch.Generator | None = None, noise: tuple[float, float] = (1, 20),
              quality: tuple[int, int] = (30, 90)) -> torch.Tensor:
    """Blur (Gaussian or motion, p=0.7) -> Gaussian or Poisson noise -> JPEG, random order of
    strengths per image (a one-pass, same-size Real-ESRGAN-like chain)."""
    n = x.shape[0]
    out = []
    for i in range(n):
        xi = x[i:i + 1]
        if torch.rand(1, generator=generator).item() < 0.7:
            xi = blur(xi, random_blur_kernels(1, (0.3, 2.0), 0.3, generator=generator))
        if torch.rand(1, generator=generator).item() < 0.7:
            xi, _ = add_gaussian_noise(xi, noise, generator)
        else:
            xi = add_poisson_noise(xi, (10.0, 100.0), generator)
        out.append(xi.clamp(0, 1))
    return jpeg(torch.cat(out), quality, numpy_rng(generator))
