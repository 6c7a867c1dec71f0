"""``resgan restore``: files, folders, modes, masks, bad input."""

import numpy as np
import pytest
from helpers import photo, tiny_model_file
from PIL import Image

from resgan.cli import main
from resgan.imageio import read_image
from resgan.restore.infer import estimate_sigma, restore_array
from resgan.zoo import load_restorer

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny nets: one thread (conftest)


def run(capsys, *args):
    code = main(["restore", *map(str, args), "--quiet"])
    out = capsys.readouterr()
    return code, out.err


@pytest.fixture
def denoiser(tiny_models):
    return tiny_models["denoise25"]


def test_modes_sizes_and_names_kept(tmp_path, capsys, denoiser):
    src = tmp_path / "in"
    src.mkdir()
    rgba = np.dstack([photo(30, 41), np.arange(30 * 41, dtype=np.uint8).reshape(30, 41)])
    images = {"grey.png": Image.fromarray(photo(30, 41, 1)), "rgb.png": Image.fromarray(photo(33, 20)),
              "rgba.png": Image.fromarray(rgba, "RGBA"), "la.png": Image.fromarray(photo(30, 41, 1)).convert("LA"),
              "pal.png": Image.fromarray(photo(30, 41)).convert("P"), "photo.jpg": Image.fromarray(photo(40, 56)),
              "deep.png": Image.fromarray(photo(30, 41, 1).astype(np.uint16) * 257)}
    for name, img in images.items():
        img.save(src / name)
    code, err = run(capsys, src, "--task", "denoise", "--model", denoiser, "--out", tmp_path / "out")
    assert code == 0, err
    expect_mode = {"pal.png": "RGB", "deep.png": "I;16"}
    for name, img in images.items():
        with Image.open(tmp_path / "out" / name) as out:
            assert out.size == img.size, name
            assert out.mode == expect_mode.get(name, img.mode), name
            if name == "rgba.png":
                assert np.array_equal(np.asarray(out)[:, :, 3], rgba[:, :, 3])
    assert read_image(tmp_path / "out" / "deep.png").bits == 16


def test_sr_output_is_scaled(tmp_path, capsys):
    model = tiny_model_file(tmp_path, "sr", 3, scale=2, crop=32)
    Image.fromarray(photo(21, 30)).save(tmp_path / "small.png")
    code, err = run(capsys, tmp_path / "small.png", "--task", "sr", "--model", model, "--scale", 2, "--out",
                    tmp_path / "o")
    assert code == 0, err
    assert Image.open(tmp_path / "o" / "small.png").size == (60, 42)
    code, err = run(capsys, tmp_path / "small.png", "--task", "sr", "--model", model, "--scale", 4, "--out",
                    tmp_path / "o")
    assert code == 2 and "x2 model, not x4" in err


def test_lama_folder_convention(tmp_path, capsys):
    model = tiny_model_file(tmp_path, "inpaint", 3)
    src = tmp_path / "in"
    src.mkdir()
    for stem, masks in (("a", ["a_mask"]), ("b", ["b_mask001", "b_mask002"])):
        Image.fromarray(photo(36, 44, seed=len(masks))).save(src / f"{stem}.png")
        for i, m in enumerate(masks):
            hole = np.zeros((36, 44), np.uint8)
            hole[5 + 10 * i:15 + 10 * i, 8:30] = 255
            Image.fromarray(hole).save(src / f"{m}.png")
    code, err = run(capsys, src, "--task", "inpaint", "--model", model, "--out", tmp_path / "out")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b_mask001.png", "b_mask002.png"]
    cases = (("a.png", "a.png", "a_mask.png"), ("b_mask002.png", "b.png", "b_mask002.png"))
    for out_name, img_name, mask_name in cases:
        out = np.asarray(Image.open(tmp_path / "out" / out_name))
        img = np.asarray(Image.open(src / img_name))
        hole = np.asarray(Image.open(src / mask_name)) > 127
        assert np.array_equal(out[~hole], img[~hole])  # known pixels bit-identical
        assert not np.array_equal(out[hole], img[hole])
    # --mask FILE for a single image
    code, err = run(capsys, src / "a.png", "--task", "inpaint", "--model", model, "--mask", src / "b_mask001.png",
                    "--out", tmp_path / "out2")
    assert code == 0, err


def test_bad_masks(tmp_path, capsys):
    model = tiny_model_file(tmp_path, "inpaint", 3)
    Image.fromarray(photo(32, 32)).save(tmp_path / "img.png")
    Image.fromarray(photo(32, 32, seed=1)).save(tmp_path / "img2.png")
    Image.fromarray(np.zeros((16, 32), np.uint8)).save(tmp_path / "small_mask.png")
    Image.fromarray(photo(32, 32, seed=3)).save(tmp_path / "colour_mask.png")
    code, err = run(capsys, tmp_path / "img.png", "--task", "inpaint", "--model", model, "--mask",
                    tmp_path / "small_mask.png", "--out", tmp_path / "o")
    assert code == 1 and "mask is 32x16 but the image is 32x32" in err
    code, err = run(capsys, tmp_path / "img.png", "--task", "inpaint", "--model", model, "--mask",
                    tmp_path / "colour_mask.png", "--out", tmp_path / "o")
    assert code == 1 and "not single-channel" in err
    code, err = run(capsys, tmp_path / "img2.png", "--task", "inpaint", "--model", model, "--out", tmp_path / "o")
    assert code == 1 and "no mask" in err


def test_bad_files_in_a_folder_others_still_processed(tmp_path, capsys, denoiser):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(photo(24, 24, 1)).save(src / "good.png")
    Image.fromarray(photo(24, 24, 1)).save(src / "good2.jpg")
    (src / "empty.png").write_bytes(b"")
    (src / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    (src / "text.jpg").write_bytes(b"not an image at all")
    Image.fromarray(photo(24, 24)).convert("CMYK").save(src / "cmyk.jpg")
    Image.fromarray(photo(64, 64, 1)).save(src / "huge.png")
    code, err = run(capsys, src, "--task", "denoise", "--model", denoiser, "--out", tmp_path / "out",
                    "--max-pixels", 1000)
    assert code == 1
    lines = err.strip().splitlines()
    bad = {"empty.png": "empty file", "corrupt.png": "cannot read image", "text.jpg": "cannot read image",
           "huge.png": "over the limit"}
    for name, why in bad.items():
        assert sum(name in ln and why in ln for ln in lines) == 1, (name, err)
    assert "4 of 7 files failed" in lines[-1]
    # a CMYK JPEG is read as RGB, as the server and the Python API read it (one decoder)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["cmyk.jpg", "good.png", "good2.jpg"]
    assert Image.open(tmp_path / "out" / "cmyk.jpg").mode == "RGB"


def test_unknown_task_scale_and_model(tmp_path, capsys, denoiser):
    Image.fromarray(photo(16, 16, 1)).save(tmp_path / "x.png")
    for args, why in ((["--task", "colourise"], "unknown task 'colourise'"),
                      (["--task", "sr", "--scale", "5"], "unknown scale 5"),
                      (["--task", "denoise", "--scale", "2"], "scale applies to task sr only"),
                      # one rule on every entry point: an option the task does not take is refused, not ignored
                      (["--task", "denoise", "--mask", str(tmp_path / "x.png")], "mask applies to task inpaint only"),
                      (["--task", "sr", "--sigma", "10"], "sigma applies to task denoise only, not sr"),
                      (["--task", "denoise", "--tile", "129", "--overlap", "64"], "tile must be 0 (off) or at least"),
                      # tile 160 / overlap 64 has a 32-px useful part: 25x the work per pixel; tile >= 4 x overlap
                      (["--task", "denoise", "--tile", "160", "--overlap", "64"], "= 256 (tile 160, overlap 64"),
                      (["--task", "deblur"], "no built-in model for --task deblur"),
                      (["--task", "sr", "--model", str(denoiser)], "is a denoise model, not a sr model"),
                      (["--task", "denoise", "--model", str(tmp_path / "nope")], "no model"),
                      (["--task", "denoise", "--sigma", "300"], "sigma must be within 0..255"),
                      (["--task", "jpeg", "--quality", "0"], "quality must be within 1..100"),
                      (["--task", "jpeg", "--quality", "101"], "quality must be within 1..100")):
        code, err = run(capsys, tmp_path / "x.png", *args, "--out", tmp_path / "o")
        assert code == 2 and why in err and len(err.strip().splitlines()) == 1, (args, err)


def test_the_smallest_tile_the_rule_allows_is_accepted(tmp_path, capsys, denoiser):
    """tile >= max(4 x overlap, 2 x overlap + 32): 256 / 64 and 36 / 2 run, one pixel less is refused."""
    Image.fromarray(photo(40, 40, 1)).save(tmp_path / "x.png")
    for tile, overlap in ((256, 64), (36, 2)):
        code, err = run(capsys, tmp_path / "x.png", "--task", "denoise", "--model", denoiser, "--tile", tile,
                        "--overlap", overlap, "--out", tmp_path / f"t{tile}.png")
        assert code == 0, err
        code, err = run(capsys, tmp_path / "x.png", "--task", "denoise", "--model", denoiser, "--tile", tile - 1,
                        "--overlap", overlap, "--out", tmp_path / f"u{tile}.png")
        assert code == 2 and f"= {tile} (tile {tile - 1}" in err, err


def test_quality_sets_the_jpeg_output_quality(tmp_path, capsys, denoiser):
    Image.fromarray(photo(48, 64, 1)).save(tmp_path / "x.png")
    sizes = {}
    for q in (30, 95):
        code, err = run(capsys, tmp_path / "x.png", "--task", "denoise", "--model", denoiser, "--quality", q,
                        "--out", tmp_path / f"q{q}.jpg")
        assert code == 0, err
        sizes[q] = (tmp_path / f"q{q}.jpg").stat().st_size
    assert sizes[30] < 0.8 * sizes[95]


def test_estimate_sigma():
    rng = np.random.default_rng(0)
    clean = photo(128, 128, 1).astype(np.float32)[:, :, None] / 255
    for s in (10, 25, 50):
        assert abs(estimate_sigma(clean + rng.normal(0, s / 255, clean.shape)) - s) < 0.1 * s + 1


def test_estimate_sigma_on_8bit_files_corrects_clipping():
    """A user's noisy file is clipped to 0..255: the raw Haar estimate falls to ~60 at sigma 75."""
    skd = pytest.importorskip("skimage.data")
    rng = np.random.default_rng(0)
    for img in (skd.camera()[..., None], skd.astronaut()):
        clean = img.astype(np.float64)
        for s in (5, 15, 25, 50, 75):
            noisy = np.clip(np.round(clean + rng.normal(0, s, clean.shape)), 0, 255).astype(np.float32) / 255
            assert abs(estimate_sigma(noisy) - s) < 0.12 * s + 1.5, (img.shape, s, estimate_sigma(noisy))


def test_large_image_runs_in_tiles(tmp_path, capsys, denoiser):
    Image.fromarray(photo(300, 520, 1)).save(tmp_path / "big.png")
    code, err = run(capsys, tmp_path / "big.png", "--task", "denoise", "--model", denoiser, "--tile", 128,
                    "--overlap", 16, "--sigma", 25, "--out", tmp_path / "o")
    assert code == 0, err
    assert Image.open(tmp_path / "o" / "big.png").size == (520, 300)


def test_progress_counts_tiles(denoiser):
    """progress(done, total): (0, n) first, then once per tile, monotone, ending at (n, n); the whole image
    is one tile; the callback changes nothing in the result."""
    model = load_restorer(denoiser, "cpu")
    img = photo(100, 150, 1)[:, :, None].astype(np.float32) / 255
    calls = []
    out = restore_array(model, img, sigma=25, tile=64, overlap=16, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(i, 20) for i in range(21)]  # 32-px cores (64 - 2 x 16): 4 rows x 5 columns
    assert np.array_equal(out, restore_array(model, img, sigma=25, tile=64, overlap=16))
    for tile in (0, 512):
        calls.clear()
        restore_array(model, img, sigma=25, tile=tile, progress=lambda d, t: calls.append((d, t)))
        assert calls == [(0, 1), (1, 1)], tile
