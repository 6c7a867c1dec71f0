"""GAN losses computed from discriminator logits.

Each loss is a pair of pure functions: ``d_loss(real_logits, fake_logits)`` and
``g_loss(fake_logits)``. The non-saturating and hinge pairs, and the R1 penalty, are the ones the
restore task uses too (:mod:`resgan.nn_common`); the WGAN gradient penalty needs the discriminator
and is a separate function here.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..errors import ResganError
from ..nn_common import hinge_d, hinge_g, nonsaturating_d, nonsaturating_g


def wgan_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Critic loss without the penalty (added by the trainer through ``gradient_norm_penalty``)."""
    return fake.mean() - real.mean()


def wgan_g(fake: torch.Tensor) -> torch.Tensor:
    return -fake.mean()


def lsgan_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((real - 1.0) ** 2).mean() + 0.5 * (fake**2).mean()


def lsgan_g(fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((fake - 1.0) ** 2).mean()


LOSSES: dict[str, tuple[Callable, Callable]] = {
    "nonsaturating": (nonsaturating_d, nonsaturating_g),
    "hinge": (hinge_d, hinge_g),
    "wgan-gp": (wgan_d, wgan_g),
    "lsgan": (lsgan_d, lsgan_g),
}


def get_loss(name: str) -> tuple[Callable, Callable]:
    if name not in LOSSES:
        raise ResganError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    return LOSSES[name]


def interpolates(real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor | None = None) -> torch.Tensor:
    """Random points between real and fake images (``alpha``: (N, 1, 1, 1) weights, uniform when
    not given), detached and requiring grad, for the WGAN-GP penalty."""
    if alpha is None:
        alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
    return (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)


def gradient_norm_penalty(logits: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """E[(||grad D(x_hat)||_2 - 1)^2] from D's logits on ``x_hat`` (Gulrajani et al. 2017)."""
    (grad,) = torch.autograd.grad(logits.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()


def gradient_penalty(D, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor | None,
                     alpha: torch.Tensor | None = None) -> torch.Tensor:
    """WGAN-GP with its own forward pass of D on the interpolates."""
    x_hat = interpolates(real, fake, alpha)
    return gradient_norm_penalty(D(x_hat, y), x_hat)
