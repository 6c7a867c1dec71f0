"""Inpainting with fast Fourier convolutions (LaMa, Suvorov et al. 2022), sized for a CPU.

Every FFC layer splits its channels into a local part (3x3 convolutions) and a global part whose
spectral branch multiplies the image's 2-D Fourier transform channel-wise (a 1x1 convolution over the
real and imaginary parts), so each layer sees the whole image: a wide hole is filled from context
far away, and a net trained on 256-px crops still fills large photos.

The net is residual over a classical fill: ``pushpull_fill`` fills the holes by masked averages down
an image pyramid (exact for a flat colour, smooth in between), optionally relaxed towards the harmonic
fill (Laplace's equation, coarse to fine: ``restore.fill_smooth``), and the FFC ResNet predicts the
correction ``R`` in the holes: ``out = where(hole, base + R, x)``. With ``R`` initialised to zero
an untrained net already returns the base fill, never a colour cast.

The spectral branch runs ``torch.fft.rfft2`` by default; ``FourierUnit.dft_matmul = True`` computes the
same transform as matrix products (no ``fft_rfftn`` operator, for ONNX export).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ResganError


def pushpull_fill(x: torch.Tensor, hole: torch.Tensor, smooth: int = 0) -> torch.Tensor:
    """Fill ``hole`` (bool or {0, 1}, (N, 1, H, W)) of ``x`` (N, C, H, W) with masked averages from
    an image pyramid: each level halves the size (2x2 mean over known pixels only) until no hole is
    left, then the coarser level's values, upsampled bilinearly, fill the finer level's holes.
    ``smooth`` > 0: then that many Jacobi sweeps of Laplace's equation in the holes at every level
    (a coarse-to-fine harmonic fill: the smoothest surface through the hole's border, which the
    pyramid alone only approximates; +0.3-0.6 dB on held-out photos at 50). Exact on a flat colour."""
    known = 1.0 - hole.to(x.dtype)
    if x.shape[-1] <= 1 or x.shape[-2] <= 1 or bool(known.min() > 0):
        return x * known + (x * known).sum((2, 3), keepdim=True) / known.sum((2, 3), keepdim=True).clamp_min(1e-8) \
            * (1 - known)
    h, w = x.shape[-2:]
    xp = F.pad(x * known, (0, w % 2, 0, h % 2))
    kp = F.pad(known, (0, w % 2, 0, h % 2))
    ks = F.avg_pool2d(kp, 2)
    xs = F.avg_pool2d(xp, 2) / ks.clamp_min(1e-8)
    coarse = pushpull_fill(xs, ks <= 0, smooth)
    up = F.interpolate(coarse, scale_factor=2, mode="bilinear", align_corners=False)[..., :h, :w]
    y = x * known + up * (1 - known)
    if smooth > 0:
        y = _jacobi_sweeps(y, x, hole.to(torch.bool).expand_as(x), smooth)
    return y


def _jacobi_sweeps(y: torch.Tensor, x: torch.Tensor, hole: torch.Tensor, sweeps: int) -> torch.Tensor:
    """``sweeps`` Jacobi sweeps of Laplace's equation in ``hole``, from ``y``: each hole pixel <- the mean
    of its 4 neighbours (beyond the image border, the border pixel: Neumann), every other pixel <- ``x``.
    Only the holes' bounding box grown by one pixel is swept: nothing outside it is read or changes,
    so the result is the whole image's sweeps bit for bit (for a 100 px hole in a 512 px photo, ~20x
    less work)."""
    rows, cols = hole.any(3).any((0, 1)).nonzero(), hole.any(2).any((0, 1)).nonzero()
    if rows.numel() == 0:
        return x.clone()
    h, w = y.shape[-2:]
    y0, y1 = max(int(rows[0]) - 1, 0), min(int(rows[-1]) + 2, h)
    x0, x1 = max(int(cols[0]) - 1, 0), min(int(cols[-1]) + 2, w)
    z, known, box = y[..., y0:y1, x0:x1], x[..., y0:y1, x0:x1], hole[..., y0:y1, x0:x1]
    for _ in range(sweeps):
        p = F.pad(z, (1, 1, 1, 1), mode="replicate")
        mean4 = (p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:]) * 0.25
        z = torch.where(box, mean4, known)
    if (y0, y1, x0, x1) == (0, h, 0, w):
        return z
    out = x.clone()
    out[..., y0:y1, x0:x1] = z
    return out


def act(x: torch.Tensor, slope: float) -> torch.Tensor:
    """ReLU (``slope`` 0) or LeakyReLU, in place."""
    return F.relu(x, inplace=True) if slope == 0 else F.leaky_relu(x, slope, inplace=True)


def act_layer(slope: float) -> nn.Module:
    """:func:`act` as a module, for ``nn.Sequential``."""
    return nn.ReLU(inplace=True) if slope == 0 else nn.LeakyReLU(slope, inplace=True)


class ReflectConv2d(nn.Conv2d):
    """``nn.Conv2d`` with reflect padding (``k // 2``) done in the input's own dtype. CPU autocast runs
    ``reflection_pad2d`` in fp32, so a plain reflect-padded conv turned every bf16 activation into fp32
    and back (two full-size casts forward, two backward): ~13% of the FFC net's bf16 training step.
    Padding copies values, so the forward is bit-identical; weights and their names are nn.Conv2d's."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1):
        super().__init__(cin, cout, k, stride, padding=k // 2, padding_mode="reflect")

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            x = F.pad(x, self._reversed_padding_repeated_twice, mode="reflect")
        return F.conv2d(x, weight, bias, self.stride, 0, self.dilation, self.groups)


class FourierUnit(nn.Module):
    """Global convolution in the frequency domain: rfft2 -> 1x1 conv over (real, imag) -> ReLU -> irfft2."""

    dft_matmul = False  # True: the DFT as matrix products (ONNX-exportable), same result

    def __init__(self, cin: int, cout: int, slope: float = 0.0):
        super().__init__()
        self.conv = nn.Conv2d(2 * cin, 2 * cout, 1)
        self.slope = slope

    @staticmethod
    def _rfft2(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(real, imag) of the orthonormal 2-D real DFT, via matrix products."""
        h, w = x.shape[-2:]
        ky = torch.arange(h, dtype=torch.float64)
        kx = torch.arange(w // 2 + 1, dtype=torch.float64)
        ay = -2 * torch.pi * torch.outer(ky, ky) / h  # (h, h)
        ax = -2 * torch.pi * torch.outer(torch.arange(w, dtype=torch.float64), kx) / w  # (w, w//2+1)
        s = (h * w) ** -0.5
        cy, sy = ay.cos().to(x), ay.sin().to(x)
        cx, sx = (ax.cos() * s).to(x), (ax.sin() * s).to(x)
        re_w, im_w = x @ cx, x @ sx  # along W
        re = cy @ re_w - sy @ im_w
        im = cy @ im_w + sy @ re_w
        return re, im

    @staticmethod
    def _irfft2(re: torch.Tensor, im: torch.Tensor, w: int) -> torch.Tensor:
        h = re.shape[-2]
        ky = torch.arange(h, dtype=torch.float64)
        ay = 2 * torch.pi * torch.outer(ky, ky) / h
        cy, sy = ay.cos().to(re), ay.sin().to(re)
        re_y, im_y = cy @ re - sy @ im, cy @ im + sy @ re  # inverse DFT along H
        kx = torch.arange(w // 2 + 1, dtype=torch.float64)
        weight = torch.full((w // 2 + 1,), 2.0, dtype=torch.float64)  # Hermitian: the other half
        weight[0] = 1.0
        if w % 2 == 0:
            weight[-1] = 1.0
        ax = 2 * torch.pi * torch.outer(kx, torch.arange(w, dtype=torch.float64)) / w  # (w//2+1, w)
        s = (h * w) ** -0.5
        cx, sx = (ax.cos() * weight[:, None] * s).to(re), (ax.sin() * weight[:, None] * s).to(re)
        return re_y @ cx - im_y @ sx

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype, (h, w) = x.dtype, x.shape[-2:]
        x = x.float()  # FFTs in fp32 (no bf16 FFT on CPU; better accuracy)
        with torch.autocast(x.device.type, enabled=False):
            if self.dft_matmul:
                re, im = self._rfft2(x)
            else:
                f = torch.fft.rfft2(x, norm="ortho")
                re, im = f.real, f.imag
            y = act(self.conv(torch.cat([re, im], 1)), self.slope)
            re, im = y.chunk(2, 1)
            if self.dft_matmul:
                out = self._irfft2(re.contiguous(), im.contiguous(), w)
            else:
                out = torch.fft.irfft2(torch.complex(re.contiguous(), im.contiguous()), s=(h, w), norm="ortho")
        return out.to(dtype)


class SpectralTransform(nn.Module):
    """LaMa's global branch: 1x1 reduce -> Fourier unit (+ skip) -> 1x1 expand."""

    def __init__(self, cin: int, cout: int, slope: float = 0.0):
        super().__init__()
        mid = max(1, cout // 2)
        self.reduce = nn.Conv2d(cin, mid, 1)
        self.fu = FourierUnit(mid, mid, slope)
        self.expand = nn.Conv2d(mid, cout, 1)
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = act(self.reduce(x), self.slope)
        return self.expand(y + self.fu(y))


class FFC(nn.Module):
    """A fast Fourier convolution on (local, global) features: local' = conv(local) + conv(global),
    global' = conv(local) + spectral(global); 3x3 convolutions with reflect padding."""

    def __init__(self, local: int, glob: int, slope: float = 0.0):
        super().__init__()

        def c3(a: int, b: int) -> nn.Conv2d:
            return ReflectConv2d(a, b, 3)

        self.l2l, self.g2l, self.l2g = c3(local, local), c3(glob, local), c3(local, glob)
        self.g2g = SpectralTransform(glob, glob, slope)

    def forward(self, xl: torch.Tensor, xg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.l2l(xl) + self.g2l(xg), self.l2g(xl) + self.g2g(xg)


class FFCResBlock(nn.Module):
    """Two FFC layers with ReLUs and an identity skip on both parts; the second layer starts at zero
    (each block begins as the identity, which keeps a deep un-normalised net stable)."""

    def __init__(self, local: int, glob: int, slope: float = 0.0):
        super().__init__()
        self.ffc1, self.ffc2 = FFC(local, glob, slope), FFC(local, glob, slope)
        self.slope = slope
        for conv in (self.ffc2.l2l, self.ffc2.g2l, self.ffc2.l2g, self.ffc2.g2g.expand):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, x: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        xl, xg = x
        yl, yg = self.ffc1(xl, xg)
        yl, yg = self.ffc2(act(yl, self.slope), act(yg, self.slope))
        return xl + yl, xg + yg


class FFCInpaintNet(nn.Module):
    """LaMa-style inpainting generator: input (push-pull-filled image, mask) -> 7x7 conv -> ``downs``
    stride-2 convs (width doubling) -> ``blocks`` FFC residual blocks (``global_ratio`` of the channels
    global) -> transposed convs back -> 7x7 conv giving the correction to the base fill in the holes.
    Known pixels are returned exactly: ``out = where(hole, fill + R, x)``; ``fill_smooth``: Jacobi sweeps
    of the base fill (:func:`pushpull_fill`; 0 = push-pull alone). ``slope``: the negative
    slope of every ReLU (0 = ReLU; a LeakyReLU keeps gradients flowing: with plain ReLUs and no
    normalisation, a run's decoder died within 500 steps and ``R`` stayed ~0)."""

    def __init__(self, channels: int = 3, width: int = 32, blocks: int = 6, downs: int = 3,
                 global_ratio: float = 0.75, slope: float = 0.0, fill_smooth: int = 0):
        super().__init__()
        self.channels, self.multiple, self.fill_smooth = channels, 2**downs, fill_smooth

        def c(a: int, b: int, k: int, stride: int = 1) -> nn.Conv2d:
            return ReflectConv2d(a, b, k, stride)

        enc: list[nn.Module] = [c(channels + 1, width, 7), act_layer(slope)]
        w = width
        for _ in range(downs):
            enc += [c(w, 2 * w, 3, 2), act_layer(slope)]
            w *= 2
        self.enc = nn.Sequential(*enc)
        self.glob = int(round(w * global_ratio))
        if not 0 < self.glob < w:
            raise ResganError(f"global_ratio {global_ratio} leaves no local or no global channels at width {w}")
        self.body = nn.Sequential(*[FFCResBlock(w - self.glob, self.glob, slope) for _ in range(blocks)])
        dec: list[nn.Module] = []
        for _ in range(downs):
            dec += [nn.ConvTranspose2d(w, w // 2, 4, 2, 1), act_layer(slope)]
            w //= 2
        self.dec = nn.Sequential(*dec)
        self.out = c(w, channels, 7)
        nn.init.zeros_(self.out.weight)  # starts as the push-pull fill
        nn.init.zeros_(self.out.bias)

    def fill(self, x: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """The classical base fill the net corrects (push-pull, smoothed by ``fill_smooth`` sweeps)."""
        return pushpull_fill(x, hole, self.fill_smooth)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if cond is None:
            raise ResganError("inpainting needs a mask")
        hole = cond.to(x) > 0.5
        with torch.autocast(x.device.type, enabled=False):
            base = self.fill(x.float(), hole).to(x.dtype)
        f = self.enc(torch.cat([base - 0.5, hole.to(x)], 1))
        xl, xg = self.body((f[:, : f.shape[1] - self.glob], f[:, f.shape[1] - self.glob:]))
        r = self.out(self.dec(torch.cat([xl, xg], 1)))
        return torch.where(hole, base + r.to(base.dtype), x)
