"""Residual restoration networks (images in [0, 1], (N, C, H, W)).

* :class:`RestoreNet` - denoise / deblur / JPEG: pixel-unshuffle encoder -> dilated residual
  blocks -> pixel-shuffle decoder, global residual ``out = x + R(x)`` (FFDNet / DnCNN style; an
  optional noise-level map makes ``--sigma`` meaningful).
* :class:`SRNet` - super-resolution: residual blocks at low resolution then pixel-shuffle
  upsampling (SRResNet style), plus a bicubic skip.
* :class:`InpaintNet` - inpainting with gated convolutions (DeepFill v2); known pixels are kept
  exactly: ``out = where(mask, pred, x)``.
* :class:`PatchDiscriminator` - spectrally normalised PatchGAN.

Every net has ``forward(x, cond=None)`` (cond: per-image sigma in [0, 1] units for a noise-map
RestoreNet, the hole mask for InpaintNet) and ``multiple``: H and W must be multiples of it.
(Leaky) ReLUs run in place on convolution and sum outputs, which no backward needs (same values and
gradients, tested); the gated convolutions' ELU acts on a chunk (a view), so it stays out of place.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config
from ..errors import ResganError
from ..nn_common import sn
from .ffc import FFCInpaintNet


def pad_forward(net: nn.Module, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
    """Run ``net`` on any H x W: reflect-pad to ``net.multiple``, crop back. An inpainting mask is padded
    the same way, so a mirrored hole pixel stays a hole (padding it as known, as this once did, let the
    fill read the hole's own content mirrored across the border)."""
    m = getattr(net, "multiple", 1)
    h, w = x.shape[-2:]
    ph, pw = (-h) % m, (-w) % m
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
        if cond is not None and cond.dim() == 4:
            cond = F.pad(cond, (0, pw, 0, ph), mode=mode)
    out = net(x, cond)
    s = getattr(net, "scale", 1)
    return out[..., : h * s, : w * s]


def conv3(cin: int, cout: int, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation)


class ResBlock(nn.Module):
    """conv3x3 (dilated) -> ReLU -> conv3x3 (dilated), plus the identity (no normalisation, EDSR style)."""

    def __init__(self, width: int, dilation: int = 1):
        super().__init__()
        self.conv1 = conv3(width, width, dilation)
        self.conv2 = conv3(width, width, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x), inplace=True))


def _body(width: int, blocks: int, dilations: list[int]) -> nn.Sequential:
    return nn.Sequential(*[ResBlock(width, dilations[i % len(dilations)]) for i in range(blocks)], conv3(width, width))


def net_input(x: torch.Tensor, cond: torch.Tensor | None, noise_map: bool, down: int) -> torch.Tensor:
    """The image (with a constant sigma map channel for noise-map nets), pixel-unshuffled by ``down``."""
    h = x
    if noise_map:
        if cond is None:
            raise ResganError("this model needs the noise level (sigma)")
        h = torch.cat([x, cond.to(x).reshape(-1, 1, 1, 1).expand(x.shape[0], 1, *x.shape[-2:])], 1)
    return F.pixel_unshuffle(h, down) if down > 1 else h


class RestoreNet(nn.Module):
    """Same-size restoration with a global residual: ``out = x + R(x)``."""

    def __init__(self, channels: int, width: int = 64, blocks: int = 6, dilations: list[int] | tuple[int, ...] = (1, 2),
                 down: int = 2, noise_map: bool = False):
        super().__init__()
        self.channels, self.down, self.noise_map, self.multiple = channels, down, noise_map, down
        cin = (channels + int(noise_map)) * down * down
        self.head = conv3(cin, width)
        self.body = _body(width, blocks, list(dilations))
        self.tail = conv3(width, channels * down * down)
        nn.init.zeros_(self.tail.weight)  # starts as the identity
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        f = self.head(net_input(x, cond if self.noise_map else None, self.noise_map, self.down))
        r = self.tail(F.relu(f + self.body(f), inplace=True))
        return x + (F.pixel_shuffle(r, self.down) if self.down > 1 else r)


class UNetRestorer(nn.Module):
    """Same-size restoration with a global residual ``out = x + R(x)``, R a residual U-Net (DRUNet,
    Zhang et al. 2021, made CPU-sized): pixel-unshuffle by ``down`` (FFDNet), then ``levels``
    scales of ``blocks`` residual blocks each, width doubling per scale, 2x2 strided-conv down,
    2x2 transposed-conv up, additive skips. The coarse scales give a wide receptive field cheaply."""

    def __init__(self, channels: int, width: int = 64, blocks: int = 2, levels: int = 3, down: int = 2,
                 noise_map: bool = False):
        super().__init__()
        self.channels, self.down, self.noise_map = channels, down, noise_map
        self.multiple = down * 2 ** (levels - 1)
        w = [width * 2**i for i in range(levels)]
        self.head = conv3((channels + int(noise_map)) * down * down, w[0])
        self.enc = nn.ModuleList(
            nn.Sequential(*[ResBlock(w[i]) for _ in range(blocks)], nn.Conv2d(w[i], w[i + 1], 2, 2))
            for i in range(levels - 1))
        self.mid = nn.Sequential(*[ResBlock(w[-1]) for _ in range(blocks)])
        self.dec = nn.ModuleList(
            nn.Sequential(nn.ConvTranspose2d(w[i + 1], w[i], 2, 2), *[ResBlock(w[i]) for _ in range(blocks)])
            for i in range(levels - 1))
        self.tail = conv3(w[0], channels * down * down)
        nn.init.zeros_(self.tail.weight)  # starts as the identity
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        f = self.head(net_input(x, cond if self.noise_map else None, self.noise_map, self.down))
        skips = []
        for enc in self.enc:
            skips.append(f)
            f = enc(f)
        f = self.mid(f)
        for dec in reversed(self.dec):
            f = dec[1:](dec[0](f) + skips.pop())  # up, add the skip, residual blocks
        r = self.tail(f)
        return x + (F.pixel_shuffle(r, self.down) if self.down > 1 else r)


class SRNet(nn.Module):
    """SRResNet-style x2 / x3 / x4 super-resolution with a bicubic global skip."""

    def __init__(self, channels: int, width: int = 64, blocks: int = 8, scale: int = 4,
                 dilations: list[int] | tuple[int, ...] = (1,)):
        super().__init__()
        if scale not in (2, 3, 4):
            raise ResganError(f"scale must be 2, 3 or 4, got {scale}")
        self.channels, self.scale, self.multiple = channels, scale, 1
        self.head = conv3(channels, width)
        self.body = _body(width, blocks, list(dilations))
        ups: list[nn.Module] = []
        for f in ([2, 2] if scale == 4 else [scale]):
            ups += [conv3(width, width * f * f), nn.PixelShuffle(f), nn.ReLU(inplace=True)]
        self.up = nn.Sequential(*ups)
        self.tail = conv3(width, channels)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        f = self.head(x)
        out = self.tail(self.up(f + self.body(f)))
        return out + F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)


class ESA(nn.Module):
    """Enhanced spatial attention (RFANet / RFDN): a cheap, strided, max-pooled branch that gives
    each pixel a gate from a wide neighbourhood."""

    def __init__(self, width: int, f: int = 16):
        super().__init__()
        self.c1, self.cf, self.c4 = nn.Conv2d(width, f, 1), nn.Conv2d(f, f, 1), nn.Conv2d(f, width, 1)
        self.c2 = nn.Conv2d(f, f, 3, 2, 0)
        self.c3a, self.c3b, self.c3c = conv3(f, f), conv3(f, f), conv3(f, f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1 = self.c1(x)
        c = F.max_pool2d(self.c2(c1), 7, 3, ceil_mode=True) if min(x.shape[-2:]) >= 17 else self.c2(F.pad(c1, (1,) * 4))
        c = self.c3c(F.relu(self.c3b(F.relu(self.c3a(c), inplace=True)), inplace=True))
        c = F.interpolate(c, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return x * torch.sigmoid(self.c4(c + self.cf(c1)))


class RFDB(nn.Module):
    """Residual feature distillation block (Liu et al. 2020): three shallow residual convs, each
    distilling half its width through a 1x1 conv, fused by a 1x1 conv and gated by ESA."""

    def __init__(self, width: int):
        super().__init__()
        d = width // 2
        self.distill = nn.ModuleList(nn.Conv2d(width, d, 1) for _ in range(3))
        self.refine = nn.ModuleList(conv3(width, width) for _ in range(3))
        self.last = conv3(width, d)
        self.fuse = nn.Conv2d(4 * d, width, 1)
        self.esa = ESA(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kept, h = [], x
        for distill, refine in zip(self.distill, self.refine):
            kept.append(F.leaky_relu(distill(h), 0.05, inplace=True))
            h = F.leaky_relu(refine(h) + h, 0.05, inplace=True)  # shallow residual block
        kept.append(F.leaky_relu(self.last(h), 0.05, inplace=True))
        return self.esa(self.fuse(torch.cat(kept, 1)))


class RFDNet(nn.Module):
    """Lightweight super-resolution (RFDN class): conv -> ``blocks`` RFDBs whose outputs are all
    fused by a 1x1 conv -> conv, a long skip, pixel-shuffle upsampling; residual over bicubic:
    ``out = bicubic(x) + R(x)`` (R starts at zero)."""

    def __init__(self, channels: int = 3, width: int = 48, blocks: int = 4, scale: int = 4):
        super().__init__()
        if scale not in (2, 3, 4):
            raise ResganError(f"scale must be 2, 3 or 4, got {scale}")
        self.channels, self.scale, self.multiple = channels, scale, 1
        self.head = conv3(channels, width)
        self.blocks = nn.ModuleList(RFDB(width) for _ in range(blocks))
        self.fuse = nn.Conv2d(width * blocks, width, 1)
        self.body_out = conv3(width, width)
        self.up = nn.Sequential(conv3(width, channels * scale * scale), nn.PixelShuffle(scale))
        nn.init.zeros_(self.up[0].weight)
        nn.init.zeros_(self.up[0].bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        f = self.head(x)
        outs, h = [], f
        for block in self.blocks:
            h = block(h)
            outs.append(h)
        r = self.up(self.body_out(F.leaky_relu(self.fuse(torch.cat(outs, 1)), 0.05, inplace=True)) + f)
        return r + F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)


class GatedConv2d(nn.Module):
    """Gated convolution (Yu et al. 2019): ``act(features) * sigmoid(gate)``, both from one conv."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(cin, 2 * cout, k, stride, padding=dilation * (k - 1) // 2, dilation=dilation)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f, g = self.conv(x).chunk(2, 1)
        return (F.elu(f) if self.act else f) * torch.sigmoid(g)


class GatedResBlock(nn.Module):
    def __init__(self, width: int, dilation: int):
        super().__init__()
        self.conv1 = GatedConv2d(width, width, dilation=dilation)
        self.conv2 = GatedConv2d(width, width, dilation=dilation, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.conv1(x))


class InpaintNet(nn.Module):
    """Gated-convolution encoder (2 stride-2 stages) -> dilated gated residual blocks -> decoder.
    Input: the image with holes blanked and the mask; output keeps known pixels exactly."""

    def __init__(self, channels: int, width: int = 32, blocks: int = 4,
                 dilations: list[int] | tuple[int, ...] = (2, 4, 8)):
        super().__init__()
        self.channels, self.multiple = channels, 4
        w = width
        self.enc = nn.Sequential(GatedConv2d(channels + 1, w, 5), GatedConv2d(w, 2 * w, 3, 2),
                                 GatedConv2d(2 * w, 2 * w), GatedConv2d(2 * w, 4 * w, 3, 2))
        self.body = nn.Sequential(*[GatedResBlock(4 * w, list(dilations)[i % len(dilations)]) for i in range(blocks)])
        self.dec1 = GatedConv2d(4 * w, 2 * w)
        self.dec2 = GatedConv2d(4 * w, w)  # after the skip from the first encoder stage
        self.out = nn.Conv2d(w, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if cond is None:
            raise ResganError("inpainting needs a mask")
        hole = cond.to(x) > 0.5
        xin = torch.where(hole, torch.zeros_like(x), x - 0.5)
        h = torch.cat([xin, hole.to(x)], 1)
        e1 = self.enc[1](self.enc[0](h))
        f = self.enc[3](self.enc[2](e1))
        f = self.body(f)
        f = self.dec1(F.interpolate(f, scale_factor=2, mode="nearest"))
        f = self.dec2(F.interpolate(torch.cat([f, e1], 1), scale_factor=2, mode="nearest"))
        pred = self.out(f) + 0.5
        return torch.where(hole, pred, x)


class PatchDiscriminator(nn.Module):
    """SN PatchGAN: ``layers`` stride-2 4x4 convs (width doubling, at most 8x) and a 3x3 output conv;
    ``forward`` returns (logits, features). Receptive field: 38 px with 3 layers, 78 with 4, 158 with 5."""

    def __init__(self, channels: int, width: int = 64, layers: int = 3):
        super().__init__()
        widths = [channels] + [width * min(2 ** i, 8) for i in range(layers)]
        self.layers = nn.ModuleList([sn(nn.Conv2d(a, b, 4, 2, 1), True) for a, b in zip(widths, widths[1:])])
        self.out = sn(nn.Conv2d(widths[-1], 1, 3, 1, 1), True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = []
        h = x * 2 - 1
        for layer in self.layers:
            h = F.leaky_relu(layer(h), 0.2, inplace=True)
            feats.append(h)
        return self.out(h), feats


def build_net(cfg: Config) -> nn.Module:
    r, c = cfg.restore, cfg.data.channels
    if r.kind == "sr":
        if r.arch == "rfdn":
            return RFDNet(c, r.width, r.blocks, r.scale)
        return SRNet(c, r.width, r.blocks, r.scale, r.dilations)
    if r.kind == "inpaint":
        if r.arch == "ffc":
            return FFCInpaintNet(c, r.width, r.blocks, r.levels, r.global_ratio, r.slope, r.fill_smooth)
        return InpaintNet(c, r.width, r.blocks, r.dilations)
    noise_map = r.noise_map and r.kind == "denoise"
    if r.arch == "unet":
        return UNetRestorer(c, r.width, r.blocks, r.levels, r.down, noise_map)
    return RestoreNet(c, r.width, r.blocks, r.dilations, r.down, noise_map)
