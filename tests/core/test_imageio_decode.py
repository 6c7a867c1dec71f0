"""The one image and mask decoder and the one encoder (resgan.imageio) on tiny synthetic files: EXIF
orientation, alpha masks, CMYK, 1-bit, palette, 16-bit, multi-frame files, JPEG scan bombs, and output
formats that cannot hold a result."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from helpers import encoded, photo, repeated_scans
from PIL import Image

from resgan.errors import ResganError
from resgan.imageio import (
    MAX_JPEG_SCANS,
    check_holds,
    decode_bytes,
    decode_mask,
    encode,
    from_pil,
    jpeg_scans,
    quantize,
)


def exif(orientation: int) -> bytes:
    e = Image.Exif()
    e[0x0112] = orientation
    return e.tobytes()


# ---------------------------------------------------------------- JPEG scans: work, not pixels


def test_scans_are_counted_from_the_markers():
    baseline = encoded(Image.fromarray(photo(32, 32)), "JPEG")
    progressive = encoded(Image.fromarray(photo(32, 32)), "JPEG", progressive=True)
    assert jpeg_scans(baseline) == 1
    n = jpeg_scans(progressive)
    assert 2 <= n <= 20  # a usual progressive file passes
    assert decode_bytes(progressive, "p").size == (32, 32)
    # SOS-looking bytes inside an APP segment (an EXIF thumbnail, an ICC profile) are skipped by its length
    app = b"\xff\xe1" + (2 + 400).to_bytes(2, "big") + b"\xff\xda" * 200
    assert jpeg_scans(progressive[:2] + app + progressive[2:]) == n
    grey = encoded(Image.fromarray(photo(16, 16, 1)), "JPEG", progressive=True)
    assert jpeg_scans(repeated_scans(40)) == jpeg_scans(grey) + 40


def test_a_scan_bomb_is_refused_quickly_everywhere():
    bomb = repeated_scans(100_000)  # ~2 MB: under every byte and pixel limit
    assert len(bomb) < 4_000_000
    t0 = time.perf_counter()
    with pytest.raises(ResganError, match=f"more than {MAX_JPEG_SCANS} scans"):
        decode_bytes(bomb, "bomb.jpg")
    with pytest.raises(ResganError, match=f"more than {MAX_JPEG_SCANS} scans"):  # a PIL image (the Python API)
        from_pil(Image.open(io.BytesIO(bomb)), "image")
    assert time.perf_counter() - t0 < 2
    decode_bytes(repeated_scans(MAX_JPEG_SCANS - 20), "fine.jpg")  # under the limit: decoded


# ---------------------------------------------------------------- modes


def test_exif_orientation_is_applied_to_images_and_masks():
    arr = photo(20, 30)
    for orientation, turn in ((6, lambda a: np.rot90(a, -1)), (8, lambda a: np.rot90(a, 1)),
                              (3, lambda a: np.rot90(a, 2)), (2, lambda a: a[:, ::-1])):
        data = encoded(Image.fromarray(arr), "PNG", exif=exif(orientation))
        got = decode_bytes(data, "x").raw
        assert np.array_equal(got, turn(arr)), orientation
    m = np.zeros((20, 30), np.uint8)
    m[2:5, 20:28] = 255
    hole = decode_mask(encoded(Image.fromarray(m), "PNG", exif=exif(6)), (20, 30))
    assert np.array_equal(hole, np.rot90(m > 0, -1))


def test_alpha_in_a_mask_means_known():
    rgba = np.full((10, 12, 4), 255, np.uint8)  # white everywhere ...
    rgba[:, :, 3] = 0
    rgba[2:5, 3:9, 3] = 255  # ... opaque only over the hole
    hole = decode_mask(encoded(Image.fromarray(rgba, "RGBA")), (12, 10))
    assert hole.sum() == 18 and hole[2:5, 3:9].all()
    la = Image.fromarray(rgba[:, :, [0, 3]], "LA")
    assert np.array_equal(decode_mask(encoded(la), (12, 10)), hole)
    with pytest.raises(ResganError, match="not single-channel"):
        colour = rgba.copy()
        colour[0, 0, 1] = 0
        decode_mask(encoded(Image.fromarray(colour, "RGBA")), (12, 10))


def test_cmyk_one_bit_and_palette_are_converted():
    rgb = photo(16, 20)
    cmyk = decode_bytes(encoded(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=95), "c")
    assert cmyk.mode == "RGB" and np.abs(cmyk.raw.astype(int) - rgb).mean() < 8
    bits = np.zeros((16, 20), bool)
    bits[3:9, 4:12] = True
    one = decode_bytes(encoded(Image.fromarray(bits).convert("1")), "b")
    assert one.mode == "L" and set(np.unique(one.raw)) == {0, 255}
    assert np.array_equal(decode_mask(encoded(Image.fromarray(bits).convert("1")), (20, 16)), bits)
    pal = Image.fromarray(rgb).convert("P")
    assert decode_bytes(encoded(pal), "p").mode == "RGB"
    pal.info["transparency"] = 0
    back = decode_bytes(encoded(pal, transparency=0), "p")
    assert back.mode == "RGBA" and back.alpha is not None


def test_sixteen_bit_is_kept():
    deep = (photo(12, 14, 1).astype(np.uint16) * 257 + 3).astype(np.uint16)
    g = decode_bytes(encoded(Image.fromarray(deep)), "g")
    assert g.bits == 16 and g.mode == "I;16" and np.array_equal(g.raw[:, :, 0], deep)
    back = decode_bytes(encode(quantize(g.data, g), g.mode, "x.png"), "again")
    assert np.array_equal(back.raw, g.raw)  # 16-bit in, the same 16-bit integers out


def test_sixteen_bit_colour_png_is_read_with_opencv_or_refused():
    import struct
    import zlib

    h, w = 4, 5
    rows = b"".join(b"\x00" + np.full((w, 3), 40000, ">u2").tobytes() for _ in range(h))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    try:
        import cv2  # noqa: F401
    except ImportError:
        with pytest.raises(ResganError, match="16-bit colour or grey \\+ alpha PNG needs opencv"):
            decode_bytes(data, "deep.png")
        return
    got = decode_bytes(data, "deep.png")
    assert got.bits == 16 and got.mode == "RGB;16" and (got.raw == 40000).all()


def test_multi_frame_files_are_refused_single_frames_read():
    frames = [Image.fromarray(photo(8, 8, seed=i)) for i in range(3)]
    gif = io.BytesIO()
    frames[0].convert("P").save(gif, format="GIF", save_all=True, append_images=[f.convert("P") for f in frames[1:]])
    with pytest.raises(ResganError, match="more than one frame"):
        decode_bytes(gif.getvalue(), "anim.gif")
    tiff = io.BytesIO()
    frames[0].save(tiff, format="TIFF", save_all=True, append_images=frames[1:])
    with pytest.raises(ResganError, match="more than one frame"):
        decode_bytes(tiff.getvalue(), "pages.tif")
    assert decode_bytes(encoded(frames[0].convert("P"), "GIF"), "still.gif").size == (8, 8)
    assert decode_bytes(encoded(frames[0], "TIFF"), "one.tif").mode == "RGB"


def test_formats_are_sniffed_and_bad_bytes_refused():
    with pytest.raises(ResganError, match="not a PNG, JPEG") as e:
        decode_bytes(b"%PDF-1.4 ...", "doc")
    assert e.value.status == 415
    with pytest.raises(ResganError, match="empty file"):
        decode_bytes(b"", "nothing")
    png = encoded(Image.fromarray(photo(40, 40)))
    with pytest.raises(ResganError, match="cannot read image"):
        decode_bytes(png[: len(png) // 2], "half")
    with pytest.raises(ResganError, match="over the limit of 100") as e:
        decode_bytes(png, "big", max_pixels=100)
    assert e.value.status == 413
    pgm = encoded(Image.fromarray(photo(6, 7, 1)), "PPM")
    assert decode_bytes(pgm, "x.pgm").mode == "L"


# ---------------------------------------------------------------- the encoder


@pytest.mark.parametrize("mode,path,ok", [
    ("RGBA", "x.jpg", False), ("LA", "x.bmp", False), ("I;16", "x.jpg", False), ("I;16", "x.webp", False),
    ("RGB", "x.gif", False), ("RGBA", "x.bmp", False), ("RGBA", "x.png", True), ("I;16", "x.tif", True),
    ("L", "x.gif", True), ("RGB", "x.jpg", True), ("LA", "x.webp", True), ("RGB", "x.xyz", False)])
def test_an_output_format_that_cannot_hold_the_result_is_refused(mode, path, ok):
    if ok:
        assert check_holds(mode, path)
    else:
        with pytest.raises(ResganError, match="cannot hold|cannot write"):
            check_holds(mode, path)
