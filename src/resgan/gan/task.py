"""The GAN task: generator, discriminator, EMA generator, optimizers and one training step.

The generic loop in :mod:`resgan.train` drives any task with this shape:
``train_step(next_batch) -> dict of floats``, ``state() / load_state()``, ``sample_grid()``.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..accel import autocast, compile_module, frozen, resolve_precision, to_layout
from ..config import Config
from ..data import ImageSet, load_dataset
from ..dist import SINGLE, World, average_gradients
from ..errors import ResganError
from ..nn_common import ema_update, frozen_copy, lr_fraction, r1_penalty, set_lr
from .diffaug import diff_augment, parse_policy
from .losses import get_loss, gradient_norm_penalty, interpolates
from .models import ResNetGenerator, build_discriminator, build_generator


@torch.no_grad()
def standing_stats(G: ResNetGenerator, batches: int, batch_size: int, seed: int = 0) -> None:
    """Re-estimate G's BatchNorm running statistics from its own samples (cumulative average).

    The EMA generator's weights are an average, so the running statistics it would inherit
    from G do not match it; this makes eval-mode sampling faithful. Deterministic in ``seed``;
    it does not touch the global RNG.
    """
    device = next(G.parameters()).device
    bns = [m for m in G.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    g = torch.Generator().manual_seed(seed)
    G.train()
    for _ in range(batches):
        z = torch.randn(batch_size, G.z_dim, generator=g).to(device)
        y = torch.randint(0, G.num_classes, (batch_size,), generator=g).to(device) if G.num_classes else None
        G(z, y)
    for bn, mom in zip(bns, momenta):
        bn.momentum = mom
    G.eval()


class GAN:
    """A residual GAN being trained (a :class:`resgan.train.Task`)."""

    @staticmethod
    def load_data(cfg: Config) -> ImageSet:
        return load_dataset(cfg.data)

    @staticmethod
    def configure(cfg: Config, data: ImageSet) -> Config:
        """Set gan.num_classes from the data when the run is conditional, and what was left to the
        data (``data.resolution`` / ``channels`` 0, ``conditional`` null: the ``folder`` preset) from
        the images as loaded, so that the run's stored config says what it trained on."""
        _, c, h, _ = data.images.shape
        conditional = cfg.data.conditional if cfg.data.conditional is not None else len(data.classes) >= 2
        n = len(data.classes) if conditional else 0
        if conditional and n < 2:
            raise ResganError("data.conditional=true needs a labelled data set with 2 or more classes "
                              "(for a folder: one sub-folder per class); set data.conditional=false")
        d = dataclasses.replace(cfg.data, resolution=cfg.data.resolution or h, channels=cfg.data.channels or c,
                                conditional=conditional)
        return dataclasses.replace(cfg, data=d, gan=dataclasses.replace(cfg.gan, num_classes=n))

    def grid_rows(self, classes: list[str]) -> list[str]:
        """The label of each row of :meth:`sample_grid` (one row per class; none when unconditional)."""
        return [str(c) for c in classes[: min(self.num_classes, 20)]] if self.num_classes else []

    def __init__(self, cfg: Config, device: torch.device, world: World = SINGLE):
        self.cfg, self.device, self.world = cfg, device, world
        t = cfg.train
        if cfg.gan.d_mbstd and (t.batch_size // world.size) % cfg.gan.d_mbstd:
            raise ResganError(f"gan.d_mbstd {cfg.gan.d_mbstd} must divide the per-rank batch "
                              f"{t.batch_size // world.size}")
        self.precision = resolve_precision(t.precision, device)
        self.G = build_generator(cfg).to(device)
        self.D = build_discriminator(cfg).to(device)
        self.G_ema = frozen_copy(self.G)
        if cfg.gan.sync_bn and world.size > 1:
            if device.type != "cuda":
                raise ResganError("gan.sync_bn needs CUDA (PyTorch's SyncBatchNorm has no CPU kernel)")
            self.G = nn.SyncBatchNorm.convert_sync_batchnorm(self.G)
        for m in (self.G, self.D, self.G_ema):
            to_layout(m, t.channels_last)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=t.lr_g, betas=(t.beta1, t.beta2))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=t.lr_d, betas=(t.beta1, t.beta2))
        # fp16 needs loss scaling; bf16 and fp32 do not (a disabled scaler is a no-op)
        self.scaler_d = torch.amp.GradScaler("cuda", enabled=self.precision == "fp16")
        self.scaler_g = torch.amp.GradScaler("cuda", enabled=self.precision == "fp16")
        if t.compile:  # after the optimizers: compile leaves parameters and state-dict keys as they are
            compile_module(self.G)
            compile_module(self.D)
        self.d_loss_fn, self.g_loss_fn = get_loss(cfg.gan.loss)
        self.policy = parse_policy(cfg.gan.diffaug)
        self.num_classes = cfg.gan.num_classes
        self.steps_done = 0  # generator steps, for the learning-rate schedule and EMA start
        self.tracker = None  # FID / CAS during training (gan.fid_every), made on first use

    # ------------------------------------------------------------------ pieces of a step
    def autocast(self):
        return autocast(self.device, self.precision)

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        x = diff_augment(x, self.policy) if self.policy else x
        return x.contiguous(memory_format=torch.channels_last) if self.cfg.train.channels_last else x

    def _noise(self, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """This rank's slice of a global batch of noise (and labels), drawn alike on every rank."""
        n_global, part = n * self.world.size, self.world.slice(n * self.world.size)
        z = torch.randn(n_global, self.cfg.gan.z_dim, device=self.device)[part]
        y = torch.randint(0, self.num_classes, (n_global,), device=self.device)[part] if self.num_classes else None
        return z, y

    def _backward_step(self, loss: torch.Tensor, module: nn.Module, opt: torch.optim.Optimizer,
                       scaler: torch.amp.GradScaler) -> None:
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        average_gradients(module, self.world)
        scaler.step(opt)
        scaler.update()

    def d_step(self, real: torch.Tensor, y_real: torch.Tensor | None) -> dict[str, float]:
        """One discriminator update on a real batch and a fresh fake batch.

        A discriminator without batch statistics (spectral norm or none) sees real, fake (and the
        WGAN-GP interpolates) in one forward pass, as BigGAN does: faster, the same loss, and one
        forward per backward, which torch.compile needs (spectral norm updates its vectors in place).
        A BatchNorm discriminator sees real and fake in separate passes, so each has its own statistics.
        """
        g = self.cfg.gan
        n = real.shape[0]
        z, y_fake = self._noise(n)
        with torch.no_grad(), self.autocast():
            fake = self.G(z, y_fake)
        real_in, fake_in = self._prep(real), self._prep(fake.float())
        if g.r1_gamma > 0:
            real_in = real_in.detach().requires_grad_(True)
        x_hat = None
        if g.loss == "wgan-gp":
            n_global = n * self.world.size
            alpha = torch.rand(n_global, 1, 1, 1, device=self.device)[self.world.slice(n_global)]
            x_hat = interpolates(real_in, fake_in, alpha)
        out: dict[str, float] = {}
        with self.autocast():
            if self.cfg.gan.d_norm != "bn":
                parts = [real_in, fake_in] + ([x_hat] if x_hat is not None else [])
                ys = None if y_real is None else torch.cat([y_real, y_fake] + ([y_real] if x_hat is not None else []))
                logits = self.D(torch.cat(parts), ys).float().split(n)
            else:
                logits = [self.D(real_in, y_real).float(), self.D(fake_in, y_fake).float()]
                if x_hat is not None:
                    logits.append(self.D(x_hat, y_real).float())
        d_real, d_fake = logits[0], logits[1]
        loss = self.d_loss_fn(d_real, d_fake)
        out.update(d_real=d_real.mean().item(), d_fake=d_fake.mean().item())
        if x_hat is not None:
            gp = gradient_norm_penalty(logits[2], x_hat)
            loss = loss + g.gp_weight * gp
            out["gp"] = gp.item()
        if g.r1_gamma > 0:
            r1 = r1_penalty(d_real, real_in)
            loss = loss + 0.5 * g.r1_gamma * r1
            out["r1"] = r1.item()
        self._backward_step(loss, self.D, self.opt_d, self.scaler_d)
        out["loss_d"] = loss.item()
        return out

    def g_step(self, batch_size: int) -> dict[str, float]:
        z, y = self._noise(batch_size)
        with self.autocast(), frozen(self.D):  # gradients reach G through D, none to D's weights
            fake = self.G(z, y)
            out = self.D(self._prep(fake), y).float()
        loss = self.g_loss_fn(out)
        self._backward_step(loss, self.G, self.opt_g, self.scaler_g)
        return {"loss_g": loss.item()}

    @torch.no_grad()
    def update_ema(self) -> None:
        t = self.cfg.train
        ema_update(self.G_ema, self.G, t.ema_decay, average=self.steps_done >= t.ema_start, buffers=True)

    def set_lr(self) -> float:
        t = self.cfg.train
        frac = lr_fraction(self.steps_done, t.steps, t.lr_decay)
        set_lr(((self.opt_g, t.lr_g), (self.opt_d, t.lr_d)), frac)
        return t.lr_g * frac

    # ------------------------------------------------------------------ the step
    def train_step(self, next_batch) -> dict[str, float]:
        """n_dis discriminator steps, each on a fresh real batch, then one generator step."""
        lr = self.set_lr()
        self.G.train()
        self.D.train()
        stats: dict[str, float] = {}
        for _ in range(self.cfg.gan.n_dis):
            real, y = next_batch()
            for k, v in self.d_step(real, y if self.num_classes else None).items():
                stats[k] = stats.get(k, 0.0) + v / self.cfg.gan.n_dis
        stats.update(self.g_step(real.shape[0]))
        self.steps_done += 1
        self.update_ema()
        stats["lr"] = lr
        return stats

    def images_per_step(self) -> int:
        """Real images per generator step, over all ranks."""
        return self.cfg.train.batch_size * self.cfg.gan.n_dis

    # ------------------------------------------------------------------ sampling
    def finalize_ema(self) -> None:
        """Give the EMA generator BatchNorm statistics of its own (see :func:`standing_stats`)."""
        if self.cfg.gan.standing_stats > 0:
            standing_stats(self.G_ema, self.cfg.gan.standing_stats, self.cfg.train.batch_size, self.cfg.train.seed)

    @torch.no_grad()
    def sample_grid(self) -> tuple[torch.Tensor, int]:
        """Fixed-noise samples of the EMA generator: one row per class (10 columns), or 8x8."""
        self.finalize_ema()
        g = torch.Generator().manual_seed(self.cfg.train.seed + 12345)
        if self.num_classes:
            rows, cols = min(self.num_classes, 20), 10
            z = torch.randn(cols, self.cfg.gan.z_dim, generator=g).repeat(rows, 1)
            y = torch.arange(rows).repeat_interleave(cols).to(self.device)
        else:
            rows = cols = 8
            z, y = torch.randn(rows * cols, self.cfg.gan.z_dim, generator=g), None
        self.G_ema.eval()
        return self.G_ema(z.to(self.device), y).float().cpu(), cols

    def validate(self) -> dict[str, float]:
        """FID (and CAS) of the EMA generator every ``gan.fid_every`` steps and at the last step."""
        every = self.cfg.gan.fid_every
        if not every or (self.steps_done % every and self.steps_done != self.cfg.train.steps):
            return {}
        from .tracker import QualityTracker

        self.tracker = self.tracker or QualityTracker(self.cfg, self.device)
        self.finalize_ema()
        self.G_ema.eval()
        return self.tracker(self.G_ema)

    # ------------------------------------------------------------------ state
    def modules(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D, "G_ema": self.G_ema}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt_g": self.opt_g, "opt_d": self.opt_d}
