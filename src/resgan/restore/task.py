"""The ``restore`` task for the generic loop in :mod:`resgan.train`: a restoration net (and an
optional SN PatchGAN), degradations applied on the fly with the global torch RNG (so a resumed
run is exact), PSNR / SSIM validation on held-out images with a fixed degradation seed."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..accel import autocast, compile_module, frozen, resolve_precision, to_layout
from ..config import Config
from ..data import ImageSet
from ..dist import SINGLE, World, average_gradients
from ..errors import ResganError
from ..metrics.psnr_ssim import psnr, ssim
from ..nn_common import d_loss, ema_update, frozen_copy, g_loss, lr_fraction, r1_penalty, set_lr
from . import degradations as dg
from .data import load_train_set, load_val_images, random_crops
from .ffc import pushpull_fill
from .models import PatchDiscriminator, build_net, pad_forward
from .perceptual import PerceptualLoss


def pixel_loss(kind: str, out: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    d = out - target
    e = d.abs() if kind == "l1" else d.square() if kind == "l2" else torch.sqrt(d.square() + 1e-6)
    if weight is None:
        return e.mean()
    w = weight.expand_as(e)
    return (e * w).sum() / w.sum().clamp_min(1.0)


class Restorer:
    """A restoration net being trained (same interface as :class:`resgan.gan.task.GAN`)."""

    @staticmethod
    def load_data(cfg: Config) -> ImageSet:
        return load_train_set(cfg)

    @staticmethod
    def configure(cfg: Config, data: ImageSet) -> Config:
        return cfg  # nothing to learn from the data

    def __init__(self, cfg: Config, device: torch.device, world: World = SINGLE):
        self.cfg, self.device, self.world = cfg, device, world
        r, t = cfg.restore, cfg.train
        self.precision = resolve_precision(t.precision, device)
        self.net = to_layout(build_net(cfg).to(device), t.channels_last)
        self.net_ema = frozen_copy(self.net)
        self.opt_g = torch.optim.Adam(self.net.parameters(), lr=t.lr_g, betas=(t.beta1, t.beta2))
        self.D = self.opt_d = None
        if r.adv_weight > 0 or r.fm_weight > 0:
            self.D = to_layout(PatchDiscriminator(cfg.data.channels, r.d_width, r.d_layers).to(device), t.channels_last)
            self.opt_d = torch.optim.Adam(self.D.parameters(), lr=t.lr_d, betas=(t.beta1, t.beta2))
        if t.precision == "fp16":
            raise ResganError("train.precision=fp16 is for the GAN task; restoration trains in fp32 or bf16")
        # a fixed pretrained function, built only when used: not in modules(), so never in a checkpoint or export
        self.perceptual = None
        if r.perceptual_weight > 0:
            loss = PerceptualLoss(tuple(r.perceptual_strides), r.perceptual_distance)
            self.perceptual = to_layout(loss.to(device), t.channels_last)
        if t.compile:  # the net only: the PatchGAN's spectral norm runs twice before one backward
            compile_module(self.net)
        self.masks = dg.MaskFolder(r.mask_path) if r.kind == "inpaint" and r.mask == "folder" else None
        self._val: list[torch.Tensor] | None = None
        self.steps_done = 0

    # ------------------------------------------------------------------ degradation
    def degrade(self, clean: torch.Tensor, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(degraded input, condition) for a clean batch in [0, 1]; ``generator=None``: global RNG."""
        r = self.cfg.restore
        n, _, h, w = clean.shape
        if r.kind == "denoise":
            sigma = (r.sigma, r.sigma_max) if r.sigma_max > r.sigma else r.sigma
            noisy, s = dg.add_gaussian_noise(clean, sigma, generator)
            if r.quantize > 0:  # 8-bit files: the noisy image clipped and rounded, as a user's noisy PNG is
                q = (torch.rand(n, generator=generator) < r.quantize).to(clean.device).view(-1, 1, 1, 1)
                noisy = torch.where(q, noisy.clamp(0, 1).mul(255).round().div(255), noisy)
            return noisy, s.to(clean.device)
        if r.kind == "deblur":
            blurred = dg.blur(clean, dg.random_blur_kernels(n, tuple(r.blur_sigma), r.motion_prob, generator=generator))
            return dg.add_gaussian_noise(blurred, (0.0, 2.0), generator)[0], None
        if r.kind == "jpeg":
            return dg.jpeg(clean, tuple(r.jpeg_quality), dg.numpy_rng(generator), r.jpeg_draw), None
        if r.kind == "real":
            return dg.realworld(clean, generator), None
        if r.kind == "sr":
            return (dg.bicubic_down(clean, r.scale).clamp(0, 1) * 255).round() / 255, None
        rng = dg.numpy_rng(generator)
        if self.masks is not None:
            import numpy as np

            m = torch.from_numpy(np.stack([self.masks.sample(h, w, rng) for _ in range(n)]))[:, None]
        else:
            m = dg.random_masks(n, h, w, rng, r.mask)
        return clean, m.to(clean.device)

    # ------------------------------------------------------------------ the step
    def set_lr(self) -> float:
        t = self.cfg.train
        frac = lr_fraction(self.steps_done, t.steps, t.lr_decay)
        set_lr(((self.opt_g, t.lr_g), (self.opt_d, t.lr_d)), frac)
        return t.lr_g * frac

    def train_step(self, next_batch) -> dict[str, float]:
        r = self.cfg.restore
        lr = self.set_lr()
        clean = next_batch()[0].add(1).mul(0.5)
        if r.patches_per_image == 0:
            clean = random_crops(clean, r.crop)
        with torch.no_grad():
            inp, cond = self.degrade(clean)
        if self.cfg.train.channels_last:
            inp = inp.contiguous(memory_format=torch.channels_last)
        self.net.train()
        with autocast(self.device, self.precision):
            out = self.net(inp, cond).float()
        weight = cond if r.kind == "inpaint" else None
        loss_pix = pixel_loss(r.pixel_loss, out, clean, weight)
        stats: dict[str, float] = {"loss_pix": loss_pix.item(), "loss_d": 0.0}
        loss = r.pixel_weight * r.hole_pixel_weight * loss_pix  # hole_pixel_weight: 1 except for inpainting
        if self.perceptual is not None:
            with autocast(self.device, self.precision):
                loss_perc = self.perceptual(out, clean)
            loss = loss + r.perceptual_weight * loss_perc
            stats["loss_perc"] = loss_perc.item()
        if self.D is not None:
            # inpainting: D's "fake" target covers the holes only (the rest of a fill is the real image)
            hole = cond if r.kind == "inpaint" else None
            loss_d, d_stats = self.d_step(clean, out.detach(), hole)
            stats.update(d_stats, loss_d=loss_d)
            with autocast(self.device, self.precision), frozen(self.D):  # no gradients to D's weights here
                g_fake, f_fake = self.D(out)
            loss_adv = g_loss(r.gan_loss, g_fake.float(), hole)
            loss = loss + r.adv_weight * loss_adv
            stats["loss_adv"] = loss_adv.item()
            if r.fm_weight > 0:
                with torch.no_grad(), autocast(self.device, self.precision):
                    _, f_real = self.D(clean)
                pairs = zip(f_fake, f_real, strict=True)
                loss_fm = sum(F.l1_loss(a.float(), b.float()) for a, b in pairs) / len(f_real)
                loss = loss + r.fm_weight * loss_fm
                stats["loss_fm"] = loss_fm.item()
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(self.net, self.world)
        self.opt_g.step()
        self.steps_done += 1
        self.update_ema()
        stats.update(loss_g=loss.item(), lr=lr)
        return stats

    def d_step(self, real: torch.Tensor, fake: torch.Tensor, hole: torch.Tensor | None) -> tuple[float, dict]:
        """One discriminator update (hinge, or non-saturating with R1 on the real images)."""
        r = self.cfg.restore
        # lazy R1 (StyleGAN2): the penalty every ``r1_every`` D steps, weighted by that interval
        r1 = r.r1_gamma > 0 and self.steps_done % r.r1_every == 0
        real = real.detach().requires_grad_(r1)
        with autocast(self.device, self.precision):
            d_real, _ = self.D(real)
            d_fake, _ = self.D(fake)
        loss = d_loss(r.gan_loss, d_real.float(), d_fake.float(), hole)
        stats = {}
        if r1:
            penalty = r1_penalty(d_real, real)
            loss = loss + r.r1_gamma / 2 * r.r1_every * penalty
            stats["r1"] = penalty.item()
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(self.D, self.world)
        self.opt_d.step()
        return loss.item(), stats

    def update_ema(self) -> None:
        t = self.cfg.train
        ema_update(self.net_ema, self.net, t.ema_decay, average=self.steps_done >= t.ema_start)

    def images_per_step(self) -> int:
        return self.cfg.train.batch_size

    def finalize_ema(self) -> None:
        """Nothing to do: the nets have no BatchNorm."""

    # ------------------------------------------------------------------ validation and samples
    def val_images(self) -> list[torch.Tensor]:
        if self._val is None:
            self._val = load_val_images(self.cfg)
        return self._val

    @torch.no_grad()
    def restore_val(self, i: int, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(degraded, restored, cond) for validation image ``i`` with a fixed degradation seed."""
        g = torch.Generator().manual_seed(self.cfg.train.seed * 7919 + 1000 + i)
        x = img.to(self.device)
        inp, cond = self.degrade(x, g)
        self.net_ema.eval()
        return inp, pad_forward(self.net_ema, inp, cond).clamp(0, 1), cond

    def validate(self, force: bool = False) -> dict[str, float]:
        """Mean PSNR / SSIM (and L1 ``val_loss``) of the EMA net on the held-out images, every
        ``restore.val_every`` steps and at the last step."""
        if not force and self.steps_done % self.cfg.restore.val_every and self.steps_done != self.cfg.train.steps:
            return {}
        ps, ss, ls, pin, pfill = [], [], [], [], []
        for i, img in enumerate(self.val_images()):
            inp, out, cond = self.restore_val(i, img)
            x = img.to(out.device)
            ps.append(psnr(out, x, peak=1.0))
            ss.append(ssim(out, x, peak=1.0))
            ls.append(F.l1_loss(out, x).item())
            base = inp
            if self.cfg.restore.kind == "sr":
                base = dg.bicubic_up(inp, self.cfg.restore.scale)
            elif cond is not None and cond.dim() == 4:  # inpainting: holes filled with mid-grey
                base = torch.where(cond > 0.5, torch.full_like(inp, 0.5), inp)
                # and the classical base fill (the FFC net's starting point; push-pull for the gated
                # net): psnr - psnr_fill is what the net adds (it stayed ~0 in a run whose ReLUs had died)
                fill = getattr(self.net_ema, "fill", lambda a, h: pushpull_fill(a, h))
                pfill.append(psnr(fill(inp, cond > 0.5).clamp(0, 1), x, peak=1.0))
            pin.append(psnr(base.clamp(0, 1), x, peak=1.0))
        n = max(len(ps), 1)
        fill = {"psnr_fill": sum(pfill) / n} if pfill else {}
        return {"psnr": sum(ps) / n, "ssim": sum(ss) / n, "val_loss": sum(ls) / n, "psnr_input": sum(pin) / n} | fill

    @torch.no_grad()
    def sample_grid(self) -> tuple[torch.Tensor, int]:
        """Columns: degraded input, restored, ground truth; one row per validation image (96 px crops)."""
        r = self.cfg.restore
        c = 96
        rows = []
        for i, img in enumerate(self.val_images()[:4]):
            _, _, h, w = img.shape
            k = min(c, h, w)
            k -= k % 12
            crop = img[:, :, (h - k) // 2:(h - k) // 2 + k, (w - k) // 2:(w - k) // 2 + k]
            inp, out, cond = self.restore_val(i, crop)
            if r.kind == "sr":
                inp = F.interpolate(inp, scale_factor=r.scale, mode="nearest")
            if r.kind == "inpaint":
                inp = torch.where(cond > 0.5, torch.ones_like(inp), inp)
            rows += [inp.clamp(0, 1).cpu(), out.cpu(), crop]
        return torch.cat(rows).mul(2).sub(1), 3

    # ------------------------------------------------------------------ state
    def modules(self) -> dict[str, nn.Module]:
        mods: dict[str, nn.Module] = {"net": self.net, "net_ema": self.net_ema}
        if self.D is not None:
            mods["D"] = self.D
        return mods

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        opts = {"opt_g": self.opt_g}
        if self.opt_d is not None:
            opts["opt_d"] = self.opt_d
        return opts
