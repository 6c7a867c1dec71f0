"""Restoration nets: any size, tiles, exact known pixels."""

import numpy as np
import pytest
import torch
from helpers import tiny_cfg

from resgan.restore.infer import RestoreModel, restore_array, tiled_forward
from resgan.restore.models import InpaintNet, PatchDiscriminator, RestoreNet, SRNet, build_net, pad_forward

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny nets: one thread (conftest)


def randomised(net):
    torch.manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.05)
    return net.eval()


@pytest.mark.parametrize("h,w", [(17, 23), (32, 32), (5, 9), (31, 1)])
def test_any_size_padding_round_trips(h, w):
    for net, s in ((randomised(RestoreNet(1, 8, 1, [1, 2], down=2)), 1), (randomised(SRNet(1, 8, 1, 3)), 3),
                   (randomised(RestoreNet(1, 8, 1, down=4)), 1)):
        x = torch.rand(2, 1, h, w)
        y = pad_forward(net, x)
        assert y.shape == (2, 1, h * s, w * s)
    net = randomised(InpaintNet(3, 8, 1))
    x, m = torch.rand(1, 3, h, w), (torch.rand(1, 1, h, w) > 0.5).float()
    assert pad_forward(net, x, m).shape == x.shape


def test_global_residual_starts_as_identity():
    cfg = tiny_cfg("denoise")
    net = build_net(cfg)
    x = torch.rand(1, 1, 16, 16)
    assert torch.equal(net(x), x)
    sr = SRNet(3, 8, 1, 2)
    lr = torch.rand(1, 3, 8, 8)
    assert torch.allclose(sr(lr), torch.nn.functional.interpolate(lr, scale_factor=2, mode="bicubic"))


def test_tiled_equals_untiled_on_an_image_that_fits():
    torch.manual_seed(1)
    for net in (randomised(RestoreNet(1, 8, 2, [1, 2], down=2)), randomised(SRNet(1, 8, 1, 2))):
        with torch.no_grad():
            for p in net.parameters():
                p.mul_(0.5)
        x = torch.rand(1, 1, 100, 130)
        whole = pad_forward(net, x)
        tiled = tiled_forward(net, x, tile=48, overlap=16)
        assert tiled.shape == whole.shape
        assert (tiled - whole).abs().max() < 2e-3, (tiled - whole).abs().max()
        assert torch.equal(tiled_forward(net, x, tile=512), whole)


def test_inpainting_keeps_known_pixels_bit_identical():
    net = randomised(InpaintNet(3, 8, 1))
    x = torch.rand(2, 3, 33, 47)
    m = (torch.rand(2, 1, 33, 47) > 0.7).float()
    y = net(torch.nn.functional.pad(x, (0, 1, 0, 3), mode="reflect"), torch.nn.functional.pad(m, (0, 1, 0, 3)))
    y = pad_forward(net, x, m)
    known = (m < 0.5).expand_as(x)
    assert torch.equal(y[known], x[known]) and not torch.equal(y[~known], x[~known])
    model = RestoreModel(net, tiny_cfg("inpaint", 3), "test")
    img = np.random.default_rng(0).random((40, 50, 3)).astype(np.float32)
    mask = np.random.default_rng(1).random((40, 50)) > 0.6
    out = restore_array(model, img, mask, tile=32, overlap=8)
    assert np.array_equal(out[~mask], img[~mask])


@pytest.mark.parametrize("arch", ["ffc", "gated"])
def test_inpainting_never_reads_the_holes_content(arch):
    """A fill depends on the known pixels only: a hole touching the padded bottom-right border (a size that
    is not the net's multiple) once let reflect padding mirror the hole's content in as known pixels."""
    from resgan.restore.ffc import FFCInpaintNet

    net = randomised(FFCInpaintNet(3, 8, 1, 2) if arch == "ffc" else InpaintNet(3, 8, 1))
    h, w = 45, 61  # neither a multiple of 4 nor of 8
    x = torch.rand(1, 3, h, w)
    hole = torch.zeros(1, 1, h, w)
    hole[..., 30:, 40:] = 1  # the bottom-right corner
    hole[..., 5:12, 3:20] = 1
    other = torch.where(hole > 0.5, torch.rand_like(x), x)  # the same image, other content in the holes
    with torch.no_grad():
        assert torch.equal(pad_forward(net, x, hole), pad_forward(net, other, hole))


def test_patch_discriminator_features():
    d = PatchDiscriminator(3, 8)
    logits, feats = d(torch.rand(2, 3, 64, 64))
    assert logits.shape == (2, 1, 8, 8) and len(feats) == 3


def test_noise_map_net_needs_sigma():
    net = RestoreNet(1, 8, 1, noise_map=True)
    with pytest.raises(Exception, match="sigma"):
        net(torch.rand(1, 1, 8, 8))
    assert net(torch.rand(1, 1, 8, 8), torch.tensor([0.1])).shape == (1, 1, 8, 8)


def test_inpainting_runs_whole_images_so_holes_across_tile_edges_have_no_seams():
    from resgan.restore.ffc import FFCInpaintNet

    net = randomised(FFCInpaintNet(3, 8, 1, 2)).eval()
    model = RestoreModel(net, tiny_cfg("inpaint", 3), "test")
    img = np.random.default_rng(0).random((600, 700, 3)).astype(np.float32)
    mask = np.zeros((600, 700), bool)
    mask[400:560, 380:640] = True  # crosses the 512-px tile edges of the other tasks
    with torch.no_grad():
        default = restore_array(model, img, mask)  # tile 512 asked, but inpainting keeps the whole image
        whole = restore_array(model, img, mask, tile=0)
    assert np.array_equal(default, whole)
