"""Bad-input corpus (issues #15 and 30): every case is one ``resgan: error:`` line and a non-zero exit,
with no traceback and no partial output file; on the server, a JSON 4xx; in the API, a one-line
``ResganError``; and no input or earlier output changes.

CLI setup errors (a place that cannot be written, a bad checkpoint, a bad option) exit 2. A bad
*image* given to ``resgan restore`` is one error line naming it while the other files are still
restored; the run then exits 1 (see docs/restore.md), with a summary line that is not an error line.

Issue 30's families, each with cases here (the section "one more case of each family", below) and in
its own test file (CLI, API and server where they apply); docs/reliability.md lists the limits:

1. Outputs never overwrite an input or each other: ``test_evaluate_json_never_replaces_an_input_or_a_checkpoint``,
   ``test_restore_out_naming_the_mask_file_is_refused``, ``test_export_writes_only_a_safetensors_name``;
   tests/verbs/test_outputs_never_overwrite.py (LaMa masks, same-named inputs, symlinks, --mask folders, export
   over a checkpoint, distinct seeds for per-seed files; CLI: the API and the server write no files).
2. A run folder is one process's, its checkpoint sacred: ``test_train_out_that_is_a_file_or_a_resume_without_a_run``;
   tests/core/test_runlock.py (two trainings on one folder, kill -9 of the holder then a clean resume, a fresh
   run over an old one's files, no writer over a training checkpoint under any name).
3. Decoding bounded by work: ``test_training_data_with_a_scan_bomb_is_refused_quickly``,
   ``test_evaluate_with_a_scan_bomb_is_refused_quickly``, ``test_evaluate_refuses_a_decompression_bomb_header_*``;
   tests/core/test_imageio_decode.py (scans counted from the markers, a 100,000-scan JPEG refused in well under
   a second, as bytes and as a PIL image); tests/verbs/test_one_way_in.py ``test_bad_files_are_refused_everywhere``
   (CLI, API and server alike).
4. Every option and setting checked before work: ``test_evaluate_options_are_one_line``,
   ``test_evaluate_n_for_a_generator_is_bounded_before_sampling``, ``test_restore_max_pixels_*``,
   ``test_restore_tile_overlap_quality_are_one_line``, ``test_server_restore_refuses_unknown_and_repeated_fields``,
   the seeds / trunc / -n cases above; tests/core/test_settings.py (every config key, --steps, a hand-edited
   checkpoint header, ``resgan serve``'s options, devices); tests/verbs/test_one_way_in.py
   ``test_options_a_task_does_not_take_are_refused_everywhere``.
5. Small and unusual images work or are refused alike: ``test_training_data_with_an_animated_gif_*``,
   ``test_server_restore_takes_one_image_a_request``, the one-pixel-line cases above;
   tests/verbs/test_one_way_in.py (tiny images down to 1x1 on every entry point, the built-in FFC inpainter,
   16-bit, RGBA, CMYK, palette, EXIF, animated GIF); tests/verbs/test_outputs_never_overwrite.py and
   tests/core/test_imageio_decode.py (output formats that cannot hold alpha / 16-bit, multi-frame files).
6. The API raises ResganError only: ``test_evaluate_images_wrongly_typed_options_are_resgan_errors``,
   ``test_list_classes_and_generate_images_wrongly_typed``; tests/verbs/test_api.py
   ``test_bad_arguments_are_one_clear_error`` and ``test_generate_images_match_the_cli`` (sigma="25",
   tile="512", psi="0.7", trunc=[1], seeds=[inf], a generator of seeds read once).
7. The thread default reads the present: tests/core/test_speed.py
   ``test_default_threads_judge_idleness_now_not_by_the_load_average`` (a fake /proc/stat: idle now gets
   every core under a high load average, busy now fewer) and ``..._fall_back_on_the_load_average_*``.
8. HTTP edge cases: ``test_server_generate_odd_json_is_json_4xx``; tests/serve/test_serve_robustness.py
   ``test_a_client_that_half_closes_*`` (a real server, real sockets); tests/serve/test_serve.py (repeated seeds
   with ``format=zip`` refused).
"""
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import files_under, photo, png_bytes, png_claiming, run_cli, snapshot, tiny_generator
from PIL import Image

from resgan.checkpoint import save_checkpoint
from resgan.gan.sampling import MIN_TRUNC, truncated_normal
from resgan.verbs.seeds import MAX_SEEDS

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny nets: one thread (conftest)


PROC = Path("/proc/resgan-test-no-such-place")


def cli(capsys, *args) -> tuple[int, list[str]]:
    code, err = run_cli(capsys, *args)
    return code, err.splitlines()


def assert_one_error(code: int, lines: list[str], text: str, exit_code: int = 2) -> None:
    errors = [ln for ln in lines if ln.startswith("resgan: error:")]
    assert code == exit_code, lines
    assert len(errors) == 1, lines
    assert text in errors[0], lines


@pytest.fixture(scope="module")
def models(tiny_models, tmp_path_factory):
    """conftest's tiny denoiser and generator, and broken copies of them: no config, a NaN / inf weight."""
    from resgan.checkpoint import load_checkpoint

    d = tmp_path_factory.mktemp("broken")
    tensors, meta = load_checkpoint(tiny_models["denoise"])
    no_cfg = dict(meta)
    no_cfg.pop("config")
    save_checkpoint(d / "restore_no_config.safetensors", tensors, no_cfg)
    bad = dict(tensors)
    k = next(k for k, v in bad.items() if v.is_floating_point() and v.numel() > 1)
    bad[k] = bad[k].clone()
    bad[k].view(-1)[-1] = float("inf")
    save_checkpoint(d / "restore_inf.safetensors", bad, meta)
    return {"denoise": tiny_models["denoise"], "restore_no_config": d / "restore_no_config.safetensors",
            "restore_inf": d / "restore_inf.safetensors", "gen": tiny_models["gen"],
            "gen_no_config": tiny_generator(d / "gen_no_config.safetensors", drop="config"),
            "gen_nan": tiny_generator(d / "gen_nan.safetensors", nan=True)}


# ---------------------------------------------------------------- restore: bad image files


@pytest.mark.parametrize("name,data,why", [
    ("truncated.png", "first20", "cannot read image"),
    ("tiny.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "cannot read image"),  # 16 bytes: under 26
    ("sig.png", b"\x89PNG\r\n\x1a\n", "cannot read image"),
])
def test_restore_short_png_is_one_line_and_the_rest_of_the_folder_is_restored(tmp_path, capsys, models, good_png,
                                                                               name, data, why):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a_good.png").write_bytes(good_png)
    (src / name).write_bytes(good_png[:20] if data == "first20" else data)
    (src / "z_good.png").write_bytes(good_png)
    out = tmp_path / "out"
    code, lines = cli(capsys, "restore", src, "--task", "denoise", "--model", models["denoise"], "--out", out,
                      "--quiet")
    assert_one_error(code, lines, why, exit_code=1)
    assert name in [ln for ln in lines if ln.startswith("resgan: error:")][0]
    assert files_under(out) == ["a_good.png", "z_good.png"]  # the files after the bad one too


def test_restore_denoise_of_a_one_pixel_line_needs_sigma(tmp_path, capsys, models):
    for shape in ((1, 9), (9, 1)):
        img = tmp_path / f"line{shape[0]}x{shape[1]}.png"
        Image.fromarray(photo(16, 16, 1)[: shape[0], : shape[1]]).save(img)
        out = tmp_path / f"out{shape}"
        code, lines = cli(capsys, "restore", img, "--task", "denoise", "--model", models["denoise"], "--out", out)
        assert_one_error(code, lines, "too small to estimate its noise", exit_code=1)
        assert "--sigma" in lines[0] and img.name in lines[0]
        assert files_under(out) == []
        code, lines = cli(capsys, "restore", img, "--task", "denoise", "--model", models["denoise"], "--out", out,
                          "--sigma", "20", "--quiet")
        assert code == 0, lines
        with Image.open(out / img.name) as res:
            assert res.size == (shape[1], shape[0])


# ---------------------------------------------------------------- outputs that cannot be written


@pytest.mark.parametrize("where", ["file", "under_file", "proc"])
def test_restore_out_that_cannot_be_written(tmp_path, capsys, models, good_png, where):
    img = tmp_path / "x.png"
    img.write_bytes(good_png)
    (tmp_path / "afile").write_text("not a folder")
    out = {"file": tmp_path / "afile", "under_file": tmp_path / "afile" / "sub", "proc": PROC}[where]
    code, lines = cli(capsys, "restore", img, "--task", "denoise", "--model", models["denoise"], "--out", out)
    assert_one_error(code, lines, str(out) if where != "under_file" else str(tmp_path / "afile"))
    assert (tmp_path / "afile").read_text() == "not a folder"


def test_restore_into_a_read_only_folder(tmp_path, capsys, models, good_png, monkeypatch):
    import tempfile

    img = tmp_path / "x.png"
    img.write_bytes(good_png)
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    if os.geteuid() == 0:  # root ignores the mode bits: deny writes there as the kernel would for a user
        real = tempfile.mkstemp

        def mkstemp(*args, dir=None, **kw):
            if dir is not None and Path(dir).resolve() == out.resolve():
                raise PermissionError(13, "Permission denied", str(dir))
            return real(*args, dir=dir, **kw)

        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    try:
        code, lines = cli(capsys, "restore", img, "--task", "denoise", "--model", models["denoise"], "--out", out)
    finally:
        out.chmod(0o700)
    assert_one_error(code, lines, str(out))
    assert files_under(out) == []


@pytest.mark.parametrize("where", ["dir_as_png", "file_as_folder", "under_file", "proc_png", "proc_folder"])
def test_generate_out_that_cannot_be_written(tmp_path, capsys, models, where):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "grid.png").mkdir()
    out = {"dir_as_png": tmp_path / "grid.png", "file_as_folder": tmp_path / "afile",
           "under_file": tmp_path / "afile" / "grid.png", "proc_png": PROC / "grid.png", "proc_folder": PROC}[where]
    code, lines = cli(capsys, "generate", models["gen"], "--seeds", "0-3", "--out", out)
    assert_one_error(code, lines, "afile" if where == "under_file" else str(PROC if "proc" in where else out))
    assert files_under(tmp_path) == ["afile"]


@pytest.mark.parametrize("where", ["dir", "under_file", "proc"])
def test_evaluate_json_that_cannot_be_written(tmp_path, capsys, good_png, where):
    for side in ("a", "b"):
        (tmp_path / side).mkdir()
        (tmp_path / side / "x.png").write_bytes(good_png)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "jdir").mkdir()
    js = {"dir": tmp_path / "jdir", "under_file": tmp_path / "afile" / "m.json", "proc": PROC / "m.json"}[where]
    code, lines = cli(capsys, "evaluate", tmp_path / "a", tmp_path / "b", "--metrics", "psnr", "--json", js,
                      "--quiet")
    assert_one_error(code, lines, "jdir" if where == "dir" else ("afile" if where == "under_file" else str(PROC)))
    assert files_under(tmp_path / "jdir") == [] and (tmp_path / "afile").read_text() == "x"


# ---------------------------------------------------------------- evaluate: bombs, -n


def test_evaluate_refuses_a_decompression_bomb_header_with_the_pixel_limit(tmp_path, capsys, good_png):
    from resgan.imageio import DEFAULT_MAX_PIXELS

    for side in ("a", "b"):
        (tmp_path / side).mkdir()
        (tmp_path / side / "x.png").write_bytes(png_claiming(60_000, 60_000))
    code, lines = cli(capsys, "evaluate", tmp_path / "a", tmp_path / "b", "--metrics", "psnr", "--quiet")
    assert_one_error(code, lines, f"60000x60000 = 3,600,000,000 pixels is over the limit of {DEFAULT_MAX_PIXELS:,}")
    assert "x.png" in lines[0]


@pytest.mark.parametrize("n", ["0", "-3"])
def test_evaluate_n_must_be_positive(tmp_path, capsys, good_png, n):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(good_png)
    code, lines = cli(capsys, "evaluate", tmp_path / "a", tmp_path / "a", "-n", n, "--metrics", "psnr")
    assert_one_error(code, lines, "-n must be at least 1")


# ---------------------------------------------------------------- checkpoints: no config, NaN / inf weights


@pytest.mark.parametrize("cmd", ["generate", "export", "evaluate"])
def test_gan_checkpoint_without_config_or_with_nan_weights(tmp_path, capsys, models, cmd):
    for key, why in (("gen_no_config", "holds no model config"), ("gen_nan", "NaN or infinite")):
        out = tmp_path / key
        args = {"generate": ["generate", models[key], "--seeds", "0-3", "--out", out],
                "export": ["export", models[key], "--out", out / "g.safetensors"],
                "evaluate": ["evaluate", models[key], "digits", "-n", "8", "--metrics", "fid", "--quiet"]}[cmd]
        code, lines = cli(capsys, *args)
        assert_one_error(code, lines, why)
        assert str(models[key]) in lines[0]
        assert files_under(out) == []


@pytest.mark.parametrize("key,why", [("restore_no_config", "holds no model config"),
                                     ("restore_inf", "NaN or infinite")])
def test_restore_checkpoint_without_config_or_with_inf_weights(tmp_path, capsys, models, good_png, key, why):
    img = tmp_path / "x.png"
    img.write_bytes(good_png)
    out = tmp_path / "out"
    code, lines = cli(capsys, "restore", img, "--task", "denoise", "--model", models[key], "--out", out)
    assert_one_error(code, lines, why)
    assert str(models[key]) in lines[0] and files_under(out) == []
    code, lines = cli(capsys, "export", models[key], "--out", out / "m.safetensors")
    assert_one_error(code, lines, why)
    assert files_under(out) == []


# ---------------------------------------------------------------- generate: seeds, trunc


@pytest.mark.parametrize("seeds,why", [("0-10000000000", "over the limit of 100,000"),
                                       (f"0-{MAX_SEEDS}", "over the limit of 100,000"),
                                       ("0-5,6-100000", "over the limit of 100,000"),
                                       ("99999999999999999999", "within 0.."),
                                       ("²-³", "seeds wants a list")])
def test_generate_seeds_are_bounded_up_front(tmp_path, capsys, models, seeds, why):
    import time

    t0 = time.perf_counter()
    code, lines = cli(capsys, "generate", models["gen"], "--seeds", seeds, "--out", tmp_path / "o")
    assert time.perf_counter() - t0 < 10
    assert_one_error(code, lines, why)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("trunc", ["1e-4", "1e-300", "0", "-1", "nan", "inf"])
def test_generate_trunc_range(tmp_path, capsys, models, trunc):
    code, lines = cli(capsys, "generate", models["gen"], "--seeds", "0-3", "--trunc", trunc, "--out", tmp_path / "o")
    assert_one_error(code, lines, f"trunc must be a finite number >= {MIN_TRUNC}")
    assert not (tmp_path / "o").exists()


def test_trunc_at_the_floor_finishes_and_the_redraw_loop_is_bounded(monkeypatch):
    from resgan.gan import sampling

    z = truncated_normal((64, 128), MIN_TRUNC, torch.Generator().manual_seed(0))
    assert z.abs().max() <= MIN_TRUNC
    monkeypatch.setattr(sampling, "MAX_REDRAWS", 2)
    with pytest.raises(sampling.ResganError, match="still beyond it after 2 redraws"):
        truncated_normal((64, 128), MIN_TRUNC, torch.Generator().manual_seed(0))


# ---------------------------------------------------------------- Inception: only known TorchScript


def _script_file(path: Path) -> Path:
    class Net(torch.nn.Module):
        def forward(self, x):
            return x + 1

    torch.jit.save(torch.jit.script(Net()), str(path))
    return path


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.script / save, making the test file
@pytest.mark.parametrize("how", ["flag", "env", "hub"])
def test_unknown_torchscript_inception_is_refused_before_it_is_loaded(tmp_path, capsys, monkeypatch, good_png,
                                                                      how):
    from resgan.metrics import inception

    def no_jit_load(*a, **k):
        raise AssertionError("torch.jit.load ran on an unknown file")

    monkeypatch.setattr(inception.torch.jit, "load", no_jit_load)
    monkeypatch.setattr(inception, "_CACHE", {})
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(good_png)
    name = inception.PTH_NAMES[0] if how == "hub" else "incept.pt"
    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    script = _script_file((hub / "checkpoints" if how == "hub" else tmp_path) / name)
    monkeypatch.setattr(inception.torch.hub, "get_dir", lambda: str(hub))
    monkeypatch.delenv(inception.ENV_WEIGHTS, raising=False)
    extra = []
    if how == "flag":
        extra = ["--inception", script]
    elif how == "env":
        monkeypatch.setenv(inception.ENV_WEIGHTS, str(script))
    code, lines = cli(capsys, "evaluate", tmp_path / "a", tmp_path / "a", "--metrics", "fid", "--quiet",
                      "--cache-dir", tmp_path / "cache", *extra)
    assert_one_error(code, lines, "a TorchScript file that is not a known Inception")
    assert str(script) in lines[0]


# ---------------------------------------------------------------- server


def assert_api_error(r, status: int, text: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json"), r.text
    body = r.json()
    assert body["status"] == status and text in body["error"], body


@pytest.mark.parametrize("body,why", [({"seeds": "²-³"}, "seeds"), ({"seeds": "0-²"}, "seeds"),
                                      ({"seeds": "²"}, "seeds"), ({"seeds": "0", "class": "²"}, "unknown class"),
                                      ({"seeds": "0", "trunc": 1e-300}, "trunc must be a finite number"),
                                      ({"seeds": "0", "trunc": 1e-4}, "trunc must be a finite number")])
def test_server_generate_bad_input_is_400_json(client, body, why):
    assert_api_error(client.post("/v1/generate", json=body), 400, why)


def test_server_denoise_of_a_one_pixel_line_without_sigma_is_400(client):
    files = {"image": ("line.png", png_bytes(photo(16, 16, 1)[:1, :9]), "image/png")}
    r = client.post("/v1/restore", files=files, data={"task": "denoise"})
    assert_api_error(r, 400, "too small to estimate its noise")
    r = client.post("/v1/restore", files=files, data={"task": "denoise", "sigma": "20"})
    assert r.status_code == 200, r.text


def test_server_truncated_png_is_400(client, good_png):
    for data in (good_png[:20], good_png[:10]):
        files = {"image": ("t.png", data, "image/png")}
        r = client.post("/v1/restore", files=files, data={"task": "denoise"})
        assert_api_error(r, 400, "cannot read image (corrupt, truncated")



def test_feature_cache_in_a_place_that_cannot_be_written():
    from resgan.errors import ResganError
    from resgan.metrics import cache

    with pytest.raises(ResganError, match="cannot write the cache there"):
        cache.save_arrays("features", {"n": 1}, {"x": np.zeros(2)}, PROC)


# ================================================================ issue 30: one more case of each family
# (the families' own test files are listed in the module docstring; these are the cases none of them has)


def restore_args(img, model, out, *extra):
    return ["restore", img, "--task", "denoise", "--model", model, "--out", out, *extra]


def pair_folders(tmp_path: Path, size: tuple[int, int] = (24, 24)) -> tuple[Path, Path]:
    a, b = tmp_path / "a", tmp_path / "b"
    for side, seed in ((a, 0), (b, 1)):
        side.mkdir()
        Image.fromarray(photo(*size, 1, seed=seed)).save(side / "y.png")
    return a, b


# ---------------------------------------------------------------- family 1: outputs never overwrite an input


def test_evaluate_json_never_replaces_an_input_or_a_checkpoint(tmp_path, capsys, models):
    a, b = pair_folders(tmp_path)
    gen = tmp_path / "gen.safetensors"
    gen.write_bytes(models["gen"].read_bytes())
    before = snapshot(tmp_path)
    for target in (a / "y.png", gen):
        code, lines = cli(capsys, "evaluate", a, b, "--metrics", "psnr", "--json", target, "--quiet")
        assert_one_error(code, lines, f"--json {target}: exists and holds no JSON")
    assert snapshot(tmp_path) == before
    earlier = tmp_path / "scores.json"  # an earlier results file is replaced, as asked
    earlier.write_text('{"psnr": 1}')
    code, lines = cli(capsys, "evaluate", a, b, "--metrics", "psnr", "--json", earlier, "--quiet")
    assert code == 0 and '"pairs": 1' in earlier.read_text()


def test_restore_out_naming_the_mask_file_is_refused(tmp_path, capsys):
    from resgan.zoo import builtin_path

    if not builtin_path("inpaint").is_file():
        pytest.skip("built-in inpaint weights absent")
    Image.fromarray(photo(24, 24)).save(tmp_path / "x.png")
    m = np.zeros((24, 24), np.uint8)
    m[4:9, 4:9] = 255
    Image.fromarray(m).save(tmp_path / "holes.png")
    before = snapshot(tmp_path)
    code, lines = cli(capsys, "restore", tmp_path / "x.png", "--task", "inpaint", "--mask", tmp_path / "holes.png",
                      "--out", tmp_path / "holes.png")
    assert_one_error(code, lines, "would overwrite the mask")
    assert snapshot(tmp_path) == before


def test_export_writes_only_a_safetensors_name(tmp_path, capsys, models):
    img = tmp_path / "photo.png"
    img.write_bytes(png_bytes(photo(16, 16, 1)))
    before = snapshot(tmp_path)
    for out in (img, tmp_path / "model.pt", tmp_path / "model"):
        code, lines = cli(capsys, "export", models["gen"], "--out", out)
        assert_one_error(code, lines, "an exported model is a .safetensors file")
    assert snapshot(tmp_path) == before
    code, _ = cli(capsys, "export", models["gen"], "--out", tmp_path / "g.SafeTensors")
    assert code == 0


# ---------------------------------------------------------------- family 2: a run folder is one process's


def test_train_out_that_is_a_file_or_a_resume_without_a_run(tmp_path, capsys):
    img = tmp_path / "x.png"
    img.write_bytes(png_bytes(photo(16, 16, 1)))
    before = snapshot(tmp_path)
    code, lines = cli(capsys, "train", "digits", "--out", img, "--steps", "1")
    assert_one_error(code, lines, "is a file, but a run folder is needed there")
    code, lines = cli(capsys, "train", "digits", "--out", tmp_path / "none", "--resume")
    assert_one_error(code, lines, "--resume: no checkpoint in")
    assert snapshot(tmp_path) == before and not (tmp_path / "none").exists()


# ---------------------------------------------------------------- family 3: decoding bounded by work


def bomb_folder(tmp_path: Path, name: str, data: bytes) -> Path:
    """A class folder of training images with one bad file among good ones."""
    root = tmp_path / name
    for cls in ("cats", "dogs"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            (root / cls / f"{i}.png").write_bytes(png_bytes(photo(20, 20, seed=i)))
    (root / "dogs" / "bad.jpg").write_bytes(data)
    return root


@pytest.mark.parametrize("preset", ["folder", "denoise_gray"])
def test_training_data_with_a_scan_bomb_is_refused_quickly(tmp_path, capsys, preset):
    """Training reads its images with the decoder's bounds too: a 100,000-scan JPEG (~2 MB) in the data
    folder once kept Pillow busy for minutes."""
    import time

    from helpers import repeated_scans

    data = bomb_folder(tmp_path, "data", repeated_scans(100_000))
    before = snapshot(data)
    t0 = time.perf_counter()
    code, lines = cli(capsys, "train", preset, "--out", tmp_path / "run", "--steps", "1", "--quiet",
                      "--set", f"data.path={data}")
    assert time.perf_counter() - t0 < 10
    assert_one_error(code, lines, "bad.jpg: a JPEG with more than 100 scans")
    assert snapshot(data) == before and not (tmp_path / "run").exists()


def test_evaluate_with_a_scan_bomb_is_refused_quickly(tmp_path, capsys):
    import time

    from helpers import repeated_scans

    a, b = pair_folders(tmp_path, (16, 16))
    (a / "z.jpg").write_bytes(repeated_scans(100_000))
    for metrics in ("psnr", "fid"):  # pairs by name and folders of features: both read through the decoder
        t0 = time.perf_counter()
        code, lines = cli(capsys, "evaluate", a, b if metrics == "psnr" else a, "--metrics", metrics, "--quiet",
                          "--cache-dir", tmp_path / "cache")
        assert time.perf_counter() - t0 < 10
        if metrics == "psnr":
            assert code == 0  # z.jpg has no ground truth in b: never opened
        else:
            assert_one_error(code, lines, "z.jpg: a JPEG with more than 100 scans")


# ---------------------------------------------------------------- family 4: every option checked first


@pytest.mark.parametrize("args,why", [
    (["--crop-border", "-1"], "--crop-border must be a whole number >= 0, got -1"),
    (["--crop-border", "12"], "a crop border of 12 pixels leaves nothing of a 24x24 image (at most 11)"),
    (["-n", "0"], "-n must be at least 1"),
    (["--batch-size", "0"], "--batch-size must be"),
])
def test_evaluate_options_are_one_line(tmp_path, capsys, args, why):
    a, b = pair_folders(tmp_path)
    code, lines = cli(capsys, "evaluate", a, b, "--metrics", "psnr", "--quiet", *args)
    assert_one_error(code, lines, why)


def test_evaluate_n_for_a_generator_is_bounded_before_sampling(tmp_path, capsys, models):
    import time

    t0 = time.perf_counter()
    code, lines = cli(capsys, "evaluate", models["gen"], "digits", "-n", "100000000000000", "--metrics", "fid",
                      "--quiet", "--cache-dir", tmp_path)
    assert time.perf_counter() - t0 < 10  # it sampled images without end
    assert_one_error(code, lines, f"over the limit of {MAX_SEEDS:,}")
    assert files_under(tmp_path) == []


@pytest.mark.parametrize("value", ["0", "-1"])
def test_restore_max_pixels_is_checked_before_any_file(tmp_path, capsys, models, good_png, value):
    img = tmp_path / "x.png"
    img.write_bytes(good_png)
    code, lines = cli(capsys, *restore_args(img, models["denoise"], tmp_path / "out", "--max-pixels", value))
    assert_one_error(code, lines, f"--max-pixels must be a whole number >= 1, got {value}")
    assert not (tmp_path / "out").exists() and img.read_bytes() == good_png


@pytest.mark.parametrize("args,why", [(["--tile", "-5"], "tile must be a whole number >= 0"),
                                      (["--overlap", "-5"], "overlap must be a whole number >= 0"),
                                      (["--tile", "159", "--overlap", "64"], "tile must be 0 (off) or at least"),
                                      (["--quality", "0"], "quality must be within 1..100")])
def test_restore_tile_overlap_quality_are_one_line(tmp_path, capsys, models, good_png, args, why):
    img = tmp_path / "x.png"
    img.write_bytes(good_png)
    code, lines = cli(capsys, *restore_args(img, models["denoise"], tmp_path / "out", *args))
    assert_one_error(code, lines, why)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("fields,why", [
    ({"task": "denoise", "tile": "16"}, "unknown form field 'tile'"),
    ({"task": "denoise", "sigmaa": "20"}, "unknown form field 'sigmaa'"),  # a typo is not ignored
    ({"task": ["denoise", "sr"]}, "form field 'task' is given 2 times"),
])
def test_server_restore_refuses_unknown_and_repeated_fields(client, good_png, fields, why):
    r = client.post("/v1/restore", files={"image": ("x.png", good_png, "image/png")}, data=fields)
    assert_api_error(r, 400, why)


def test_server_restore_takes_one_image_a_request(client, good_png):
    files = [("image", ("a.png", good_png, "image/png")), ("image", ("b.png", good_png, "image/png"))]
    assert_api_error(client.post("/v1/restore", files=files, data={"task": "denoise"}), 400,
                     "form field 'image' is given 2 times")


# ---------------------------------------------------------------- family 5: unusual images, the same rule


def test_training_data_with_an_animated_gif_is_refused_not_cut_to_its_first_frame(tmp_path, capsys):
    from helpers import animated_gif

    data = bomb_folder(tmp_path, "data", animated_gif())
    before = snapshot(data)
    code, lines = cli(capsys, "train", "folder", "--out", tmp_path / "run", "--steps", "1", "--quiet",
                      "--set", f"data.path={data}")
    assert_one_error(code, lines, "bad.jpg: has more than one frame")
    assert snapshot(data) == before and not (tmp_path / "run").exists()


# ---------------------------------------------------------------- family 6: the API raises ResganError only


@pytest.mark.parametrize("kwargs,why", [
    ({"n": "5"}, "-n must be at least 1"), ({"n": 2.5}, "-n must be at least 1"),
    ({"n": float("inf")}, "-n must be at least 1"), ({"batch_size": "50"}, "--batch-size must be a whole number"),
    ({"metrics": 3}, "metrics: give names"), ({"metrics": ["fid", 3]}, "metrics: give names"),
    ({"fast": "no"}, "fast must be True or False"), ({"inception": 3}, "--inception must be a path"),
    ({"cache_dir": 3}, "--cache-dir must be a path"), ({"crop_border": "2"}, "--crop-border must be a whole number"),
])
def test_evaluate_images_wrongly_typed_options_are_resgan_errors(kwargs, why):
    import resgan
    from resgan.errors import ResganError

    images = np.zeros((4, 16, 16), np.uint8)
    with pytest.raises(ResganError) as e:
        resgan.evaluate_images(images, images, **{"metrics": "fid", **kwargs})
    assert why in str(e.value) and "\n" not in str(e.value)


def test_list_classes_and_generate_images_wrongly_typed(models):
    import resgan
    from resgan.errors import ResganError

    for call, why in ((lambda: resgan.list_classes(None), "model: give a built-in name"),
                      (lambda: resgan.generate_images(models["gen"], seeds=[1], as_array="yes"),
                       "as_array must be True or False")):
        with pytest.raises(ResganError, match=why):
            call()


# ---------------------------------------------------------------- family 8: HTTP edge cases


@pytest.mark.parametrize("body,status,why", [
    (b"[" * 100_000 + b"]" * 100_000, 400, "error parsing the body"),  # nesting past the parser's recursion
    (b'{"seeds": [' + b"9" * 5000 + b"]}", 400, "error parsing the body"),  # past int()'s digit limit
    (b'{"seeds": "\xff"}', 400, "error parsing the body"),  # not UTF-8
    (b'{"seeds": [1], "psi": NaN}', 400, "psi must be within 0..2"),
    (b'{"seeds": [1], "trunc": Infinity}', 400, "trunc must be a finite number"),
    (b'{"seeds": [1], "bogus": 1}', 422, "bogus: Extra inputs are not permitted"),
])
def test_server_generate_odd_json_is_json_4xx(client, body, status, why):
    r = client.post("/v1/generate", content=body, headers={"content-type": "application/json"})
    assert_api_error(r, status, why)
