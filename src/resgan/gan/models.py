"""ResNet generator and discriminator (SNGAN, Miyato et al. 2018; projection cGAN,
Miyato & Koyama 2018) for 16, 32, 64 and 128 pixel images, 1 or 3 channels."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config
from ..errors import ResganError
from ..nn_common import sn
from .blocks import DBlock, DBlockOptimized, GBlock, MinibatchStd

RESOLUTIONS = (16, 32, 64, 128)

# Channel multipliers of the base width, from the 4x4 input to the output resolution (G),
# and from the first block to the last (D). 32 follows SNGAN's CIFAR design (constant width);
# 64 and 128 follow its ImageNet / STL design (widths halve as resolution doubles).
G_MULTS = {16: (2, 2, 1), 32: (1, 1, 1, 1), 64: (8, 4, 2, 1, 1), 128: (16, 16, 8, 4, 2, 1)}
D_MULTS = {16: (1, 2, 2), 32: (1, 1, 1, 1), 64: (1, 2, 4, 8, 16), 128: (1, 2, 4, 8, 16, 16)}


def check_resolution(resolution: int) -> None:
    if resolution not in RESOLUTIONS:
        raise ResganError(f"unsupported resolution {resolution}; choose one of {', '.join(map(str, RESOLUTIONS))}")


class ResNetGenerator(nn.Module):
    """z (and class label) -> image in [-1, 1]. Unconditional when ``num_classes == 0``."""

    def __init__(self, resolution: int = 32, channels: int = 3, z_dim: int = 128, width: int = 256,
                 num_classes: int = 0, mults: tuple[int, ...] | None = None, norm: str = "bn",
                 cbn_embed: int = 64):
        super().__init__()
        check_resolution(resolution)
        if norm not in ("bn", "none") or (norm == "none" and num_classes):
            raise ResganError("gan.g_norm must be bn, or none for an unconditional generator")
        mults = tuple(mults or G_MULTS[resolution])
        if len(mults) != len(G_MULTS[resolution]):
            raise ResganError(f"g_mults needs {len(G_MULTS[resolution])} entries at resolution {resolution}")
        self.resolution, self.channels, self.z_dim, self.num_classes = resolution, channels, z_dim, num_classes
        widths = [width * m for m in mults]
        self.linear = nn.Linear(z_dim, 4 * 4 * widths[0])
        self.blocks = nn.ModuleList(GBlock(a, b, num_classes, norm, cbn_embed) for a, b in zip(widths[:-1], widths[1:]))
        self.bn = nn.BatchNorm2d(widths[-1]) if norm == "bn" else nn.Identity()
        self.conv_out = nn.Conv2d(widths[-1], channels, 3, padding=1)
        nn.init.xavier_uniform_(self.linear.weight)
        nn.init.xavier_uniform_(self.conv_out.weight)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes and y is None:
            raise ValueError("a conditional generator needs class labels")
        h = self.linear(z).view(z.shape[0], -1, 4, 4)
        for block in self.blocks:
            h = block(h, y if self.num_classes else None)
        return torch.tanh(self.conv_out(F.relu(self.bn(h), inplace=True)))  # h: the last block's sum


class ResNetDiscriminator(nn.Module):
    """image (and class label) -> one logit per image. Projection head when conditional.

    ``norm``: ``"sn"`` (spectral norm, default), ``"bn"`` (the seed's BatchNorm
    discriminator; its probability is ``sigmoid(logit)``), or ``"none"``. ``mbstd``: group size of a
    minibatch-standard-deviation feature map added before the last block (0 = none).
    """

    def __init__(self, resolution: int = 32, channels: int = 3, width: int = 128, num_classes: int = 0,
                 norm: str = "sn", mults: tuple[int, ...] | None = None, mbstd: int = 0):
        super().__init__()
        check_resolution(resolution)
        if norm not in ("sn", "bn", "none"):
            raise ResganError(f"unknown discriminator norm {norm!r}; choose sn, bn or none")
        mults = tuple(mults or D_MULTS[resolution])
        if len(mults) != len(D_MULTS[resolution]):
            raise ResganError(f"d_mults needs {len(D_MULTS[resolution])} entries at resolution {resolution}")
        self.resolution, self.num_classes = resolution, num_classes
        widths = [width * m for m in mults]
        n_down = {16: 2, 32: 2, 64: 4, 128: 5}[resolution]  # SNGAN-32 keeps 8x8 for its last two blocks
        blocks: list[nn.Module] = [DBlockOptimized(channels, widths[0], norm)]
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:]), start=1):
            last = i == len(widths) - 1
            if last and mbstd:
                blocks.append(MinibatchStd(mbstd))
            blocks.append(DBlock(a + (1 if last and mbstd else 0), b, down=i < n_down, norm=norm))
        self.blocks = nn.Sequential(*blocks)
        use_sn = norm == "sn"
        self.linear = sn(nn.Linear(widths[-1], 1), use_sn)
        self.embed = sn(nn.Embedding(num_classes, widths[-1]), use_sn) if num_classes else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = F.relu(self.blocks(x), inplace=True).sum(dim=(2, 3))  # the last block's sum, read by nothing else
        out = self.linear(h).squeeze(1)
        if self.embed is not None:
            if y is None:
                raise ValueError("a conditional discriminator needs class labels")
            out = out + (self.embed(y) * h).sum(dim=1)
        return out


def build_generator(cfg: Config) -> ResNetGenerator:
    m = cfg.gan
    return ResNetGenerator(cfg.data.resolution, cfg.data.channels, m.z_dim, m.g_width, m.num_classes,
                           tuple(m.g_mults) if m.g_mults else None, m.g_norm, m.cbn_embed)


def build_discriminator(cfg: Config) -> ResNetDiscriminator:
    m = cfg.gan
    return ResNetDiscriminator(cfg.data.resolution, cfg.data.channels, m.d_width, m.num_classes, m.d_norm,
                               tuple(m.d_mults) if m.d_mults else None, m.d_mbstd)
