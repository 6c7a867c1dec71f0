"""The checks every request's options go through: a wrongly typed option is a ResganError naming it
(never a TypeError / OverflowError from deep inside), the same on every entry point."""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Any

from ..errors import ResganError


def whole(value: Any, name: str, lo: int | None = None, hi: int | None = None) -> int:
    """An integer option (bool, float and str refused), within lo..hi."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ResganError(f"{name} must be a whole number, got {value!r}")
    value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        if lo is not None and hi is not None:
            raise ResganError(f"{name} must be within {lo}..{hi}, got {value}")
        raise ResganError(f"{name} must be a whole number {f'>= {lo}' if lo is not None else f'<= {hi}'}, got {value}")
    return value


def number(value: Any, name: str, lo: float | None = None, hi: float | None = None, why: str = "") -> float:
    """A finite real option (bool and str refused), within lo..hi."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ResganError(f"{name} must be a number{why}, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
        if lo is not None and hi is not None:
            raise ResganError(f"{name} must be within {lo:g}..{hi:g}{why}, got {v:g}")
        raise ResganError(f"{name} must be a finite number" + (f" >= {lo:g}" if lo is not None else "")
                          + (f" <= {hi:g}" if hi is not None else "") + f"{why}, got {v:g}")
    return v


def source(value: Any, name: str = "model") -> str | None:
    """A model source (built-in name, run directory, .safetensors file): str / Path -> str; None stays."""
    if value is None:
        return None
    if not isinstance(value, (str, Path)) or not str(value):
        raise ResganError(f"{name}: give a built-in name, a run directory or a .safetensors file, "
                          f"not {type(value).__name__}")
    return str(value)
