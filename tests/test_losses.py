import math

import pytest
import torch

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
    assert losses.r1_penalty(out, x).item() == pytest.approx(9.0)  # ||w||^2


def test_unknown_loss():
    with pytest.raises(ResganError, match="unknown loss 'bogus'"):
        losses.get_loss("bogus")
