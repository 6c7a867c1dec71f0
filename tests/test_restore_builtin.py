"""The shipped restoration weights load and improve PSNR on a small scikit-image case."""

import numpy as np
import pytest
import torch
from test_restore_helpers import one_thread  # noqa: F401 (autouse fixture)

from resgan.metrics.psnr_ssim import psnr
from resgan.restore import degradations as dg
from resgan.restore.infer import RESTORE_TASKS, load_model, restore_array
from resgan.zoo import BUILTINS

skd = pytest.importorskip("skimage.data", reason="the built-in test images come from scikit-image")


def crop(img: np.ndarray, size: int, y: int, x: int) -> np.ndarray:
    a = img[y:y + size, x:x + size].astype(np.float32) / 255
    return a[:, :, None] if a.ndim == 2 else a


def test_every_task_default_is_a_shipped_file():
    for task, name in RESTORE_TASKS.items():
        if name is not None:
            assert name in BUILTINS and load_model(task).kind == task


def test_denoise_builtin_improves_psnr():
    clean = crop(skd.camera(), 128, 100, 180)
    noisy = (clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape)).astype(np.float32)
    model = load_model("denoise")
    before = psnr(torch.from_numpy(noisy.clip(0, 1)), torch.from_numpy(clean), peak=1.0)
    for sigma in (25.0, None):  # known and estimated noise level
        out = restore_array(model, noisy, sigma=sigma)
        assert psnr(torch.from_numpy(out), torch.from_numpy(clean), peak=1.0) > before + 5


def test_inpaint_builtin_fills_holes_better_than_grey():
    clean = crop(skd.astronaut(), 128, 150, 180)
    hole = np.zeros((128, 128), bool)
    hole[50:70, 40:90] = True
    out = restore_array(load_model("inpaint"), clean, hole)
    grey = np.where(hole[:, :, None], 0.5, clean)
    assert np.array_equal(out[~hole], clean[~hole])
    err_out = np.abs(out - clean)[hole].mean()
    assert err_out < 0.7 * np.abs(grey - clean)[hole].mean()


def test_sr_builtin_beats_bicubic():
    hr = torch.from_numpy(crop(skd.astronaut(), 96, 100, 150).transpose(2, 0, 1).copy())[None]
    lr = (dg.bicubic_down(hr, 4).clamp(0, 1) * 255).round() / 255
    out = restore_array(load_model("sr"), lr[0].numpy().transpose(1, 2, 0).copy())
    ours = psnr(torch.from_numpy(out.transpose(2, 0, 1).copy())[None], hr, peak=1.0)
    bicubic = psnr(dg.bicubic_up(lr, 4).clamp(0, 1), hr, peak=1.0)
    assert ours > bicubic + 0.3
