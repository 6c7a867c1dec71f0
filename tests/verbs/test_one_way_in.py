"""One way in (issue 29): the same request sent through the command line, the Python API and the
server is accepted or refused alike, and when accepted gives the same pixels.

Each case is one image file's bytes (the CLI reads it from a file, the API gets it opened with PIL, the
server as an upload), an optional mask file's bytes, and options. The three answers are compared:
all three restore (identical pixels, mode and size) or all three refuse (each message carrying the
same words)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the server side needs fastapi")
pytest.importorskip("multipart", reason="the server side needs python-multipart")

from helpers import animated_gif, encoded, photo, repeated_scans  # noqa: E402
from PIL import Image  # noqa: E402

import resgan  # noqa: E402
from resgan.cli import main  # noqa: E402
from resgan.errors import ResganError  # noqa: E402
from resgan.serve.app import Limits, load_registry  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny nets: one thread (conftest)


NAMES = {"denoise": "den", "inpaint": "inp", "sr": "sr2"}


@pytest.fixture(scope="module")
def models(tiny_models) -> dict[str, Path]:
    return tiny_models  # conftest's: denoise, inpaint, sr (x2), gen


@pytest.fixture(scope="module")
def client(models, make_client):
    reg = load_registry([f"{NAMES[k]}={models[k]}" for k in NAMES] + [f"gen={models['gen']}"])
    with make_client(reg, Limits(max_body_bytes=2_000_000, max_pixels=1_000_000, timeout_s=60)) as c:
        yield c


# ---------------------------------------------------------------- files made here


def hole(h: int, w: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[h // 4: h // 2 + 1, w // 5: w // 2 + 1] = True
    return m


def grey_mask(h: int, w: int) -> bytes:
    return encoded(Image.fromarray(hole(h, w).astype(np.uint8) * 255))


def exif_rotated_jpeg(h: int, w: int) -> bytes:
    """A JPEG stored w x h whose EXIF says "rotate 90 degrees clockwise": viewers show it h x w... turned."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encoded(Image.fromarray(photo(h, w)), "JPEG", quality=95, exif=exif.tobytes())


def many_scans_jpeg(copies: int = 150) -> bytes:
    """A small progressive JPEG of ``copies`` repeated scans: the shape of a decode-time bomb."""
    return repeated_scans(copies)


# ---------------------------------------------------------------- the three entry points


def _err_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("resgan: error:")]
    assert "Traceback" not in err and lines, err
    return lines[0]


def via_cli(tmp: Path, task: str, model: Path, image: bytes, mask: bytes | None, opts: dict, capsys, ext="png"):
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / f"img.{ext}").write_bytes(image)
    args = ["restore", str(tmp / f"img.{ext}"), "--task", task, "--model", str(model), "--out",
            str(tmp / "out" / "res.png"), "--quiet"]
    if mask is not None:
        (tmp / "holes.png").write_bytes(mask)
        args += ["--mask", str(tmp / "holes.png")]
    for k, v in opts.items():
        args += [f"--{k}", str(v)]
    code = main(args)
    err = capsys.readouterr().err
    if code == 0:
        with Image.open(tmp / "out" / "res.png") as img:
            return "ok", img.mode, np.asarray(img)
    return "refused", _err_line(err)


def via_api(task: str, model: Path, image: bytes, mask: bytes | None, opts: dict):
    try:
        opened = Image.open(io.BytesIO(image))
    except Exception:  # noqa: BLE001 - not even a PIL image: the Python API cannot be handed it
        return None
    try:
        with opened as img:
            m = Image.open(io.BytesIO(mask)) if mask is not None else None
            out = resgan.restore_image(img, task, model, mask=m, **opts)
    except ResganError as e:
        msg = str(e)
        assert "\n" not in msg
        return "refused", msg
    return "ok", out.mode, np.asarray(out)


def via_server(client, task: str, image: bytes, mask: bytes | None, opts: dict):
    files = {"image": ("upload.bin", image, "application/octet-stream")}
    if mask is not None:
        files["mask"] = ("mask.bin", mask, "application/octet-stream")
    r = client.post("/v1/restore", files=files, data={"task": task, "model": NAMES[task],
                                                      **{k: str(v) for k, v in opts.items()}})
    if r.status_code == 200:
        with Image.open(io.BytesIO(r.content)) as img:
            return "ok", img.mode, np.asarray(img)
    assert 400 <= r.status_code < 500 and r.headers["content-type"].startswith("application/json"), r.text
    return "refused", r.json()["error"]


def three_ways(tmp_path, capsys, client, models, task, image, mask=None, ext="png", **opts):
    return {"cli": via_cli(tmp_path / "cli", task, models[task], image, mask, opts, capsys, ext),
            "api": via_api(task, models[task], image, mask, opts),
            "server": via_server(client, task, image, mask, opts)}


def assert_same_result(answers: dict) -> np.ndarray:
    for where, a in answers.items():
        assert a[0] == "ok", (where, a)
    cli = answers["cli"]
    for where in ("api", "server"):
        assert answers[where][1] == cli[1], (where, answers[where][1], cli[1])
        assert np.array_equal(answers[where][2], cli[2]), where
    return cli[2]


def assert_refused(answers: dict, *words: str) -> None:
    for where, a in answers.items():
        if a is None and where == "api":  # bytes PIL cannot open are no PIL image to give the API
            continue
        assert a[0] == "refused", (where, a[:2])
        for w in words:
            assert w in a[1], (where, a[1])


# ---------------------------------------------------------------- restore: accepted alike, same pixels


@pytest.mark.parametrize("case", ["grey", "grey_estimated", "rgba", "palette", "cmyk_jpeg", "deep", "exif_jpeg"])
def test_denoise_same_pixels_everywhere(tmp_path, capsys, client, models, case):
    rgb = photo(40, 48)
    rgba = np.dstack([rgb, np.arange(40 * 48, dtype=np.uint8).reshape(40, 48)])
    image, ext, opts = {
        "grey": (encoded(Image.fromarray(photo(40, 48, 1))), "png", {"sigma": 25}),
        "grey_estimated": (encoded(Image.fromarray(photo(40, 48, 1))), "png", {}),
        "rgba": (encoded(Image.fromarray(rgba, "RGBA")), "png", {"sigma": 20}),
        "palette": (encoded(Image.fromarray(rgb).convert("P")), "png", {"sigma": 20}),
        "cmyk_jpeg": (encoded(Image.fromarray(rgb).convert("CMYK"), "JPEG"), "jpg", {"sigma": 20}),
        "deep": (encoded(Image.fromarray(photo(40, 48, 1).astype(np.uint16) * 257)), "png", {"sigma": 20}),
        "exif_jpeg": (exif_rotated_jpeg(40, 48), "jpg", {"sigma": 20}),
    }[case]
    out = assert_same_result(three_ways(tmp_path, capsys, client, models, "denoise", image, ext=ext, **opts))
    if case == "rgba":
        assert out.shape == (40, 48, 4) and np.array_equal(out[:, :, 3], rgba[:, :, 3])  # alpha kept exactly
    if case == "deep":
        assert out.dtype == np.uint16  # 16-bit stays 16-bit on every entry point
    if case == "exif_jpeg":
        assert out.shape[:2] == (48, 40)  # restored as a viewer shows it: EXIF orientation applied everywhere
    if case in ("palette", "cmyk_jpeg"):
        assert out.shape == (40, 48, 3)


def test_inpaint_masks_are_read_alike(tmp_path, capsys, client, models):
    h, w = 36, 44
    img = photo(h, w)
    src = encoded(Image.fromarray(img))
    want = hole(h, w)
    # a grey mask, a 1-bit mask, and a canvas-style RGBA mask: white everywhere, opaque only over the hole
    # (transparent = known, on the command line too: it once inpainted the whole image from this file)
    rgba = np.full((h, w, 4), 255, np.uint8)
    rgba[:, :, 3] = want * 255
    masks = {"grey": grey_mask(h, w), "one_bit": encoded(Image.fromarray(want).convert("1")),
             "rgba": encoded(Image.fromarray(rgba, "RGBA"))}
    results = {}
    for name, mask in masks.items():
        results[name] = assert_same_result(three_ways(tmp_path / name, capsys, client, models, "inpaint", src, mask))
        assert np.array_equal(results[name][~want], img[~want])  # every known pixel kept exactly
    assert np.array_equal(results["grey"], results["one_bit"]) and np.array_equal(results["grey"], results["rgba"])


def test_an_exif_rotated_photo_takes_the_mask_of_what_a_viewer_shows(tmp_path, capsys, client, models):
    jpeg = exif_rotated_jpeg(36, 44)  # stored 44 wide, 36 high; shown 36 wide, 44 high
    shown = assert_same_result(three_ways(tmp_path / "a", capsys, client, models, "inpaint", jpeg, grey_mask(44, 36),
                                          ext="jpg"))
    assert shown.shape == (44, 36, 3)
    assert_refused(three_ways(tmp_path / "b", capsys, client, models, "inpaint", jpeg, grey_mask(36, 44), ext="jpg"),
                   "mask is 44x36 but the image is 36x44")


@pytest.mark.parametrize("size", [(1, 1), (5, 7), (8, 8), (3, 40)])
def test_tiny_images_inpaint_everywhere(tmp_path, capsys, client, models, size):
    h, w = size
    img = photo(max(h, 8), max(w, 8))[:h, :w]
    mask = np.zeros((h, w), np.uint8)
    mask[h // 2, w // 2] = 255
    out = assert_same_result(three_ways(tmp_path, capsys, client, models, "inpaint", encoded(Image.fromarray(img)),
                                        encoded(Image.fromarray(mask))))
    assert out.shape == (h, w, 3)


@pytest.mark.parametrize("size", [(1, 1), (5, 7), (8, 8)])
def test_tiny_images_with_the_builtin_fourier_inpainter(tmp_path, capsys, size):
    """The built-in FFC net downsamples 8x and reflect-pads inside: an 8-px image crashed in its padding."""
    from resgan.zoo import builtin_path

    if not builtin_path("inpaint").is_file():
        pytest.skip("built-in inpaint weights absent")
    h, w = size
    img, mask = photo(8, 8)[:h, :w], np.zeros((h, w), np.uint8)
    mask[0, 0] = 255
    (tmp_path / "x.png").write_bytes(encoded(Image.fromarray(img)))
    (tmp_path / "m.png").write_bytes(encoded(Image.fromarray(mask)))
    assert main(["restore", str(tmp_path / "x.png"), "--task", "inpaint", "--mask", str(tmp_path / "m.png"),
                 "--out", str(tmp_path / "y.png"), "--quiet"]) == 0, capsys.readouterr().err
    api = resgan.restore_image(img, "inpaint", mask=mask > 0)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "y.png")), api) and api.shape == (h, w, 3)


def test_sr_same_pixels_everywhere(tmp_path, capsys, client, models):
    out = assert_same_result(three_ways(tmp_path, capsys, client, models, "sr", encoded(Image.fromarray(photo(21, 30))),
                                        scale=2))
    assert out.shape == (42, 60, 3)


# ---------------------------------------------------------------- restore: refused alike


def test_options_a_task_does_not_take_are_refused_everywhere(tmp_path, capsys, client, models):
    grey = encoded(Image.fromarray(photo(32, 32, 1)))
    rgb = encoded(Image.fromarray(photo(32, 32)))
    cases = [("denoise", grey, grey_mask(32, 32), {}, ["mask applies to task inpaint only, not denoise"]),
             ("sr", rgb, None, {"sigma": 10}, ["sigma applies to task denoise only, not sr"]),
             ("denoise", grey, None, {"scale": 2}, ["scale applies to task sr only, not denoise"]),
             ("denoise", grey, None, {"sigma": 300}, ["sigma must be within 0..255"]),
             ("denoise", grey, None, {"sigma": -1}, ["sigma must be within 0..255"]),
             ("sr", rgb, None, {"scale": 5}, ["unknown scale 5"]),
             ("sr", rgb, None, {"scale": 4}, ["is an x2 model, not x4"])]
    for i, (task, image, mask, opts, words) in enumerate(cases):
        assert_refused(three_ways(tmp_path / str(i), capsys, client, models, task, image, mask, **opts), *words)


@pytest.mark.parametrize("case", ["animated_gif", "many_scans", "colour_mask", "small_mask", "not_an_image",
                                  "empty", "truncated"])
def test_bad_files_are_refused_everywhere(tmp_path, capsys, client, models, case):
    import time

    img = encoded(Image.fromarray(photo(48, 64)))
    task, image, mask, words = {
        "animated_gif": ("denoise", animated_gif(), None, ["more than one frame"]),
        "many_scans": ("denoise", many_scans_jpeg(), None, ["more than 100 scans"]),
        "colour_mask": ("inpaint", img, encoded(Image.fromarray(photo(48, 64, seed=3))), ["not single-channel"]),
        "small_mask": ("inpaint", img, grey_mask(48, 60), ["mask is 60x48 but the image is 64x48"]),
        "not_an_image": ("denoise", b"<html>not an image</html>", None, ["cannot read image"]),
        "empty": ("denoise", b"", None, ["empty file"]),
        "truncated": ("denoise", img[: len(img) // 2], None, ["cannot read image"]),
    }[case]
    t0 = time.perf_counter()
    answers = three_ways(tmp_path, capsys, client, models, task, image, mask, ext="gif" if "gif" in case else "png")
    assert_refused(answers, *words)
    assert time.perf_counter() - t0 < 10


# ---------------------------------------------------------------- generate


def gen_cli(tmp: Path, gen: Path, capsys, seeds: str, **opts):
    args = ["generate", str(gen), "--seeds", seeds, "--out", str(tmp)]
    for k, v in opts.items():
        args += [{"class_": "--class", "psi": "--psi", "trunc": "--trunc"}[k], str(v)]
    code = main(args)
    err = capsys.readouterr().err
    if code:
        return "refused", _err_line(err)
    from resgan.verbs.generate import seed_name
    from resgan.verbs.seeds import parse_seeds

    return "ok", [np.asarray(Image.open(tmp / seed_name(s))) for s in parse_seeds(seeds)]


def gen_api(gen: Path, seeds, **opts):
    try:
        return "ok", list(resgan.generate_images(gen, seeds=seeds, as_array=True, **opts))
    except ResganError as e:
        return "refused", str(e)


def gen_server(client, seeds, **opts):
    import zipfile

    body = {"seeds": seeds, "format": "zip", "model": "gen", **{("class" if k == "class_" else k): v
                                                                for k, v in opts.items()}}
    r = client.post("/v1/generate", json=body)
    if r.status_code != 200:
        assert 400 <= r.status_code < 500, r.text
        return "refused", r.json()["error"]
    z = zipfile.ZipFile(io.BytesIO(r.content))
    return "ok", [np.asarray(Image.open(io.BytesIO(z.read(n)))) for n in z.namelist()]


def test_generate_same_images_and_refusals_everywhere(tmp_path, capsys, client, models):
    gen = models["gen"]
    ok = [("0-3", {"class_": 7, "psi": 0.7}), ("5000000000,1", {"trunc": 1.0}), ("2", {"class_": "digit3"})]
    for i, (seeds, opts) in enumerate(ok):
        answers = {"cli": gen_cli(tmp_path / f"ok{i}", gen, capsys, seeds, **opts), "api": gen_api(gen, seeds, **opts),
                   "server": gen_server(client, seeds, **opts)}
        for where, a in answers.items():
            assert a[0] == "ok", (where, a)
        for where in ("api", "server"):
            assert len(answers[where][1]) == len(answers["cli"][1])
            for x, y in zip(answers[where][1], answers["cli"][1]):
                assert np.array_equal(x, y), (where, seeds)
    bad = [("9-1", {}, "seeds wants a list"), ("²-³", {}, "seeds wants a list"), ("-1", {}, "seeds wants a list"),
           ("99999999999999999999", {}, "seeds must be within 0..9223372036854775807"),
           ("0-1", {"psi": 5}, "psi must be within 0..2"), ("0-1", {"psi": float("nan")}, "psi must be within 0..2"),
           ("0-1", {"trunc": 0.0}, "trunc must be a finite number >= 0.05"),
           ("0-1", {"class_": "cat"}, "unknown class"), ("0-1", {"class_": 12}, "class must be within 0..9"),
           ("0-100000", {}, "over the limit of")]
    for i, (seeds, opts, words) in enumerate(bad):
        if isinstance(opts.get("psi"), float) and opts["psi"] != opts["psi"]:  # JSON has no NaN: CLI and API only
            answers = {"cli": gen_cli(tmp_path / f"bad{i}", gen, capsys, seeds, **opts),
                       "api": gen_api(gen, seeds, **opts)}
        else:
            answers = {"cli": gen_cli(tmp_path / f"bad{i}", gen, capsys, seeds, **opts),
                       "api": gen_api(gen, seeds, **opts), "server": gen_server(client, seeds, **opts)}
        assert_refused(answers, words)
        assert not (tmp_path / f"bad{i}").exists()  # refused before anything was written
