"""The restore task in the generic loop: config, data, a tiny run, exact resume."""

import json

import pytest
import torch

from resgan.config import config_from_dict, load_config
from resgan.errors import ResganError
from resgan.restore.data import extract_patches
from resgan.train import TASKS, train

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny nets: one thread (conftest)


pytest.importorskip("skimage", reason="the built-in restoration data needs scikit-image")


def tiny(steps: int, **restore) -> dict:
    r = {"kind": "denoise", "sigma": 25.0, "width": 16, "blocks": 1, "crop": 32, "patches_per_image": 12,
         "val_crop": 64, "val_limit": 1, "val_every": steps}
    r.update(restore)
    return {"task": "restore", "data": {"name": "folder", "channels": 1, "limit": 3}, "restore": r,
            "train": {"steps": steps, "batch_size": 8, "lr_g": 2e-3, "beta1": 0.9, "ema_decay": 0.0,
                      "log_every": 5, "sample_every": steps, "ckpt_every": steps}}


def test_presets_load_and_config_is_strict():
    assert "restore" in TASKS
    for name in ("denoise_gray", "denoise_color", "inpaint", "sr_x4", "deblur", "jpeg_gray", "jpeg_color"):
        assert load_config(name).task == "restore"
    with pytest.raises(ResganError, match="unknown config key 'restore.sigmaa'"):
        config_from_dict({"task": "restore", "restore": {"sigmaa": 3}})
    with pytest.raises(ResganError, match="restore.kind"):
        config_from_dict({"task": "restore", "restore": {"kind": "colourise"}})
    with pytest.raises(ResganError, match="multiple of restore.scale"):
        config_from_dict({"task": "restore", "restore": {"kind": "sr", "scale": 3, "crop": 32}})
    # each task has its own section: the other task's section (or key) is an error naming it
    with pytest.raises(ResganError, match="section 'restore' belongs to task 'restore'; this config's task is 'gan'"):
        config_from_dict({"task": "gan", "restore": {"kind": "denoise"}})
    with pytest.raises(ResganError, match="section 'gan' belongs to task 'gan'"):
        load_config("denoise_gray", ["gan.loss=hinge"])
    with pytest.raises(ResganError, match="'train.n_dis' is now 'gan.n_dis'"):
        load_config("denoise_gray", ["train.n_dis=2"])
    assert "gan" not in load_config("denoise_gray").to_dict() and "restore" not in load_config("digits").to_dict()


def test_patches_are_deterministic():
    import numpy as np

    imgs = [np.arange(3 * 50 * 60, dtype=np.uint8).reshape(3, 50, 60)]
    a, b = extract_patches(imgs, 16, 5, seed=1), extract_patches(imgs, 16, 5, seed=1)
    assert a.shape == (5, 3, 16, 16) and np.array_equal(a, b)
    assert not np.array_equal(a, extract_patches(imgs, 16, 5, seed=2))


def test_tiny_training_run_lowers_validation_loss(tmp_path):
    cfg = config_from_dict(tiny(40))
    train(cfg, tmp_path / "run", progress=False)
    vals = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if "val_loss" in ln]
    assert len(vals) == 1
    first = _val_at_start(cfg)
    assert vals[-1]["val_loss"] < 0.8 * first["val_loss"]
    assert vals[-1]["psnr"] > vals[-1]["psnr_input"] + 1.0
    assert (tmp_path / "run" / "samples" / "step_0000040.png").is_file()


def _val_at_start(cfg):
    from resgan.restore.task import Restorer

    return Restorer(cfg, torch.device("cpu")).validate(force=True)


def test_resume_is_exact(tmp_path):
    from resgan.checkpoint import load_checkpoint

    cfg = config_from_dict(tiny(6, kind="inpaint", width=4, crop=32))
    train(cfg, tmp_path / "a", progress=False)
    half = config_from_dict(tiny(3, kind="inpaint", width=4, crop=32))
    train(half, tmp_path / "b", progress=False)
    train(cfg, tmp_path / "b", resume=True, progress=False)
    ta, _ = load_checkpoint(tmp_path / "a" / "latest.safetensors")
    tb, _ = load_checkpoint(tmp_path / "b" / "latest.safetensors")
    for k in ta:
        if k.startswith("net."):
            assert torch.equal(ta[k], tb[k]), k


@pytest.mark.parametrize("kind", ["deblur", "jpeg", "real", "sr"])
def test_every_kind_takes_a_training_step(tmp_path, kind):
    from resgan.restore.task import Restorer

    cfg = config_from_dict(tiny(2, kind=kind, scale=2, jpeg_quality=[20, 40], adv_weight=0.1, fm_weight=1.0,
                                width=4, d_width=4))
    task = Restorer(cfg, torch.device("cpu"))
    batch = torch.rand(4, 1, 32, 32) * 2 - 1
    stats = task.train_step(lambda: (batch, None))
    assert {"loss_g", "loss_d", "loss_pix", "loss_adv", "loss_fm"} <= set(stats)
    assert set(task.modules()) == {"net", "net_ema", "D"} and set(task.optimizers()) == {"opt_g", "opt_d"}
    assert task.validate(force=True)["psnr"] > 10
    grid, ncol = task.sample_grid()
    assert ncol == 3 and grid.min() >= -1 and grid.max() <= 1


def test_bf16_channels_last_step_with_adversarial_loss():
    from resgan.restore.task import Restorer

    cfg = config_from_dict({**tiny(2, adv_weight=0.1, fm_weight=1.0, width=4, d_width=4),
                            "train": {**tiny(2)["train"], "precision": "bf16", "channels_last": True}})
    task = Restorer(cfg, torch.device("cpu"))
    dtypes = []
    conv = next(m for m in task.net.modules() if isinstance(m, torch.nn.Conv2d))
    conv.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    batch = torch.rand(4, 1, 32, 32) * 2 - 1
    stats = task.train_step(lambda: (batch, None))
    assert dtypes == [torch.bfloat16]  # convolutions run in bf16 (the residual sum may promote to fp32)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert all(torch.isfinite(torch.tensor(v)) for v in stats.values())
    assert next(task.net.parameters()).dtype == torch.float32  # autocast: weights stay fp32


def test_train_init_fine_tunes_from_a_model_of_another_kind(tmp_path):
    """train.init: a JPEG run starts from a noise-map denoiser's weights; the first convolution, whose input
    holds the noise map there, is the only tensor left fresh; a net with nothing in common is refused."""
    from resgan.checkpoint import load_checkpoint, unprefixed

    src = train(config_from_dict(tiny(2, noise_map=True, sigma_max=50.0)), tmp_path / "dn", progress=False)
    source = unprefixed("net_ema", load_checkpoint(src)[0])
    cfg = config_from_dict({**tiny(1, kind="jpeg"), "train": {**tiny(1)["train"], "init": str(tmp_path / "dn"),
                                                              "lr_g": 1e-12}})
    out = train(cfg, tmp_path / "jpeg", progress=False)
    tuned = unprefixed("net_ema", load_checkpoint(out)[0])
    same = [k for k in tuned if k in source and tuned[k].shape == source[k].shape]
    assert len(same) == len(tuned) - 1 and all(torch.allclose(tuned[k], source[k], atol=1e-6) for k in same)
    with pytest.raises(ResganError, match="shares no tensor"):
        train(config_from_dict({**tiny(1, kind="inpaint", width=4, crop=32),
                                "train": {**tiny(1)["train"], "init": str(tmp_path / "dn")}}), tmp_path / "x",
              progress=False)
