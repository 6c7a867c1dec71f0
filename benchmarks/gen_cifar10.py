"""Class-conditional CIFAR-10: one table for a generator against the cifar10_jpeg data.

    .venv/bin/python benchmarks/gen_cifar10.py cifar10                 # the built-in (once it ships)
    .venv/bin/python benchmarks/gen_cifar10.py runs/cifar10 -n 10000 --json cifar10.json
    .venv/bin/python benchmarks/gen_cifar10.py g.safetensors -n 200 --data DIR   # DIR/train, DIR/test

Rows: FID / KID of ``n`` class-balanced samples (seeds 0..n-1, class = seed % 10) against ``n`` test
images and against ``n`` train images (both class-balanced: the loader interleaves the classes);
precision / recall (k = 3) against test; IS where ``--inception`` gives the 1008-logit weights; CAS
(Ravuri & Vinyals: a small classifier trained on the samples, scored on the real test set) beside the
same classifier trained on as many real train images (each fit on 90% of its images), and the
real-data classifier's accuracy on the samples (the training curve's CAS); intra-class FID (n/10
samples of a class vs the test images of that class); the real-vs-real floor (n train vs n test);
the time to sample 1,000 images (median of 3).
Everything goes through resgan.evaluate / resgan.metrics (one FID, cached real features).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from resgan.data import CIFAR10_CLASSES
from resgan.errors import ResganError
from resgan.evaluate import generate_samples, load_source, source_features
from resgan.gan.sampling import class_names, generate
from resgan.metrics import stats
from resgan.metrics.cas import accuracy, classifier_accuracy, train_classifier
from resgan.metrics.features import FeatureExtractor
from resgan.zoo import load_generator, resolve_file

REPO = Path(__file__).resolve().parents[1]
JPEG_NOTE = ("FID against this JPEG set (q75, 4:2:0 re-encoding of CIFAR-10) is not the papers' number: "
             "compare rows of this table with each other; the anchors below are a rough scale only")
# published CIFAR-10 figures, with the protocol they were measured under (none is this table's)
ANCHORS = [
    ("SNGAN ResNet, unconditional (Miyato et al. 2018)", "21.7", "8.22",
     "original images, TF Inception, the paper's own sample / reference counts"),
    ("projection cGAN, conditional (Miyato & Koyama 2018)", "17.5", "8.62",
     "original images, TF Inception, the paper's own sample / reference counts"),
    ("WGAN-GP ResNet, unconditional (Gulrajani et al. 2017)", "~29", "7.86",
     "original images; FID as later reported for it (TTUR paper; not re-checked here)"),
    ("StudioGAN BigGAN-Mod, conditional (StudioGAN README)", "8.03", "9.75",
     "original images, 10k generated vs 10k test, PyTorch Inception"),
]


def default_data() -> Path:
    return Path(os.environ.get("RESGAN_DATA", REPO.parent / "shared" / "data")) / "cifar10_jpeg"


def sampling_seconds(G: torch.nn.Module, n: int = 1000, repeats: int = 3) -> float:
    """Median wall time of generating ``n`` images (seeds 0..n-1), one warm-up call first."""
    generate(G, list(range(8)))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        generate(G, list(range(n)))
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def run(a: argparse.Namespace) -> dict:
    data = Path(a.data)
    for split in ("train", "test"):
        if not (data / split).is_dir():
            raise ResganError(f"--data {data}: no {split}/ folder of class sub-folders (give cifar10_jpeg)")
    intra = [c.strip() for c in a.classes.split(",") if c.strip()]
    bad = [c for c in intra if c not in CIFAR10_CLASSES]
    if bad:
        raise ResganError(f"--classes: {bad[0]!r} is not a CIFAR-10 class ({', '.join(CIFAR10_CLASSES)})")
    if a.n < 100:
        raise ResganError("-n must be at least 100 (10 images per class)")
    G, meta = load_generator(a.source)
    names = class_names(G.num_classes, meta)
    if names != CIFAR10_CLASSES:
        raise ResganError(f"{a.source}: not a CIFAR-10 generator (classes: {', '.join(names) or 'none'})")
    out: dict = {"source": str(a.source), "file": resolve_file(a.source).name, "step": int(meta.get("step", 0)),
                 "n": a.n, "threads": a.threads, "data": str(data)}
    out["sample_1000_s"] = sampling_seconds(G)

    gen = generate_samples(str(a.source), a.n)
    test = load_source(f"cifar10:{data}:test", a.n, like=gen)
    train = load_source(f"cifar10:{data}:train", a.n, like=gen)
    ex = FeatureExtractor(a.inception, fast=a.fast, batch_size=a.batch_size)
    out.update({"weights": Path(ex.weights_path).name, "mode": ex.mode, "n_test": len(test), "n_train": len(train)})
    fg, ft, fr = (source_features(s, ex, progress=a.progress) for s in (gen, test, train))
    g, t, r = fg["pool3"], ft["pool3"], fr["pool3"]
    out["fid_test"], out["fid_train"], out["fid_floor"] = stats.fid(g, t), stats.fid(g, r), stats.fid(r, t)
    for key, (x, y) in {"test": (g, t), "train": (g, r), "floor": (r, t)}.items():
        k = stats.kid(x, y)
        out[f"kid_{key}"], out[f"kid_std_{key}"] = k["kid"], k["kid_std"]
    out.update(stats.precision_recall(t, g))
    if "logits" in fg:
        score = stats.inception_score(fg["logits"])
        out["is"], out["is_std"] = score["is"], score["is_std"]
        out["is_test"] = stats.inception_score(ft["logits"])["is"]
    gl, tl = gen.labels.numpy(), test.labels.numpy()
    for c in intra:
        i = CIFAR10_CLASSES.index(c)
        out[f"intra_fid_{c}"] = stats.fid(g[gl == i], t[tl == i])
        out[f"intra_n_{c}"] = int((gl == i).sum()), int((tl == i).sum())

    res, ch = gen.shape
    fake_clf, _ = train_classifier(gen.images, gen.labels, 10, epochs=a.cas_epochs, progress=a.progress)
    real_clf, _ = train_classifier(train.images, train.labels, 10, epochs=a.cas_epochs, progress=a.progress)
    out["cas"] = accuracy(fake_clf, test.images, test.labels, res, ch)
    out["cas_real"] = accuracy(real_clf, test.images, test.labels, res, ch)
    full_train = dataclasses.replace(train.data, limit=None)
    out["real_clf_on_samples"] = classifier_accuracy(gen.images, gen.labels, full_train, progress=a.progress)
    return out


def table(r: dict) -> str:
    n, nt = r["n"], r["n_test"]
    lines = [f"{r['source']} ({r['file']}, step {r['step']:,}) against {r['data']}; Inception {r['weights']} "
             f"({r['mode']})", "", "| metric | value | protocol |", "|---|---|---|",
             f"| FID vs test | {r['fid_test']:.2f} | {n:,} samples vs {nt:,} test images |",
             f"| KID vs test | {r['kid_test']:.4f} ± {r['kid_std_test']:.4f} | same sets |",
             f"| FID vs train | {r['fid_train']:.2f} | {n:,} samples vs {r['n_train']:,} train images |",
             f"| KID vs train | {r['kid_train']:.4f} ± {r['kid_std_train']:.4f} | same sets |",
             f"| precision / recall | {r['precision']:.3f} / {r['recall']:.3f} | k = 3, vs test |"]
    if "is" in r:
        lines.append(f"| IS | {r['is']:.2f} ± {r['is_std']:.2f} | 10 splits; the test images: {r['is_test']:.2f} |")
    else:
        lines.append("| IS | - | needs --inception pt_inception-2015-12-05-6726825d.pth (1008 logits) |")
    lines += [f"| CAS: trained on samples, on real test | {100 * r['cas']:.2f}% | {n:,} samples, "
              f"{r['cas_epochs']} epochs; {nt:,} test images |",
              f"| same classifier trained on real train | {100 * r['cas_real']:.2f}% | {r['n_train']:,} train "
              "images, same epochs |",
              f"| real-train classifier on the samples | {100 * r['real_clf_on_samples']:.2f}% | the training "
              "curve's CAS (the whole train split, 2 epochs) |"]
    for key in sorted(k for k in r if k.startswith("intra_fid_")):
        c = key.removeprefix("intra_fid_")
        a, b = r[f"intra_n_{c}"]
        lines.append(f"| intra-class FID, {c} | {r[key]:.2f} | {a:,} samples vs {b:,} test images of the class |")
    lines += [f"| real vs real floor: FID | {r['fid_floor']:.2f} | {r['n_train']:,} train vs {nt:,} test images |",
              f"| real vs real floor: KID | {r['kid_floor']:.4f} ± {r['kid_std_floor']:.4f} | same sets |",
              f"| sampling 1,000 images | {r['sample_1000_s']:.2f} s | {r['threads']} threads, median of 3 |",
              "", JPEG_NOTE + ".", "", "| published anchor | FID | IS | protocol |", "|---|---|---|---|"]
    lines += [f"| {name} | {fid} | {is_} | {how} |" for name, fid, is_, how in ANCHORS]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", help="built-in name (cifar10), run directory or .safetensors generator")
    p.add_argument("-n", type=int, default=10000, help="samples (and real images per reference), class-balanced")
    p.add_argument("--classes", default="cat,ship,automobile", help="classes for the intra-class FID rows")
    p.add_argument("--threads", type=int, default=2, help="torch threads for everything, the sampling time included")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--data", default=str(default_data()), help="cifar10_jpeg: train/ and test/ class folders")
    p.add_argument("--inception", default=None, help="Inception weights (the standard .pth also gives IS)")
    p.add_argument("--fast", action="store_true", help="bf16 Inception (FID moves slightly; see docs/metrics.md)")
    p.add_argument("--cas-epochs", type=int, default=10, help="epochs of each CAS classifier")
    p.add_argument("--batch-size", type=int, default=50, help="Inception batch size")
    p.add_argument("--progress", action="store_true", help="progress bars")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    try:
        r = run(a)
    except ResganError as e:
        print(f"gen_cifar10: error: {e}", file=sys.stderr)
        return 2
    r["cas_epochs"] = a.cas_epochs
    r["note"], r["anchors"] = JPEG_NOTE, [dict(zip(("model", "fid", "is", "protocol"), x)) for x in ANCHORS]
    print(table(r))
    if a.json:
        clean = {k: (list(v) if isinstance(v, tuple) else v) for k, v in r.items()}
        Path(a.json).write_text(json.dumps(clean, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
