"""Outputs never overwrite an input or each other (issue 30, family 1), and an output format that
cannot hold a result is refused, not a traceback (family 5): every planned output is checked against
every input (images and masks) and against the others before anything is written."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import photo, run_cli, snapshot
from PIL import Image

from resgan.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny nets: one thread (conftest)


@pytest.fixture(scope="module")
def models(tiny_models):
    return {"denoise": tiny_models["denoise25"], "inpaint": tiny_models["inpaint"], "gen": tiny_models["gen"]}


def cli(capsys, *args) -> tuple[int, list[str]]:
    code, err = run_cli(capsys, *args)
    return code, [ln for ln in err.splitlines() if ln.startswith("resgan: error:")]


def save(path, arr) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_lama_masks_are_never_overwritten_by_outputs_named_after_them(tmp_path, capsys, models):
    mm = tmp_path / "mm"
    save(mm / "x.png", photo(32, 40))
    for i in (1, 2):
        m = np.zeros((32, 40), np.uint8)
        m[4 * i:4 * i + 6, 5:20] = 255
        save(mm / f"x_mask{i}.png", m)
    before = snapshot(tmp_path)
    code, errors = cli(capsys, "restore", mm / "x.png", "--task", "inpaint", "--model", models["inpaint"],
                       "--out", mm, "--quiet")
    assert code == 2 and len(errors) == 1
    assert "would overwrite the mask" in errors[0] and "x_mask1.png" in errors[0] and "nothing was written" in errors[0]
    assert snapshot(tmp_path) == before
    # into another folder the same call works: one output per mask, named after it
    code, errors = cli(capsys, "restore", mm, "--task", "inpaint", "--model", models["inpaint"],
                       "--out", tmp_path / "o", "--quiet")
    assert code == 0 and sorted(p.name for p in (tmp_path / "o").iterdir()) == ["x_mask1.png", "x_mask2.png"]


def test_two_inputs_of_one_name_are_refused_not_one_lost(tmp_path, capsys, models):
    save(tmp_path / "d1" / "p.png", photo(24, 24, 1))
    save(tmp_path / "d2" / "p.png", photo(24, 24, 1, seed=5))
    code, errors = cli(capsys, "restore", tmp_path / "d1" / "p.png", tmp_path / "d2" / "p.png", "--task", "denoise",
                       "--model", models["denoise"], "--out", tmp_path / "o")
    assert code == 2 and len(errors) == 1 and "would both be written to" in errors[0]
    assert str(tmp_path / "d1" / "p.png") in errors[0] and str(tmp_path / "d2" / "p.png") in errors[0]
    assert not (tmp_path / "o").exists()
    # the same file given twice (here once by name, once through its folder) is restored once
    code, errors = cli(capsys, "restore", tmp_path / "d1" / "p.png", tmp_path / "d1", "--task", "denoise",
                       "--model", models["denoise"], "--out", tmp_path / "o", "--quiet")
    assert code == 0 and [p.name for p in (tmp_path / "o").iterdir()] == ["p.png"]


@pytest.mark.parametrize("how", ["same_folder", "same_file", "symlink", "mask_folder"])
def test_an_output_that_is_an_input_is_refused(tmp_path, capsys, models, how):
    a = tmp_path / "a"
    save(a / "x.png", photo(24, 24))
    task, extra, out = "denoise", [], a
    if how == "same_file":
        out = a / "x.png"
    elif how == "symlink":  # the output folder holds a link to the input under the output's name
        (tmp_path / "b").mkdir()
        (tmp_path / "b" / "x.png").symlink_to(a / "x.png")
        out = tmp_path / "b"
    elif how == "mask_folder":  # --mask DIR holds x.png: writing into DIR would replace the mask
        m = np.zeros((24, 24), np.uint8)
        m[4:9, 4:9] = 255
        save(tmp_path / "masks" / "x.png", m)
        task, extra, out = "inpaint", ["--mask", tmp_path / "masks"], tmp_path / "masks"
    before = snapshot(tmp_path)
    code, errors = cli(capsys, "restore", a / "x.png", "--task", task, "--model", models[task], *extra, "--out", out)
    assert code == 2 and len(errors) == 1 and "would overwrite" in errors[0], errors
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("mode,name", [("RGBA", "out.jpg"), ("LA", "out.bmp"), ("I;16", "out.jpg"),
                                       ("RGBA", "out.gif")])
def test_an_output_format_that_cannot_hold_the_image_is_one_line(tmp_path, capsys, models, mode, name):
    arr = {"RGBA": np.dstack([photo(20, 20), np.full((20, 20), 128, np.uint8)]),
           "LA": np.dstack([photo(20, 20, 1), np.full((20, 20), 128, np.uint8)]),
           "I;16": photo(20, 20, 1).astype(np.uint16) * 257}[mode]
    Image.fromarray(arr, mode if mode != "I;16" else None).save(tmp_path / "x.png")
    code, errors = cli(capsys, "restore", tmp_path / "x.png", "--task", "denoise", "--model", models["denoise"],
                       "--out", tmp_path / name, "--quiet")
    assert code == 1 and len(errors) == 1 and "cannot hold this" in errors[0] and ".png" in errors[0]
    assert not (tmp_path / name).exists()
    code, _ = cli(capsys, "restore", tmp_path / "x.png", "--task", "denoise", "--model", models["denoise"],
                  "--out", tmp_path / "ok.png", "--quiet")
    assert code == 0 and Image.open(tmp_path / "ok.png").mode == mode


def test_generate_folders_need_distinct_seeds(tmp_path, capsys, models):
    code, errors = cli(capsys, "generate", models["gen"], "--seeds", "1,2,1", "--out", tmp_path / "g")
    assert code == 2 and "seed 1 is given twice" in errors[0] and not (tmp_path / "g").exists()
    code, _ = cli(capsys, "generate", models["gen"], "--seeds", "1,2,1", "--out", tmp_path / "grid.png")
    assert code == 0  # a grid may repeat a seed


def test_export_never_writes_over_its_source_or_a_training_checkpoint(tmp_path, capsys, models):
    import shutil

    from helpers import tiny_sets

    run = tmp_path / "run"
    sets = tiny_sets(**{"train.steps": 1})
    assert main(["train", "digits", "--out", str(run), "--quiet", *sets]) == 0
    ckpt = run / "latest.safetensors"
    before = ckpt.read_bytes()
    code, errors = cli(capsys, "export", run, "--out", ckpt)
    assert code == 2 and "is the model being exported" in errors[0]
    shutil.copy(ckpt, tmp_path / "other_run.safetensors")
    code, errors = cli(capsys, "export", models["gen"], "--out", tmp_path / "other_run.safetensors")
    assert code == 2 and "is a training checkpoint" in errors[0]
    assert ckpt.read_bytes() == before and (tmp_path / "other_run.safetensors").read_bytes() == before
    code, _ = cli(capsys, "export", run, "--out", tmp_path / "g.safetensors")
    assert code == 0 and (tmp_path / "g.safetensors").is_file()
