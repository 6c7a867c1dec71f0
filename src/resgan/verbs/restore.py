"""``restore``: one request (options checked once: types, ranges, what the task allows), one function
that restores one decoded image, and what every entry point shares around it. Files (finding inputs
and masks, naming and checking outputs, writing) are :mod:`.restore_files`; the server and the Python
API decode and encode with the same :mod:`resgan.imageio` rules and call :func:`restore_one`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..errors import ResganError
from ..imageio import Loaded, quantize
from ..restore.infer import DEFAULT_OVERLAP, RESTORE_TASKS, Progress, check_model, restore_array
from ..zoo import RestoreModel
from .options import number, source, whole

SCALES = (2, 3, 4)
MIN_TILE_CORE = 32  # a tile's useful part (tile - 2 x overlap): below, tiling costs many times the work
MAX_TILE_WORK = 4  # tile >= 4 x overlap: the useful part is at least half the tile, at most 4x the work per pixel


@dataclass(frozen=True)
class RestoreRequest:
    task: str
    model: str | None = None  # a source (CLI / API) or a loaded model's name (server); None: the task's default
    mask: bool = False  # a mask was given (inpaint only); False for inpaint: masks are found beside each file
    sigma: float | None = None  # denoise: noise level, 0-255 scale (None: estimated)
    scale: int | None = None  # sr: checked against the model
    tile: int = 512
    overlap: int = DEFAULT_OVERLAP
    quality: int = 95  # of .jpg / .webp outputs


def restore_request(task: Any, model: Any = None, *, mask: bool = False, sigma: Any = None, scale: Any = None,
                    tile: Any = 512, overlap: Any = DEFAULT_OVERLAP, quality: Any = 95) -> RestoreRequest:
    """The options of a restore call, checked before any model is loaded or image read."""
    if not isinstance(task, str):
        raise ResganError(f"task must be a name ({', '.join(RESTORE_TASKS)}), got {task!r}")
    if task not in RESTORE_TASKS:
        raise ResganError(f"unknown task {task!r}; choose one of {', '.join(RESTORE_TASKS)}")
    model = source(model)
    if mask and task != "inpaint":
        raise ResganError(f"mask applies to task inpaint only, not {task}")
    if sigma is not None:
        sigma = number(sigma, "sigma", 0.0, 255.0, " (the noise level on the 0-255 scale)")
        if task != "denoise":
            raise ResganError(f"sigma applies to task denoise only, not {task}")
    if scale is not None:
        scale = whole(scale, "scale")
        if scale not in SCALES:
            raise ResganError(f"unknown scale {scale}; choose 2, 3 or 4")
        if task != "sr":
            raise ResganError(f"scale applies to task sr only, not {task}")
    tile, overlap = whole(tile, "tile", 0), whole(overlap, "overlap", 0)
    least = max(MAX_TILE_WORK * overlap, 2 * overlap + MIN_TILE_CORE)
    if tile and tile < least:
        raise ResganError(f"tile must be 0 (off) or at least max({MAX_TILE_WORK} x overlap, 2 x overlap + "
                          f"{MIN_TILE_CORE}) = {least} (tile {tile}, overlap {overlap}: smaller tiles redo most "
                          "of the work)")
    return RestoreRequest(task, model, bool(mask), sigma, scale, tile, overlap, whole(quality, "quality", 1, 100))


class Models(Protocol):
    """Where a request's model comes from: by source (:class:`resgan.verbs.models.SourceModels`) or a
    server's loaded models. ``pick(channels)`` -> (its name, the model) for an image of 1 or 3 channels."""

    def pick(self, channels: int) -> tuple[str, RestoreModel]: ...


def restore_one(models: Models, req: RestoreRequest, loaded: Loaded, hole: np.ndarray | None = None,
                progress: Progress | None = None, max_output_pixels: int | None = None) -> tuple[np.ndarray, str]:
    """Restore one decoded image -> (the result's integers (:func:`resgan.imageio.quantize`: the input's
    dtype, alpha re-attached, known pixels exact), the model's name)."""
    name, m = models.pick(loaded.data.shape[2])
    check_model(m, req.task, req.scale, name)
    if m.kind == "inpaint" and hole is None:
        raise ResganError("inpainting needs a mask (white = hole, the image's size)")
    w, h = loaded.size
    if max_output_pixels is not None and h * w * m.scale**2 > max_output_pixels:
        raise ResganError(f"image: x{m.scale} output of {w}x{h} is over the limit of {max_output_pixels:,} pixels",
                          413)
    res = restore_array(m, loaded.data, hole, req.sigma, req.tile, req.overlap, progress)
    return quantize(res, loaded, hole), name
