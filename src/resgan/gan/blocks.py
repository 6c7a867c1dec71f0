"""Residual building blocks of the SNGAN / projection-cGAN design (Miyato et al. 2018).

Each block is ``y = H(x) + shortcut(x)``: ``residual`` and ``shortcut`` are separate
methods so that the identity can be checked by zeroing the residual branch.

ReLUs run in place wherever their input is a fresh tensor that nothing else reads (a normalisation's or
a convolution's output: neither backward needs its own output), saving one activation-sized buffer
each; never on a block's input, which the shortcut still reads (same values and gradients, tested).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nn_common import sn


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm with a gain and a bias per class (de Vries et al. 2017).

    ``embed_dim == 0``: the gains and biases are tables (one row per class, initialised to 1 and 0).
    ``embed_dim > 0`` (default in the models): as in BigGAN, a learned class embedding (N(0, 1)) is
    mapped by zero-initialised linear layers to gain = 1 + W_g e_y and bias = W_b e_y. Both start
    as plain BatchNorm; the projected form learns class control far faster, because each Adam step
    moves every table entry by about one learning rate, but a projected gain by ~embed_dim of them.
    """

    def __init__(self, channels: int, num_classes: int, embed_dim: int = 0):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        if embed_dim:
            self.embed = nn.Embedding(num_classes, embed_dim)
            nn.init.normal_(self.embed.weight)
            self.gain: nn.Module = nn.Sequential(self.embed, nn.Linear(embed_dim, channels, bias=False))
            self.bias: nn.Module = nn.Sequential(self.embed, nn.Linear(embed_dim, channels, bias=False))
            nn.init.zeros_(self.gain[1].weight)
            nn.init.zeros_(self.bias[1].weight)
            self.offset = 1.0
        else:
            self.gain = nn.Embedding(num_classes, channels)
            self.bias = nn.Embedding(num_classes, channels)
            nn.init.ones_(self.gain.weight)
            nn.init.zeros_(self.bias.weight)
            self.offset = 0.0

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.bn(x)
        return h * (self.offset + self.gain(y))[:, :, None, None] + self.bias(y)[:, :, None, None]


class _Norm(nn.Module):
    """Plain BatchNorm when unconditional, conditional BatchNorm otherwise; ``norm="none"``
    (unconditional only) keeps the generator free of batch statistics."""

    def __init__(self, channels: int, num_classes: int, norm: str = "bn", embed_dim: int = 0):
        super().__init__()
        self.cond = num_classes > 0
        if norm == "none":
            self.norm: nn.Module = nn.Identity()
        elif self.cond:
            self.norm = ConditionalBatchNorm2d(channels, num_classes, embed_dim)
        else:
            self.norm = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return self.norm(x, y) if self.cond else self.norm(x)


class GBlock(nn.Module):
    """Generator up-block: (c)BN, ReLU, 2x nearest up, conv3x3, (c)BN, ReLU, conv3x3;
    shortcut: 2x nearest up, learnable conv1x1."""

    def __init__(self, in_ch: int, out_ch: int, num_classes: int = 0, norm: str = "bn", embed_dim: int = 0):
        super().__init__()
        self.norm1 = _Norm(in_ch, num_classes, norm, embed_dim)
        self.inplace1 = norm != "none"  # without a norm, the first ReLU's input is x, which the shortcut reads
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm2 = _Norm(out_ch, num_classes, norm, embed_dim)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.conv_sc = nn.Conv2d(in_ch, out_ch, 1)
        for conv in (self.conv1, self.conv2):
            nn.init.xavier_uniform_(conv.weight, 2**0.5)
        nn.init.xavier_uniform_(self.conv_sc.weight)

    def residual(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = F.relu(self.norm1(x, y), inplace=self.inplace1)
        h = self.conv1(F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.conv2(F.relu(self.norm2(h, y), inplace=True))

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_sc(F.interpolate(x, scale_factor=2, mode="nearest"))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.residual(x, y) + self.shortcut(x)


def _d_norm(channels: int, norm: str) -> nn.Module:
    return nn.BatchNorm2d(channels) if norm == "bn" else nn.Identity()


class DBlock(nn.Module):
    """Discriminator down-block: ReLU, conv3x3, ReLU, conv3x3, 2x avg-pool;
    shortcut: conv1x1 then avg-pool (learnable only when shape changes).

    ``norm`` is ``"sn"`` (spectral norm, default), ``"bn"`` (the seed's BatchNorm variant)
    or ``"none"``.
    """

    def __init__(self, in_ch: int, out_ch: int, down: bool = True, norm: str = "sn"):
        super().__init__()
        use_sn = norm == "sn"
        self.down = down
        self.conv1 = sn(nn.Conv2d(in_ch, out_ch, 3, padding=1), use_sn)
        self.conv2 = sn(nn.Conv2d(out_ch, out_ch, 3, padding=1), use_sn)
        self.bn1, self.bn2 = _d_norm(in_ch, norm), _d_norm(out_ch, norm)
        self.inplace1 = norm == "bn"  # without BatchNorm, the first ReLU's input is x, which the shortcut reads
        self.learnable_sc = down or in_ch != out_ch
        self.conv_sc = sn(nn.Conv2d(in_ch, out_ch, 1), use_sn) if self.learnable_sc else None

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.relu(self.bn1(x), inplace=self.inplace1))
        h = self.conv2(F.relu(self.bn2(h), inplace=True))
        return F.avg_pool2d(h, 2) if self.down else h

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv_sc is None:
            return x
        h = self.conv_sc(x)
        return F.avg_pool2d(h, 2) if self.down else h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x) + self.shortcut(x)


class DBlockOptimized(nn.Module):
    """First discriminator block: conv3x3, ReLU, conv3x3, avg-pool; shortcut: avg-pool, conv1x1.
    No ReLU on the raw image input."""

    def __init__(self, in_ch: int, out_ch: int, norm: str = "sn"):
        super().__init__()
        use_sn = norm == "sn"
        self.conv1 = sn(nn.Conv2d(in_ch, out_ch, 3, padding=1), use_sn)
        self.conv2 = sn(nn.Conv2d(out_ch, out_ch, 3, padding=1), use_sn)
        self.bn = _d_norm(out_ch, norm)
        self.conv_sc = sn(nn.Conv2d(in_ch, out_ch, 1), use_sn)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(F.relu(self.bn(self.conv1(x)), inplace=True))
        return F.avg_pool2d(h, 2)

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_sc(F.avg_pool2d(x, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x) + self.shortcut(x)


class MinibatchStd(nn.Module):
    """Minibatch standard deviation (Karras et al. 2018, ProGAN): one extra feature map holding the
    average standard deviation of the features over a group of ``group`` consecutive samples.

    The discriminator then sees how varied a group is, so a generator that collapses onto a few
    modes is told apart from real data. Groups are consecutive samples, so a batch made of real
    images followed by fake ones (the one-pass discriminator step) never mixes the two in a group
    as long as each part's size divides by ``group``.
    """

    def __init__(self, group: int = 4):
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group, n)
        if n % g:
            raise ValueError(f"minibatch-std: batch {n} is not a multiple of the group size {g}")
        var = x.float().view(n // g, g, c, h, w).var(dim=1, unbiased=False)
        std = (var + 1e-8).sqrt().mean(dim=(1, 2, 3))  # one value per group
        fmap = std.repeat_interleave(g).view(n, 1, 1, 1).expand(n, 1, h, w).to(x.dtype)
        return torch.cat([x, fmap], dim=1)
