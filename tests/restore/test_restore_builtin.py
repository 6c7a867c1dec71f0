"""The shipped restoration weights load and improve PSNR on a small scikit-image case."""

import numpy as np
import pytest
import torch

from resgan.metrics.psnr_ssim import psnr
from resgan.restore import degradations as dg
from resgan.restore.infer import (
    COLOUR_DEFAULTS,
    DEFAULT_OVERLAP,
    RESTORE_TASKS,
    default_models,
    load_model,
    restore_array,
    tiled_forward,
)
from resgan.zoo import BUILTINS

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny nets: one thread (conftest)


skd = pytest.importorskip("skimage.data", reason="the built-in test images come from scikit-image")


def crop(img: np.ndarray, size: int, y: int, x: int) -> np.ndarray:
    a = img[y:y + size, x:x + size].astype(np.float32) / 255
    return a[:, :, None] if a.ndim == 2 else a


def test_every_task_default_is_a_shipped_file():
    for task, name in RESTORE_TASKS.items():
        if name is not None:
            assert name in BUILTINS and load_model(task).kind == task


def test_every_colour_default_is_a_shipped_colour_model():
    for task, name in COLOUR_DEFAULTS.items():
        models = default_models(task)
        assert models[1].channels == 1 and models[3].channels == 3 and models[3].source.endswith(
            BUILTINS[name][1])


def eight_bit_noisy(clean: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """A user's noisy file: noise on the uint8 image, rounded and clipped."""
    noise = np.random.default_rng(seed).normal(0, sigma, clean.shape)
    return (np.clip(np.round(clean * 255 + noise), 0, 255) / 255).astype(np.float32)


@pytest.mark.parametrize("channels", [1, 3])
def test_denoise_builtins_improve_psnr_on_unseen_photos(channels):
    """Photos that are not in the training data (scikit-image's), 8-bit noisy files, known and
    estimated sigma; the model of the image's mode, and a flat colour comes back flat and the same."""
    clean = crop(skd.camera(), 128, 100, 180) if channels == 1 else crop(skd.coffee(), 128, 100, 200)
    model = default_models("denoise")[channels]
    for sigma, gain in ((15, 6), (50, 10)):
        noisy = eight_bit_noisy(clean, sigma)
        before = psnr(noisy, clean, peak=1.0)
        for s in (float(sigma), None):  # known and estimated noise level
            out = restore_array(model, noisy, sigma=s)
            assert psnr(out, clean, peak=1.0) > before + gain, (sigma, s)
    flat = np.ones((96, 96, channels), np.float32) * np.array([153, 38, 25][:channels], np.float32) / 255
    out = restore_array(model, eight_bit_noisy(flat, 25))
    assert np.abs(out.reshape(-1, channels).mean(0) - flat[0, 0]).max() < 2 / 255  # no cast
    assert out.std((0, 1)).max() < 3 / 255  # and no noise left


def test_denoise_builtins_tile_like_whole_images():
    for channels, model in default_models("denoise").items():
        x = torch.from_numpy(eight_bit_noisy(np.full((1, channels, 200, 264), 0.5, np.float32), 25))
        x = x + torch.linspace(0, 0.3, 264)  # not flat: the tiles see different content
        cond = torch.tensor([25 / 255])
        with torch.no_grad():
            whole = tiled_forward(model.net, x, cond, tile=0)
            tiled = tiled_forward(model.net, x, cond, tile=128, overlap=32)
        assert (whole - tiled).abs().max() < 2 / 255, channels


def test_inpaint_builtin_fills_holes_better_than_a_mean_colour():
    clean = crop(skd.astronaut(), 128, 150, 180)
    hole = np.zeros((128, 128), bool)
    hole[50:70, 40:90] = True
    out = restore_array(load_model("inpaint"), clean, hole)
    mean = np.where(hole[:, :, None], clean[~hole].mean(0), clean)
    assert np.array_equal(out[~hole], clean[~hole])
    err_out = np.abs(out - clean)[hole].mean()
    assert err_out < 0.7 * np.abs(mean - clean)[hole].mean()


def test_inpaint_builtin_in_bf16_stays_within_a_level_of_fp32(monkeypatch):
    """Where bf16 is native (RESGAN_CPU_BF16=1 forces it here), the FFC net runs under bf16 autocast: the
    same fill within a level, known pixels exact, a fp32 result; RESGAN_CPU_BF16=0 keeps fp32."""
    clean = crop(skd.astronaut(), 128, 150, 180)
    hole = np.zeros((128, 128), bool)
    hole[30:90, 20:100] = True
    outs = {}
    for env in ("0", "1"):
        monkeypatch.setenv("RESGAN_CPU_BF16", env)
        outs[env] = restore_array(load_model("inpaint"), clean, hole)
        assert outs[env].dtype == np.float32 and np.array_equal(outs[env][~hole], clean[~hole])
    diff = np.abs(outs["1"] - outs["0"])[hole]
    assert 0 < diff.max() < 1 / 255  # bf16 did run, and moved no pixel by a level
    assert np.abs(outs["1"] - clean)[hole].mean() < np.abs(outs["0"] - clean)[hole].mean() + 0.2 / 255


def test_inpaint_builtin_keeps_flat_colours_and_gradients():
    """The reported defect: a flat red with a thin line and a wide box cut out came back (131, 80, 13)."""
    hole = np.zeros((200, 240), bool)
    hole[100:108, 20:220] = True  # an 8-px line
    hole[30:80, 40:90] = True  # a 50-px box
    hole[120:190, 130:230] = True  # a 70 x 100 box
    flat = np.zeros((200, 240, 3), np.float32) + np.array([153, 38, 25], np.float32) / 255
    out = restore_array(load_model("inpaint"), flat, hole)
    assert np.abs(out - flat)[hole].max() < 2 / 255
    yy, xx = np.mgrid[0:200, 0:240].astype(np.float32)
    grad = np.stack([xx / 239, yy / 199, np.full_like(xx, 0.5)], -1)
    out = restore_array(load_model("inpaint"), grad, hole)
    assert np.abs(out - grad)[hole].mean() < 5 / 255


def test_sr_builtin_beats_bicubic():
    hr = torch.from_numpy(crop(skd.astronaut(), 96, 100, 150).transpose(2, 0, 1).copy())[None]
    lr = (dg.bicubic_down(hr, 4).clamp(0, 1) * 255).round() / 255
    out = restore_array(load_model("sr"), lr[0].numpy().transpose(1, 2, 0).copy())
    ours = psnr(torch.from_numpy(out.transpose(2, 0, 1).copy())[None], hr, peak=1.0)
    bicubic = psnr(dg.bicubic_up(lr, 4).clamp(0, 1), hr, peak=1.0)
    assert ours > bicubic + 0.3


def test_sr_builtin_tiles_without_seams():
    """RFDN's attention resamples a pooled map to the tile's size, so tiles cannot match the whole image
    bit for bit; they must match it closely everywhere, with no worse band along the tile edges."""
    x = torch.from_numpy(crop(skd.astronaut(), 160, 120, 140).transpose(2, 0, 1).copy())[None]
    net = load_model("sr").net
    with torch.no_grad():
        whole = tiled_forward(net, x, None, tile=0)
        tiled = tiled_forward(net, x, None, tile=144, overlap=DEFAULT_OVERLAP // 2)
    d = (whole - tiled).abs().amax(1)[0] * 255
    assert d.mean() < 0.1 and torch.quantile(d.flatten(), 0.999) < 3
    seam = d[:, 4 * 80 - 8:4 * 80 + 8]  # 144 - 2 * 32 = 80-px cores: the first vertical tile edge
    assert seam.mean() < 3 * d.mean() + 0.05


def pillow_jpeg(clean: np.ndarray, quality: int) -> np.ndarray:
    """A user's .jpg file: the uint8 image through Pillow's encoder (grey: one channel; colour: 4:2:0)."""
    import io

    from PIL import Image

    u8 = np.round(clean * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(u8[..., 0] if u8.shape[2] == 1 else u8).save(buf, format="JPEG", quality=quality)
    out = np.asarray(Image.open(io.BytesIO(buf.getvalue())), np.float32) / 255
    return out[..., None] if out.ndim == 2 else out


@pytest.mark.parametrize("channels", [1, 3])
def test_jpeg_builtins_remove_artefacts_on_unseen_photos(channels):
    """Pillow-encoded crops of photos not in the training data, at low and mid quality, with the model of
    the image's mode; a flat colour comes out as it went in."""
    clean = crop(skd.camera(), 128, 100, 180) if channels == 1 else crop(skd.coffee(), 128, 100, 200)
    model = default_models("jpeg")[channels]
    for quality, gain in ((10, 1.0), (40, 0.5)):
        coded = pillow_jpeg(clean, quality)
        out = restore_array(model, coded)
        assert psnr(out, clean, peak=1.0) > psnr(coded, clean, peak=1.0) + gain, quality
    # a flat colour: JPEG's colour conversion moves (153, 38, 25) to (156, 40, 25) itself; the model must
    # neither shift the decoded colour nor add texture
    flat = np.ones((96, 96, channels), np.float32) * np.array([153, 38, 25][:channels], np.float32) / 255
    coded = pillow_jpeg(flat, 20)
    out = restore_array(model, coded)
    assert np.abs(out.reshape(-1, channels).mean(0) - coded.reshape(-1, channels).mean(0)).max() < 1 / 255
    assert out.std((0, 1)).max() < 2 / 255


def test_jpeg_builtins_tile_like_whole_images():
    for channels, model in default_models("jpeg").items():
        clean = crop(skd.astronaut() if channels == 3 else skd.camera(), 200, 60, 100)
        x = torch.from_numpy(pillow_jpeg(clean, 20).transpose(2, 0, 1).copy())[None]
        with torch.no_grad():
            whole = tiled_forward(model.net, x, None, tile=0)
            tiled = tiled_forward(model.net, x, None, tile=192, overlap=DEFAULT_OVERLAP)
        assert (whole - tiled).abs().max() < 0.5 / 255, channels  # 2.4 levels off with a 32-px overlap
