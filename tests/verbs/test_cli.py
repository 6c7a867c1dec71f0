import subprocess
import sys

import pytest
import torch
from helpers import REPO, tiny_sets
from PIL import Image

from resgan.cli import main
from resgan.zoo import builtin_path, load_generator


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "digits", "--out", str(run), "--steps", "3", "--seed", "1", "--quiet", *tiny_sets()]) == 0
    return run


def test_train_then_generate_grid(run_dir, tmp_path):
    assert (run_dir / "latest.safetensors").is_file() and (run_dir / "report.html").is_file()
    out = tmp_path / "grid.png"
    assert main(["generate", str(run_dir), "--seeds", "0-15", "--class", "3", "--trunc", "1.0", "--out", str(out)]) == 0
    img = Image.open(out)
    assert img.size == (4 * 18 + 2, 4 * 18 + 2) and img.mode == "L"


def test_generate_folder_and_seed_stability(run_dir, tmp_path):
    assert main(["generate", str(run_dir / "latest.safetensors"), "--seeds", "2,5", "--out", str(tmp_path / "a")]) == 0
    assert main(["generate", str(run_dir), "--seeds", "0-5", "--out", str(tmp_path / "b")]) == 0
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["seed0002.png", "seed0005.png"]
    # a seed is the same image whatever else is asked
    a = Image.open(tmp_path / "a" / "seed0005.png").tobytes()
    assert a == Image.open(tmp_path / "b" / "seed0005.png").tobytes()


def test_resume_via_cli_continues_to_total_steps(run_dir, tmp_path):
    import shutil

    run = tmp_path / "r"
    shutil.copytree(run_dir, run)
    assert main(["train", "digits", "--out", str(run), "--steps", "5", "--resume", "--quiet", *tiny_sets()]) == 0
    from resgan.checkpoint import load_checkpoint

    assert load_checkpoint(run / "latest.safetensors")[1]["step"] == 5


def test_export_generator_is_small_and_loads(run_dir, tmp_path):
    out = tmp_path / "g.safetensors"
    assert main(["export", str(run_dir), "--out", str(out)]) == 0
    G, meta = load_generator(out)
    assert meta["kind"] == "generator" and G.num_classes == 10
    assert out.stat().st_size < (run_dir / "latest.safetensors").stat().st_size / 3


@pytest.mark.parametrize("argv,message", [
    (["train", "digits", "--out", "{tmp}/x", "--set", "train.bogus=1"], "unknown config key 'train.bogus'"),
    (["train", "mnist", "--out", "{tmp}/x", "--set", "data.path={tmp}/nope"], "does not exist"),
    (["train", "digits", "--out", "{tmp}/x", "--set", "train.batch_size=5000"], "larger than the data set"),
    (["train", "digits", "--out", "{tmp}/x", "--set", "data.resolution=48"], "unsupported resolution 48"),
    (["train", "digits", "--out", "{tmp}/x", "--resume"], "no checkpoint"),
    (["generate", "{tmp}/nothing", "--out", "{tmp}/g.png"], "no checkpoint at"),
    (["generate", "{tmp}/foreign.safetensors", "--out", "{tmp}/g.png"], "not a resgan checkpoint"),
    (["generate", "{run}", "--seeds", "9-1", "--out", "{tmp}/g.png"], "seeds wants"),
    (["generate", "{run}", "--class", "12", "--out", "{tmp}/g.png"], "class must be within 0..9"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, run_dir, capsys):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, tmp_path / "foreign.safetensors")
    argv = [a.format(tmp=tmp_path, run=run_dir) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("resgan: error:") and message in err and "\n" not in err
    assert not (tmp_path / "x").exists() and not (tmp_path / "g.png").exists()  # nothing half-written


def test_console_entry_point_runs():
    r = subprocess.run([sys.executable, "-m", "resgan", "train", "digits", "--out", "/nonexistent/x",
                        "--set", "nope=1"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


@pytest.mark.skipif(not builtin_path("mnist").exists(), reason="built-in weights not trained yet")
def test_builtin_mnist_generator(tmp_path):
    out = tmp_path / "sevens.png"
    assert main(["generate", "mnist", "--seeds", "0-99", "--class", "7", "--out", str(out)]) == 0
    assert Image.open(out).size == (10 * 34 + 2, 10 * 34 + 2)
    G, meta = load_generator("mnist")
    assert G.num_classes == 10 and G.resolution == 32 and meta["kind"] == "generator"


def test_sigterm_saves_a_resumable_checkpoint(tmp_path):
    import os
    import signal
    import time

    from resgan.checkpoint import load_checkpoint

    run = tmp_path / "run"
    args = [sys.executable, "-m", "resgan", "train", "digits", "--out", str(run), "--steps", "100000", "--quiet",
            *tiny_sets(**{"train.ckpt_every": 100000, "train.sample_every": 100000})]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    metrics = run / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "stopped at step" in err, err
    step = load_checkpoint(run / "latest.safetensors")[1]["step"]
    assert step >= 2
    assert main(["train", "digits", "--out", str(run), "--steps", str(step + 1), "--resume", "--quiet",
                 *tiny_sets()]) == 0


def test_shipped_training_checkpoint_matches_the_preset_and_the_builtin_generator():
    """The resumable training checkpoint in assets/ is the run the built-in `mnist` generator came from,
    made with the shipped `mnist` preset (same data / model sections and schedule), so that
    `resgan train mnist --resume` from it continues that exact run."""
    import dataclasses

    from resgan.checkpoint import load_checkpoint
    from resgan.config import load_config, stored_config
    from resgan.train import GAN_EVALUATION

    GAN_EVALUATION_KEYS = [k.split('.')[1] for k in GAN_EVALUATION]

    found = sorted((REPO / "assets").glob("mnist_cgan32_train_step*.safetensors"))
    assert len(found) == 1, found
    tensors, meta = load_checkpoint(found[0])
    assert meta["kind"] == "train" and found[0].stem.endswith(f"step{meta['step']}")
    saved, preset = stored_config(meta["config"]), load_config("mnist")
    # the run measured FID on the way (gan.fid_*, set at its start / resumes): evaluation, not the model
    preset = dataclasses.replace(preset, gan=dataclasses.replace(
        preset.gan, num_classes=saved.gan.num_classes, **{k: getattr(saved.gan, k) for k in GAN_EVALUATION_KEYS}))
    for section in ("task", "data", "gan"):
        assert getattr(saved, section) == getattr(preset, section), section
    assert saved.train.steps == preset.train.steps == meta["step"]
    assert (saved.gan.n_dis, saved.train.lr_decay, saved.gan.loss) == (
        preset.gan.n_dis, preset.train.lr_decay, preset.gan.loss)
    shipped, gmeta = load_checkpoint(builtin_path("mnist"))
    assert gmeta["step"] == meta["step"]
    for k, v in shipped.items():
        assert torch.equal(v, tensors[k].to(v.dtype)), k
