"""The Python API at the package top (``resgan.restore_image`` / ``generate_images`` /
``evaluate_images`` / ``list_classes``): PIL images and uint8 arrays in, the same type out, the
same pixels as the command line, and a ResganError saying what is wrong with a bad argument."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import photo
from PIL import Image

import resgan
from resgan import ResganError
from resgan.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny nets: one thread (conftest)


@pytest.fixture(scope="module")
def models(tiny_models) -> dict[str, Path]:
    return {**tiny_models, "gen": tiny_models["gen_named"]}  # classes zero..nine


def test_import_is_light_and_the_api_is_listed():
    code = ("import sys, resgan; assert 'torch' not in sys.modules and 'numpy' not in sys.modules; "
            "print(sorted(resgan.__all__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for name in ("restore_image", "generate_images", "evaluate_images", "list_classes", "ResganError"):
        assert name in out and name in dir(resgan)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        resgan.nope  # noqa: B018


def test_restore_returns_the_input_type_and_matches_the_cli(models, tmp_path):
    rgb = photo(40, 48, 3)
    grey = photo(40, 48, 1)
    m = models["denoise"]
    out = resgan.restore_image(rgb, "denoise", m, sigma=25)
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.shape == rgb.shape
    g2 = resgan.restore_image(grey, "denoise", m, sigma=25)
    assert g2.shape == grey.shape and g2.ndim == 2
    assert np.array_equal(resgan.restore_image(grey[:, :, None], "denoise", m, sigma=25)[:, :, 0], g2)
    pil = resgan.restore_image(Image.fromarray(rgb), "denoise", m, sigma=25)
    assert isinstance(pil, Image.Image) and pil.mode == "RGB" and np.array_equal(np.asarray(pil), out)
    rgba = np.concatenate([rgb, np.full((40, 48, 1), 200, np.uint8)], 2)
    back = resgan.restore_image(Image.fromarray(rgba), "denoise", m, sigma=25)
    assert back.mode == "RGBA" and np.array_equal(np.asarray(back)[:, :, 3], rgba[:, :, 3])
    assert np.array_equal(np.asarray(back)[:, :, :3], out)
    assert resgan.restore_image(Image.fromarray(rgb).convert("P"), "denoise", m, sigma=25).mode == "RGB"
    g16 = (grey.astype(np.uint16) * 257)
    r16 = resgan.restore_image(g16, "denoise", m, sigma=25)
    assert r16.dtype == np.uint16 and r16.shape == g16.shape
    # the command line writes the same pixels
    Image.fromarray(rgb).save(tmp_path / "x.png")
    assert main(["restore", str(tmp_path / "x.png"), "--task", "denoise", "--model", str(m), "--sigma", "25",
                 "--out", str(tmp_path / "y.png"), "--quiet"]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "y.png")), out)
    # the task is the model's own when left out; the model is loaded once
    from resgan.verbs import models

    before = models._restorer.cache_info().hits
    assert np.array_equal(resgan.restore_image(rgb, model=m, sigma=25), out)
    assert models._restorer.cache_info().hits > before


def test_inpaint_and_sr(models):
    rgb = photo(40, 48, 3)
    hole = np.zeros((40, 48), bool)
    hole[10:20, 12:30] = True
    a = resgan.restore_image(rgb, "inpaint", models["inpaint"], mask=hole)
    assert np.array_equal(a[~hole], rgb[~hole])  # known pixels exact
    b = resgan.restore_image(rgb, "inpaint", models["inpaint"], mask=hole.astype(np.uint8) * 255)
    c = resgan.restore_image(Image.fromarray(rgb), "inpaint", models["inpaint"],
                             mask=Image.fromarray(hole.astype(np.uint8) * 255))
    assert np.array_equal(a, b) and np.array_equal(a, np.asarray(c))
    sr = resgan.restore_image(Image.fromarray(rgb), "sr", models["sr"], scale=2)
    assert sr.size == (96, 80)


def test_restore_with_a_builtin_model():
    grey = photo(32, 32, 1)
    noisy = np.clip(grey + np.random.default_rng(0).normal(0, 25, grey.shape), 0, 255).astype(np.uint8)
    out = resgan.restore_image(noisy, task="denoise")
    assert out.shape == grey.shape
    assert np.abs(out.astype(int) - grey).mean() < np.abs(noisy.astype(int) - grey).mean()


@pytest.mark.parametrize("image, kwargs, message", [
    (np.zeros((8, 8), np.float32), {}, "must be uint8 (or uint16 for 16-bit), got float32 (floats are ambiguous"),
    (np.zeros((3, 8, 8), np.uint8), {}, "got shape (3, 8, 8) (channels first?"),
    (np.zeros((2, 8, 8, 3), np.uint8), {}, "must be (H, W) grey, (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA"),
    (np.zeros((0, 8), np.uint8), {}, "empty image"),
    ("photo.png", {}, "not a path (photo.png); open it with PIL.Image.open"),
    (torch.zeros(3, 8, 8), {}, "not a torch tensor"),
    ([[1, 2], [3, 4]], {}, "not list"),
    (np.zeros((8, 8), np.uint8), {"task": "paint"}, "unknown task 'paint'"),
    (np.zeros((8, 8), np.uint8), {"task": "deblur"}, "no built-in model for --task deblur"),
    (np.zeros((8, 8), np.uint8), {"task": None}, "needs task="),
    (np.zeros((8, 8), np.uint8), {"task": "inpaint"}, "inpainting needs mask="),
    (np.zeros((8, 8), np.uint8), {"task": "denoise", "mask": np.zeros((8, 8), bool)}, "mask applies to task inpaint"),
    (np.zeros((8, 8), np.uint8), {"task": "sr", "sigma": 10}, "sigma applies to task denoise only, not sr"),
    # wrongly typed options are one ResganError, never a TypeError / OverflowError
    (np.zeros((8, 8), np.uint8), {"task": "denoise", "sigma": "25"}, "sigma must be a number"),
    (np.zeros((8, 8), np.uint8), {"task": "denoise", "sigma": float("inf")}, "sigma must be within 0..255"),
    (np.zeros((8, 8), np.uint8), {"task": "denoise", "tile": "512"}, "tile must be a whole number, got '512'"),
    (np.zeros((8, 8), np.uint8), {"task": "denoise", "overlap": 1.5}, "overlap must be a whole number"),
    (np.zeros((8, 8), np.uint8), {"task": "sr", "scale": "4"}, "scale must be a whole number"),
    (np.zeros((8, 8), np.uint8), {"task": 3}, "task must be a name"),
    (np.zeros((8, 8), np.uint8), {"task": "denoise", "model": 3}, "model: give a built-in name"),
    (np.zeros((8, 8, 3), np.uint8), {"task": "inpaint", "mask": np.zeros((4, 8), bool)}, "mask is 8x4 but the image"),
    (np.zeros((8, 8, 3), np.uint8), {"task": "inpaint", "mask": np.zeros((8, 8), np.float32)}, "must be bool or an"),
    (np.zeros((8, 8), np.uint8), {"task": "denoise", "sigma": 300}, "sigma must be within 0..255"),
    (np.zeros((8, 8), np.uint8), {"task": "sr", "scale": 2}, "the built-in sr model is x4"),
])
def test_bad_arguments_are_one_clear_error(image, kwargs, message):
    kwargs = {"task": "denoise", **kwargs}
    with pytest.raises(ResganError) as e:
        resgan.restore_image(image, **kwargs)
    assert message in str(e.value)


def test_generate_images_match_the_cli(models, tmp_path):
    gen = models["gen"]
    assert resgan.list_classes(gen)[7] == "seven" and resgan.list_classes("mnist")[:2] == ["0", "1"]
    imgs = resgan.generate_images(gen, seeds=range(4), class_="seven", psi=0.7)
    assert len(imgs) == 4 and imgs[0].mode == "L" and imgs[0].size == (16, 16)
    assert main(["generate", str(gen), "--seeds", "0-3", "--class", "7", "--psi", "0.7",
                 "--out", str(tmp_path / "g")]) == 0
    for s, img in enumerate(imgs):
        assert np.array_equal(np.asarray(img), np.asarray(Image.open(tmp_path / "g" / f"seed{s:04d}.png")))
    arr = resgan.generate_images(gen, seeds="0-3", class_=7, psi=0.7, as_array=True)
    assert arr.shape == (4, 16, 16) and arr.dtype == np.uint8
    assert np.array_equal(arr[2], np.asarray(imgs[2]))
    assert np.array_equal(resgan.generate_images(gen, seeds=2, class_=7, psi=0.7, as_array=True)[0], arr[2])
    # any iterable given once works (a generator is read once, not twice)
    assert np.array_equal(resgan.generate_images(gen, seeds=(s for s in range(4)), class_=7, psi=0.7,
                                                 as_array=True), arr)
    for kwargs, message in [({"seeds": [1.5]}, "seeds: give whole numbers"), ({"seeds": []}, "give 1 to"),
                            ({"seeds": [-1]}, "seeds must be within"), ({"class_": "cat"}, "unknown class 'cat'"),
                            ({"psi": 5}, "psi must be within 0..2"), ({"trunc": 0}, "trunc must be a finite"),
                            ({"psi": "0.7"}, "psi must be a number"), ({"trunc": [1]}, "trunc must be a number"),
                            ({"seeds": [float("inf")]}, "seeds: give whole numbers"),
                            ({"class_": 1.5}, "class must be"),
                            ({"seeds": range(10**12)}, "over the limit of 100,000"),
                            ({"seeds": (s for s in range(10**9))}, "over the limit of 100,000")]:
        with pytest.raises(ResganError, match=message.replace("(", r"\(")):
            resgan.generate_images(gen, **kwargs)
    with pytest.raises(ResganError, match="no model 'nope'"):
        resgan.generate_images("nope")


def test_evaluate_images_in_memory_equal_the_generator(models, tmp_path, monkeypatch):
    from helpers import needs_fid_helper

    needs_fid_helper()
    monkeypatch.setenv("RESGAN_CACHE", str(tmp_path / "cache"))
    gen = models["gen"]
    ref = resgan.evaluate_images(gen, "digits", "fid,kid", n=16)
    mine = resgan.evaluate_images(resgan.generate_images(gen, seeds=range(16)), "digits", "fid,kid", n=16)
    assert mine["fid"] == pytest.approx(ref["fid"], rel=1e-5) and mine["n_a"] == 16
    stack = resgan.generate_images(gen, seeds=range(16), as_array=True)
    assert resgan.evaluate_images(stack, "digits", "fid", n=16)["fid"] == pytest.approx(ref["fid"], rel=1e-5)
    assert "own size" in mine["resolution_a"] and "read at the other side's size" in mine["resolution_b"]
    with pytest.raises(ResganError, match="not int"):
        resgan.evaluate_images(3, "digits")
