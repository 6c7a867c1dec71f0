"""Sample from a generator (loaded by :func:`resgan.zoo.load_generator`): one image per seed (seeds are
parsed, and files written, by the request layer: :mod:`resgan.verbs.generate`).

Two kinds of truncation, which compose (threshold first, then psi):

* ``psi`` (StyleGAN's): z is moved toward the prior's mean latent, which for this Gaussian prior
  (no mapping network) is 0, so z' = psi * z: 1 = off, 0.7 = mild, 0 = every image the mean one.
* ``trunc`` (BigGAN's threshold): every component of z beyond +-trunc is redrawn, so z is a
  truncated normal: smaller = less variety (1.0 is a usual value; None = off).
"""

from __future__ import annotations

import math

import torch

from ..errors import ResganError
from .models import ResNetGenerator

MIN_TRUNC = 0.05  # below, most draws land outside +-trunc and the redraw loop crawls
MAX_REDRAWS = 1000  # rounds of redrawing; at MIN_TRUNC a value survives them with probability ~1e-18
MAX_PSI = 2.0  # psi above 1 moves away from the mean (more variety, more artefacts); further is noise


def check_psi(psi: float | None, what: str = "--psi") -> None:
    """Truncation psi must be a finite number within 0..MAX_PSI (None: off, the same as 1)."""
    if psi is None:
        return
    if not math.isfinite(psi) or not 0 <= psi <= MAX_PSI:
        raise ResganError(f"{what} must be within 0..{MAX_PSI:g} (truncation psi: 1 = off, 0.7 = mild, "
                          f"0 = the mean image), got {psi:g}")


def class_names(num_classes: int, meta: dict) -> list[str]:
    """The class names of a generator, in label order (its checkpoint's; else "0", "1", ...)."""
    names = [str(c) for c in meta.get("classes") or []]
    return names if len(names) == num_classes else [str(i) for i in range(num_classes)]


def class_index(names: list[str], value: int | str | None, what: str = "--class") -> int | None:
    """A class given by name or index -> its index (None -> None). A value that is one of the
    names is that name (so sub-folders named 1, 2, 3 are found by name); else a non-negative
    integer is an index; else a case-insensitive name. ``names`` empty: an unconditional model."""
    if value is None or value == "":
        return None
    if not names:
        raise ResganError(f"this generator is unconditional; drop {what}")
    text = str(value).strip()
    if text in names:
        return names.index(text)
    if text.isascii() and text.isdigit():
        idx = int(text)
        if not 0 <= idx < len(names):
            raise ResganError(f"{what} must be within 0..{len(names) - 1} (or a class name)")
        return idx
    folded = [i for i, n in enumerate(names) if n.casefold() == text.casefold()]
    if len(folded) == 1:
        return folded[0]
    raise ResganError(f"unknown class {text!r}; classes: {', '.join(names)}")


def format_classes(names: list[str]) -> str:
    """``resgan generate --list-classes``: one "index name" line per class."""
    if not names:
        return "unconditional (no classes)"
    return "\n".join(f"{i}\t{n}" for i, n in enumerate(names))


def check_trunc(trunc: float | None, what: str = "--trunc") -> None:
    """A truncation threshold must be a finite number >= MIN_TRUNC (None: no truncation)."""
    if trunc is None:
        return
    if not math.isfinite(trunc) or trunc < MIN_TRUNC:
        raise ResganError(f"{what} must be a finite number >= {MIN_TRUNC} (BigGAN's threshold on |z|, e.g. 0.5 "
                          f"or 1.0; for StyleGAN's psi use psi), got {trunc:g}")


def truncated_normal(shape: tuple[int, ...], trunc: float | None,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard normal samples; with ``trunc``, values beyond +-trunc are redrawn (BigGAN's trick),
    at most MAX_REDRAWS rounds."""
    z = torch.randn(shape, generator=generator)
    if trunc is not None and trunc > 0:
        check_trunc(trunc)
        bad = z.abs() > trunc
        for _ in range(MAX_REDRAWS):
            if not bad.any():
                break
            z[bad] = torch.randn(int(bad.sum()), generator=generator)
            bad = z.abs() > trunc
        else:
            if bad.any():
                raise ResganError(f"truncation {trunc:g}: {int(bad.sum())} values still beyond it after "
                                  f"{MAX_REDRAWS} redraws; use a larger --trunc")
    return z


@torch.no_grad()
def generate(G: ResNetGenerator, seeds: list[int], class_idx: int | None = None, trunc: float | None = None,
             psi: float | None = None, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One image per seed, float (N, C, H, W) in [-1, 1], and the labels: z drawn from a
    generator seeded by the seed (so a seed is the same image whatever else is asked), cut at the
    ``trunc`` threshold, then scaled by ``psi`` (see the module's doc). Conditional models use
    ``class_idx`` or ``seed % classes``."""
    if G.num_classes:
        if class_idx is not None and not 0 <= class_idx < G.num_classes:
            raise ResganError(f"--class must be within 0..{G.num_classes - 1}")
        labels = torch.tensor([class_idx if class_idx is not None else s % G.num_classes for s in seeds])
    else:
        if class_idx is not None:
            raise ResganError("this generator is unconditional; drop --class")
        labels = None
    check_trunc(trunc)
    check_psi(psi)
    z = torch.stack([truncated_normal((G.z_dim,), trunc, torch.Generator().manual_seed(s)) for s in seeds])
    if psi is not None and psi != 1:
        z = z * psi  # toward the mean latent, 0 for N(0, I)
    device = next(G.parameters()).device
    out = []
    for i in range(0, len(seeds), batch_size):
        y = labels[i:i + batch_size].to(device) if labels is not None else None
        out.append(G(z[i:i + batch_size].to(device), y).float().cpu())
    return torch.cat(out), labels
