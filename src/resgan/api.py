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

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .errors import ResganError
from .imageio import Loaded, from_array, from_pil, mask_from_array, pil_image, to_mask

ImageLike = Image.Image | np.ndarray


# ---------------------------------------------------------------- images in and out (the one decoder's rules)


def _image_in(image: Any, what: str = "image") -> tuple[Loaded, str]:
    """A PIL image or uint8 / uint16 array -> (Loaded, layout), layout being how to give it back."""
    if isinstance(image, Image.Image):
        return from_pil(image, what), "pil"
    if isinstance(image, (str, Path)):
        raise ResganError(f"{what}: give a PIL image or a numpy array, not a path ({image}); "
                          "open it with PIL.Image.open, or use `resgan restore` for files")
    if torch.is_tensor(image):
        raise ResganError(f"{what}: give a PIL image or a uint8 numpy array (H, W[, C]), not a torch tensor; "
                          "e.g. (t.permute(1, 2, 0) * 255).round().byte().numpy() for a float CHW tensor in [0, 1]")
    if not isinstance(image, np.ndarray):
        raise ResganError(f"{what}: give a PIL image or a numpy array, not {type(image).__name__}")
    return from_array(image, what)


def _mask_in(mask: Any, size: tuple[int, int]) -> np.ndarray:
    """A hole mask: a PIL image (decoded as every entry point decodes one: white = hole, transparent =
    known) or a bool / integer array (H, W) (True / non-zero = hole)."""
    if isinstance(mask, Image.Image):
        return to_mask(from_pil(mask, "mask"), size)
    if isinstance(mask, np.ndarray):
        return mask_from_array(mask, size)
    raise ResganError(f"mask: give a PIL image or a numpy array (H, W), not {type(mask).__name__}")


def _give_back(q: np.ndarray, loaded: Loaded, layout: str) -> ImageLike:
    """The result's integers (:func:`resgan.imageio.quantize`) in the input's type and layout."""
    if layout == "hw":
        return q[:, :, 0]
    if layout == "hwc":
        return q
    return pil_image(q, loaded.mode)


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
    A PIL image is decoded as ``resgan restore`` decodes a file (EXIF orientation applied, ...).
    """
    from .verbs.models import SourceModels, restorer
    from .verbs.options import source
    from .verbs.restore import restore_one, restore_request

    if task is None:
        if model is None:
            raise ResganError("restore_image needs task= (inpaint, denoise, sr, deblur, jpeg) or model=")
        kind = restorer(source(model), str(device)).kind
        task = "denoise" if kind == "real" else kind
    req = restore_request(task, model, mask=mask is not None, sigma=sigma, scale=scale, tile=tile, overlap=overlap)
    if req.task == "inpaint" and mask is None:
        raise ResganError("inpainting needs mask= (white / non-zero / True = hole, the image's size)")
    models = SourceModels(req.task, req.model, req.scale, str(device))
    loaded, layout = _image_in(image)
    hole = _mask_in(mask, loaded.size) if mask is not None else None
    q, _ = restore_one(models, req, loaded, hole)
    return _give_back(q, loaded, layout)


def list_classes(model: str | Path, device: str = "cpu") -> list[str]:
    """The class names of a generator in label order ([] for an unconditional one)."""
    from .verbs.models import generator

    G, names = generator(model, str(device))
    return list(names) if G.num_classes else []


def generate_images(model: str | Path, seeds: Iterable[int] | str | int = range(16), class_: int | str | None = None,
                    psi: float | None = None, trunc: float | None = None, *, as_array: bool = False,
                    device: str = "cpu") -> list[Image.Image] | np.ndarray:
    """One image per seed from a generator (built-in name, run directory or ``.safetensors``), the
    same images ``resgan generate`` writes. ``seeds``: ints (a range, a list, any iterable), a string
    such as ``"0-15"`` or ``"1,5,9"``, or one int. ``class_``: a class name or index (``list_classes``;
    default: class = seed % classes). ``psi``: StyleGAN's truncation (1 = off, 0.7 = mild);
    ``trunc``: BigGAN's threshold on |z|. Returns PIL images (mode L or RGB), or with ``as_array``
    one uint8 array (N, H, W) grey or (N, H, W, 3)."""
    from .verbs import generate as V
    from .verbs.models import generator

    if not isinstance(as_array, bool):
        raise ResganError(f"as_array must be True or False, got {as_array!r}")
    req = V.generate_request(seeds, class_, psi, trunc)
    G, names = generator(model, str(device))
    arr = V.arrays(V.run(G, names, req))
    return arr if as_array else [Image.fromarray(a) for a in arr]


def _as_source(side: Any, what: str):
    """A folder / data set spec / generator (str or Path) stays a string; images become a Source."""
    from .metrics.sources import images_source

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
        loaded, _ = _image_in(item, f"{what}[{i}]")
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
    from .verbs.evaluate import check_options, evaluate

    src_a, src_b = _as_source(a, "a"), _as_source(b, "b")
    check_options(src_a, src_b, n, batch_size, crop_border, fast, inception, cache_dir)
    if n is not None:
        for src in (src_a, src_b):
            if src is not None and not isinstance(src, str):
                src.images = src.images[:n]
    return evaluate(src_a, src_b, metrics, n=n, fast=fast, batch_size=batch_size, device=device, weights=inception,
                    cache_dir=cache_dir, crop_border=crop_border)
