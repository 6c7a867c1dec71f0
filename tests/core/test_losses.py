import math

import pytest
import torch

from resgan import nn_common as nc
from resgan.errors import ResganError
from resgan.gan import losses

REAL = torch.tensor([2.0, -0.5, 0.3])
FAKE = torch.tensor([-1.0, 0.7, 1.5])


def sig(v):
    return 1 / (1 + math.exp(-v))


def test_nonsaturating_matches_formula():
    # L_D = -E[log D(x)] - E[log(1 - D(G(z)))], L_G = -E[log D(G(z))], D = sigmoid(logit)
    ld = -sum(math.log(sig(r)) for r in REAL.tolist()) / 3 - sum(math.log(1 - sig(f)) for f in FAKE.tolist()) / 3
    lg = -sum(math.log(sig(f)) for f in FAKE.tolist()) / 3
    assert losses.nonsaturating_d(REAL, FAKE).item() == pytest.approx(ld, rel=1e-6)
    assert losses.nonsaturating_g(FAKE).item() == pytest.approx(lg, rel=1e-6)


def test_nonsaturating_is_stable_for_large_logits():
    big = torch.tensor([200.0, -200.0])
    assert torch.isfinite(losses.nonsaturating_d(big, big))
    assert losses.nonsaturating_g(torch.tensor([-200.0])).item() == pytest.approx(200.0)


def test_hinge_matches_formula():
    ld = sum(max(0, 1 - r) for r in REAL.tolist()) / 3 + sum(max(0, 1 + f) for f in FAKE.tolist()) / 3
    assert losses.hinge_d(REAL, FAKE).item() == pytest.approx(ld)
    assert losses.hinge_g(FAKE).item() == pytest.approx(-FAKE.mean().item())


def test_lsgan_matches_formula():
    ld = 0.5 * sum((r - 1) ** 2 for r in REAL.tolist()) / 3 + 0.5 * sum(f**2 for f in FAKE.tolist()) / 3
    lg = 0.5 * sum((f - 1) ** 2 for f in FAKE.tolist()) / 3
    assert losses.lsgan_d(REAL, FAKE).item() == pytest.approx(ld)
    assert losses.lsgan_g(FAKE).item() == pytest.approx(lg)


def test_wgan_and_gradient_penalty():
    assert losses.wgan_d(REAL, FAKE).item() == pytest.approx(FAKE.mean().item() - REAL.mean().item())

    class Linear(torch.nn.Module):  # D(x) = <w, x>: gradient norm is ||w|| everywhere
        def __init__(self, w):
            super().__init__()
            self.w = w

        def forward(self, x, y=None):
            return (x.flatten(1) * self.w).sum(1)

    w = torch.tensor([3.0, 4.0, 0.0, 0.0])  # ||w|| = 5 -> penalty (5 - 1)^2 = 16
    real, fake = torch.randn(6, 1, 2, 2), torch.randn(6, 1, 2, 2)
    assert losses.gradient_penalty(Linear(w), real, fake, None).item() == pytest.approx(16.0)


def test_r1_penalty():
    x = torch.randn(5, 1, 2, 2, requires_grad=True)
    w = torch.tensor([1.0, 2.0, 2.0, 0.0])
    out = (x.flatten(1) * w).sum(1)
    assert nc.r1_penalty(out, x).item() == pytest.approx(9.0)  # ||w||^2


@pytest.mark.parametrize("kind", ["hinge", "nonsaturating"])
def test_masked_adversarial_losses(kind):
    """The shared (restore) losses: without a mask, the GAN task's pair itself; with one, D's fake target
    is the patches holding hole pixels (the rest is real) and G's loss averages over those patches only."""
    d_pair, g_pair = losses.get_loss(kind)
    real, fake = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    assert torch.equal(nc.d_loss(kind, real, fake), d_pair(real, fake))
    assert torch.equal(nc.g_loss(kind, fake), g_pair(fake))
    hole = torch.zeros(2, 1, 16, 16)
    hole[:, :, :4, :4] = 1  # the top-left patch of each image (a 4x4 block of pixels -> logit [0, 0])
    hole[1, :, 15, 15] = 1  # one pixel makes the bottom-right patch fake
    m = nc.fake_target(fake, hole)
    assert m.sum() == 3 and m[0, 0, 0, 0] == m[1, 0, 0, 0] == m[1, 0, 3, 3] == 1
    f_fake, f_real = (lambda v: torch.relu(1 + v), lambda v: torch.relu(1 - v)) if kind == "hinge" else \
        (lambda v: torch.nn.functional.softplus(v), lambda v: torch.nn.functional.softplus(-v))
    want_d = f_real(real).mean() + torch.where(m > 0, f_fake(fake), f_real(fake)).mean()
    assert nc.d_loss(kind, real, fake, hole).item() == pytest.approx(want_d.item(), rel=1e-6)
    e = -fake if kind == "hinge" else torch.nn.functional.softplus(-fake)
    assert nc.g_loss(kind, fake, hole).item() == pytest.approx(e[m > 0].mean().item(), rel=1e-6)
    assert nc.g_loss(kind, fake, torch.zeros_like(hole)).item() == 0.0  # no fake patch: nothing to fool
    with pytest.raises(ResganError, match="unknown adversarial loss 'wgan-gp'"):
        nc.d_loss("wgan-gp", real, fake)


def test_ema_update_and_lr_schedule():
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    ema = nc.frozen_copy(net)
    assert not ema.training and not any(p.requires_grad for p in ema.parameters())
    assert all(p.requires_grad for p in net.parameters())
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    net[1].running_mean.fill_(5.0)
    before = [p.clone() for p in ema.parameters()]
    nc.ema_update(ema, net, 0.75)  # 1/4 of the way, buffers left alone
    for b, e, p in zip(before, ema.parameters(), net.parameters()):
        assert torch.allclose(e, b + 0.25 * (p - b))
    assert ema[1].running_mean.abs().sum() == 0
    nc.ema_update(ema, net, 0.75, average=False, buffers=True)  # before ema_start: a copy
    assert all(torch.equal(e, p) for e, p in zip(ema.parameters(), net.parameters()))
    assert torch.equal(ema[1].running_mean, net[1].running_mean)
    opt_a = torch.optim.Adam(net.parameters(), lr=1.0)
    assert [nc.lr_fraction(s, 10, "linear") for s in (0, 5, 10, 12)] == [1.0, 0.5, 0.0, 0.0]
    assert nc.lr_fraction(7, 10, "none") == 1.0
    nc.set_lr(((opt_a, 2e-4), (None, 1.0)), 0.5)
    assert opt_a.param_groups[0]["lr"] == 1e-4


def test_unknown_loss():
    with pytest.raises(ResganError, match="unknown loss 'bogus'"):
        losses.get_loss("bogus")
