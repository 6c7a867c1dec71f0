"""``resgan restore``: restore images with a built-in model or a trained restore checkpoint.

Any size (reflect-padded to the net's multiple and cropped back), large images in tiles with an
overlap (memory bounded by the tile), grey / RGB / RGBA (alpha kept) / palette, 8- and 16-bit
PNG, JPEG. The output has the input's name, size (x scale for SR) and mode. A bad file is one
line on stderr; the other files are still processed and the exit code says some failed.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..accel import autocast, cpu_bf16_pays
from ..checkpoint import atomic_write_bytes, prepare_dir
from ..data import IMAGE_EXTS
from ..errors import ResganError
from ..imageio import DEFAULT_MAX_PIXELS, encode_image, keep_known, list_folder, read_image, read_mask
from ..zoo import RestoreModel, load_restorer
from .models import pad_forward

# RESTORE_TASKS: task -> its default built-in in resgan.zoo.BUILTINS (None: train one first)
RESTORE_TASKS = {"denoise": "denoise_gray", "inpaint": "inpaint", "sr": "sr_x4", "deblur": None, "jpeg": "jpeg_gray"}
# tasks with a colour built-in beside the grey one: without --model, each image gets the one of its mode
COLOUR_DEFAULTS = {"denoise": "denoise_color", "jpeg": "jpeg_color"}
# tiles overlap by this much: the U-Nets see ~60 px around a pixel, so 64 px make tiled equal whole
# (the JPEG models differed by up to 2.4 levels at 32 px, 0.01 at 64)
DEFAULT_OVERLAP = 64
INPAINT_WHOLE_PIXELS = 2048 * 2048  # inpainting runs on the whole image up to this size (~2 GB peak, FFC net)
MASK_RE = re.compile(r"_mask\d*$")


def load_model(task: str, model: str | None = None, device: str | torch.device = "cpu") -> RestoreModel:
    """The EMA net of a restore run / exported model (see :mod:`resgan.zoo`) for ``task``, in eval mode."""
    if task not in RESTORE_TASKS:
        raise ResganError(f"unknown task {task!r}; choose one of {', '.join(RESTORE_TASKS)}")
    name = model or RESTORE_TASKS[task]
    if name is None:
        raise ResganError(f"no built-in model for --task {task}; train one (resgan train CONFIG with "
                          f"restore.kind={task}) and pass --model RUN_DIR")
    return check_model(load_restorer(name, device), task)


def check_model(m: RestoreModel, task: str, scale: int | None = None) -> RestoreModel:
    """``m`` can do ``task`` (a "real" model: denoise, deblur and jpeg) at ``scale``, or a ResganError."""
    if m.kind != task and not (m.kind == "real" and task in ("denoise", "deblur", "jpeg")):
        raise ResganError(f"{m.source} is a {m.kind} model, not a {task} model")
    if scale is not None and scale != m.scale:
        raise ResganError(f"{m.source} is an x{m.scale} model, not x{scale}")
    return m


# ---------------------------------------------------------------- tiles


# progress(done, total): called with (0, total) before the first tile and after each tile
Progress = Callable[[int, int], None]


def _no_progress(done: int, total: int) -> None:
    pass


def tiled_forward(net: torch.nn.Module, x: torch.Tensor, cond: torch.Tensor | None = None, tile: int = 512,
                  overlap: int = DEFAULT_OVERLAP, progress: Progress | None = None) -> torch.Tensor:
    """``net`` on (N, C, H, W) in tiles of ``tile`` px whose outer ``overlap`` px are discarded, so
    memory is bounded by the tile. The whole image at once when it fits in one tile (or tile <= 0).
    ``progress(done, total)`` is told (0, total) first, then each finished tile (the whole image: 0/1, 1/1)."""
    n, c, h, w = x.shape
    m = getattr(net, "multiple", 1)
    s = getattr(net, "scale", 1)
    progress = progress or _no_progress
    if tile <= 0 or (h <= tile and w <= tile):
        progress(0, 1)
        y = pad_forward(net, x, cond)
        progress(1, 1)
        return y
    overlap = -(-overlap // m) * m
    core = max(m, (tile - 2 * overlap) // m * m)
    out = torch.empty(n, c, h * s, w * s, dtype=x.dtype)
    spatial = cond is not None and cond.dim() == 4
    total, done = -(-h // core) * -(-w // core), 0
    progress(0, total)
    for y0 in range(0, h, core):
        for x0 in range(0, w, core):
            y1, x1 = min(y0 + core, h), min(x0 + core, w)
            ya, xa = max(0, y0 - overlap), max(0, x0 - overlap)
            yb, xb = min(h, y1 + overlap), min(w, x1 + overlap)
            c_t = cond[..., ya:yb, xa:xb] if spatial else cond
            o = pad_forward(net, x[..., ya:yb, xa:xb], c_t)
            oy, ox = (y0 - ya) * s, (x0 - xa) * s
            out[..., y0 * s:y1 * s, x0 * s:x1 * s] = o[..., oy:oy + (y1 - y0) * s, ox:ox + (x1 - x0) * s].cpu()
            done += 1
            progress(done, total)
    return out


# estimate_sigma's raw response (median over 40 BSDS500 *training* photos, 8-bit noisy files) at
# the true sigmas below: content inflates it at low sigma, clipping at 0 / 255 deflates it at high sigma
_SIGMA_TRUE = (0.0, 2.0, 5.0, 10.0, 15.0, 20.0, 25.0, 35.0, 50.0, 65.0, 75.0, 90.0)
_SIGMA_RAW = (2.22, 3.71, 6.67, 11.12, 16.31, 20.76, 25.2, 34.1, 45.96, 54.86, 59.3, 64.12)


def estimate_sigma(x: np.ndarray) -> float:
    """Noise sigma (0-255 scale) of a float [0, 1] (H, W, C) noisy image: median absolute deviation
    of the finest diagonal Haar band (Donoho), over 2x2 blocks that hold no clipped pixel and are
    not near black or white, then mapped through the measured response curve above (the
    clipping part only when the image looks clipped, i.e. stays within [0, 1])."""
    if x.shape[0] < 2 or x.shape[1] < 2:
        raise ResganError(f"a {x.shape[1]}x{x.shape[0]} image is too small to estimate its noise (it takes at "
                          "least 2x2 pixels); give the noise level (--sigma, 0-255 scale)")
    h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
    a = x[:h, :w].astype(np.float64)
    b = np.stack([a[0::2, 0::2], a[0::2, 1::2], a[1::2, 0::2], a[1::2, 1::2]])
    hh = (b[0] - b[1] - b[2] + b[3]) / 2
    clipped = a.min() >= 0 and a.max() <= 1
    # clipped files: skip blocks touching 0 / 1 (their noise is cut); float noise: every block (a cut there
    # would select the blocks whose noise happened to stay inside [0, 1])
    ok = (b.min(0) > 0) & (b.max(0) < 1) & (np.abs(b.mean(0) - 0.5) < 0.35) if clipped else np.ones(hh.shape, bool)
    raw = float(np.median(np.abs(hh[ok] if ok.sum() > 0.05 * ok.size else hh)) / 0.6745 * 255)
    if not clipped and raw > _SIGMA_RAW[6]:  # float noise, not clipped: the raw estimate is unbiased there
        return raw
    if raw > _SIGMA_RAW[-1]:
        return raw * _SIGMA_TRUE[-1] / _SIGMA_RAW[-1]
    return float(np.interp(raw, _SIGMA_RAW, _SIGMA_TRUE))


def inference_precision(model: RestoreModel, device: torch.device) -> str:
    """"bf16" for the FFC inpainting net on a CPU whose bf16 is native (``resgan.accel.cpu_bf16_pays``;
    ``RESGAN_CPU_BF16=0`` keeps fp32), else "fp32". Its base fill and output stay fp32 and known pixels
    exact; the correction in the holes moves by under a level (0.14 at most on a 512x512 photo) for half
    the time (0.90 -> 0.48 CPU-s on Zen 4). The other restorers stay fp32: their output is the net's own."""
    ffc_inpaint = model.kind == "inpaint" and model.cfg.restore.arch == "ffc"
    return "bf16" if ffc_inpaint and device.type == "cpu" and cpu_bf16_pays() else "fp32"


@torch.no_grad()
def restore_array(model: RestoreModel, img: np.ndarray, mask: np.ndarray | None = None, sigma: float | None = None,
                  tile: int = 512, overlap: int = DEFAULT_OVERLAP, progress: Progress | None = None) -> np.ndarray:
    """float32 (H, W, C) in [0, 1] -> restored float32 (H*s, W*s, C) in [0, 1]. A grey model runs
    on each colour channel; a colour model sees a grey image replicated (and returns its mean).
    Inpainting keeps every known pixel's value exactly (``mask``: bool (H, W), True = hole).
    ``progress(done, total)``: tiles done (see :func:`tiled_forward`; an untiled image is one tile)."""
    h, w, c = img.shape
    device = next(model.net.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]
    if model.channels == 1:
        x = x.transpose(0, 1)  # (C, 1, H, W): one grey image per channel
    elif c == 1:
        x = x.expand(1, 3, h, w).contiguous()
    cond = None
    r = model.cfg.restore
    if model.kind == "inpaint":
        if mask is None:
            raise ResganError("inpainting needs a mask (--mask, or NAME_mask.png beside NAME.png)")
        cond = torch.from_numpy(mask.astype(np.float32))[None, None].expand(x.shape[0], 1, h, w)
    elif getattr(model.net, "noise_map", False):
        s = estimate_sigma(img) if sigma is None else sigma
        lo, hi = r.sigma, max(r.sigma, r.sigma_max)
        cond = torch.full((x.shape[0],), min(max(s, lo), hi) / 255.0)
    if model.kind == "inpaint" and h * w <= INPAINT_WHOLE_PIXELS:
        tile = 0  # a fill must see the whole hole and its context: tiles would leave seams across holes
    x = x.to(device).contiguous(memory_format=torch.channels_last)  # the nets load channels_last (zoo)
    if cond is not None:
        cond = cond.to(device)
    with autocast(device, inference_precision(model, device)):
        y = tiled_forward(model.net, x, cond, tile, overlap, progress).float().cpu()
    if model.channels == 1:
        y = y.transpose(0, 1)
    elif c == 1:
        y = y.mean(1, keepdim=True)
    out = y[0].clamp(0, 1).numpy().transpose(1, 2, 0)
    if mask is not None:
        out = np.where(mask[:, :, None], out, img)  # known pixels: the input's own values
    return np.ascontiguousarray(out, dtype=np.float32)


# ---------------------------------------------------------------- files


def find_masks(image: Path, mask_arg: str | None) -> list[Path]:
    """The mask(s) of ``image``: --mask (a file, or a folder holding a same-named mask), else
    LaMa's convention: ``NAME_mask*.png`` beside ``NAME.png``."""
    if mask_arg:
        p = Path(mask_arg)
        if p.is_dir():
            cands = [q for q in sorted(p.iterdir()) if q.stem == image.stem or MASK_RE.sub("", q.stem) == image.stem]
            if not cands:
                raise ResganError(f"{image}: no mask named {image.stem}.* in {p}")
            return cands[:1]
        if not p.is_file():
            raise ResganError(f"--mask {p}: no such file or folder")
        return [p]
    cands = sorted(q for q in image.parent.glob(f"{image.stem}_mask*") if q.suffix.lower() in IMAGE_EXTS
                   and MASK_RE.search(q.stem))
    if not cands:
        raise ResganError(f"{image}: no mask (give --mask, or put {image.stem}_mask.png beside it)")
    return cands


def collect_inputs(inputs: list[str], task: str) -> list[tuple[Path, Path]]:
    """(file, name relative to the output folder) for every input; folders are listed (not
    recursively), skipping LaMa-style ``*_mask*`` files for inpainting."""
    out: list[tuple[Path, Path]] = []
    for s in inputs:
        p = Path(s)
        if p.is_dir():
            files = list_folder(p)
            if task == "inpaint":
                files = [f for f in files if not MASK_RE.search(f.stem)]
            out += [(f, Path(f.name)) for f in files]
        else:
            out.append((p, Path(p.name)))
    return out


def default_models(task: str, device: str | torch.device = "cpu") -> RestoreModel | dict[int, RestoreModel]:
    """The built-in model of ``task``, or {channels: model} where it has a grey and a colour one."""
    if task in COLOUR_DEFAULTS:
        return {1: load_model(task, RESTORE_TASKS[task], device), 3: load_model(task, COLOUR_DEFAULTS[task], device)}
    return load_model(task, None, device)


def restore_file(model: RestoreModel | dict[int, RestoreModel], path: Path, out_path: Path,
                 mask_arg: str | None = None, sigma: float | None = None, tile: int = 512,
                 overlap: int = DEFAULT_OVERLAP, max_pixels: int = DEFAULT_MAX_PIXELS, quality: int = 95) -> list[Path]:
    """Restore one file; returns the written paths (inpainting with several LaMa masks: one each).
    ``model`` may be {channels: model}: the image's mode (grey or colour) picks one. ``quality``: of a
    JPEG / WebP output file."""
    loaded = read_image(path, max_pixels)
    if isinstance(model, dict):
        model = model[loaded.data.shape[2]]
    h, w = loaded.data.shape[:2]
    jobs: list[tuple[np.ndarray | None, Path]] = [(None, out_path)]
    if model.kind == "inpaint":
        masks = find_masks(path, mask_arg)
        jobs = [(read_mask(m, (w, h), max_pixels), out_path if len(masks) == 1 else out_path.with_name(
            m.stem + out_path.suffix)) for m in masks]
    written = []
    for mask, dest in jobs:
        if dest.resolve() == path.resolve():
            raise ResganError(f"{path}: the output would overwrite the input; choose another --out")
        res = restore_array(model, loaded.data, mask, sigma, tile, overlap)
        if mask is None:
            data = encode_image(res, loaded, dest, quality)
        else:  # inpainting: known pixels bit-identical to the input's stored integers
            data = keep_known(res, loaded, mask, dest, quality)
        atomic_write_bytes(dest, data)
        written.append(dest)
    return written


def check_options(task: str, model: str | None = None, scale: int | None = None, sigma: float | None = None,
                  tile: int = 512, overlap: int = DEFAULT_OVERLAP, quality: int = 95) -> None:
    """The options of a restore call (command line or Python API), checked before any model is loaded."""
    if task not in RESTORE_TASKS:
        raise ResganError(f"unknown task {task!r}; choose one of {', '.join(RESTORE_TASKS)}")
    if scale is not None and scale not in (2, 3, 4):
        raise ResganError(f"unknown scale {scale}; choose 2, 3 or 4")
    if scale is not None and task != "sr":
        raise ResganError("--scale applies to --task sr only")
    if sigma is not None and not 0 <= sigma <= 255:
        raise ResganError(f"--sigma must be within 0..255, got {sigma}")
    if not 1 <= quality <= 100:
        raise ResganError(f"--quality must be within 1..100, got {quality}")
    if tile < 0 or overlap < 0 or (tile and overlap * 2 >= tile):
        raise ResganError("--tile must be 0 (off) or more than twice --overlap")
    if model is None and task == "sr" and scale not in (None, 4):
        raise ResganError(f"the built-in sr model is x4; for x{scale} pass --model RUN_DIR of an x{scale} model")


def select_model(task: str, model: str | Path | None = None, scale: int | None = None,
                 device: str | torch.device = "cpu") -> RestoreModel | dict[int, RestoreModel]:
    """``model`` (checked against ``task`` and ``scale``), else the task's built-in(s)."""
    if model:
        return check_model(load_model(task, str(model), device), task, scale)
    return default_models(task, device)


def output_file(inputs: list[str], files: list[tuple[Path, Path]], out: Path) -> Path | None:
    """``--out`` as the output file itself: one input file and an image-file name that is not an
    existing folder (``restore x.png --out y.png``, as ``generate`` takes a .png). None: a folder."""
    if out.is_dir() or out.suffix.lower() not in IMAGE_EXTS:
        return None
    if len(inputs) != 1 or len(files) != 1 or Path(inputs[0]).is_dir():
        raise ResganError(f"--out {out}: a file name takes one input file; for several inputs or a folder give "
                          "an output folder (without an image suffix)")
    return out


def restore_paths(inputs: list[str], task: str, out: str, model: str | None = None, mask: str | None = None,
                  scale: int | None = None, sigma: float | None = None, tile: int = 512, overlap: int = DEFAULT_OVERLAP,
                  max_pixels: int = DEFAULT_MAX_PIXELS, device: str = "cpu", quiet: bool = False,
                  quality: int = 95) -> int:
    """The ``resgan restore`` command: 0 when every file was restored, 1 when some failed."""
    check_options(task, model, scale, sigma, tile, overlap, quality)
    m = select_model(task, model, scale, device)
    files = collect_inputs(inputs, task)
    if not files:
        raise ResganError(f"no input images in {', '.join(inputs)}")
    out_file = output_file(inputs, files, Path(out))
    # one line for a place that cannot be written, not one per file
    out_dir = prepare_dir(out_file.parent if out_file is not None else Path(out))
    failed: list[str] = []
    for path, name in files:
        t0 = time.perf_counter()
        try:
            dest = out_file if out_file is not None else out_dir / name
            written = restore_file(m, path, dest, mask, sigma, tile, overlap, max_pixels, quality)
        except ResganError as e:
            msg = str(e)
            print(f"resgan: error: {msg if msg.startswith(str(path)) else f'{path}: {msg}'}", file=sys.stderr)
            failed.append(str(path))
            continue
        if not quiet:
            for d in written:
                print(f"{path} -> {d} ({time.perf_counter() - t0:.2f} s)")
    if failed:
        print(f"resgan: {len(failed)} of {len(files)} files failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
