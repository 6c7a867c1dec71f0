"""Restoration inference, on arrays: load a restore checkpoint / built-in for a task, and run it on
any size (reflect-padded to the net's multiple and cropped back; a side under
:data:`MIN_MULTIPLES` multiples edge-padded up to it), large images in tiles with an overlap (memory bounded by
the tile). Files, masks found beside images and option checks are the request layer's
(:mod:`resgan.verbs.restore`), which every entry point uses.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..accel import autocast, cpu_bf16_pays
from ..errors import ResganError
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
# a side shorter than this many of the net's multiples is edge-padded up to it (and cropped back): the nets
# downsample and reflect-pad inside, so an image of a few pixels (an 8-px inpainting) failed in their padding
MIN_MULTIPLES = 2


def load_model(task: str, model: str | None = None, device: str | torch.device = "cpu") -> RestoreModel:
    """The EMA net of a restore run / exported model (see :mod:`resgan.zoo`) for ``task``, in eval mode."""
    if task not in RESTORE_TASKS:
        raise ResganError(f"unknown task {task!r}; choose one of {', '.join(RESTORE_TASKS)}")
    name = model or RESTORE_TASKS[task]
    if name is None:
        raise ResganError(f"no built-in model for --task {task}; train one (resgan train CONFIG with "
                          f"restore.kind={task}) and pass --model RUN_DIR")
    return check_model(load_restorer(name, device), task)


def check_model(m: RestoreModel, task: str, scale: int | None = None, name: str | None = None) -> RestoreModel:
    """``m`` can do ``task`` (a "real" model: denoise, deblur and jpeg) at ``scale``, or a ResganError
    naming it (``name``, else its file)."""
    name = name or m.source
    if m.kind != task and not (m.kind == "real" and task in ("denoise", "deblur", "jpeg")):
        raise ResganError(f"{name} is a {m.kind} model, not a {task} model")
    if scale is not None and scale != m.scale:
        raise ResganError(f"{name} is an x{m.scale} model, not x{scale}")
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
            raise ResganError("inpainting needs a mask (white = hole, the image's size)")
        cond = torch.from_numpy(mask.astype(np.float32))[None, None].expand(x.shape[0], 1, h, w)
    elif getattr(model.net, "noise_map", False):
        s = estimate_sigma(img) if sigma is None else sigma
        lo, hi = r.sigma, max(r.sigma, r.sigma_max)
        cond = torch.full((x.shape[0],), min(max(s, lo), hi) / 255.0)
    if model.kind == "inpaint" and h * w <= INPAINT_WHOLE_PIXELS:
        tile = 0  # a fill must see the whole hole and its context: tiles would leave seams across holes
    least = MIN_MULTIPLES * getattr(model.net, "multiple", 1)
    ph, pw = max(0, least - h), max(0, least - w)
    if ph or pw:  # a tiny image: edge-padded (a hole stays a hole), cropped back below
        x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate")
        if cond is not None and cond.dim() == 4:
            cond = torch.nn.functional.pad(cond.contiguous(), (0, pw, 0, ph), mode="replicate")
    x = x.to(device).contiguous(memory_format=torch.channels_last)  # the nets load channels_last (zoo)
    if cond is not None:
        cond = cond.to(device)
    with autocast(device, inference_precision(model, device)):
        y = tiled_forward(model.net, x, cond, tile, overlap, progress).float().cpu()
    s = getattr(model.net, "scale", 1)
    y = y[..., : h * s, : w * s]
    if model.channels == 1:
        y = y.transpose(0, 1)
    elif c == 1:
        y = y.mean(1, keepdim=True)
    out = y[0].clamp(0, 1).numpy().transpose(1, 2, 0)
    if mask is not None:
        out = np.where(mask[:, :, None], out, img)  # known pixels: the input's own values
    return np.ascontiguousarray(out, dtype=np.float32)


def default_models(task: str, device: str | torch.device = "cpu") -> RestoreModel | dict[int, RestoreModel]:
    """The built-in model of ``task``, or {channels: model} where it has a grey and a colour one."""
    if task in COLOUR_DEFAULTS:
        return {1: load_model(task, RESTORE_TASKS[task], device), 3: load_model(task, COLOUR_DEFAULTS[task], device)}
    return load_model(task, None, device)
