"""The Python API: restore, generate and score images from Python, with PIL images and uint8
numpy arrays in and out (re-exported at the package top, loaded on first use)::

    import resgan
    from PIL import Image

    clean = resgan.restore_image(Image.open("noisy.png"), task="denoise")       # a PIL image back
    filled = resgan.restore_image(photo_array, task="inpaint", mask=hole)        # an array back
    digits = resgan.generate_images("mnist", seeds=range(8), class_="7", psi=0.7)
    scores = resgan.evaluate_images(digits, "digits", metrics="fid,kid")

Images: a PIL image (any common mode), or a numpy array of dtype uint8 (or uint16 for 16-bit),
shaped (H, W) grey, (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA. A result has the input's type,
mode, dtype and layout (alpha kept; SR multiplies H and W). Models: a built-in name, a run
directory or a ``.safetensors`` file, as on the command line; loaded models are kept (a few, by
file and modification time) so repeated calls do not reload them. Every bad argument is a
:class:`resgan.ResganError` saying what is wrong.

(``resgan.restore`` and ``resgan.evaluate`` name the restoration package and the evaluation
module, hence the ``_image`` / ``_images`` names here.)
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .errors import ResganError
from .imageio import Loaded, from_pil

ImageLike = Image.Image | np.ndarray
_ARRAY_HELP = "(H, W) grey, (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA"


# ---------------------------------------------------------------- images in and out


def _loaded(image: Any, what: str = "image") -> tuple[Loaded, str]:
    """A PIL image or uint8 / uint16 array -> (Loaded, layout), layout being how to give it back."""
    if isinstance(image, Image.Image):
        if image.width < 1 or image.height < 1:
            raise ResganError(f"{what}: empty image ({image.width}x{image.height})")
        return from_pil(image, what), "pil"
    if isinstance(image, (str, Path)):
        raise ResganError(f"{what}: give a PIL image or a numpy array, not a path ({image}); "
                          "open it with PIL.Image.open, or use `resgan restore` for files")
    if torch.is_tensor(image):
        raise ResganError(f"{what}: give a PIL image or a uint8 numpy array (H, W[, C]), not a torch tensor; "
                          "e.g. (t.permute(1, 2, 0) * 255).round().byte().numpy() for a float CHW tensor in [0, 1]")
    if not isinstance(image, np.ndarray):
        raise ResganError(f"{what}: give a PIL image or a numpy array, not {type(image).__name__}")
    arr = image
    if arr.dtype not in (np.uint8, np.uint16):
        hint = (" (floats are ambiguous: scale to 0-255 and round, e.g. (x * 255).round().astype(np.uint8))"
                if arr.dtype.kind == "f" else "")
        raise ResganError(f"{what}: numpy images must be uint8 (or uint16 for 16-bit), got {arr.dtype}{hint}")
    if arr.ndim == 2:
        layout, arr = "hw", arr[:, :, None]
    elif arr.ndim == 3 and arr.shape[2] in (1, 3, 4):
        layout = "hwc"
    else:
        why = " (channels first? use arr.transpose(1, 2, 0))" if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) else ""
        raise ResganError(f"{what}: numpy images must be {_ARRAY_HELP}, got shape {arr.shape}{why}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ResganError(f"{what}: empty image (shape {arr.shape})")
    bits = 16 if arr.dtype == np.uint16 else 8
    peak = 65535.0 if bits == 16 else 255.0
    alpha = None
    if arr.shape[2] == 4:
        alpha = arr[:, :, 3].astype(np.float32) / peak
        arr = arr[:, :, :3]
    raw = np.ascontiguousarray(arr)
    mode = {1: "L", 3: "RGB"}[arr.shape[2]] + ("A" if alpha is not None else "")
    return Loaded(raw.astype(np.float32) / peak, alpha, mode, bits, raw), layout


def _mask(mask: Any, size: tuple[int, int]) -> np.ndarray:
    """A hole mask (PIL image, or bool / uint8 array (H, W); white / non-zero / True = hole) -> bool (H, W)."""
    if isinstance(mask, Image.Image):  # as the server reads an uploaded mask
        m, _ = _loaded(mask, "mask")
        grey = m.data
        if grey.shape[2] == 3 and not (np.array_equal(grey[:, :, 0], grey[:, :, 1])
                                       and np.array_equal(grey[:, :, 0], grey[:, :, 2])):
            raise ResganError("mask is not single-channel (its colour channels differ); white = hole, black = keep")
        hole = grey[:, :, 0] * (m.alpha if m.alpha is not None else 1.0) > 0.5
    elif isinstance(mask, np.ndarray):
        arr = mask[:, :, 0] if mask.ndim == 3 and mask.shape[2] == 1 else mask
        if arr.ndim != 2:
            raise ResganError(f"mask: must be (H, W) (white / non-zero / True = hole), got shape {mask.shape}")
        if arr.dtype == bool:
            hole = arr
        elif arr.dtype.kind in "ui":
            hole = arr > (np.iinfo(arr.dtype).max // 2 if arr.max(initial=0) > 1 else 0)
        else:
            raise ResganError(f"mask: must be bool or an integer array (non-zero = hole), got {arr.dtype}")
    else:
        raise ResganError(f"mask: give a PIL image or a numpy array (H, W), not {type(mask).__name__}")
    h, w = hole.shape
    if (w, h) != size:
        raise ResganError(f"mask is {w}x{h} but the image is {size[0]}x{size[1]}; they must match")
    return np.ascontiguousarray(hole)


def _give_back(res: np.ndarray, loaded: Loaded, mask: np.ndarray | None, layout: str) -> ImageLike:
    """float (H, W, C) [0, 1] -> the input's type, mode, dtype and layout; inpainting: every known
    pixel the input's own stored value, as ``resgan restore`` writes it."""
    peak = 65535 if loaded.bits == 16 else 255
    q = np.round(res * peak).clip(0, peak).astype(loaded.raw.dtype)
    if mask is not None:
        q = np.where(mask[:, :, None], q, loaded.raw)
    h, w = q.shape[:2]
    if loaded.alpha is not None:
        alpha = loaded.alpha
        if alpha.shape != (h, w):
            alpha = np.asarray(Image.fromarray(alpha, "F").resize((w, h), Image.Resampling.BICUBIC))
        q = np.concatenate([q, np.round(alpha.clip(0, 1) * peak).astype(q.dtype)[:, :, None]], 2)
    if layout == "hw":
        return q[:, :, 0]
    if layout == "hwc":
        return q
    if loaded.bits == 16:  # from PIL: 16-bit grey only (I;16)
        return Image.fromarray(q[:, :, 0].astype(np.uint16))
    return Image.fromarray(q[:, :, 0] if q.shape[2] == 1 else q)


def _to_pil(x: torch.Tensor) -> Image.Image:
    arr = x.permute(1, 2, 0).numpy()
    return Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)


# ---------------------------------------------------------------- models (kept between calls)


def _key(source: str | Path) -> tuple[str, int]:
    from .zoo import resolve_file

    path = resolve_file(source)
    return str(path.resolve()), path.stat().st_mtime_ns


@functools.lru_cache(maxsize=4)
def _restorer(file: str, mtime: int, device: str):
    from .zoo import load_restorer

    return load_restorer(file, device)


@functools.lru_cache(maxsize=4)
def _defaults(task: str, device: str):
    from .restore.infer import default_models

    return default_models(task, device)


@functools.lru_cache(maxsize=4)
def _generator(file: str, mtime: int, device: str):
    from .gan.sampling import class_names
    from .zoo import load_generator

    G, meta = load_generator(file, device)
    return G, class_names(G.num_classes, meta)


def _load_generator(model: str | Path, device: str):
    if not isinstance(model, (str, Path)):
        raise ResganError(f"model: give a built-in name, a run directory or a .safetensors file, "
                          f"not {type(model).__name__}")
    return _generator(*_key(model), str(device))


# ---------------------------------------------------------------- the API


def restore_image(image: ImageLike, task: str | None = None, model: str | Path | None = None, *,
                  mask: ImageLike | None = None, sigma: float | None = None, scale: int | None = None,
                  tile: int = 512, overlap: int = 64, device: str = "cpu") -> ImageLike:
    """Restore one image; returns it in the input's type (PIL image or numpy array), mode and dtype.

    ``task``: ``inpaint`` | ``denoise`` | ``sr`` (built-in models) | ``deblur`` | ``jpeg`` (need
    ``model``); may be left out when ``model`` is given (its own task). ``model``: a built-in name,
    run directory or ``.safetensors`` file (default: the task's built-in; for ``denoise``, the grey
    or colour one by the image's mode). ``mask`` (inpaint): white / non-zero / True = hole, the
    image's size. ``sigma`` (denoise): noise level on the 0-255 scale (default: estimated).
    ``scale`` (sr): checked against the model. ``tile`` / ``overlap``: as ``resgan restore``.
    """
    from .restore.infer import check_model, check_options, restore_array

    if task is None and model is None:
        raise ResganError("restore_image needs task= (inpaint, denoise, sr, deblur, jpeg) or model=")
    if model is not None and not isinstance(model, (str, Path)):
        raise ResganError(f"model: give a built-in name, a run directory or a .safetensors file, "
                          f"not {type(model).__name__}")
    m = None if model is None else _restorer(*_key(model), str(device))
    if task is None:
        task = "denoise" if m.kind == "real" else m.kind
    check_options(task, None if model is None else str(model), scale, sigma, tile, overlap)
    if m is not None:
        check_model(m, task, scale)
    loaded, layout = _loaded(image)
    h, w = loaded.data.shape[:2]
    hole = None
    if mask is not None:
        if task != "inpaint":
            raise ResganError(f"mask applies to task inpaint only, not {task}")
        hole = _mask(mask, (w, h))
    elif task == "inpaint":
        raise ResganError("inpainting needs mask= (white / non-zero / True = hole, the image's size)")
    if m is None:
        m = _defaults(task, str(device))
    if isinstance(m, dict):  # a grey and a colour built-in: the image's mode picks
        m = m[loaded.data.shape[2]]
    res = restore_array(m, loaded.data, hole, sigma, tile, overlap)
    return _give_back(res, loaded, hole, layout)


def list_classes(model: str | Path, device: str = "cpu") -> list[str]:
    """The class names of a generator in label order ([] for an unconditional one)."""
    G, names = _load_generator(model, device)
    return list(names) if G.num_classes else []


def generate_images(model: str | Path, seeds: Iterable[int] | str | int = range(16), class_: int | str | None = None,
                    psi: float | None = None, trunc: float | None = None, *, as_array: bool = False,
                    device: str = "cpu") -> list[Image.Image] | np.ndarray:
    """One image per seed from a generator (built-in name, run directory or ``.safetensors``), the
    same images ``resgan generate`` writes. ``seeds``: ints (a range, a list), a string such as
    ``"0-15"`` or ``"1,5,9"``, or one int. ``class_``: a class name or index (``list_classes``;
    default: class = seed % classes). ``psi``: StyleGAN's truncation (1 = off, 0.7 = mild);
    ``trunc``: BigGAN's threshold on |z|. Returns PIL images (mode L or RGB), or with ``as_array``
    one uint8 array (N, H, W) grey or (N, H, W, 3)."""
    from .data import to_uint8
    from .gan.sampling import MAX_SEED_VALUE, MAX_SEEDS, check_psi, check_trunc, class_index, generate, parse_seeds

    if isinstance(seeds, str):
        seed_list = parse_seeds(seeds)
    elif isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        seed_list = [int(seeds)]
    else:
        try:
            seed_list = [int(s) for s in seeds if not isinstance(s, bool) and float(s) == int(s)]
            bad = len(seed_list) != len(list(seeds))
        except (TypeError, ValueError):
            bad = True
        if bad:
            raise ResganError("seeds: give whole numbers (a range, a list), a string like '0-15', or one int")
    if not seed_list or len(seed_list) > MAX_SEEDS:
        raise ResganError(f"seeds: give 1 to {MAX_SEEDS:,} seeds, got {len(seed_list):,}")
    if min(seed_list) < 0 or max(seed_list) > MAX_SEED_VALUE:
        raise ResganError(f"seeds must be within 0..{MAX_SEED_VALUE}")
    check_psi(psi, "psi")
    check_trunc(trunc, "trunc")
    G, names = _load_generator(model, device)
    idx = class_index(list(names) if G.num_classes else [], class_, "class_")
    images, _ = generate(G, seed_list, idx, trunc, psi)
    u8 = to_uint8(images)
    if as_array:
        arr = u8.permute(0, 2, 3, 1).numpy()
        return np.ascontiguousarray(arr[..., 0] if arr.shape[3] == 1 else arr)
    return [_to_pil(x) for x in u8]


def _as_source(side: Any, what: str):
    """A folder / data set spec / generator (str or Path) stays a string; images become a Source."""
    from .evaluate import images_source

    if side is None or isinstance(side, (str, Path)):
        return None if side is None else str(side)
    items: Sequence[Any]
    if isinstance(side, np.ndarray) and side.ndim == 4 or isinstance(side, np.ndarray) and side.ndim == 3 \
            and side.shape[2] not in (1, 3, 4):
        items = list(side)  # a stack (N, H, W[, C])
    elif isinstance(side, (Image.Image, np.ndarray)):
        items = [side]
    else:
        try:
            items = list(side)
        except TypeError:
            raise ResganError(f"{what}: give a folder, a data set spec, a generator, or images (PIL images / uint8 "
                              f"arrays), not {type(side).__name__}") from None
    tensors = []
    for i, item in enumerate(items):
        loaded, _ = _loaded(item, f"{what}[{i}]")
        raw = loaded.raw if loaded.bits == 8 else np.round(loaded.data * 255).astype(np.uint8)
        tensors.append(torch.from_numpy(np.array(raw.transpose(2, 0, 1), copy=True)))
    return images_source(tensors, f"{what} ({len(tensors)} images in memory)")


def evaluate_images(a: Any, b: Any = None, metrics: str | Sequence[str] = "fid,kid", n: int | None = None, *,
                    fast: bool = False, batch_size: int = 50, device: str = "cpu", inception: str | Path | None = None,
                    cache_dir: str | Path | None = None, crop_border: int = 0) -> dict:
    """FID / KID / precision-recall / IS / CAS (or PSNR / SSIM of two folders), as ``resgan
    evaluate``. ``a`` (under test) and ``b`` (reference): a folder, a data set spec
    (``"mnist:PATH:test"``), a generator (built-in name, run directory, ``.safetensors``), or
    images: a list of PIL images / uint8 arrays, or one uint8 array (N, H, W[, C]). Images in
    memory are scored like a folder of them. Returns a dict: ``fid``, ``kid``, ... plus ``n_a``,
    ``n_b``, ``resolution_a`` / ``resolution_b`` and ``resolution_rule`` (how each side was sized)."""
    from .evaluate import evaluate

    src_a, src_b = _as_source(a, "a"), _as_source(b, "b")
    if n is not None:
        for src in (src_a, src_b):
            if src is not None and not isinstance(src, str):
                src.images = src.images[:n]
    return evaluate(src_a, src_b, metrics, n=n, fast=fast, batch_size=batch_size, device=device, weights=inception,
                    cache_dir=cache_dir, crop_border=crop_border)
