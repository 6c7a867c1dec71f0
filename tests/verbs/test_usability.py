"""What a newcomer meets first (issue #14): generation flags (class names, --list-classes, psi
vs the BigGAN threshold), one FID resolution rule, file modes under the umask, ``restore x.png
--out y.png``, ``--help`` / ``--version``, and quiet torchrun ranks."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import photo
from PIL import Image

from resgan.checkpoint import atomic_write_bytes
from resgan.cli import build_parser, main

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny nets: one thread (conftest)


@pytest.fixture(scope="module")
def gen(tiny_models) -> Path:
    return tiny_models["gen_named"]  # classes zero..nine


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    return code, out, err


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


# ---------------------------------------------------------------- generation flags


def test_class_by_name_or_index_and_list_classes(gen, tmp_path, capsys):
    code, out, _ = cli(capsys, "generate", gen, "--list-classes")
    assert code == 0 and out.splitlines()[:2] == ["0\tzero", "1\tone"] and len(out.splitlines()) == 10
    assert cli(capsys, "generate", gen, "--seeds", "0-3", "--class", "seven", "--out", tmp_path / "a")[0] == 0
    assert cli(capsys, "generate", gen, "--seeds", "0-3", "--class", "7", "--out", tmp_path / "b")[0] == 0
    assert cli(capsys, "generate", gen, "--seeds", "0-3", "--class", "Seven", "--out", tmp_path / "c")[0] == 0
    for s in range(4):
        a = pixels(tmp_path / "a" / f"seed{s:04d}.png")
        assert np.array_equal(a, pixels(tmp_path / "b" / f"seed{s:04d}.png"))
        assert np.array_equal(a, pixels(tmp_path / "c" / f"seed{s:04d}.png"))
    code, _, err = cli(capsys, "generate", gen, "--class", "cat", "--out", tmp_path / "d")
    assert code == 2 and "unknown class 'cat'; classes: zero, one" in err
    code, _, err = cli(capsys, "generate", gen, "--class", "10", "--out", tmp_path / "d")
    assert code == 2 and "class must be within 0..9" in err
    code, _, err = cli(capsys, "generate", gen)
    assert code == 2 and "generate needs --out" in err


def test_a_class_named_like_an_index_is_found_by_name(tmp_path):
    from resgan.gan.sampling import class_index

    names = ["1", "2", "3"]  # sub-folders named by numbers: a name first, else an index
    assert class_index(names, "1") == 0 and class_index(names, "0") == 0 and class_index(names, 2) == 1
    assert class_index(names, None) is None
    with pytest.raises(Exception, match="unconditional"):
        class_index([], "1")


def test_psi_and_the_threshold_are_two_named_truncations(gen, tmp_path, capsys):
    from resgan.gan.sampling import generate
    from resgan.zoo import load_generator

    G, _ = load_generator(gen)
    plain, _ = generate(G, [0, 1, 2], 3)
    assert torch.equal(generate(G, [0, 1, 2], 3, psi=1.0)[0], plain)  # psi 1 = off
    mean, _ = generate(G, [0, 1, 2], 3, psi=0.0)  # psi 0: the mean latent, one image per class
    assert torch.allclose(mean[0], mean[1]) and torch.allclose(mean[0], mean[2])
    mild, _ = generate(G, [0, 1, 2], 3, psi=0.7)
    assert not torch.allclose(mild, plain) and not torch.allclose(mild[0], mild[1])
    # --trunc is kept as the threshold's short name
    assert cli(capsys, "generate", gen, "--seeds", "0-3", "--trunc", "0.5", "--out", tmp_path / "t.png")[0] == 0
    assert cli(capsys, "generate", gen, "--seeds", "0-3", "--trunc-threshold", "0.5", "--out",
               tmp_path / "u.png")[0] == 0
    assert np.array_equal(pixels(tmp_path / "t.png"), pixels(tmp_path / "u.png"))
    assert cli(capsys, "generate", gen, "--seeds", "0-3", "--psi", "0.7", "--out", tmp_path / "p.png")[0] == 0
    for bad in ("-0.1", "2.5", "nan"):
        code, _, err = cli(capsys, "generate", gen, "--psi", bad, "--out", tmp_path / "x.png")
        assert code == 2 and "psi must be within 0..2" in err
    code, _, err = cli(capsys, "generate", gen, "--trunc", "0", "--out", tmp_path / "x.png")
    assert code == 2 and "trunc must be a finite number" in err and "psi" in err
    help_text = _help("generate")
    assert "StyleGAN" in help_text and "BigGAN" in help_text and "1 = off" in help_text


def test_server_takes_psi_and_class_names_as_the_cli(gen, make_client):
    from resgan.serve.app import Limits, load_registry

    with make_client(load_registry([f"g={gen}"]), Limits()) as c:
        r = c.post("/v1/generate", json={"seeds": "0-2", "class": "seven", "psi": 0.0, "format": "json"})
        assert r.status_code == 200, r.text
        items = r.json()["images"]
        assert [i["class"] for i in items] == ["seven"] * 3
        assert items[0]["png_base64"] == items[1]["png_base64"]  # psi 0: the mean image
        r = c.post("/v1/generate", json={"seeds": "0", "psi": 3})  # the CLI's and the API's message
        assert r.status_code == 400 and "psi must be within 0..2" in r.json()["error"]
        r = c.post("/v1/generate", json={"seeds": "0", "class": "Seven", "format": "json"})
        assert r.json()["images"][0]["class"] == "seven"
        props = c.get("/openapi.json").json()["components"]["schemas"]["GenerateRequest"]["properties"]
        assert "StyleGAN" in props["psi"]["description"] and "BigGAN" in props["trunc"]["description"]


# ---------------------------------------------------------------- FID: one resolution rule


def test_a_generator_and_a_folder_of_its_samples_get_the_same_fid(gen, tmp_path, capsys, monkeypatch):
    """The issue's case: generator vs data set, and the same images as PNGs vs the same data set."""
    from helpers import needs_fid_helper

    needs_fid_helper()
    monkeypatch.setenv("RESGAN_CACHE", str(tmp_path / "cache"))
    n = 24
    assert cli(capsys, "generate", gen, "--seeds", f"0-{n - 1}", "--out", tmp_path / "pngs")[0] == 0
    code, table_gen, _ = cli(capsys, "evaluate", gen, "digits", "-n", n, "--metrics", "fid", "--quiet",
                             "--json", tmp_path / "g.json")
    assert code == 0
    code, table_dir, _ = cli(capsys, "evaluate", tmp_path / "pngs", "digits", "-n", n, "--metrics", "fid", "--quiet",
                             "--json", tmp_path / "f.json")
    assert code == 0
    import json

    g, f = json.loads((tmp_path / "g.json").read_text()), json.loads((tmp_path / "f.json").read_text())
    assert f["fid"] == pytest.approx(g["fid"], rel=1e-5)
    # the rule and each side's size are printed: digits (native 8 px) read at the 16 px of the other side
    for table in (table_gen, table_dir):
        assert "resolution: generators and folders at their own size" in table
        assert "(24 images; 16x16 grey, read at the other side's size (native 8x8 grey))" in table
    assert "16x16 grey, generated" in table_gen and "(24 images; 16x16 grey, own size)" in table_dir
    # two data sets, or a folder of mixed sizes: each at its native size
    (tmp_path / "pngs" / "seed0000.png").unlink()
    Image.new("L", (20, 20)).save(tmp_path / "pngs" / "big.png")
    code, table, _ = cli(capsys, "evaluate", tmp_path / "pngs", "digits", "-n", 8, "--metrics", "fid", "--quiet")
    assert code == 0 and "mixed sizes, own size" in table and "8x8 grey, native" in table


# ---------------------------------------------------------------- small things


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path, umask, mode, gen, capsys):
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
        assert stat.S_IMODE((tmp_path / "a.bin").stat().st_mode) == mode
        assert cli(capsys, "generate", gen, "--seeds", "0-1", "--out", tmp_path / "g.png")[0] == 0
        assert stat.S_IMODE((tmp_path / "g.png").stat().st_mode) == mode
    finally:
        os.umask(old)


def test_a_replaced_file_keeps_its_mode(tmp_path):
    p = tmp_path / "keep.txt"
    p.write_bytes(b"old")
    p.chmod(0o640)
    atomic_write_bytes(p, b"new")
    assert p.read_bytes() == b"new" and stat.S_IMODE(p.stat().st_mode) == 0o640


@pytest.fixture(scope="module")
def denoiser(tiny_models) -> Path:
    return tiny_models["denoise"]


def test_restore_one_file_to_a_file_name(tmp_path, denoiser, capsys):
    Image.fromarray(photo(40, 48, 3)).save(tmp_path / "x.png")
    code, out, _ = cli(capsys, "restore", tmp_path / "x.png", "--task", "denoise", "--model", denoiser,
                       "--out", tmp_path / "y.png")
    assert code == 0 and (tmp_path / "y.png").is_file() and f"-> {tmp_path / 'y.png'}" in out
    assert Image.open(tmp_path / "y.png").size == (48, 40)
    assert cli(capsys, "restore", tmp_path / "x.png", "--task", "denoise", "--model", denoiser,
               "--out", tmp_path / "sub" / "y.jpg")[0] == 0
    assert Image.open(tmp_path / "sub" / "y.jpg").format == "JPEG"
    # an existing folder with an image-like name is still a folder
    (tmp_path / "d.png").mkdir()
    assert cli(capsys, "restore", tmp_path / "x.png", "--task", "denoise", "--model", denoiser,
               "--out", tmp_path / "d.png")[0] == 0
    assert (tmp_path / "d.png" / "x.png").is_file()
    # several inputs cannot go to one file
    Image.fromarray(photo(40, 48, 3)).save(tmp_path / "z.png")
    code, _, err = cli(capsys, "restore", tmp_path / "x.png", tmp_path / "z.png", "--task", "denoise", "--model",
                       denoiser, "--out", tmp_path / "w.png")
    assert code == 2 and "a file name takes one input file" in err and not (tmp_path / "w.png").exists()


def _help(command: str) -> str:
    """A command's --help, whitespace collapsed (argparse wraps to the terminal width)."""
    return " ".join(build_parser()._subparsers._group_actions[0].choices[command].format_help().split())


def test_help_shows_defaults_and_every_option_has_help(capsys):
    assert "(default: 512)" in _help("restore") and "(default: cpu)" in _help("generate")
    assert "(default: 0-63)" in _help("generate") and "(default: fid,kid)" in _help("evaluate")
    parser = build_parser()
    for name, sub in parser._subparsers._group_actions[0].choices.items():
        for action in sub._actions:
            assert action.help, f"resgan {name} {action.option_strings or action.dest}: no help text"
        assert "(default: None)" not in sub.format_help() and "(default: False)" not in sub.format_help()
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    from resgan import __version__

    assert capsys.readouterr().out.strip() == f"resgan {__version__}"


def test_restore_help_offers_only_tasks_with_a_model():
    from resgan.restore.infer import RESTORE_TASKS

    text = _help("restore")
    built = [t for t, m in RESTORE_TASKS.items() if m]
    need = [t for t, m in RESTORE_TASKS.items() if not m]
    assert f"--task TASK {' | '.join(built)} (built-in models)" in text
    if need:  # deblur has no built-in model: offered only with --model
        assert f"; {' | '.join(need)} need" in text and "--model RUN_DIR (train one first)" in text
    assert "deblur" not in " ".join(build_parser().format_help().split())
    code = "import sys; from resgan.cli import build_parser; build_parser(); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_only_rank_0_prints_the_final_lines(tmp_path, capsys, monkeypatch):
    from helpers import tiny_sets

    sets = tiny_sets()
    monkeypatch.setenv("RANK", "1")  # what torchrun sets on the second process
    code, out, _ = cli(capsys, "train", "digits", "--out", tmp_path / "r1", "--steps", "1", "--quiet", *sets)
    assert code == 0 and "checkpoint:" not in out
    monkeypatch.setenv("RANK", "0")
    code, out, _ = cli(capsys, "train", "digits", "--out", tmp_path / "r0", "--steps", "1", "--quiet", *sets)
    assert code == 0 and out.count("checkpoint:") == 1
