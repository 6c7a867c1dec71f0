"""Load a trained generator (run directory, checkpoint or built-in name) and sample from it."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from .. import __version__
from ..checkpoint import checkpoint_file, load_checkpoint, save_checkpoint, unprefixed
from ..config import config_from_dict
from ..errors import ResganError
from ..report import make_grid, save_png
from .models import ResNetGenerator, build_generator

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "weights"
BUILTIN_GENERATORS = {"mnist": "mnist_cgan32.safetensors"}


def resolve_source(source: str | Path) -> Path:
    """A built-in name, a run directory, or a checkpoint file -> the checkpoint file."""
    if str(source) in BUILTIN_GENERATORS:
        return BUILTIN_DIR / BUILTIN_GENERATORS[str(source)]
    p = checkpoint_file(source)
    if p is None:
        raise ResganError(f"no checkpoint at {source} (give a run directory, a .safetensors file, "
                          f"or a built-in: {', '.join(BUILTIN_GENERATORS)})")
    return p


def load_generator(source: str | Path, device: str | torch.device = "cpu") -> tuple[ResNetGenerator, dict]:
    """The EMA generator of a run or an exported generator, in eval mode, and the checkpoint's meta."""
    path = resolve_source(source)
    tensors, meta = load_checkpoint(path)
    if meta.get("task") != "gan":
        raise ResganError(f"{path} is not a GAN checkpoint (task {meta.get('task')!r})")
    cfg = config_from_dict(meta["config"])
    G = build_generator(cfg)
    state = unprefixed("G_ema", tensors)
    try:
        G.load_state_dict({k: v.float() for k, v in state.items()})
    except RuntimeError as e:
        raise ResganError(f"{path} does not fit the generator its config describes: {str(e).splitlines()[0]}") from None
    return G.to(device).eval(), meta


def export_generator(source: str | Path, out: Path, half: bool = True) -> Path:
    """Write only the EMA generator (fp16 by default) and its config: the built-in format."""
    path = resolve_source(source)
    tensors, meta = load_checkpoint(path)
    state = unprefixed("G_ema", tensors)
    if not state:
        raise ResganError(f"{path} holds no generator")
    keep = {f"G_ema.{k}": (v.half() if half and v.is_floating_point() else v) for k, v in state.items()}
    out_meta = {"kind": "generator", "task": meta["task"], "version": __version__, "step": meta["step"],
                "config": meta["config"], "classes": meta.get("classes", [])}
    save_checkpoint(Path(out), keep, out_meta)
    return Path(out)


def truncated_normal(shape: tuple[int, ...], trunc: float | None,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard normal samples; with ``trunc``, values beyond +-trunc are redrawn (BigGAN's trick)."""
    z = torch.randn(shape, generator=generator)
    if trunc is not None and trunc > 0:
        bad = z.abs() > trunc
        while bad.any():
            z[bad] = torch.randn(int(bad.sum()), generator=generator)
            bad = z.abs() > trunc
    return z


def parse_seeds(text: str) -> list[int]:
    """'0-63', '1,5,9' or '0-9,20' -> list of ints."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            if "-" in part.strip()[1:]:
                a, b = part.split("-", 1)
                lo, hi = int(a), int(b)
                if hi < lo:
                    raise ValueError
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
    except ValueError:
        raise ResganError(f"--seeds wants a list like 0-63 or 1,5,9, got {text!r}") from None
    if not seeds or min(seeds) < 0:
        raise ResganError("--seeds must name non-negative seeds")
    return seeds


@torch.no_grad()
def generate(G: ResNetGenerator, seeds: list[int], class_idx: int | None = None, trunc: float | None = None,
             batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One image per seed: z drawn from a generator seeded by the seed (so a seed is the same
    image whatever else is asked). Conditional models use ``class_idx`` or ``seed % classes``."""
    if G.num_classes:
        if class_idx is not None and not 0 <= class_idx < G.num_classes:
            raise ResganError(f"--class must be in 0..{G.num_classes - 1}")
        labels = torch.tensor([class_idx if class_idx is not None else s % G.num_classes for s in seeds])
    else:
        if class_idx is not None:
            raise ResganError("this generator is unconditional; drop --class")
        labels = None
    if trunc is not None and trunc <= 0:
        raise ResganError("--trunc must be > 0")
    z = torch.stack([truncated_normal((G.z_dim,), trunc, torch.Generator().manual_seed(s)) for s in seeds])
    device = next(G.parameters()).device
    out = []
    for i in range(0, len(seeds), batch_size):
        y = labels[i:i + batch_size].to(device) if labels is not None else None
        out.append(G(z[i:i + batch_size].to(device), y).float().cpu())
    return torch.cat(out), labels


def write_images(images: torch.Tensor, seeds: list[int], out: Path) -> list[Path]:
    """A ``.png`` path: one grid; otherwise a folder with ``seedNNNN.png`` per seed."""
    out = Path(out)
    if out.suffix.lower() == ".png":
        save_png(make_grid(images, math.ceil(math.sqrt(len(seeds)))), out)
        return [out]
    if out.suffix:
        raise ResganError(f"--out must be a .png file or a folder, got {out}")
    paths = []
    for img, s in zip(images, seeds):
        p = out / f"seed{s:04d}.png"
        save_png(make_grid(img[None], 1, pad=0), p)
        paths.append(p)
    return paths
