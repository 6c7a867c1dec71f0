import pytest
import torch

from resgan.errors import ResganError
from resgan.gan.blocks import ConditionalBatchNorm2d, DBlock, DBlockOptimized, GBlock, MinibatchStd
from resgan.gan.models import RESOLUTIONS, ResNetDiscriminator, ResNetGenerator


@pytest.mark.parametrize("resolution", RESOLUTIONS)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("num_classes", [0, 10])
def test_shapes(resolution, channels, num_classes):
    G = ResNetGenerator(resolution, channels, z_dim=16, width=4, num_classes=num_classes)
    D = ResNetDiscriminator(resolution, channels, width=4, num_classes=num_classes)
    z = torch.randn(3, 16)
    y = torch.tensor([0, 3, 9]) if num_classes else None
    x = G(z, y)
    assert x.shape == (3, channels, resolution, resolution)
    assert x.min() >= -1 and x.max() <= 1
    assert D(x, y).shape == (3,)


@pytest.mark.parametrize("norm", ["sn", "bn", "none"])
def test_discriminator_norms(norm):
    D = ResNetDiscriminator(32, 3, width=8, num_classes=4, norm=norm)
    has_sn = any("parametrizations" in n for n, _ in D.named_parameters())
    has_bn = any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())
    assert has_sn == (norm == "sn") and has_bn == (norm == "bn")
    assert D(torch.randn(2, 3, 32, 32), torch.tensor([1, 2])).shape == (2,)


def test_unsupported_resolution():
    with pytest.raises(ResganError, match="unsupported resolution 48"):
        ResNetGenerator(48)
    with pytest.raises(ResganError, match="unsupported resolution"):
        ResNetDiscriminator(24)


def _zero(conv):
    w = conv.parametrizations.weight.original if hasattr(conv, "parametrizations") else conv.weight
    with torch.no_grad():
        w.zero_()
        conv.bias.zero_()


def test_gblock_residual_identity():
    block = GBlock(6, 4, num_classes=3).train()
    x, y = torch.randn(2, 6, 5, 5), torch.tensor([0, 2])
    assert not torch.allclose(block(x, y), block.shortcut(x))
    _zero(block.conv2)  # zero the residual branch's last conv: H(x) = 0
    out = block(x, y)
    assert out.shape == (2, 4, 10, 10)
    torch.testing.assert_close(out, block.shortcut(x))
    # the shortcut is a 1x1 conv on the nearest-upsampled input
    up = x.repeat_interleave(2, 2).repeat_interleave(2, 3)
    torch.testing.assert_close(out, torch.nn.functional.conv2d(up, block.conv_sc.weight, block.conv_sc.bias))


@pytest.mark.parametrize("block", [DBlock(4, 6, down=True), DBlock(5, 5, down=False, norm="none"),
                                   DBlockOptimized(3, 6)])
def test_dblock_residual_identity(block):
    x = torch.randn(2, block.conv1.in_channels, 8, 8)
    block.eval()
    assert not torch.allclose(block(x), block.shortcut(x))
    conv = block.conv2
    if hasattr(conv, "parametrizations"):  # spectral norm of a zero matrix is 0/0: drop SN on this conv
        torch.nn.utils.parametrize.remove_parametrizations(conv, "weight")
    with torch.no_grad():  # zero the residual branch's last conv: H(x) = 0
        conv.weight.zero_()
        conv.bias.zero_()
    torch.testing.assert_close(block(x), block.shortcut(x))


def test_conditional_batchnorm_projected_embedding():
    cbn = ConditionalBatchNorm2d(2, num_classes=3, embed_dim=4).train()
    x, y = torch.randn(4, 2, 3, 3), torch.tensor([0, 1, 2, 1])
    normed = torch.nn.functional.batch_norm(x, None, None, training=True)
    torch.testing.assert_close(cbn(x, y), normed)  # zero-initialised projections: plain BN at first
    with torch.no_grad():
        cbn.gain[1].weight.normal_()
        cbn.bias[1].weight.normal_()
    e = cbn.embed.weight[1]
    gain, bias = 1 + cbn.gain[1].weight @ e, cbn.bias[1].weight @ e
    torch.testing.assert_close(cbn(x, y)[1], normed[1] * gain[:, None, None] + bias[:, None, None])


def test_conditional_batchnorm_per_class():
    cbn = ConditionalBatchNorm2d(2, num_classes=3).train()
    with torch.no_grad():
        cbn.gain.weight[1] = torch.tensor([2.0, 3.0])
        cbn.bias.weight[1] = torch.tensor([0.5, -1.0])
    x = torch.randn(4, 2, 3, 3)
    normed = torch.nn.functional.batch_norm(x, None, None, training=True)
    out = cbn(x, torch.tensor([0, 1, 0, 1]))
    torch.testing.assert_close(out[0], normed[0])
    torch.testing.assert_close(out[1], normed[1] * torch.tensor([2.0, 3.0])[:, None, None]
                               + torch.tensor([0.5, -1.0])[:, None, None])


def test_projection_uses_labels():
    torch.manual_seed(0)
    D = ResNetDiscriminator(16, 1, width=8, num_classes=5).eval()
    x = torch.randn(1, 1, 16, 16)
    a, b = D(x, torch.tensor([0])), D(x, torch.tensor([4]))
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError):
        D(x)


def test_minibatch_std_sees_collapse_and_keeps_groups_apart():
    layer = MinibatchStd(4)
    varied = torch.randn(8, 3, 5, 5)
    collapsed = varied[:1].expand(8, -1, -1, -1)
    out = layer(torch.cat([varied, collapsed]))
    assert out.shape == (16, 4, 5, 5)
    assert (out[:8, 3] > 0.5).all() and (out[8:, 3] < 1e-3).all()  # a collapsed group has ~0 spread
    changed = layer(torch.cat([varied, torch.randn(8, 3, 5, 5)]))
    assert torch.equal(changed[:8], out[:8])  # groups of consecutive samples: real never sees fake
    with pytest.raises(ValueError, match="multiple of the group size"):
        layer(torch.randn(6, 3, 5, 5))


def test_discriminator_with_minibatch_std_trains_a_step():
    from resgan.config import load_config
    from resgan.gan.task import GAN

    with pytest.raises(ResganError, match="d_mbstd"):
        load_config("digits", ["gan.d_mbstd=3", "train.batch_size=16"])
    cfg = load_config("digits", ["gan.d_mbstd=4", "train.batch_size=8", "data.resolution=16",
                                 "gan.g_width=8", "gan.d_width=8", "gan.num_classes=10"])
    gan = GAN(cfg, torch.device("cpu"))
    assert any(isinstance(m, MinibatchStd) for m in gan.D.modules())
    real = torch.rand(8, 1, 16, 16) * 2 - 1
    stats = gan.train_step(lambda: (real, torch.randint(0, 10, (8,))))
    assert all(torch.isfinite(torch.tensor(v)) for v in stats.values())
