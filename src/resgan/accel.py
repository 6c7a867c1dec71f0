"""Speed switches of a training step: precision (autocast), memory layout, torch.compile.

``train.precision: auto`` picks per device what is fastest there: bf16 on a CUDA GPU that has it
and on a CPU with AMX (whose bf16 matrix units outrun fp32 several times), fp32 elsewhere. On an
AVX512-BF16 CPU without AMX, oneDNN's bf16 convolutions run *slower* than fp32 ones (measured:
``benchmarks/cpu_peaks.py``), so auto stays fp32 there; bf16 can still be asked for by name.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from .config import PRECISIONS
from .errors import ResganError


def cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles (oneDNN then runs bf16 convolutions and matmuls on them)."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        return bool(probe()) if probe is not None else False
    except RuntimeError:
        return False


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
    if device.type == "cpu" and cpu_has_amx():
        return "bf16"
    return "fp32"


def autocast(device: torch.device, precision: str):
    """The autocast context for a resolved precision (a no-op for fp32)."""
    if precision in ("bf16", "fp16"):
        return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
    return contextlib.nullcontext()


def to_layout(module: nn.Module, channels_last: bool) -> nn.Module:
    return module.to(memory_format=torch.channels_last) if channels_last else module


def compile_module(module: nn.Module) -> nn.Module:
    """Compile ``module``'s forward in place (its state-dict keys stay the same, so checkpoints
    written with and without compile are interchangeable). The first steps are slow while
    inductor compiles (a minute or more on a small CPU)."""
    module.compile()
    return module
