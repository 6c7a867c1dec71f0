"""Data-parallel training through torchrun on CPU (gloo)."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import tiny_overrides
from safetensors.torch import load_file

from resgan.config import load_config
from resgan.train import CHECKPOINT, resume_config, train

TORCHRUN = Path(sys.executable).with_name("torchrun")
# unconditional G without BatchNorm: no per-rank batch statistics (SyncBatchNorm is CUDA-only),
# so 2 ranks x 8 images compute what 1 process computes on the 16 images; fp32, so that the bound
# below is about summation order only (auto picks bf16 on CPUs with bf16 instructions)
EXTRA = {"data.conditional": "false", "gan.g_norm": "none", "gan.loss": "wgan-gp", "gan.n_dis": 2,
         "train.sample_every": 100, "train.ckpt_every": 100, "train.precision": "fp32"}
pytestmark = pytest.mark.skipif(not TORCHRUN.exists() or not torch.distributed.is_available(),
                                reason="torchrun / torch.distributed not available")


def run_torchrun(args: list[str], timeout: int = 600) -> str:
    """Run torchrun with 2 CPU ranks; on a time-out kill the whole process group (agent and workers)."""
    proc = subprocess.Popen([str(TORCHRUN), "--standalone", "--nproc_per_node=2", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"torchrun took over {timeout} s:\n{out[-3000:]}")
    assert proc.returncode == 0, out[-3000:]
    return out


def torchrun(out: Path, steps: int, resume: bool = False) -> str:
    args = ["-m", "resgan", "train", "digits", "--out", str(out), "--steps", str(steps), "--quiet"]
    args += ["--resume"] if resume else []
    for s in tiny_overrides(**EXTRA):
        args += ["--set", s]
    return run_torchrun(args)


def max_diff(a: dict, b: dict, prefix: str) -> float:
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a if k.startswith(prefix))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    torchrun(root / "ddp", steps=3)
    train(load_config("digits", tiny_overrides(**EXTRA, **{"train.steps": 3})), root / "single", progress=False)
    return root


def test_two_ranks_equal_one_process_on_the_combined_batch(runs):
    a = load_file(runs / "ddp" / CHECKPOINT)
    b = load_file(runs / "single" / CHECKPOINT)
    assert a.keys() == b.keys()
    # Same noise, same data slices, averaged gradients: only float32 summation order differs
    # (two half-batch means averaged vs one mean). Adam divides by sqrt(v), so a weight whose
    # gradient is rounding-level noise can still move by up to ~lr (2e-4) per update, either way:
    # G has 3 updates, D n_dis x 3 = 6, hence a bound of 1.5 x lr per update. Unrelated runs
    # differ by ~1e-1, and the bulk of the weights must agree far more closely (median < 1e-5).
    lr, steps = 2e-4, {"G.": 3, "D.": 6, "G_ema.": 3}
    for prefix, n in steps.items():
        assert max_diff(a, b, prefix) < 1.5 * lr * n, prefix
        diffs = torch.cat([(a[k].float() - b[k].float()).abs().flatten() for k in a if k.startswith(prefix)])
        assert diffs.median() < 1e-5, prefix


def test_only_rank_zero_writes(runs):
    lines = (runs / "ddp" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(ln)["step"] for ln in lines] == [1, 2, 3]  # one writer: no doubled lines
    names = sorted(p.name for p in (runs / "ddp").iterdir())
    assert names == ["config.yaml", "latest.safetensors", "metrics.jsonl", "report.html", "samples"]


def test_resume_with_another_world_size(runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs / "ddp", run)
    cfg = resume_config(run, None, steps=5)  # started with 2 processes, continues with 1
    train(cfg, run, resume=True, progress=False)
    straight = tmp_path / "straight"
    train(load_config("digits", tiny_overrides(**EXTRA, **{"train.steps": 5})), straight, progress=False)
    a, b = load_file(run / CHECKPOINT), load_file(straight / CHECKPOINT)
    assert max_diff(a, b, "G.") < 2e-3 and max_diff(a, b, "D.") < 2e-3
    steps = [json.loads(ln)["step"] for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5]


def test_restoration_trains_under_torchrun(tmp_path):
    pytest.importorskip("skimage", reason="the built-in restoration data needs scikit-image")
    import yaml

    from resgan.checkpoint import load_checkpoint

    cfg = {"task": "restore", "data": {"name": "folder", "channels": 1, "limit": 3},
           "restore": {"kind": "denoise", "width": 8, "blocks": 1, "crop": 32, "patches_per_image": 8,
                       "val_crop": 64, "val_limit": 1, "val_every": 2},
           "train": {"steps": 2, "batch_size": 8, "log_every": 1, "sample_every": 2, "ckpt_every": 2}}
    path = tmp_path / "denoise.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    run_torchrun(["-m", "resgan", "train", str(path), "--out", str(out), "--quiet"])
    tensors, meta = load_checkpoint(out / CHECKPOINT)
    assert meta["step"] == 2 and any(k.startswith("net.") for k in tensors)
    steps = [json.loads(ln).get("step") for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps.count(1) == 1  # rank 0 alone logs
