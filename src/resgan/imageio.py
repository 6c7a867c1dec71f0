"""The one image and mask decoder, and the one encoder, of every entry point (``resgan restore`` /
``evaluate``, the Python API, ``resgan serve``): a file, uploaded bytes or an in-memory image
becomes a :class:`Loaded` (float [0, 1] data plus what it takes to write it back: alpha, mode, bit
depth, the stored integers) by the same rules, and a result goes back by one rounding rule.

The rules, the same everywhere:

- formats are recognised by their content (:data:`ACCEPTED`), never by the name;
- EXIF orientation is applied (the image is restored as a viewer shows it), masks included;
- palette images become RGB (RGBA with transparency), 1-bit and grey+alpha grey, CMYK / YCbCr /
  LAB RGB; 16-bit grey stays 16-bit, 16-bit colour PNG too (it needs OpenCV, else it is refused);
- a file with more than one frame (animated GIF / WebP / PNG, multi-page TIFF) is refused: which
  frame was meant cannot be guessed, and dropping the others silently loses them (a JPEG's MPO
  previews are not frames: the photo is the first picture);
- decoding is bounded by work, not only by pixels: the pixel limit is checked from the header, and a
  JPEG with more than :data:`MAX_JPEG_SCANS` scans is refused before Pillow decodes it;
- a mask is white = hole; with alpha, transparent = known (hole = grey x alpha > 0.5); its colour
  channels must be equal and its size the image's;
- a result is rounded once (:func:`quantize`: inpainting keeps every known pixel's stored integer,
  alpha re-attached, resized with SR); an output format that cannot hold it (alpha, 16-bit, more than
  256 colours: :data:`FORMAT_HOLDS`) is refused before any work, never silently converted.

A bad image is a :class:`~resgan.errors.ResganError` naming it; its ``status`` is the HTTP code the
server answers with (413: too many pixels, 415: not an image format it takes, else 400).
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ResganError

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}

DEFAULT_MAX_PIXELS = 50_000_000
MAX_JPEG_SCANS = 100  # a progressive JPEG has ~10; 100,000 repeated scans keep Pillow busy for minutes
DECODE_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, IndexError, KeyError)

SNIFF = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
         (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"))
ACCEPTED = "PNG, JPEG, WebP, BMP, GIF, TIFF or PPM / PGM"
# the modes of a result (Loaded.mode) each output format holds exactly
FORMAT_HOLDS = {"PNG": {"L", "LA", "RGB", "RGBA", "I;16", "RGB;16", "RGBA;16"},
                "TIFF": {"L", "LA", "RGB", "RGBA", "I;16"}, "JPEG": {"L", "RGB"}, "BMP": {"L", "RGB"},
                "WEBP": {"L", "LA", "RGB", "RGBA"}, "GIF": {"L"}, "PPM": {"L", "RGB", "I;16"}}
MODE_WORDS = {"L": "grey", "LA": "grey + alpha", "RGB": "RGB", "RGBA": "RGBA (alpha)", "I;16": "16-bit grey",
              "RGB;16": "16-bit RGB", "RGBA;16": "16-bit RGBA"}


@dataclass
class Loaded:
    data: np.ndarray  # float32 (H, W, C) in [0, 1], C = 1 or 3
    alpha: np.ndarray | None  # float32 (H, W) in [0, 1]
    mode: str  # the output mode: L, LA, RGB, RGBA, I;16, RGB;16, RGBA;16
    bits: int  # 8 or 16
    raw: np.ndarray  # the stored integers (H, W, C) before scaling (for exact known pixels)

    @property
    def size(self) -> tuple[int, int]:
        return self.data.shape[1], self.data.shape[0]


def list_folder(folder: Path) -> list[Path]:
    """The image files directly in ``folder`` (not recursive), sorted by name."""
    return sorted(f for f in Path(folder).iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTS)


def check_pixels(what: str | Path, w: int, h: int, max_pixels: int, status: int = 413) -> None:
    """The one pixel limit (restore, evaluate, serve), checked from the header before decoding."""
    if w < 1 or h < 1:
        raise ResganError(f"{what}: empty image ({w}x{h})")
    if w * h > max_pixels:
        raise ResganError(f"{what}: {w}x{h} = {w * h:,} pixels is over the limit of {max_pixels:,}", status)


def _first_line(e: BaseException) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def open_image(path: Path | io.BytesIO, max_pixels: int = DEFAULT_MAX_PIXELS, what: str | None = None) -> Image.Image:
    """Open an image file (header only) for its size and mode, checked against ``max_pixels``."""
    Image.MAX_IMAGE_PIXELS = None  # the one limit is ours, checked below before decoding
    what = what or str(path)
    try:
        img = Image.open(path)
    except UnidentifiedImageError:
        raise ResganError(f"{what}: cannot read image: not a {ACCEPTED} image", 415) from None
    except DECODE_ERRORS as e:
        raise ResganError(f"{what}: cannot read image (corrupt, truncated or not an image): {_first_line(e)}") from None
    try:
        check_pixels(what, *img.size, max_pixels)
    except ResganError:
        img.close()
        raise
    return img


def open_still(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """An image file opened for a reader of its own (the training data sets), by the decoder's bounds:
    the pixel limit from the header, at most :data:`MAX_JPEG_SCANS` JPEG scans, one frame; a file that
    breaks one is a ResganError naming it. The file is read once; the image is decoded on use."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ResganError(f"{path}: cannot read: {e.strerror or e}") from None
    if data[:3] == b"\xff\xd8\xff" and jpeg_scans(data) > MAX_JPEG_SCANS:
        raise ResganError(f"{path}: a JPEG with more than {MAX_JPEG_SCANS} scans (decoding it would take minutes); "
                          "re-save it as a baseline JPEG or PNG")
    img = open_image(io.BytesIO(data), max_pixels, str(path))
    if getattr(img, "is_animated", False) and img.format != "MPO":
        img.close()
        raise ResganError(f"{path}: has more than one frame (an animated or multi-page {img.format or 'image'}); "
                          "a data set takes still images: save the frame you want as PNG")
    return img


# ---------------------------------------------------------------- decoding


def sniff(data: bytes) -> str | None:
    """The image format from the content's magic bytes (the file name and declared type are ignored)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if len(data) > 2 and data[:1] == b"P" and data[1:2] in b"123456" and data[2:3].isspace():
        return "PPM"
    for magic, fmt in SNIFF:
        if data.startswith(magic):
            return fmt
    return None


_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")  # a marker after entropy-coded data (not stuffing / RSTn)


def jpeg_scans(data: bytes, stop_after: int = MAX_JPEG_SCANS + 1) -> int:
    """Start-of-scan segments of a JPEG's first picture, counted from its markers (no decoding), up to
    ``stop_after``. Each scan is a full pass over the image in the decoder: their number is its work."""
    pos, scans, n = 2, 0, len(data)
    while pos + 4 <= n and scans < stop_after:
        if data[pos] != 0xFF:
            m = _MARKER.search(data, pos)
            if m is None:
                break
            pos = m.start()
            continue
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:  # end of image (an MPO's previews follow: not decoded)
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker == 0xDA:
            scans += 1
            m = _MARKER.search(data, pos + 2 + length)
            if m is None:
                break
            pos = m.start()
        else:
            pos += 2 + length
    return scans


def _png_16bit_colour(data: bytes) -> bool:
    # IHDR: bit depth at byte 24, colour type at 25 (2 RGB, 4 grey + alpha, 6 RGBA); Pillow reads these as 8-bit
    return len(data) >= 26 and data[:8] == b"\x89PNG\r\n\x1a\n" and data[24] == 16 and data[25] in (2, 4, 6)


def _decode_png16_colour(data: bytes, what: str, max_pixels: int) -> Loaded:
    try:
        import cv2
    except ImportError:
        raise ResganError(f"{what}: a 16-bit colour or grey + alpha PNG needs opencv-python-headless (pip install "
                          "it), or convert the image to 8-bit") from None
    check_pixels(what, int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big"), max_pixels)
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint16 or arr.ndim != 3:
        raise ResganError(f"{what}: cannot read image (corrupt 16-bit PNG)")
    if arr.shape[2] == 2:  # grey + alpha: written back as 16-bit RGBA (PNG writers here take 1, 3 or 4 channels)
        arr = arr[:, :, [0, 0, 0, 1]]
    arr = arr[:, :, [2, 1, 0, 3][: arr.shape[2]]]
    alpha = arr[:, :, 3].astype(np.float32) / 65535 if arr.shape[2] == 4 else None
    rgb = np.ascontiguousarray(arr[:, :, :3])
    return Loaded(rgb.astype(np.float32) / 65535, alpha, "RGBA;16" if alpha is not None else "RGB;16", 16, rgb)


def decode_bytes(data: bytes, what: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Loaded:
    """The one decoder: file or upload bytes -> :class:`Loaded` (see the module's rules)."""
    if not data:
        raise ResganError(f"{what}: empty file (0 bytes)")
    fmt = sniff(data)
    if fmt is None:
        raise ResganError(f"{what}: cannot read image: not a {ACCEPTED} image (the content is checked, not the "
                          "name or type)", 415)
    if fmt == "JPEG" and jpeg_scans(data) > MAX_JPEG_SCANS:
        raise ResganError(f"{what}: a JPEG with more than {MAX_JPEG_SCANS} scans (decoding it would take minutes); "
                          "re-save it as a baseline JPEG or PNG")
    if fmt == "PNG" and _png_16bit_colour(data):
        return _decode_png16_colour(data, what, max_pixels)
    Image.MAX_IMAGE_PIXELS = None  # the one limit is ours (check_pixels), from the header
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data), formats=[fmt]) as img:
                check_pixels(what, *img.size, max_pixels)
                return from_pil(img, what)
    except ResganError:
        raise
    except DECODE_ERRORS as e:
        raise ResganError(f"{what}: cannot read image (corrupt, truncated or not an image): {_first_line(e)}") from None


def _unread_jpeg_scans(img: Image.Image) -> int:
    """The scans of an opened, not yet decoded JPEG (the Python API's PIL images), from its file; 0 once
    decoded (the work is done) or when the file cannot be read back."""
    fp = getattr(img, "fp", None)
    if fp is None or not getattr(img, "tile", None):
        return 0
    try:
        pos = fp.tell()
        fp.seek(0)
        data = fp.read()
        fp.seek(pos)
    except (OSError, ValueError, AttributeError):
        return 0
    return jpeg_scans(data) if data[:3] == b"\xff\xd8\xff" else 0


def read_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Loaded:
    """An image file -> :class:`Loaded`, by :func:`decode_bytes`; a bad file is a ResganError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ResganError(f"{path}: no such file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ResganError(f"{path}: cannot read: {e.strerror or e}") from None
    return decode_bytes(data, str(path), max_pixels)


def from_pil(img: Image.Image, what: str = "image") -> Loaded:
    """A PIL image (opened from a file or made in memory) -> :class:`Loaded` by the module's rules."""
    if img.width < 1 or img.height < 1:
        raise ResganError(f"{what}: empty image ({img.width}x{img.height})")
    try:
        if getattr(img, "is_animated", False) and img.format != "MPO":
            raise ResganError(f"{what}: has more than one frame (an animated or multi-page "
                              f"{img.format or 'image'}); resgan takes one still image: save the frame you want as PNG")
        if img.format in ("JPEG", "MPO") and _unread_jpeg_scans(img) > MAX_JPEG_SCANS:
            raise ResganError(f"{what}: a JPEG with more than {MAX_JPEG_SCANS} scans (decoding it would take "
                              "minutes); re-save it as a baseline JPEG or PNG")
        img.load()
        img = ImageOps.exif_transpose(img)
    except ResganError:
        raise
    except DECODE_ERRORS as e:
        raise ResganError(f"{what}: cannot read image (corrupt, truncated or not an image): {_first_line(e)}") from None
    mode = img.mode
    if mode in ("P", "PA"):
        img = img.convert("RGBA" if mode == "PA" or "transparency" in img.info else "RGB")
    elif mode == "1":
        img = img.convert("L")
    elif mode == "La":
        img = img.convert("LA")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX", "RGBa"):
        img = img.convert("RGB")
    elif mode not in ("L", "LA", "RGB", "RGBA") and not mode.startswith("I;16") and mode != "I":
        raise ResganError(f"{what}: unsupported image mode {mode} (supported: grey, grey + alpha, RGB, RGBA, "
                          "palette, 1-bit, CMYK, 16-bit)")
    mode, arr = img.mode, np.asarray(img)
    bits = 8
    if mode.startswith("I"):
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise ResganError(f"{what}: unsupported image mode {mode} (32-bit integer values)")
        arr, bits, mode = arr.astype(np.uint16), 16, "I;16"
    return _loaded(arr, mode, bits)


def _loaded(arr: np.ndarray, mode: str, bits: int) -> Loaded:
    if arr.ndim == 2:
        arr = arr[:, :, None]
    peak = 65535.0 if bits == 16 else 255.0
    alpha = None
    if mode.startswith(("LA", "RGBA")):
        alpha = arr[:, :, -1].astype(np.float32) / peak
        arr = arr[:, :, :-1]
    raw = np.ascontiguousarray(arr)
    return Loaded(raw.astype(np.float32) / peak, alpha, mode, bits, raw)


ARRAY_HELP = "(H, W) grey, (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA"


def from_array(arr: np.ndarray, what: str = "image") -> tuple[Loaded, str]:
    """A uint8 / uint16 numpy image -> (:class:`Loaded`, layout: "hw" or "hwc", how to give it back)."""
    if arr.dtype not in (np.uint8, np.uint16):
        hint = (" (floats are ambiguous: scale to 0-255 and round, e.g. (x * 255).round().astype(np.uint8))"
                if arr.dtype.kind == "f" else "")
        raise ResganError(f"{what}: numpy images must be uint8 (or uint16 for 16-bit), got {arr.dtype}{hint}")
    layout = "hw" if arr.ndim == 2 else "hwc"
    if arr.ndim == 2:
        arr = arr[:, :, None]
    elif not (arr.ndim == 3 and arr.shape[2] in (1, 3, 4)):
        why = " (channels first? use arr.transpose(1, 2, 0))" if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) else ""
        raise ResganError(f"{what}: numpy images must be {ARRAY_HELP}, got shape {arr.shape}{why}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ResganError(f"{what}: empty image (shape {arr.shape})")
    bits = 16 if arr.dtype == np.uint16 else 8
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[arr.shape[2]]
    if bits == 16:
        mode = "I;16" if mode == "L" else mode + ";16"
    return _loaded(arr, mode, bits), layout


# ---------------------------------------------------------------- masks


def to_mask(m: Loaded, size: tuple[int, int], what: str = "mask") -> np.ndarray:
    """A decoded mask -> bool (H, W) holes: white = hole, transparent = known; single-channel, ``size``."""
    w, h = m.size
    if (w, h) != tuple(size):
        raise ResganError(f"{what}: mask is {w}x{h} but the image is {size[0]}x{size[1]}; they must match")
    grey = m.data
    if grey.shape[2] == 3 and not (np.array_equal(grey[:, :, 0], grey[:, :, 1])
                                   and np.array_equal(grey[:, :, 0], grey[:, :, 2])):
        raise ResganError(f"{what}: mask is not single-channel (its colour channels differ); use a grey or "
                          "black-and-white mask, white = hole")
    v = grey[:, :, 0] * (m.alpha if m.alpha is not None else 1.0)
    return np.ascontiguousarray(v > 0.5)


def mask_from_array(arr: np.ndarray, size: tuple[int, int], what: str = "mask") -> np.ndarray:
    """A bool / integer numpy mask (H, W) (True / non-zero of a 0-1 mask / over half the dtype's range = hole)."""
    a = arr[:, :, 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr
    if a.ndim != 2:
        raise ResganError(f"{what}: must be (H, W) (white / non-zero / True = hole), got shape {arr.shape}")
    if a.dtype == bool:
        hole = a
    elif a.dtype.kind in "ui":
        hole = a > (np.iinfo(a.dtype).max // 2 if a.max(initial=0) > 1 else 0)
    else:
        raise ResganError(f"{what}: must be bool or an integer array (non-zero = hole), got {a.dtype}")
    h, w = hole.shape
    if (w, h) != tuple(size):
        raise ResganError(f"{what}: mask is {w}x{h} but the image is {size[0]}x{size[1]}; they must match")
    return np.ascontiguousarray(hole)


def read_mask(path: Path, size: tuple[int, int], max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    return to_mask(read_image(path, max_pixels), size, str(path))


def decode_mask(data: bytes, size: tuple[int, int], max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    return to_mask(decode_bytes(data, "mask", max_pixels), size, "mask")


# ---------------------------------------------------------------- results


def quantize(res: np.ndarray, loaded: Loaded, mask: np.ndarray | None = None) -> np.ndarray:
    """The one rounding rule: float (H, W, C) [0, 1] -> the input's integers (H, W, C[+1]): inpainting keeps
    every known pixel (``mask`` False) bit-identical to the input's stored value; the input's alpha is
    re-attached (resized like the image for SR)."""
    peak = 65535 if loaded.bits == 16 else 255
    q = np.round(res * peak).clip(0, peak).astype(loaded.raw.dtype)
    if mask is not None:
        q = np.where(mask[:, :, None], q, loaded.raw)
    if loaded.alpha is not None:
        h, w = q.shape[:2]
        alpha = loaded.alpha
        if alpha.shape != (h, w):
            alpha = np.asarray(Image.fromarray(alpha, "F").resize((w, h), Image.Resampling.BICUBIC))
        q = np.concatenate([q, np.round(alpha.clip(0, 1) * peak).astype(q.dtype)[:, :, None]], 2)
    return np.ascontiguousarray(q)


def output_format(path: Path) -> str:
    """The format an output file name asks for (by its suffix); PNG for a name without one."""
    ext = Path(path).suffix.lower()
    if not ext:
        return "PNG"
    fmt = Image.registered_extensions().get(ext)
    if fmt not in FORMAT_HOLDS:
        raise ResganError(f"{path}: cannot write {ext} images; use .png, .jpg, .webp, .tif, .bmp, .gif or .ppm")
    return fmt


def check_holds(mode: str, path: Path) -> str:
    """The format of ``path`` if it holds a ``mode`` result exactly, else a ResganError (before any work)."""
    fmt = output_format(path)
    if mode not in FORMAT_HOLDS[fmt]:
        can = sorted(f for f, modes in FORMAT_HOLDS.items() if mode in modes)
        raise ResganError(f"{path}: a {fmt} file cannot hold this {MODE_WORDS.get(mode, mode)} image; write "
                          f"{' or '.join('.' + f.lower().replace('tiff', 'tif') for f in can)} instead")
    return fmt


def pil_image(q: np.ndarray, mode: str) -> Image.Image:
    """Quantized integers (H, W, C) in ``mode`` (8-bit or 16-bit grey) -> a PIL image."""
    if mode == "I;16":
        return Image.fromarray(q[:, :, 0].astype(np.uint16))
    return Image.fromarray(q[:, :, 0] if q.shape[2] == 1 else q)


def encode(q: np.ndarray, mode: str, path: Path, quality: int = 95) -> bytes:
    """The one encoder: quantized integers (:func:`quantize`) in ``mode`` -> file bytes in ``path``'s format."""
    fmt = check_holds(mode, path)
    if mode in ("RGB;16", "RGBA;16"):
        import cv2  # a 16-bit colour image was read with it

        ok, buf = cv2.imencode(".png", q[:, :, [2, 1, 0, 3][: q.shape[2]]])
        if not ok:
            raise ResganError(f"{path}: cannot encode the 16-bit result")
        return buf.tobytes()
    buf = io.BytesIO()
    pil_image(q, mode).save(buf, format=fmt, **({"quality": quality} if fmt in ("JPEG", "WEBP") else {}))
    return buf.getvalue()
