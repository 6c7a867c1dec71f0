"""Speed switches of a training step: precision (autocast), memory layout, torch.compile.

``train.precision: auto`` picks per device what is fastest there: bf16 on a CUDA GPU that has it and
on a CPU with native bf16 instructions (AMX tiles or AVX512-BF16), fp32 elsewhere, where bf16 would be
emulated. Measured on this project's AMD EPYC (Zen 4, AVX512-BF16, no AMX): bf16 + channels_last
trains the MNIST preset 2.5x and SNGAN-32 2.7x as fast as fp32 (``benchmarks/train_throughput.py``).
An earlier VM with AVX512-BF16 ran bf16 convolutions slower than fp32 ones; where that is so,
``RESGAN_CPU_BF16=0`` (or ``train.precision: fp32``) keeps auto on fp32, and ``RESGAN_CPU_BF16=1``
forces bf16.
"""

from __future__ import annotations

import contextlib
import os

import torch
from torch import nn

from .config import PRECISIONS
from .errors import ResganError

ENV_CPU_BF16 = "RESGAN_CPU_BF16"


def _probe(name: str) -> bool:
    fn = getattr(torch.cpu, name, None)
    try:
        return bool(fn()) if fn is not None else False
    except RuntimeError:
        return False


def cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles (oneDNN then runs bf16 convolutions and matmuls on them)."""
    return _probe("_is_amx_tile_supported")


def cpu_bf16_pays() -> bool:
    """Whether bf16 autocast is the fast path on this CPU: ``$RESGAN_CPU_BF16`` (0 / 1) when set,
    else whether the CPU has native bf16 instructions (AMX or AVX512-BF16)."""
    env = os.environ.get(ENV_CPU_BF16, "").strip()
    if env in ("0", "1"):
        return env == "1"
    return cpu_has_amx() or _probe("_is_avx512_bf16_supported")


def torch_device(name: str | torch.device, what: str = "--device") -> torch.device:
    """A device name (``cpu``, ``cuda``, ``cuda:N``, ``mps``) as a torch.device this machine has, or a
    ResganError naming the option (``what``) and why, before any model is built or moved."""
    try:
        dev = name if isinstance(name, torch.device) else torch.device(str(name).strip())
    except (RuntimeError, TypeError, ValueError):
        raise ResganError(f"{what} {name!r} is not a device; give cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not count:
            raise ResganError(f"{what} {name}: CUDA is not available on this machine")
        if dev.index is not None and dev.index >= count:
            raise ResganError(f"{what} {name}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ResganError(f"{what} {name}: MPS is not available on this machine")
    elif dev.type != "cpu":
        raise ResganError(f"{what} {name!r}: resgan runs on cpu, cuda, cuda:N or mps")
    return dev


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> the fastest sound precision for ``device``; other names are checked and returned."""
    if precision not in PRECISIONS:
        raise ResganError(f"train.precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp16" and device.type != "cuda":
        raise ResganError("train.precision=fp16 needs CUDA; use bf16 on CPU")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu" and cpu_bf16_pays():
        return "bf16"
    return "fp32"


def autocast(device: torch.device, precision: str):
    """The autocast context for a resolved precision (a no-op for fp32)."""
    if precision in ("bf16", "fp16"):
        return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def frozen(module: nn.Module):
    """``module``'s parameters stop requiring gradients inside the block (and require them again after).

    For a discriminator inside the generator's update: autograd then still carries the gradient
    through D to G's output, but no longer computes D's weight gradients, which that update would throw
    away (~6% of a GAN step). G's gradients are bit-identical (tested). Only the graph recorded inside
    the block is affected, so the block holds D's forward pass; the backward may run after it."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p in params:
            p.requires_grad_(True)


def to_layout(module: nn.Module, channels_last: bool) -> nn.Module:
    return module.to(memory_format=torch.channels_last) if channels_last else module


def compile_module(module: nn.Module) -> nn.Module:
    """Compile ``module``'s forward in place (its state-dict keys stay the same, so checkpoints
    written with and without compile are interchangeable). The first steps are slow while
    inductor compiles (a minute or more on a small CPU)."""
    module.compile()
    return module
