"""End-to-end FID feature throughput on CPU: uint8 MNIST 28x28 -> TF-1.x resize to 299 -> FID Inception.

    RESGAN_DATA=../shared/data python benchmarks/eval_throughput.py --n 500

Modes (same images, same weights):
  peer-style    torch-fidelity's pipeline re-created: fp32 NCHW network with separate BN,
                four-corner resize of the 3 replicated channels on the main thread, batch 64
  resgan exact  resgan.metrics.features.FeatureExtractor(): BN folded, channels_last,
                inference mode, resize on a background thread
  resgan fast   FeatureExtractor(fast=True): the same in bfloat16 (opt-in)

Each mode extracts features of MNIST train[:n/2] and t10k[:n/2], the modes taking turns chunk by
chunk (a shared machine's changing load then hits all alike); the table gives img/s, the
speed-up over the peer-style run measured here (same machine, same load) and over torch-fidelity's
published figure on this CPU (12.0 img/s), and the FID of the two halves with its deviation from peer-style.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from resgan.metrics.features import FeatureExtractor
from resgan.metrics.inception import load_inception
from resgan.metrics.stats import fid

PEER_IMG_S = 12.0  # torch-fidelity 0.4.0 end to end on this 2-core CPU (11.8-12.3 measured)


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
    p.add_argument("--modes", default="peer-style,exact,fast")
    p.add_argument("--chunk", type=int, default=50, help="images per mode per round (modes take turns)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    images, what = load_mnist(a.n, a.data)
    half = len(images) // 2
    exact = FeatureExtractor(batch_size=a.batch_size)
    fast = FeatureExtractor(batch_size=a.batch_size, fast=True)
    modes = {
        "peer-style": lambda x: peer_style(x),
        "exact": lambda x: torch.from_numpy(exact.extract_tensor(x)["pool3"]),
        "fast": lambda x: torch.from_numpy(fast.extract_tensor(x)["pool3"]),
    }
    print(f"{what}; {len(images)} images per mode; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"weights {Path(exact.weights_path).name}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    chosen = {k: modes[k] for k in a.modes.split(",")}
    results = interleaved(chosen, images, a.chunk)
    rows, base = [], None
    for name, (feats, speed) in results.items():
        f = fid(feats[:half].numpy(), feats[half:].numpy())
        if name == "peer-style":
            base = (speed, f)
        rows.append((name, speed, f))
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    print()
    print("| mode | img/s | x peer-style (measured here) | x torch-fidelity (12.0 img/s) | FID | FID - peer-style |")
    print("|---|---|---|---|---|---|")
    for name, speed, f in rows:
        rel = f"{speed / base[0]:.2f}x" if base else "-"
        dev = f"{f - base[1]:+.4f}" if base else "-"
        print(f"| {name} | {speed:.1f} | {rel} | {speed / PEER_IMG_S:.2f}x | {f:.4f} | {dev} |")


if __name__ == "__main__":
    main()
