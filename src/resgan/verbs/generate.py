"""``generate``: one request (seeds, class, psi, trunc checked once), one function that samples, and
one writer (a grid PNG or a folder of one PNG per seed). The server and the Python API encode the
same images (:func:`grid_png`, :func:`seed_pngs`, :func:`seed_name`)."""

from __future__ import annotations

import io
import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..checkpoint import atomic_write_bytes, prepare_dir
from ..data import to_uint8
from ..errors import ResganError
from ..gan import sampling
from ..report import make_grid
from .options import number
from .seeds import MAX_SEEDS, parse_seeds

PSI_WHY = " (truncation psi, StyleGAN's: 1 = off, 0.7 = mild, 0 = the mean image)"
TRUNC_WHY = " (BigGAN's threshold on |z|, e.g. 0.5 or 1.0; for StyleGAN's truncation use psi)"


@dataclass(frozen=True)
class GenerateRequest:
    seeds: tuple[int, ...]
    class_: int | str | None = None  # a class name or index, resolved against the model by run()
    psi: float | None = None
    trunc: float | None = None


def generate_request(seeds: Any = "0-63", class_: Any = None, psi: Any = None, trunc: Any = None,
                     max_seeds: int = MAX_SEEDS) -> GenerateRequest:
    """The options of a generate call, checked (types and ranges) before any model is loaded."""
    if class_ is not None and (isinstance(class_, bool) or not isinstance(class_, (str, numbers.Integral))):
        raise ResganError(f"class must be a class name or index, got {class_!r}")
    cls = None if class_ is None or class_ == "" else (class_ if isinstance(class_, str) else int(class_))
    return GenerateRequest(
        tuple(parse_seeds(seeds, max_seeds)), cls,
        None if psi is None else number(psi, "psi", 0.0, sampling.MAX_PSI, PSI_WHY),
        None if trunc is None else number(trunc, "trunc", sampling.MIN_TRUNC, None, TRUNC_WHY))


@dataclass
class Generated:
    images: torch.Tensor  # uint8 (N, C, H, W)
    labels: list[int | None]
    classes: list[str]  # the model's class names (empty: unconditional)
    seeds: tuple[int, ...]


def class_of(G: torch.nn.Module, classes: list[str], req: GenerateRequest) -> int | None:
    """The request's class (a name or an index) as the index of ``G``'s class ``classes``; None: seed % classes."""
    return sampling.class_index(list(classes) if G.num_classes else [], req.class_, "class")


def run(G: torch.nn.Module, classes: list[str], req: GenerateRequest) -> Generated:
    """One image per seed from generator ``G`` (class names ``classes``, in label order)."""
    names = list(classes) if G.num_classes else []
    idx = class_of(G, classes, req)
    images, labels = sampling.generate(G, list(req.seeds), idx, req.trunc, req.psi)
    label_list = labels.tolist() if labels is not None else [None] * len(req.seeds)
    return Generated(to_uint8(images), label_list, names, req.seeds)


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def grid_png(g: Generated) -> bytes:
    return png(make_grid(g.images, math.ceil(math.sqrt(len(g.seeds)))))


def seed_name(seed: int) -> str:
    return f"seed{seed:04d}.png"


def distinct(seeds: tuple[int, ...] | list[int], what: str = "one file per seed") -> None:
    """Per-seed files (a folder, a zip) need distinct seeds: two files of one name would overwrite."""
    seen: set[int] = set()
    for s in seeds:
        if s in seen:
            raise ResganError(f"seed {s} is given twice: {what} needs distinct seeds (a grid may repeat them)")
        seen.add(s)


def image_pngs(g: Generated) -> list[bytes]:
    """One PNG per image, in seed order."""
    return [png(make_grid(img[None], 1, pad=0)) for img in g.images]


def seed_pngs(g: Generated) -> list[tuple[str, bytes]]:
    """(file name, PNG bytes) per seed; refused when a seed repeats (two files of one name)."""
    distinct(g.seeds)
    return list(zip([seed_name(s) for s in g.seeds], image_pngs(g)))


def arrays(g: Generated) -> np.ndarray:
    """uint8 (N, H, W) grey or (N, H, W, 3)."""
    arr = g.images.permute(0, 2, 3, 1).numpy()
    return np.ascontiguousarray(arr[..., 0] if arr.shape[3] == 1 else arr)


def check_out(out: Path, req: GenerateRequest) -> Path:
    """``out``: a ``.png`` file (one grid) in a writable folder, or a writable folder (created) with distinct
    seeds; checked before any image is made."""
    out = Path(out)
    if out.suffix.lower() == ".png":
        if out.is_dir():
            raise ResganError(f"--out {out}: is a folder; give a .png file name or a folder without a suffix")
        prepare_dir(out.parent)
        return out
    if out.suffix and not out.is_dir():
        raise ResganError(f"--out must be a .png file or a folder, got {out}")
    distinct(req.seeds, "a folder of one file per seed")
    prepare_dir(out)
    return out


def write(g: Generated, out: Path) -> list[Path]:
    """The one place generate writes: a ``.png`` path gets the grid, a folder one PNG per seed."""
    out = Path(out)
    if out.suffix.lower() == ".png":
        atomic_write_bytes(out, grid_png(g))
        return [out]
    paths = []
    for name, data in seed_pngs(g):
        atomic_write_bytes(out / name, data)
        paths.append(out / name)
    return paths
