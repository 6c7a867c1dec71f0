"""A run folder belongs to one process, and its checkpoint is sacred (issue 30, family 2).

Two real ``resgan train`` processes on one ``--out``: the second is refused at once naming the first's
pid; a kill -9 of the holder does not block the resume; a failure before anything was written leaves no
folder; a fresh run never replaces an earlier run's files; and no writer (export, grids, JSON, any
atomic write) replaces a training checkpoint, a run's ``latest.safetensors`` or a run's own files.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import run_cli, snapshot, tiny_overrides, tiny_sets
from safetensors.torch import load_file

from resgan import zoo
from resgan.checkpoint import LATEST, atomic_write_bytes, check_overwrite, load_checkpoint, save_checkpoint
from resgan.config import load_config
from resgan.errors import ResganError
from resgan.report import save_png
from resgan.runlock import LOCK_NAME, RunLock, held_here, hold_run
from resgan.train import train

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "RESGAN_MALLOC": "0"}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A finished 2-step run (its folder is copied by the tests that change it)."""
    r = tmp_path_factory.mktemp("lock") / "run"
    train(load_config("digits", tiny_overrides(**{"train.steps": 2})), r, progress=False)
    return r


# ---------------------------------------------------------------- the lock


def test_a_second_holder_is_refused_naming_the_first_and_the_lock_leaves_nothing_behind(tmp_path):
    d = tmp_path / "new"
    with hold_run(d) as lock:
        assert held_here(d) and (d / LOCK_NAME).read_text().strip() == str(os.getpid())
        mine = rf"run folder {d} is in use by another resgan process \(pid {os.getpid()}\)"
        with pytest.raises(ResganError, match=mine):
            RunLock(d).acquire()  # a second open file description: flock refuses it, even in one process
        lock.keep_dir = True
    assert not held_here(d) and d.is_dir() and not (d / LOCK_NAME).exists()
    with hold_run(d):  # released: taken again at once
        pass
    with hold_run(tmp_path / "never"):  # nothing written: the folder it made is gone again
        assert (tmp_path / "never").is_dir()
    assert not (tmp_path / "never").exists()


def test_a_lock_file_left_by_a_killed_process_does_not_block(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import sys, time; from resgan.runlock import RunLock; "
                              "RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)",
                              str(tmp_path / "r")], stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert child.stdout.readline().strip() == "held"
        with pytest.raises(ResganError, match=rf"in use by another resgan process \(pid {child.pid}\)"):
            RunLock(tmp_path / "r").acquire()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    assert (tmp_path / "r" / LOCK_NAME).exists()  # left behind by the kill, but no longer locked
    with hold_run(tmp_path / "r"):
        pass


def test_two_trainings_on_one_folder_then_kill_9_and_a_clean_resume(tmp_path, capsys):
    run = tmp_path / "run"
    args = [sys.executable, "-m", "resgan", "train", "digits", "--out", str(run), "--steps", "100000", "--quiet",
            "--threads", "1", *tiny_sets(**{"train.ckpt_every": 2, "train.sample_every": 100000})]
    first = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (run / LATEST).exists():
            time.sleep(0.2)
        assert (run / LATEST).exists(), "the first training wrote no checkpoint"
        before = {n: (run / n).read_bytes() for n in ("config.yaml",)}
        for extra in ([], ["--resume"]):  # a fresh run and a resume are both refused, in their own process too
            second = subprocess.run(args + extra, capture_output=True, text=True, env=ENV, timeout=120)
            assert second.returncode == 2, second.stderr
            assert second.stderr.strip() == (f"resgan: error: run folder {run} is in use by another resgan process "
                                             f"(pid {first.pid}); wait for it to end or choose another --out")
        assert {n: (run / n).read_bytes() for n in before} == before
        assert first.poll() is None  # the first one runs on
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=60)
    step = load_checkpoint(run / LATEST)[1]["step"]
    code, err = run_cli(capsys, "train", "digits", "--out", run, "--resume", "--steps", step + 1, "--quiet")
    assert code == 0, err
    assert load_checkpoint(run / LATEST)[1]["step"] == step + 1
    steps = [json.loads(ln)["step"] for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, step + 2))  # lines past the killed run's checkpoint were dropped
    assert not (run / LOCK_NAME).exists() and not list(run.glob(".*.tmp"))


def test_a_resume_removes_the_temp_files_a_kill_left_of_every_run_file(tmp_path, run):
    """A kill -9 can land while any run file is being written: the resumed run (holding the lock) removes
    the writer's temp files of the checkpoint, config, metrics, report and grids, and nothing else."""
    import shutil

    r = tmp_path / "run"
    shutil.copytree(run, r)
    stale = [r / ".latest.safetensors.ab12.tmp", r / ".report.html.cd34.tmp", r / ".metrics.jsonl.x.tmp",
             r / ".config.yaml.y.tmp", r / "samples" / ".step_0000002.png.z.tmp"]
    keep = r / "notes.tmp"
    for p in [*stale, keep]:
        p.write_bytes(b"partial")
    train(load_config("digits", tiny_overrides(**{"train.steps": 3})), r, resume=True, progress=False)
    assert [p for p in stale if p.exists()] == []
    assert keep.read_bytes() == b"partial"


def test_a_failure_before_anything_is_written_leaves_no_folder(tmp_path, capsys):
    out = tmp_path / "run"
    code, err = run_cli(capsys, "train", "mnist", "--out", out, "--set", f"data.path={tmp_path / 'missing'}")
    assert code == 2 and "does not exist" in err and not out.exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    code, err = run_cli(capsys, "train", "mnist", "--out", mine, "--set", f"data.path={tmp_path / 'missing'}")
    assert code == 2 and snapshot(mine) == {"notes.txt": b"mine"}


@pytest.mark.parametrize("left", ["config.yaml", "metrics.jsonl", "report.html", "samples/step_0000002.png"])
def test_a_fresh_run_never_replaces_an_earlier_runs_files(tmp_path, capsys, run, left):
    """A folder with a run's files but no checkpoint (killed before its first one): refused, not reset."""
    d = tmp_path / "old"
    (d / left).parent.mkdir(parents=True, exist_ok=True)
    (d / left).write_bytes((run / left).read_bytes())
    before = snapshot(d)
    code, err = run_cli(capsys, "train", "digits", "--out", d, "--steps", 1, "--quiet", *tiny_sets())
    assert code == 2 and "holds the files of an earlier run" in err and "\n" not in err, err
    assert snapshot(d) == before


def test_a_fresh_run_on_a_run_is_refused_and_a_resume_below_its_step_too(tmp_path, capsys, run):
    before = snapshot(run)
    code, err = run_cli(capsys, "train", "digits", "--out", run, "--steps", 5, "--quiet", *tiny_sets())
    assert code == 2 and "already holds a run; pass --resume" in err
    code, err = run_cli(capsys, "train", "digits", "--out", run, "--resume", "--steps", 1, "--quiet")
    assert code == 2 and "is at step 2 already" in err
    assert snapshot(run) == before


# ---------------------------------------------------------------- the checkpoint is sacred


def test_export_over_the_runs_own_checkpoint_is_refused_and_it_still_resumes(tmp_path, capsys, run):
    import shutil

    r = tmp_path / "r"
    shutil.copytree(run, r)
    good = (r / LATEST).read_bytes()
    code, err = run_cli(capsys, "export", r, "--out", r / LATEST)
    assert code == 2 and str(r / LATEST) in err and "\n" not in err, err
    other = tmp_path / "other"
    shutil.copytree(run, other)
    code, err = run_cli(capsys, "export", r, "--out", other / LATEST)  # another run's checkpoint
    assert code == 2 and "training checkpoint" in err and "\n" not in err, err
    assert (other / LATEST).read_bytes() == good
    with pytest.raises(ResganError, match="is a training checkpoint"):
        zoo.export(r, r / LATEST)  # the library refuses it too, whoever calls it
    assert (r / LATEST).read_bytes() == good
    code, err = run_cli(capsys, "train", "digits", "--out", r, "--resume", "--steps", 3, "--quiet")
    assert code == 0, err


def test_no_writer_replaces_a_training_checkpoint_under_any_name(tmp_path, run):
    """Any file whose header says it is a training checkpoint: export, a grid, JSON, a plain write."""
    from PIL import Image

    from resgan.evaluate import write_json

    copy = tmp_path / "ckpt.png"  # a training checkpoint by its header, whatever its name
    copy.write_bytes((run / LATEST).read_bytes())
    good = copy.read_bytes()
    writers = {
        "export": lambda p: zoo.export(run, p),
        "png": lambda p: save_png(Image.new("L", (4, 4)), p),
        "json": lambda p: write_json({"fid": 1.0}, p),
        "bytes": lambda p: atomic_write_bytes(p, b"x"),
        "exported model": lambda p: save_checkpoint(p, {"w": torch.ones(1)}, {"kind": "generator"}),
    }
    for name, write in writers.items():
        with pytest.raises(ResganError, match=rf"{copy} is a training checkpoint \(step 2\)"):
            write(copy)
        assert copy.read_bytes() == good, name
    assert not list(tmp_path.glob(".*.tmp"))
    save_checkpoint(copy, {"w": torch.ones(1)}, {"kind": "train", "step": 3})  # a training checkpoint may


def test_a_runs_checkpoint_name_and_its_own_files_are_not_for_other_writers(tmp_path, run):
    with pytest.raises(ResganError, match=f"{LATEST} is the name of a run's training checkpoint"):
        zoo.export(run, tmp_path / "elsewhere" / LATEST)  # no file there yet: the name alone is refused
    assert not (tmp_path / "elsewhere" / LATEST).exists()
    before = snapshot(run)
    for name in ("config.yaml", "metrics.jsonl", "report.html", "samples/step_0000002.png", "samples/new.png"):
        with pytest.raises(ResganError, match=f"is one of the files of the run in {run}"):
            check_overwrite(run / name)
        with pytest.raises(ResganError, match="one of the files of the run"):
            atomic_write_bytes(run / name, b"x")
    assert snapshot(run) == before
    check_overwrite(run / "grid.png")  # anything else in the folder (make demo's grid.png) is fine
    check_overwrite(tmp_path / "config.yaml")  # and these names outside a run
    with hold_run(run):  # the process that holds the run writes its files
        atomic_write_bytes(run / "report.html", (run / "report.html").read_bytes())


def test_a_run_folder_in_progress_is_protected_before_its_first_checkpoint(tmp_path):
    d = tmp_path / "r"
    with hold_run(d) as lock:
        lock.keep_dir = True
        atomic_write_bytes(d / "config.yaml", b"a: 1\n")
        child = subprocess.run([sys.executable, "-c", "import sys; from resgan.checkpoint import atomic_write_bytes; "
                                "atomic_write_bytes(sys.argv[1], b'x')", str(d / "config.yaml")],
                               capture_output=True, text=True, env=ENV)
        assert child.returncode != 0 and "is one of the files of the run" in child.stderr
    assert (d / "config.yaml").read_bytes() == b"a: 1\n"


def test_training_still_writes_its_own_checkpoint(run, tmp_path):
    a = load_file(run / LATEST)
    assert a and not (run / LOCK_NAME).exists()
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "latest.safetensors", "metrics.jsonl",
                                                      "report.html", "samples"]
