"""Training data for restoration: whole images (a folder, or scikit-image's sample photos when
no path is given), cut into K random patches per image at load time (seeded, DnCNN style) and
held in memory as an :class:`resgan.data.ImageSet` of uint8 patches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..config import Config
from ..data import IMAGE_EXTS, ImageSet
from ..errors import ResganError
from ..imageio import open_still

# scikit-image's bundled photos (no download needed); the last ones are held out for validation
SKIMAGE_TRAIN = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field",
                 "brick", "grass", "gravel", "coins", "moon", "page", "text"]
SKIMAGE_VAL = ["camera", "retina"]


def list_images(root: Path) -> list[Path]:
    if not root.is_dir():
        raise ResganError(f"{root} is not a folder of images")
    return sorted(f for f in root.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTS)


def _as_channels(arr: np.ndarray, channels: int) -> np.ndarray:
    """uint8 (H, W) or (H, W, 3|4) -> uint8 (C, H, W) with C = channels (grey: ITU-R 601 luma)."""
    img = Image.fromarray(arr)
    img = img.convert("L" if channels == 1 else "RGB")
    a = np.asarray(img, dtype=np.uint8)
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def skimage_images(names: list[str], channels: int) -> list[np.ndarray]:
    try:
        import skimage.data as skd
    except ImportError:
        raise ResganError("the built-in restoration data needs scikit-image (pip install scikit-image); "
                          "or set data.path to a folder of images") from None
    return [_as_channels(np.asarray(getattr(skd, n)()), channels) for n in names]


def folder_images(path: str, channels: int, limit: int | None = None) -> list[np.ndarray]:
    """The images under ``path`` (several folders: comma-separated), uint8 (C, H, W)."""
    files = [f for part in path.split(",") for f in list_images(Path(part.strip()))][:limit]
    if not files:
        raise ResganError(f"no images ({', '.join(sorted(IMAGE_EXTS))}) found in {path}")
    out = []
    for f in files:
        try:
            with open_still(f) as img:
                out.append(_as_channels(np.asarray(img.convert("RGB") if img.mode not in ("L", "RGB") else img),
                                        channels))
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise ResganError(f"cannot read image {f}: {e}") from None
    return out


def extract_patches(images: list[np.ndarray], crop: int, k: int, seed: int) -> np.ndarray:
    """``k`` random ``crop`` x ``crop`` patches per image with a random flip / rotation each;
    deterministic in ``seed``. Images smaller than ``crop`` are skipped."""
    rng = np.random.default_rng(seed)
    out = []
    for img in images:
        _, h, w = img.shape
        if h < crop or w < crop:
            continue
        for _ in range(k):
            y, x = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
            p = img[:, y:y + crop, x:x + crop]
            p = np.rot90(p, int(rng.integers(4)), axes=(1, 2))
            if rng.random() < 0.5:
                p = p[:, :, ::-1]
            out.append(np.ascontiguousarray(p))
    if not out:
        raise ResganError(f"no training image is at least {crop}x{crop} pixels (restore.crop)")
    return np.stack(out)


def whole_images(images: list[np.ndarray], crop: int) -> np.ndarray:
    """Whole photos as one uint8 (N, C, H, W) array for random crops at every step: portrait ones
    turned to landscape (rotations are part of the augmentation anyway), all centre-cropped to the
    smallest height and width (BSDS500's 481x321 / 321x481 photos lose nothing)."""
    images = [np.rot90(a, 1, axes=(1, 2)) if a.shape[1] > a.shape[2] else a for a in images]
    h, w = min(a.shape[1] for a in images), min(a.shape[2] for a in images)
    if h < crop or w < crop:
        raise ResganError(f"a training image is smaller than restore.crop ({crop} px): {h}x{w} after turning")
    tops = [((a.shape[1] - h) // 2, (a.shape[2] - w) // 2) for a in images]
    return np.stack([a[:, y:y + h, x:x + w] for a, (y, x) in zip(images, tops)])


def random_crops(images: torch.Tensor, crop: int) -> torch.Tensor:
    """One random ``crop`` x ``crop`` window per image, with a random rotation (0/90/180/270) and
    flip, drawn from the global torch RNG (so a resumed run draws the same crops)."""
    n, _, h, w = images.shape
    r = torch.rand(n, 4)
    out = []
    for i in range(n):
        y, x = int(r[i, 0] * (h - crop + 1)), int(r[i, 1] * (w - crop + 1))
        p = images[i, :, y:y + crop, x:x + crop].rot90(int(r[i, 2] * 4), (1, 2))
        out.append(p.flip(2) if r[i, 3] < 0.5 else p)
    return torch.stack(out)


def load_train_set(cfg: Config) -> ImageSet:
    """The restore task's training data: patches cut at load time, or whole photos
    (``restore.patches_per_image: 0``) that the task crops afresh at every step."""
    d, r = cfg.data, cfg.restore
    if d.path:
        images = folder_images(d.path, d.channels, d.limit)
    else:
        images = skimage_images(SKIMAGE_TRAIN[: d.limit], d.channels)
    if r.patches_per_image == 0:
        whole = whole_images(images, r.crop)
        return ImageSet(torch.from_numpy(whole), torch.zeros(len(whole), dtype=torch.int64), [])
    patches = extract_patches(images, r.crop, r.patches_per_image, cfg.train.seed)
    return ImageSet(torch.from_numpy(patches), torch.zeros(len(patches), dtype=torch.int64), [])


def load_val_images(cfg: Config) -> list[torch.Tensor]:
    """Held-out images as float (1, C, H, W) in [0, 1], centre-cropped to ``val_crop``."""
    d, r = cfg.data, cfg.restore
    if r.val_path:
        images = folder_images(r.val_path, d.channels, r.val_limit)
    else:
        images = skimage_images(SKIMAGE_VAL[: r.val_limit], d.channels)
    out = []
    m = r.scale if r.kind == "sr" else 8
    for img in images:
        _, h, w = img.shape
        if r.val_crop:
            c = min(r.val_crop, h, w)
            y, x = (h - c) // 2, (w - c) // 2
            img = img[:, y:y + c, x:x + c]
        _, h, w = img.shape
        img = img[:, : h - h % m, : w - w % m]
        out.append(torch.from_numpy(np.ascontiguousarray(img)).float().div(255)[None])
    return out
