"""The restoration nets added for real photos: the residual U-Net denoiser, the FFC inpainting net
(spectral branch, push-pull base, known pixels), LaMa mask families, crops drawn at every step,
8-bit noisy inputs and the adversarial inpainting step (lower validation loss, exact resume)."""

import json

import numpy as np
import pytest
import torch

from resgan.config import config_from_dict
from resgan.restore import degradations as dg
from resgan.restore.data import random_crops, whole_images
from resgan.restore.ffc import FFCInpaintNet, FourierUnit, pushpull_fill
from resgan.restore.models import PatchDiscriminator, UNetRestorer, build_net, pad_forward
from resgan.restore.task import Restorer
from resgan.train import train

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny nets: one thread (conftest)


def test_unet_any_size_starts_as_identity_and_needs_sigma():
    net = UNetRestorer(3, width=8, blocks=1, levels=3, down=2, noise_map=True).eval()
    assert net.multiple == 8
    x = torch.rand(1, 3, 37, 50)
    with torch.no_grad():
        y = pad_forward(net, x, torch.tensor([0.1]))
    assert y.shape == x.shape and torch.equal(y, x)  # zero-initialised tail: the identity
    torch.nn.init.normal_(net.tail.weight, std=0.1)
    with torch.no_grad():
        assert not torch.equal(pad_forward(net, x, torch.tensor([0.1])), x)
    with pytest.raises(Exception, match="noise level"):
        net(torch.rand(1, 3, 16, 16))


def _direct_rfft2(x: np.ndarray) -> np.ndarray:
    """The orthonormal 2-D DFT by its defining double sum (first W//2+1 columns)."""
    h, w = x.shape
    m, n = np.arange(h)[:, None], np.arange(w)[None, :]
    out = np.zeros((h, w // 2 + 1), complex)
    for k in range(h):
        for ll in range(w // 2 + 1):
            out[k, ll] = (x * np.exp(-2j * np.pi * (k * m / h + ll * n / w))).sum()
    return out / np.sqrt(h * w)


@pytest.mark.parametrize("size", [(6, 8), (7, 9)])
def test_spectral_branch_matches_a_direct_dft(size):
    torch.manual_seed(0)
    x = torch.randn(1, 1, *size, dtype=torch.float64)
    want = _direct_rfft2(x[0, 0].numpy())
    re, im = FourierUnit._rfft2(x)
    np.testing.assert_allclose(re[0, 0].numpy(), want.real, atol=1e-10)
    np.testing.assert_allclose(im[0, 0].numpy(), want.imag, atol=1e-10)
    f = torch.fft.rfft2(x, norm="ortho")
    np.testing.assert_allclose(f[0, 0].numpy(), want, atol=1e-10)
    back = FourierUnit._irfft2(re, im, size[1])
    np.testing.assert_allclose(back.numpy(), x.numpy(), atol=1e-10)  # the inverse undoes it
    # the whole Fourier unit: FFT path == matrix (ONNX-friendly) path
    fu = FourierUnit(3, 3)
    y = torch.randn(2, 3, *size)
    a = fu(y)
    try:
        FourierUnit.dft_matmul = True
        b = fu(y)
    finally:
        FourierUnit.dft_matmul = False
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_pushpull_fill_is_exact_on_flat_colour_and_close_on_gradients():
    hole = torch.zeros(1, 1, 41, 57, dtype=torch.bool)
    hole[..., 3:38, 10:50] = True  # wide: most of the image
    hole[..., 0, :] = True  # touches the border
    flat = torch.tensor([153, 38, 25]).view(1, 3, 1, 1).float().div(255).expand(1, 3, 41, 57)
    assert (pushpull_fill(flat, hole) - flat).abs().max() < 1e-6
    ramp = torch.linspace(0, 1, 57).view(1, 1, 1, 57).expand(1, 3, 41, 57)
    assert (pushpull_fill(ramp, hole) - ramp).abs().max() < 0.06  # 15 levels in 255
    assert torch.equal(pushpull_fill(ramp, torch.zeros_like(hole)), ramp)
    smooth = pushpull_fill(ramp, hole, smooth=30)  # relaxed towards the harmonic fill: a ramp is harmonic
    assert (smooth - ramp).abs().max() < (pushpull_fill(ramp, hole) - ramp).abs().max()
    assert (pushpull_fill(flat, hole, smooth=30) - flat).abs().max() < 1e-6
    assert torch.equal(smooth[~hole.expand_as(ramp)], ramp[~hole.expand_as(ramp)])  # known pixels untouched


def test_harmonic_sweeps_over_the_holes_box_equal_whole_image_sweeps():
    """The Jacobi sweeps run on the holes' bounding box only; that must be the whole image's sweeps
    bit for bit: holes inside, at each border and in a corner, one or two boxes, a batch."""
    from resgan.restore.ffc import _jacobi_sweeps

    def whole_image(y, x, hole, sweeps):
        for _ in range(sweeps):
            p = torch.nn.functional.pad(y, (1, 1, 1, 1), mode="replicate")
            mean4 = (p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:]) * 0.25
            y = torch.where(hole, mean4, x)
        return y

    g = torch.Generator().manual_seed(3)
    boxes = [[(10, 20, 12, 30)], [(0, 6, 5, 15)], [(30, 37, 40, 50)], [(0, 4, 0, 4)], [(0, 37, 48, 50)],
             [(5, 9, 5, 9), (25, 30, 35, 44)], [(1, 36, 1, 49)]]
    for spec in boxes:
        x = torch.rand(2, 3, 37, 50, generator=g)
        hole = torch.zeros(2, 1, 37, 50, dtype=torch.bool)
        for i, (a, b, c, d) in enumerate(spec):
            hole[i % 2, :, a:b, c:d] = True
        hole = hole.expand_as(x)
        y = torch.where(hole, torch.rand(2, 3, 37, 50, generator=g), x)
        assert torch.equal(_jacobi_sweeps(y, x, hole, 7), whole_image(y, x, hole, 7)), spec


def test_ffc_net_keeps_known_pixels_and_starts_as_pushpull():
    net = FFCInpaintNet(3, width=8, blocks=2, downs=2).eval()
    for h, w in ((33, 47), (32, 48)):  # any size (padded to the net's multiple inside pad_forward)
        x = torch.rand(1, 3, h, w)
        hole = torch.zeros(1, 1, h, w)
        hole[..., 8:25, 10:40] = 1
        with torch.no_grad():
            y = pad_forward(net, x, hole)
        assert y.shape == x.shape
        assert torch.equal(y[(hole == 0).expand_as(y)], x[(hole == 0).expand_as(x)])
    torch.testing.assert_close(y, pushpull_fill(x, hole > 0.5))  # the correction starts at zero


def test_lama_masks_are_seeded_capped_and_sized_by_family():
    a = [dg.lama_mask(128, 96, np.random.default_rng(3), fam) for fam in ("thin", "medium", "thick")]
    b = [dg.lama_mask(128, 96, np.random.default_rng(3), fam) for fam in ("thin", "medium", "thick")]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    rng = np.random.default_rng(0)
    ratios = {f: np.mean([dg.lama_mask(96, 96, rng, f).mean() for _ in range(30)]) for f in ("thin", "thick")}
    assert ratios["thin"] < ratios["thick"]
    m = dg.random_masks(20, 64, 64, rng, "lama")
    assert m.shape == (20, 1, 64, 64) and 0 < m.mean(dim=(1, 2, 3)).min() and m.mean(dim=(1, 2, 3)).max() <= 0.5


def test_crops_at_every_step_are_seeded_and_photos_turned():
    imgs = [np.zeros((3, 40, 60), np.uint8), np.ones((3, 62, 41), np.uint8)]
    whole = whole_images(imgs, 32)
    assert whole.shape == (2, 3, 40, 60)  # the portrait one turned, both cropped to the smallest
    t = torch.from_numpy(whole).float()
    torch.manual_seed(1)
    a = random_crops(t, 32)
    torch.manual_seed(1)
    assert a.shape == (2, 3, 32, 32) and torch.equal(a, random_crops(t, 32))


def test_quantized_noise_gives_8bit_inputs():
    cfg = config_from_dict({"task": "restore", "data": {"channels": 1}, "restore": {
        "kind": "denoise", "sigma": 0, "sigma_max": 75, "noise_map": True, "quantize": 1.0, "arch": "unet",
        "width": 4, "blocks": 1, "crop": 32, "patches_per_image": 0}})
    task = Restorer(cfg, torch.device("cpu"))
    noisy, sigma = task.degrade(torch.rand(4, 1, 32, 32))
    assert noisy.min() >= 0 and noisy.max() <= 1
    assert torch.equal(noisy, (noisy * 255).round() / 255)
    assert sigma.shape == (4,) and float(sigma.max()) <= 75 / 255


def _ffc_gan(steps: int) -> dict:
    return {"task": "restore", "data": {"name": "folder", "channels": 3, "limit": 6}, "restore": {
        "kind": "inpaint", "arch": "ffc", "width": 8, "blocks": 2, "levels": 2, "slope": 0.2, "mask": "lama",
        "crop": 48, "patches_per_image": 0, "adv_weight": 0.01, "fm_weight": 0.1, "gan_loss": "nonsaturating",
        "r1_gamma": 0.01, "d_width": 8, "val_crop": 64, "val_limit": 1, "val_every": 1000},
        "train": {"steps": steps, "batch_size": 4, "lr_g": 2e-3, "lr_d": 1e-3, "beta1": 0.5, "ema_decay": 0.0,
                  "log_every": 1, "sample_every": 1000, "ckpt_every": 1000}}


def test_adversarial_ffc_inpainting_trains_and_resumes_exactly(tmp_path):
    skd = pytest.importorskip("skimage.data")
    from PIL import Image

    from resgan.checkpoint import load_checkpoint

    # one photo and one hole shape (flipped at random): a signal a 40-step run can learn
    (tmp_path / "img").mkdir()
    (tmp_path / "mask").mkdir()
    Image.fromarray(skd.astronaut()[0:256:2, 100:356:2]).save(tmp_path / "img" / "a.png")
    hole = np.zeros((48, 48), np.uint8)
    hole[16:32, 8:40] = 255
    Image.fromarray(hole).save(tmp_path / "mask" / "m.png")

    def cfg(steps: int):
        d = _ffc_gan(steps)
        d["data"] = {"name": "folder", "channels": 3, "path": str(tmp_path / "img")}
        d["restore"].update(patches_per_image=16, val_path=str(tmp_path / "img"), val_crop=96, mask="folder",
                            mask_path=str(tmp_path / "mask"), r1_every=2)  # lazy R1, resumed at an odd step
        d["train"]["lr_g"] = 1e-3  # at 2e-3 the net's gain swung between -0.1 and +0.7 dB with the CPU's precision
        return config_from_dict(d)

    start = Restorer(cfg(40), torch.device("cpu")).validate(force=True)
    train(cfg(40), tmp_path / "a", progress=False)
    logs = [json.loads(ln) for ln in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    steps = [x for x in logs if "loss_pix" in x]
    assert all("loss_fm" in x and "loss_adv" in x for x in steps)
    assert [x["step"] for x in steps if "r1" in x] == list(range(1, 41, 2))  # lazy R1: every second D step
    end = [x for x in logs if "val_loss" in x][-1]
    assert end["val_loss"] < 0.95 * start["val_loss"]
    assert end["psnr"] > end["psnr_fill"] + 0.25  # the net adds to its push-pull base (+0.5 dB here)
    train(cfg(15), tmp_path / "b", progress=False)
    train(cfg(40), tmp_path / "b", resume=True, progress=False)
    ta, _ = load_checkpoint(tmp_path / "a" / "latest.safetensors")
    tb, _ = load_checkpoint(tmp_path / "b" / "latest.safetensors")
    for k in ta:
        if k.startswith(("net.", "D.")):
            assert torch.equal(ta[k], tb[k]), k


def test_lazy_r1_scales_the_penalty_by_its_interval():
    """With ``r1_every = N`` the D step's loss carries N x the penalty on every Nth step and none between."""
    def d_losses(every: int) -> list[tuple[float, float | None]]:
        torch.manual_seed(0)
        d = _ffc_gan(10)
        d["restore"].update(r1_gamma=10.0, r1_every=every)
        d["train"]["precision"] = "fp32"
        cfg = config_from_dict(d)
        task = Restorer(cfg, torch.device("cpu"))
        task.opt_d.param_groups[0]["lr"] = 0.0  # D stays put, so the two runs see the same D
        real, fake, out = torch.rand(2, 3, 48, 48), torch.rand(2, 3, 48, 48), []
        for step in range(4):
            task.steps_done = step
            loss, stats = task.d_step(real, fake, None)
            out.append((loss, stats.get("r1")))
        return out

    every1, every3 = d_losses(1), d_losses(3)
    assert [r is not None for _, r in every3] == [True, False, False, True]
    for (loss1, r1), (loss3, r3) in zip(every1, every3, strict=True):  # gamma / 2 = 5
        penalty = 3 * 5.0 * r1 if r3 is not None else 0.0
        assert loss3 == pytest.approx(loss1 - 5.0 * r1 + penalty, rel=1e-5)


@pytest.mark.parametrize("layers, field", [(3, 38), (4, 78)])
def test_patch_discriminator_depth_sets_its_receptive_field(layers, field):
    """``restore.d_layers``: each stride-2 conv halves the logits and roughly doubles the patch a logit sees
    (measured from the input gradient of one centre logit); 3 layers keep the original names and shapes."""
    torch.manual_seed(0)
    d = PatchDiscriminator(3, 8, layers)
    x = torch.rand(1, 3, 192, 192, requires_grad=True)
    logits, feats = d(x)
    assert logits.shape[-1] == 192 // 2 ** layers and len(feats) == layers
    c = logits.shape[-1] // 2
    seen = torch.autograd.grad(logits[0, 0, c, c], x)[0].abs().sum((0, 1)) > 0
    rows, cols = seen.any(1).nonzero(), seen.any(0).nonzero()
    assert int(rows.max() - rows.min() + 1) == field == int(cols.max() - cols.min() + 1)
    if layers == 3:
        weights = {k: tuple(v.shape) for k, v in d.state_dict().items() if k.endswith("weight.original")}
        assert list(weights.values()) == [(8, 3, 4, 4), (16, 8, 4, 4), (32, 16, 4, 4), (1, 32, 3, 3)]
        assert list(weights)[-1].startswith("out.")
    d_cfg = _ffc_gan(10)
    d_cfg["restore"]["d_layers"] = layers
    assert len(Restorer(config_from_dict(d_cfg), torch.device("cpu")).D.layers) == layers


def test_build_net_picks_the_architecture():
    def net(**r):
        return build_net(config_from_dict({"task": "restore", "restore": {"width": 8, "blocks": 1, **r}}))

    assert isinstance(net(kind="inpaint", arch="ffc", crop=64), FFCInpaintNet)
    assert isinstance(net(kind="denoise", arch="unet", crop=64), UNetRestorer)
    with pytest.raises(Exception, match="does not fit"):
        net(kind="denoise", arch="ffc")


def test_rfdn_starts_as_bicubic_on_any_size_and_presets_build():
    import torch.nn.functional as F

    from resgan.config import load_config
    from resgan.restore.models import RFDNet

    net = RFDNet(3, width=8, blocks=2, scale=4).eval()
    for size in ((23, 31), (64, 40)):
        x = torch.rand(1, 3, *size)
        with torch.no_grad():
            y = net(x)
        assert y.shape == (1, 3, size[0] * 4, size[1] * 4)
        torch.testing.assert_close(y, F.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False))
    assert isinstance(build_net(load_config("sr_x4")), RFDNet)
    for name in ("jpeg_gray", "jpeg_color", "denoise_gray", "denoise_color"):
        assert isinstance(build_net(load_config(name)), UNetRestorer)
    assert sum(p.numel() for p in build_net(load_config("inpaint")).parameters()) < 10e6
