"""Every setting's own rule: ranges, choices, finite numbers, list lengths.

:func:`check_settings` runs over the whole :class:`resgan.config.Config` (``data``, ``train`` and
the task's section), from :func:`resgan.config.validate`, so every way a config is made (a preset,
``--set``, ``--steps``, a resumed run's stored config, a checkpoint's header) is checked before
any work starts, and a bad value is one line naming the key, the rule and the value. The rules:

* every float, and every number in a list, must be finite (NaN and infinity are refused);
* :data:`RULES` gives a key its own rule (``train.lr_g`` > 0, ``train.beta1`` in [0, 1), ...);
* a number without one must be >= 0 (every count, size, weight and probability here is), so a new
  setting is never left unchecked;
* strings with a fixed vocabulary have a choice rule here or in the task's own checks
  (:func:`resgan.config.validate_gan` / ``validate_restore``); :data:`FREE` lists the others
  (paths and model names, checked where they are opened).

Rules that tie settings together (``restore.sigma_max >= restore.sigma``, ...) stay with the
task's checks in :mod:`resgan.config`. This module imports no torch and nothing of resgan but its
errors; the choices copied from the modules that define them are checked against those by the tests.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from typing import Any

from .errors import ResganError

DATA_NAMES = ("digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "folder")  # resgan.data.LOADERS
GAN_LOSSES = ("nonsaturating", "hinge", "wgan-gp", "lsgan")  # resgan.gan.losses.LOSSES
DIFFAUG = ("color", "translation", "cutout")  # resgan.gan.diffaug.POLICIES
GAN_RESOLUTIONS = (16, 32, 64, 128)  # resgan.gan.models.RESOLUTIONS
MULTS = {16: 3, 32: 4, 64: 5, 128: 6}  # entries of gan.g_mults / d_mults per resolution (models.G_MULTS)
RESTORE_ARCHS = ("resnet", "unet", "gated", "ffc", "rfdn")  # which fits which kind: config.validate_restore
MAX_SEED = 2**32 - 1  # the data order's generator is seeded with seed * 1_000_003 + epoch (< 2**64)
DEVICE_RE = re.compile(r"(auto|cpu|mps|cuda(:\d+)?)")

# strings checked where they are used (a path, a model name, a data set spec)
FREE = ("data.path", "train.init", "gan.fid_reference", "restore.mask_path", "restore.val_path")


@dataclasses.dataclass(frozen=True)
class Rule:
    ok: Callable[[Any], bool]
    want: str  # "must be <want>"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def whole(lo: int, hi: int | None = None, note: str = "") -> Rule:
    want = f">= {lo}" if hi is None else f"within {lo}..{hi}"  # an int: the key's type says so
    return Rule(lambda v: _is_int(v) and v >= lo and (hi is None or v <= hi), want + note)


def number(lo: float, hi: float | None = None, lo_open: bool = False, hi_open: bool = False) -> Rule:
    def ok(v: Any) -> bool:
        return (_is_num(v) and math.isfinite(v) and (v > lo if lo_open else v >= lo)
                and (hi is None or (v < hi if hi_open else v <= hi)))

    if hi is None:
        return Rule(ok, f"{'>' if lo_open else '>='} {lo:g}")
    return Rule(ok, f"within {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}")


def one_of(*choices: Any) -> Rule:
    names = [str(c) for c in choices]
    want = " or ".join(names) if len(names) == 2 else "one of " + ", ".join(names)
    return Rule(lambda v: not isinstance(v, bool) and v in choices, want)


def pair(item: Rule) -> Rule:
    return Rule(lambda v: isinstance(v, list) and len(v) == 2 and all(item.ok(x) for x in v),
                f"a list of two values [lo, hi], each {item.want}")


def each(item: Rule) -> Rule:
    return Rule(lambda v: isinstance(v, list) and len(v) >= 1 and all(item.ok(x) for x in v),
                f"a list of one or more values, each {item.want}")


def _policies(v: Any) -> bool:
    return isinstance(v, str) and all(p.strip() in DIFFAUG for p in v.split(",") if p.strip())


UNIT = number(0, 1)  # probabilities and shares
NON_NEGATIVE = number(0)  # the rule of a number that has none of its own
RULES: dict[str, Rule] = {
    "data.name": one_of(*DATA_NAMES),
    "data.split": one_of("train", "test"),
    "data.resolution": whole(0, 4096, " (0: from the images, a GAN on data.name=folder)"),
    "data.channels": one_of(0, 1, 3),
    "data.limit": whole(1, note=" (or null: every image)"),
    "train.steps": whole(1),
    "train.batch_size": whole(1),
    "train.lr_g": number(0, lo_open=True),
    "train.lr_d": number(0, lo_open=True),
    "train.beta1": number(0, 1, hi_open=True),
    "train.beta2": number(0, 1, hi_open=True),
    "train.lr_decay": one_of("none", "linear"),
    "train.ema_decay": number(0, 1, hi_open=True),
    "train.ema_start": whole(0),
    "train.precision": one_of("auto", "fp32", "bf16", "fp16"),
    "train.device": Rule(lambda v: isinstance(v, str) and DEVICE_RE.fullmatch(v) is not None,
                         "auto, cpu, cuda, cuda:N or mps"),
    "train.seed": whole(0, MAX_SEED),
    "train.log_every": whole(1),
    "train.sample_every": whole(1),
    "train.ckpt_every": whole(1),
    "gan.z_dim": whole(1),
    "gan.g_width": whole(1),
    "gan.d_width": whole(1),
    "gan.g_mults": each(whole(1)),
    "gan.d_mults": each(whole(1)),
    "gan.d_norm": one_of("sn", "bn", "none"),
    "gan.d_mbstd": whole(0),
    "gan.g_norm": one_of("bn", "none"),
    "gan.cbn_embed": whole(0),
    "gan.num_classes": whole(0),
    "gan.loss": one_of(*GAN_LOSSES),
    "gan.n_dis": whole(1),
    "gan.diffaug": Rule(_policies, "a comma-separated list of " + ", ".join(DIFFAUG) + " (or empty)"),
    "gan.standing_stats": whole(0),
    "gan.fid_every": whole(0),
    "gan.fid_samples": whole(2),
    "restore.kind": one_of("denoise", "deblur", "jpeg", "sr", "inpaint", "real"),
    "restore.sigma": number(0, 255),
    "restore.sigma_max": number(0, 255),
    "restore.quantize": UNIT,
    "restore.scale": one_of(2, 3, 4),
    "restore.jpeg_quality": pair(whole(1, 100)),
    "restore.jpeg_draw": one_of("uniform", "low"),
    "restore.blur_sigma": pair(number(0, lo_open=True)),
    "restore.motion_prob": UNIT,
    "restore.mask": one_of("strokes", "boxes", "mixed", "lama", "lama_thin", "lama_medium", "lama_thick", "folder"),
    "restore.crop": whole(8),
    "restore.patches_per_image": whole(0),
    "restore.arch": one_of(*RESTORE_ARCHS),
    "restore.levels": whole(1, 8),
    "restore.global_ratio": number(0, 1, lo_open=True, hi_open=True),
    "restore.slope": number(0, 1, hi_open=True),
    "restore.fill_smooth": whole(0),
    "restore.width": whole(1),
    "restore.blocks": whole(1),
    "restore.dilations": each(whole(1)),
    "restore.down": one_of(1, 2, 4),
    "restore.pixel_loss": one_of("l1", "charbonnier", "l2"),
    "restore.gan_loss": one_of("hinge", "nonsaturating"),
    "restore.r1_every": whole(1),
    "restore.d_width": whole(1),
    "restore.d_layers": whole(1, 6),
    "restore.val_limit": whole(1),
    "restore.val_crop": Rule(lambda v: _is_int(v) and (v == 0 or v >= 8), "0 (whole image) or a whole number >= 8"),
    "restore.val_every": whole(1),
}


def _fail(key: str, want: str, value: Any) -> ResganError:
    return ResganError(f"{key} must be {want}, got {value!r}")


def check_value(key: str, value: Any) -> None:
    """One setting against its rule (see the module's docstring); None passes (where a key may be
    null, its type says so and :func:`resgan.config.from_dict` has checked it)."""
    if value is None:
        return
    values = value if isinstance(value, list) else [value]
    if any(isinstance(v, float) and not math.isfinite(v) for v in values):
        raise _fail(key, "a finite number", value)
    rule = RULES.get(key)
    if rule is not None:
        if not rule.ok(value):
            raise _fail(key, rule.want, value)
    elif any(_is_num(v) for v in values) and not all(NON_NEGATIVE.ok(v) for v in values if _is_num(v)):
        raise _fail(key, ">= 0" if not isinstance(value, list) else "a list of numbers >= 0", value)


def check_settings(cfg: Any) -> None:
    """Every key of ``cfg``'s ``data`` and ``train`` sections and of its task's section, then the
    rules between a GAN's keys that its sizes depend on. The first bad one is a ResganError."""
    for section in ("data", "train", cfg.task):
        part = getattr(cfg, section)
        for f in dataclasses.fields(part):
            check_value(f"{section}.{f.name}", getattr(part, f.name))
    if cfg.task == "gan":
        check_gan_shape(cfg)


def check_gan_shape(cfg: Any) -> None:
    d, g = cfg.data, cfg.gan
    folder = d.name == "folder"
    if d.resolution not in GAN_RESOLUTIONS and not (folder and d.resolution == 0):
        raise ResganError(f"data.resolution must be one of {', '.join(map(str, GAN_RESOLUTIONS))} for a GAN "
                          f"(unsupported resolution {d.resolution}; 0: from the images, data.name=folder)")
    for key, mults in (("gan.g_mults", g.g_mults), ("gan.d_mults", g.d_mults)):
        if mults is not None and d.resolution in MULTS and len(mults) != MULTS[d.resolution]:
            raise ResganError(f"{key} must have {MULTS[d.resolution]} entries at data.resolution={d.resolution}, "
                              f"got {mults}")
    if g.g_norm == "none" and (d.conditional or g.num_classes):
        raise ResganError("gan.g_norm must be bn for a conditional generator (none: data.conditional=false only; "
                          "class labels enter G through its conditional BatchNorm)")
