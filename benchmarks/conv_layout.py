"""Where a training step's convolution time goes, layer by layer, in NCHW and in channels_last.

    python benchmarks/conv_layout.py --config inpaint --threads 1
    python benchmarks/conv_layout.py --config denoise_color --threads 1 --repeats 7

One training step of the preset (synthetic batch, fp32) runs under a ``TorchFunctionMode`` that records
every ``conv2d`` / ``conv_transpose2d`` call: input shape, weight shape, stride, padding, groups. Each
distinct call is then timed alone, in both memory layouts, as its three kernels: the forward, the
gradient of the input and the gradient of the weight (``aten.convolution_backward`` with one output
asked for at a time), medians of ``--repeats`` after two untimed runs. A step needs the forward of
every call and, in training, at most both gradients, so the last columns (calls x fwd + grad-in +
grad-w) bound what each layer costs a step.

Why: a layout that is faster on one CPU is slower on another (oneDNN picks different kernels per
instruction set), and within one CPU it differs by layer, so ``train.channels_last`` is a per-host
choice this table informs. It does not replace ``benchmarks/train_throughput.py``, which times the
whole step (pads, FFTs, the optimizer, layout conversions between layers).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from collections import Counter
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

CONVS = {F.conv2d: False, torch.conv2d: False, F.conv_transpose2d: True, torch.conv_transpose2d: True}


@dataclasses.dataclass(frozen=True)
class ConvCall:
    """One distinct convolution of a step (stride / padding / dilation as 2-tuples)."""

    transposed: bool
    x: tuple[int, ...]
    w: tuple[int, ...]
    bias: bool
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    output_padding: tuple[int, int]
    groups: int

    def label(self) -> str:
        kind = "convT" if self.transposed else "conv"
        cin, cout = (self.w[0], self.w[1] * self.groups) if self.transposed else (self.w[1] * self.groups, self.w[0])
        return (f"{kind} {cin}->{cout} k{self.w[2]}x{self.w[3]} s{self.stride[0]} "
                f"in {self.x[0]}x{self.x[2]}x{self.x[3]}")


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)  # type: ignore[return-value]


class RecordConvs(TorchFunctionMode):
    """Counts every convolution call made under it (forward calls; R1's double backward is not seen)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[ConvCall] = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in CONVS:
            names = ["input", "weight", "bias", "stride", "padding"]
            names += ["output_padding", "groups", "dilation"] if CONVS[func] else ["dilation", "groups"]
            a = dict(zip(names, args, strict=False)) | kwargs
            if isinstance(a.get("padding", 0), str):
                raise SystemExit("string padding ('same' / 'valid') is not recorded by this benchmark")
            self.calls[ConvCall(CONVS[func], tuple(a["input"].shape), tuple(a["weight"].shape),
                                a.get("bias") is not None, _pair(a.get("stride", 1)), _pair(a.get("padding", 0)),
                                _pair(a.get("dilation", 1)), _pair(a.get("output_padding", 0)),
                                int(a.get("groups", 1)))] += 1
        return func(*args, **kwargs)


def record_step(config: str, sets: list[str]) -> Counter[ConvCall]:
    """The convolutions of one fp32 training step of ``config`` (after one untimed step)."""
    from resgan.config import load_config
    from resgan.train import TASKS

    cfg = load_config(config, [*sets, "train.precision=fp32"])
    if cfg.task == "gan" and cfg.data.conditional:
        cfg = dataclasses.replace(cfg, gan=dataclasses.replace(cfg.gan, num_classes=10))
    torch.manual_seed(0)
    task = TASKS[cfg.task](cfg, torch.device("cpu"))
    res = cfg.restore.crop if cfg.task == "restore" else cfg.data.resolution
    real = torch.rand(cfg.train.batch_size, cfg.data.channels, res, res) * 2 - 1
    y = torch.randint(0, max(cfg.gan.num_classes, 1) if cfg.task == "gan" else 1, (cfg.train.batch_size,))
    task.train_step(lambda: (real, y))
    with RecordConvs() as rec:
        task.train_step(lambda: (real, y))
    return rec.calls


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def time_call(c: ConvCall, channels_last: bool, repeats: int) -> tuple[float, float, float]:
    """(forward, grad of input, grad of weight) in ms for one call in one layout."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    g = torch.Generator().manual_seed(0)
    x = torch.randn(c.x, generator=g).contiguous(memory_format=fmt)
    w = (torch.randn(c.w, generator=g) * 0.05).contiguous(memory_format=fmt)
    b = torch.zeros(c.w[1] * c.groups if c.transposed else c.w[0]) if c.bias else None
    conv = (lambda: F.conv_transpose2d(x, w, b, c.stride, c.padding, c.output_padding, c.groups, c.dilation)) \
        if c.transposed else (lambda: F.conv2d(x, w, b, c.stride, c.padding, c.dilation, c.groups))
    grad = torch.randn(conv().shape, generator=g).contiguous(memory_format=fmt)

    def backward(mask: list[bool]) -> Callable[[], object]:
        return lambda: torch.ops.aten.convolution_backward(
            grad, x, w, [b.shape[0]] if b is not None else None, list(c.stride), list(c.padding), list(c.dilation),
            c.transposed, list(c.output_padding), c.groups, mask)

    return (median_ms(conv, repeats), median_ms(backward([True, False, False]), repeats),
            median_ms(backward([False, True, c.bias]), repeats))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="inpaint")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    calls = record_step(a.config, a.set)
    rows = []
    for c, n in calls.items():
        nchw, cl = time_call(c, False, a.repeats), time_call(c, True, a.repeats)
        rows.append((c, n, nchw, cl, n * sum(nchw), n * sum(cl)))
    rows.sort(key=lambda r: -max(r[4], r[5]))
    print(f"{a.config}: one fp32 training step's convolutions, {a.threads} thread(s), torch {torch.__version__}, "
          f"medians of {a.repeats} (ms)")
    print("| layer | calls | NCHW fwd / grad-in / grad-w | channels_last fwd / grad-in / grad-w "
          "| NCHW per step | cl per step | cl / NCHW |")
    print("|---|---|---|---|---|---|---|")
    for c, n, t0, t1, s0, s1 in rows:
        f0, f1 = " / ".join(f"{v:.1f}" for v in t0), " / ".join(f"{v:.1f}" for v in t1)
        print(f"| {c.label()} | {n} | {f0} | {f1} | {s0:.0f} | {s1:.0f} | {s1 / s0:.2f} |")
    tot0, tot1 = sum(r[4] for r in rows), sum(r[5] for r in rows)
    best = sum(min(r[4], r[5]) for r in rows)
    print(f"| all | {sum(calls.values())} | | | {tot0:.0f} | {tot1:.0f} | {tot1 / tot0:.2f} |")
    grad_w = [sum(r[1] * r[2][2] for r in rows), sum(r[1] * r[3][2] for r in rows)]
    fwd = [sum(r[1] * r[2][0] for r in rows), sum(r[1] * r[3][0] for r in rows)]
    print(f"\nweight gradients / forwards: NCHW {grad_w[0] / fwd[0]:.2f}x, channels_last {grad_w[1] / fwd[1]:.2f}x; "
          f"each layer in its faster layout: {best:.0f} ms ({tot0 / best:.2f}x NCHW, {tot1 / best:.2f}x channels_last)")


if __name__ == "__main__":
    main()
