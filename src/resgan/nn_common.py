"""Training pieces both tasks share (below :mod:`resgan.gan` and :mod:`resgan.restore`, above torch only).

* EMA of a trained net: :func:`frozen_copy` makes the averaged copy, :func:`ema_update` moves it;
* the learning-rate schedule: :func:`lr_fraction` and :func:`set_lr`;
* adversarial losses on discriminator logits, non-saturating (softplus form) and hinge, optionally with
  a "fake" target map (inpainting: only the patches holding hole pixels are fake, LaMa):
  :func:`d_loss` / :func:`g_loss`; the GAN task's plain pairs :func:`nonsaturating_d` ... are these
  without a map;
* the R1 penalty (:func:`r1_penalty`) and spectral norm (:func:`sn`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .errors import ResganError

ADV_LOSSES = ("nonsaturating", "hinge")  # what d_loss / g_loss take


# ---------------------------------------------------------------------------------- EMA, learning rate
def freeze(module: nn.Module) -> nn.Module:
    """``module`` in eval mode with no parameter requiring gradients (for good: see accel.frozen for a block)."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def frozen_copy(module: nn.Module) -> nn.Module:
    """A frozen deep copy of ``module``: the start of its EMA."""
    return freeze(copy.deepcopy(module))


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float, average: bool = True, buffers: bool = False) -> None:
    """``ema``'s parameters move towards ``model``'s by ``1 - decay`` (copied outright when ``decay`` is 0 or
    ``average`` is False, e.g. before ``train.ema_start``); ``buffers``: BatchNorm statistics etc. are copied."""
    params, ema_params = list(model.parameters()), list(ema.parameters())
    if decay == 0 or not average:
        torch._foreach_copy_(ema_params, params)
    else:
        torch._foreach_lerp_(ema_params, params, 1.0 - decay)
    if buffers:
        for b_ema, b in zip(ema.buffers(), model.buffers()):
            b_ema.copy_(b)


def lr_fraction(steps_done: int, steps: int, decay: str) -> float:
    """The share of the base learning rate at ``steps_done`` of ``steps``: ``linear`` decays to 0, ``none`` keeps 1."""
    return max(0.0, 1.0 - steps_done / steps) if decay == "linear" else 1.0


def set_lr(groups: Iterable[tuple[torch.optim.Optimizer | None, float]], frac: float) -> None:
    """Each optimizer's learning rate to its base x ``frac`` (None optimizers are skipped)."""
    for opt, base in groups:
        if opt is not None:
            for group in opt.param_groups:
                group["lr"] = base * frac


# ---------------------------------------------------------------------------------- adversarial losses
def nonsaturating_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """-E[log D(x)] - E[log(1 - D(G(z)))] with D = sigmoid(logit), via softplus."""
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def nonsaturating_g(fake: torch.Tensor) -> torch.Tensor:
    """-E[log D(G(z))] via softplus."""
    return F.softplus(-fake).mean()


def hinge_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def hinge_g(fake: torch.Tensor) -> torch.Tensor:
    return -fake.mean()


def fake_target(logits: torch.Tensor, hole: torch.Tensor | None) -> torch.Tensor | None:
    """A hole mask at the logits' resolution: a patch is fake if it holds any hole pixel (None: all fake)."""
    return None if hole is None else F.adaptive_max_pool2d(hole.float(), logits.shape[-2:])


def _check(kind: str) -> None:
    if kind not in ADV_LOSSES:
        raise ResganError(f"unknown adversarial loss {kind!r}; choose one of {', '.join(ADV_LOSSES)}")


def d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor, hole: torch.Tensor | None = None) -> torch.Tensor:
    """The discriminator's loss; with ``hole``, D's target on the fake image is "fake" on the patches
    holding hole pixels and "real" elsewhere (the rest of an inpainting is the real image)."""
    _check(kind)
    m = fake_target(fake, hole)
    if m is None:
        return hinge_d(real, fake) if kind == "hinge" else nonsaturating_d(real, fake)
    if kind == "hinge":
        loss_fake = F.relu(1 + fake) * m + F.relu(1 - fake) * (1 - m)
        return F.relu(1 - real).mean() + loss_fake.mean()
    loss_fake = F.softplus(fake) * m + F.softplus(-fake) * (1 - m)
    return F.softplus(-real).mean() + loss_fake.mean()


def g_loss(kind: str, fake: torch.Tensor, hole: torch.Tensor | None = None) -> torch.Tensor:
    """The generator's loss, averaged over the fake patches (all of them without ``hole``)."""
    _check(kind)
    m = fake_target(fake, hole)
    if m is None:
        return hinge_g(fake) if kind == "hinge" else nonsaturating_g(fake)
    e = -fake if kind == "hinge" else F.softplus(-fake)
    return (e * m).sum() / m.sum().clamp_min(1.0)


# ---------------------------------------------------------------------------------- regularisers
def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1: E[||grad_x D(x)||^2] on real images (Mescheder et al. 2018); ``real`` must require grad."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def sn(module: nn.Module, use: bool = True) -> nn.Module:
    """Wrap ``module`` in spectral norm (the parametrization form) when ``use``."""
    return spectral_norm(module) if use else module
