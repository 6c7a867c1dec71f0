"""Image sources of the metrics (no model loading): a folder of images, a data set spec read as
training reads it, or images in memory; their Inception features (cached for folders and data sets).
Generated samples are made above, by the request layer (:mod:`resgan.verbs.evaluate`), and scored
as a Source too.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..config import DataConfig
from ..data import IMAGE_EXTS, data_root, folder_entries, load_dataset
from ..errors import ResganError
from ..imageio import read_image

NATIVE = {"mnist": (28, 1), "fashion_mnist": (28, 1), "cifar10": (32, 3), "cifar100": (32, 3), "digits": (8, 1)}


@dataclass
class Source:
    spec: str
    kind: str  # folder | dataset | generator | images (in memory, from the Python API)
    # uint8 (N, C, H, W): data sets and generated samples; in-memory images: that, or a list of (C, H, W)
    images: torch.Tensor | list[torch.Tensor] | None = None
    labels: torch.Tensor | None = None
    files: list[Path] = field(default_factory=list)  # folders
    data: DataConfig | None = None  # data set: its config; generator: the data it was trained on
    cache_parts: dict | None = None  # what identifies its features in the cache (None: not cached)
    num_classes: int = 0
    shape: tuple[int, int] | None = None  # (square size, channels) of its images; None: mixed sizes
    resolution: str = ""  # how its images are sized, in words (printed with the results)

    def __len__(self) -> int:
        return len(self.files) if self.kind == "folder" else len(self.images)


def images_source(images: list[torch.Tensor], name: str = "images") -> Source:
    """In-memory uint8 (C, H, W) images (any sizes) as a Source, scored like a folder (not cached)."""
    sizes = {tuple(x.shape) for x in images}
    if not images:
        raise ResganError(f"{name}: no images")
    batch: torch.Tensor | list[torch.Tensor] = torch.stack(images) if len(sizes) == 1 else images
    shape, words = None, "mixed sizes"
    if len(sizes) == 1:
        (c, h, w), = sizes
        words = f"{w}x{h} {'grey' if c == 1 else 'colour'}"
        shape = (w, 1 if c == 1 else 3) if w == h else None
    return Source(name, "images", images=batch, shape=shape, resolution=f"{words}, own size")


def list_images(root: Path) -> list[Path]:
    files = sorted(f for f in root.rglob("*") if f.suffix.lower() in IMAGE_EXTS and f.is_file())
    if not files:
        raise ResganError(f"no images ({', '.join(sorted(IMAGE_EXTS))}) found in {root}")
    return files


def read_rgb(path: Path) -> torch.Tensor:
    """An image file -> uint8 (3, H, W), by the one decoder (:func:`resgan.imageio.read_image`: EXIF
    orientation, the pixel limit, ...); grey replicated, alpha dropped, 16-bit rounded to 8."""
    loaded = read_image(path)
    raw = loaded.raw if loaded.bits == 8 else np.round(loaded.data * 255).astype(np.uint8)
    rgb = raw if raw.shape[2] == 3 else np.repeat(raw, 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))


def folder_signature(files: list[Path]) -> str:
    h = hashlib.sha1()
    for f in files:
        st = f.stat()
        h.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def folder_shape(files: list[Path]) -> tuple[tuple[int, int] | None, str]:
    """(square size, channels) shared by every image of a folder (headers only), or None when the
    sizes differ or are not square; and the sizes in words."""
    from PIL import Image

    sizes: set[tuple[int, int]] = set()
    grey = True
    for f in files:
        try:
            with Image.open(f) as img:
                sizes.add(img.size)
                grey = grey and img.mode in ("1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "F")
        except Exception:  # noqa: BLE001 - unreadable files are reported when their pixels are read
            continue
        if len(sizes) > 1:
            break
    channels = 1 if grey else 3
    if len(sizes) == 1:
        (w, h), = sizes
        words = f"{w}x{h} {'grey' if grey else 'colour'}"
        return ((w, channels) if w == h else None), words
    return None, "mixed sizes" if sizes else "unreadable"


def parse_dataset_spec(spec: str, n: int | None, like: tuple[int, int] | None = None) -> DataConfig:
    parts = spec.split(":")
    if len(parts) > 3:
        raise ResganError(f"data set spec {spec!r} must be name[:path[:split]]")
    name = parts[0]
    path = parts[1] if len(parts) > 1 and parts[1] else None
    split = parts[2] if len(parts) > 2 and parts[2] else "train"
    if name == "folder":  # a training folder: at the other side's size, else as the folder preset infers it
        if path is None:
            raise ResganError(f"data set spec {spec!r}: give the folder, folder:DIR")
        res, ch = like or (0, 0)
        return DataConfig(name=name, path=path, resolution=res, channels=ch, conditional=None, limit=n)
    res, ch = like or NATIVE.get(name, (32, 3))
    return DataConfig(name=name, path=path, split=split, resolution=res, channels=ch, conditional=True, limit=n)


def folder_source(spec: str, n: int | None = None) -> Source:
    """A folder of images (sub-folders searched), scored at their own size."""
    files = list_images(Path(spec))[:n] if n else list_images(Path(spec))
    parts = {"folder": str(Path(spec).resolve()), "n": len(files), "signature": folder_signature(files)}
    shape, words = folder_shape(files)
    return Source(spec, "folder", files=files, cache_parts=parts, shape=shape, resolution=f"{words}, own size")


def dataset_source(spec: str, n: int | None = None, like: Source | None = None) -> Source:
    """A data set spec ``name[:path[:split]]``, read at the size (and grey / colour) of ``like``'s
    images where it has one square size, else at its native size."""
    shape = like.shape if like is not None else None
    cfg = parse_dataset_spec(spec, n, shape)
    ds = load_dataset(cfg)
    parts: dict = {}
    if cfg.name == "folder":  # what was inferred, and the files (a folder's content may change)
        cfg = dataclasses.replace(cfg, resolution=int(ds.images.shape[-1]), channels=int(ds.images.shape[1]))
        parts["signature"] = folder_signature([f for f, _ in folder_entries(cfg)[0]])
    d = dataclasses.asdict(cfg)
    d["path"] = None if cfg.name == "digits" else str(data_root(cfg).resolve())
    d.pop("download")
    if cfg.limit is not None and cfg.limit >= len(ds):  # the same images as no limit: share one cache entry
        d["limit"] = None
    native = NATIVE.get(cfg.name)
    words = f"{cfg.resolution}x{cfg.resolution} {'grey' if cfg.channels == 1 else 'colour'}"
    if shape is None and cfg.name == "folder":
        words += ", inferred from the images (as the folder preset trains on them)"
    elif shape is None:
        words += ", native" if native == (cfg.resolution, cfg.channels) else ", default size"
    elif native is not None and native != shape:
        words += (f", read at the other side's size (native {native[0]}x{native[0]} "
                  f"{'grey' if native[1] == 1 else 'colour'})")
    else:
        words += ", read at the other side's size"
    return Source(spec, "dataset", images=ds.images, labels=ds.labels, data=cfg,
                  cache_parts={"dataset": d, "n": len(ds), **parts}, num_classes=len(ds.classes),
                  shape=(cfg.resolution, cfg.channels), resolution=words)


def _batches(src: Source, batch_size: int) -> Iterator:
    """uint8 batches of a source; folder images are decoded by a small thread pool (the caller
    runs this iterator on the preprocessing thread, so nothing of it is on the main thread)."""
    if isinstance(src.images, list):
        for i in range(0, len(src.images), batch_size):
            yield src.images[i:i + batch_size]
        return
    if src.kind != "folder":
        yield from src.images.split(batch_size)
        return
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="resgan-decode") as pool:
        for i in range(0, len(src.files), batch_size):
            yield list(pool.map(read_rgb, src.files[i:i + batch_size]))


def source_features(src: Source, extractor, cache_dir: str | Path | None = None, progress: bool = False) -> dict:
    """Pool3 features (and logits where the weights have them) of a source; cached for folders and data sets."""
    from . import cache

    parts = None
    if src.cache_parts is not None:
        parts = {**src.cache_parts, "weights": Path(extractor.weights_path).name, "mode": extractor.mode}
        hit = cache.load_arrays("features", parts, cache_dir)
        if hit is not None and (hit.get("logits") is not None or not extractor.has_logits):
            return hit
    out = extractor.extract(_batches(src, extractor.batch_size), len(src), progress, desc=f"features {src.spec}")
    if parts is not None:
        f = out["pool3"].astype(np.float64)
        arrays = {**out, "mu": f.mean(0), "sigma": np.cov(f, rowvar=False) if len(f) > 1 else np.zeros((0, 0))}
        cache.save_arrays("features", parts, arrays, cache_dir)
    return out


def reference_source(spec: str, n: int | None = None, like: Source | None = None) -> Source:
    """A folder or a data set spec (not a generator: those need a model, a layer above) as a Source."""
    return folder_source(spec, n) if Path(spec).is_dir() else dataset_source(spec, n, like)
