"""Training throughput (img/s) of a preset in fp32, bf16 autocast and channels_last, side by side.

    python benchmarks/train_throughput.py --config cifar10_sngan --steps 3 --repeats 3

Real images consumed per second (batch x n_dis per generator step) on synthetic batches, so no
data set is needed; each mode is measured ``--repeats`` times, interleaved, and the median shown.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch

from resgan.config import load_config
from resgan.gan import GAN

MODES = {"fp32": ("fp32", False), "fp32+cl": ("fp32", True), "bf16": ("bf16", False), "bf16+cl": ("bf16", True)}


def measure(cfg, precision: str, channels_last: bool, steps: int, warmup: int,
            device: torch.device) -> float:
    train = dataclasses.replace(cfg.train, precision=precision, channels_last=channels_last)
    cfg = dataclasses.replace(cfg, train=train)
    torch.manual_seed(0)
    gan = GAN(cfg, device)
    n, c, r = cfg.train.batch_size, cfg.data.channels, cfg.data.resolution
    real = torch.rand(n, c, r, r, device=device) * 2 - 1
    y = torch.randint(0, max(cfg.model.num_classes, 1), (n,), device=device)

    def next_batch():
        return real, y

    for _ in range(warmup):
        gan.train_step(next_batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        gan.train_step(next_batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * gan.images_per_step() / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="cifar10_sngan")
    p.add_argument("--steps", type=int, default=3, help="timed generator steps per measurement")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--modes", default="fp32,bf16,bf16+cl")
    p.add_argument("--num-classes", type=int, default=0, help="conditional models: number of classes")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args()
    cfg = load_config(a.config)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, num_classes=a.num_classes))
    modes = a.modes.split(",")
    results: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(a.repeats):
        for m in modes:
            results[m].append(measure(cfg, *MODES[m], a.steps, a.warmup, torch.device(a.device)))
    base = statistics.median(results[modes[0]])
    t = cfg.train
    print(f"\n{a.config}: G width {cfg.model.g_width}, D width {cfg.model.d_width}, batch {t.batch_size}, "
          f"n_dis {t.n_dis}, {cfg.data.resolution}px, device {a.device}, threads {torch.get_num_threads()}, "
          f"torch {torch.__version__}")
    print(f"| mode | img/s (median of {a.repeats}) | runs | vs {modes[0]} |")
    print("|---|---|---|---|")
    for m in modes:
        med = statistics.median(results[m])
        print(f"| {m} | {med:.1f} | {', '.join(f'{v:.1f}' for v in results[m])} | {med / base:.2f}x |")


if __name__ == "__main__":
    main()
