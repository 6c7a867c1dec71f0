"""Images in and out, for the command line and the server alike: read a file or decode uploaded
bytes into :class:`Loaded` (float [0, 1] data plus what it takes to write it back: alpha, mode,
bit depth, the stored integers), read a hole mask, encode a result in the input's own mode, keep
an inpainting's known pixels exact, and list a folder's images.

A bad image is a :class:`~resgan.errors.ResganError` naming it; its ``status`` is the HTTP code
the server answers with (413: too many pixels, 415: not an image format it takes, else 400).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .data import IMAGE_EXTS
from .errors import ResganError

DEFAULT_MAX_PIXELS = 50_000_000


def list_folder(folder: Path) -> list[Path]:
    """The image files directly in ``folder`` (not recursive), sorted by name."""
    return sorted(f for f in Path(folder).iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTS)


SUPPORTED_MODES = ("L", "LA", "RGB", "RGBA", "P", "PA", "I;16", "I;16L", "I;16B", "I")


@dataclass
class Loaded:
    data: np.ndarray  # float32 (H, W, C) in [0, 1], C = 1 or 3
    alpha: np.ndarray | None  # float32 (H, W) in [0, 1]
    mode: str  # the output mode
    bits: int  # 8 or 16
    raw: np.ndarray  # the stored integers (H, W, C) before scaling (for exact known pixels)


def _png_is_16bit_colour(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(26)
    # a file shorter than the IHDR chunk is not 16-bit: Pillow then says what is wrong with it
    return len(head) >= 26 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[24] == 16 and head[25] in (2, 6)


def check_pixels(what: str | Path, w: int, h: int, max_pixels: int, hint: str = "", status: int = 400) -> None:
    """The one pixel limit (restore, evaluate, serve), checked from the header before decoding."""
    if w * h > max_pixels:
        raise ResganError(f"{what}: {w}x{h} = {w * h:,} pixels is over the limit of {max_pixels:,}{hint}", status)


def open_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS, hint: str = "") -> Image.Image:
    """Open an image file (header only), its size checked against ``max_pixels`` (Pillow's own
    decompression-bomb check replaced by this one limit); a bad file is a ResganError naming it."""
    Image.MAX_IMAGE_PIXELS = None  # as read_image: our own limit below, before decoding
    try:
        img = Image.open(path)
    except Image.DecompressionBombError:
        raise ResganError(f"{path}: too many pixels, over the limit of {max_pixels:,}{hint}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as e:
        raise ResganError(f"{path}: cannot read image (corrupt or not an image): {_first_line(e)}") from None
    try:
        check_pixels(path, *img.size, max_pixels, hint)
    except ResganError:
        img.close()
        raise
    return img


def _first_line(e: BaseException) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def read_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Loaded:
    """Read an image file for restoration; a bad file is a ResganError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ResganError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ResganError(f"{path}: empty file (0 bytes)")
    if _png_is_16bit_colour(path):
        return _read_png16_colour(path, max_pixels)
    img = open_image(path, max_pixels, " (--max-pixels)")
    try:
        with img:
            mode = img.mode
            if mode not in SUPPORTED_MODES:
                raise ResganError(f"{path}: unsupported image mode {mode} (supported: grey, grey+alpha, RGB, "
                                  f"RGBA, palette, 16-bit grey)")
            img.load()
            if mode in ("P", "PA"):
                img = img.convert("RGBA" if mode == "PA" or "transparency" in img.info else "RGB")
                mode = img.mode
            arr = np.asarray(img)
    except ResganError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as e:
        raise ResganError(f"{path}: cannot read image (corrupt or not an image): {_first_line(e)}") from None
    bits, alpha = 8, None
    if mode.startswith("I"):
        if arr.min() < 0 or arr.max() > 65535:
            raise ResganError(f"{path}: unsupported image mode {mode} (32-bit integer values)")
        arr, bits, mode = arr.astype(np.uint16), 16, "I;16"
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if mode in ("LA", "RGBA"):
        alpha = arr[:, :, -1].astype(np.float32) / 255
        arr = arr[:, :, :-1]
    peak = 65535.0 if bits == 16 else 255.0
    return Loaded(arr.astype(np.float32) / peak, alpha, mode, bits, arr)


def _read_png16_colour(path: Path, max_pixels: int) -> Loaded:
    """16-bit colour PNG (Pillow would read it as 8-bit): needs OpenCV when installed."""
    try:
        import cv2
    except ImportError:
        raise ResganError(f"{path}: 16-bit colour PNG needs opencv-python-headless (pip install it), "
                          "or convert the image to 8-bit") from None
    open_image(path, max_pixels, " (--max-pixels)").close()
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint16 or arr.ndim != 3:
        raise ResganError(f"{path}: cannot read image (corrupt 16-bit PNG)")
    arr = arr[:, :, [2, 1, 0, 3][: arr.shape[2]]]
    alpha = arr[:, :, 3].astype(np.float32) / 65535 if arr.shape[2] == 4 else None
    arr = arr[:, :, :3]
    return Loaded(arr.astype(np.float32) / 65535, alpha, "RGBA;16" if alpha is not None else "RGB;16", 16, arr)


def encode_image(out: np.ndarray, loaded: Loaded, fmt_path: Path, quality: int = 95) -> bytes:
    """float (H, W, C) [0, 1] (+ the input's alpha, resized) -> file bytes in the input's mode, in the format
    of ``fmt_path``'s suffix; ``quality``: of a lossy JPEG / WebP output (1-100)."""
    h, w = out.shape[:2]
    peak = 65535 if loaded.bits == 16 else 255
    q = np.round(out * peak).clip(0, peak).astype(np.uint16 if loaded.bits == 16 else np.uint8)
    alpha = loaded.alpha
    if alpha is not None:
        if alpha.shape != (h, w):
            alpha = np.asarray(Image.fromarray(alpha, "F").resize((w, h), Image.Resampling.BICUBIC))
        q = np.concatenate([q, np.round(alpha.clip(0, 1) * peak).astype(q.dtype)[:, :, None]], 2)
    ext = fmt_path.suffix.lower()
    if loaded.mode in ("RGB;16", "RGBA;16"):
        import cv2

        ok, buf = cv2.imencode(".png", q[:, :, [2, 1, 0, 3][: q.shape[2]]])
        if not ok:
            raise ResganError(f"{fmt_path}: cannot encode the 16-bit result")
        return buf.tobytes()
    img = Image.fromarray(q[:, :, 0] if q.shape[2] == 1 else q, mode=None)
    if loaded.mode == "I;16":
        img = Image.fromarray(q[:, :, 0].astype(np.uint16))
    buf = io.BytesIO()
    fmt = Image.registered_extensions().get(ext, "PNG")
    kwargs = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def read_mask(path: Path, size: tuple[int, int], max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A hole mask (white / non-zero = hole) as bool (H, W); checks it is single-channel and sized like the image."""
    m = read_image(path, max_pixels)
    raw = m.data
    if raw.shape[2] == 3:
        if not (np.array_equal(raw[:, :, 0], raw[:, :, 1]) and np.array_equal(raw[:, :, 0], raw[:, :, 2])):
            raise ResganError(f"{path}: mask is not single-channel (its colour channels differ); "
                              "use a grey or black-and-white mask, white = hole")
        raw = raw[:, :, :1]
    h, w = raw.shape[:2]
    if (w, h) != size:
        raise ResganError(f"{path}: mask is {w}x{h} but the image is {size[0]}x{size[1]}")
    return raw[:, :, 0] > 0.5


def keep_known(res: np.ndarray, loaded: Loaded, mask: np.ndarray, dest: Path, quality: int = 95) -> bytes:
    """Encode an inpainting result with every known pixel (``mask`` False) bit-identical to the
    input's stored integers (float round trips would move some by one level)."""
    peak = 65535 if loaded.bits == 16 else 255
    q = np.round(res * peak).clip(0, peak).astype(loaded.raw.dtype)
    q = np.where(mask[:, :, None], q, loaded.raw)
    exact = Loaded(q.astype(np.float32) / peak, loaded.alpha, loaded.mode, loaded.bits, q)
    return encode_image(exact.data, exact, dest, quality)


# ---------------------------------------------------------------- uploaded bytes (resgan serve)

SNIFF = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
         (b"BM", "BMP"))
ACCEPTED = "PNG, JPEG, WebP, BMP or GIF"


def sniff(data: bytes) -> str | None:
    """The image format from the content's magic bytes (the file name and declared type are ignored)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    for magic, fmt in SNIFF:
        if data.startswith(magic):
            return fmt
    return None


def decode_image(data: bytes, what: str, max_pixels: int) -> Loaded:
    """Upload bytes -> :class:`Loaded` (8-bit, or 16-bit grey), EXIF orientation applied (as a
    browser shows it). Bad input is a ResganError (status 415 / 413 / 400)."""
    if not data:
        raise ResganError(f"{what}: empty upload")
    fmt = sniff(data)
    if fmt is None:
        raise ResganError(f"{what}: not a {ACCEPTED} image (the content is checked, not the name or type)", 415)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit below
            with Image.open(io.BytesIO(data), formats=[fmt]) as img:
                w, h = img.size
                if w < 1 or h < 1:
                    raise ResganError(f"{what}: empty image ({w}x{h})")
                check_pixels(what, w, h, max_pixels, status=413)
                img.load()
                img = ImageOps.exif_transpose(img) if fmt in ("JPEG", "WEBP") else img
                return _to_loaded(img, what)
    except ResganError:
        raise
    except Image.DecompressionBombError as e:
        raise ResganError(f"{what}: too many pixels, over the limit of {max_pixels:,} ({e})", 413) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as e:
        raise ResganError(f"{what}: cannot decode the {fmt} image (corrupt or truncated): "
                            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def from_pil(img: Image.Image, what: str = "image") -> Loaded:
    """A decoded PIL image (any common mode: palette, 1-bit, CMYK... converted) -> :class:`Loaded`."""
    return _to_loaded(img, what)


def _to_loaded(img: Image.Image, what: str) -> Loaded:
    mode = img.mode
    if mode in ("P", "PA"):
        img = img.convert("RGBA" if mode == "PA" or "transparency" in img.info else "RGB")
    elif mode == "1":
        img = img.convert("L")
    elif mode == "La":
        img = img.convert("LA")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX", "RGBa"):
        img = img.convert("RGB")
    elif mode not in ("L", "LA", "RGB", "RGBA") and not mode.startswith("I"):
        raise ResganError(f"{what}: unsupported image mode {mode}")
    mode, arr = img.mode, np.asarray(img)
    bits = 8
    if mode.startswith("I"):
        if arr.min() < 0 or arr.max() > 65535:
            raise ResganError(f"{what}: unsupported image mode {mode} (32-bit values)")
        arr, bits, mode = arr.astype(np.uint16), 16, "I;16"
    if arr.ndim == 2:
        arr = arr[:, :, None]
    alpha = None
    if mode in ("LA", "RGBA"):
        alpha = arr[:, :, -1].astype(np.float32) / 255
        arr = arr[:, :, :-1]
    peak = 65535.0 if bits == 16 else 255.0
    return Loaded(arr.astype(np.float32) / peak, alpha, mode, bits, np.ascontiguousarray(arr))


def decode_mask(data: bytes, size: tuple[int, int], max_pixels: int) -> np.ndarray:
    """A hole mask (white = hole; with alpha, transparent = known) -> bool (H, W)."""
    m = decode_image(data, "mask", max_pixels)
    h, w = m.data.shape[:2]
    if (w, h) != size:
        raise ResganError(f"mask is {w}x{h} but the image is {size[0]}x{size[1]}; they must match")
    grey = m.data
    if grey.shape[2] == 3:
        if not (np.array_equal(grey[:, :, 0], grey[:, :, 1]) and np.array_equal(grey[:, :, 0], grey[:, :, 2])):
            raise ResganError("mask is not single-channel (its colour channels differ); white = hole, black = keep")
    v = grey[:, :, 0] * (m.alpha if m.alpha is not None else 1.0)
    return v > 0.5
