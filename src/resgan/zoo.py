"""The one place that finds, loads and exports a trained model, whatever its task.

A *source* is a built-in name (``BUILTINS``), a run directory (its ``latest.safetensors``) or a
``.safetensors`` file (a training checkpoint or an exported model). :func:`resolve` turns it into
(task, file); :func:`load_generator` / :func:`load_restorer` build the EMA net in eval mode;
:func:`export` writes the EMA net alone (the built-in format). ``generate``, ``restore``,
``evaluate`` and ``serve`` all come through here, so a model found by one is found by all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ._version import __version__
from .accel import torch_device
from .checkpoint import checkpoint_file, load_checkpoint, save_checkpoint, unprefixed
from .config import Config, apply_overrides, config_from_dict, parse_override, stored_config
from .errors import ResganError
from .gan.models import ResNetGenerator, build_generator
from .restore.models import build_net

BUILTIN_DIR = Path(__file__).resolve().parent / "weights"
# built-in name -> (task, file in BUILTIN_DIR); how each was trained: the .md file beside it
BUILTINS: dict[str, tuple[str, str]] = {
    "mnist": ("gan", "mnist_cgan32.safetensors"),
    "denoise_gray": ("restore", "restore_denoise_gray.safetensors"),
    "denoise_color": ("restore", "restore_denoise_color.safetensors"),
    "inpaint": ("restore", "restore_inpaint.safetensors"),
    "sr_x4": ("restore", "restore_sr_x4.safetensors"),
    "jpeg_gray": ("restore", "restore_jpeg_gray.safetensors"),
    "jpeg_color": ("restore", "restore_jpeg_color.safetensors"),
}
# built-ins still being trained: each joins BUILTINS once its file is in BUILTIN_DIR (a file dropped
# there is then found by generate, evaluate, serve, the Python API and the tests over BUILTINS)
PENDING: dict[str, tuple[str, str]] = {
    "cifar10": ("gan", "gan_cifar10_cgan32.safetensors"),
}
BUILTINS.update({n: e for n, e in PENDING.items() if (BUILTIN_DIR / e[1]).is_file()})
# the EMA net each task exports and infers with (the prefix of its tensors), and the exported kind
EMA_NET = {"gan": ("G_ema", "generator"), "restore": ("net_ema", "restorer")}


def builtin_path(name: str) -> Path:
    return BUILTIN_DIR / BUILTINS[name][1]


def builtins(task: str | None = None) -> list[str]:
    """Built-in names (of ``task``)."""
    return [n for n, (t, _) in BUILTINS.items() if task is None or t == task]


def checkpoint_task(path: Path) -> str | None:
    """The ``task`` of a resgan checkpoint from its header alone (no tensors read)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return json.loads((f.metadata() or {}).get("meta", "{}")).get("task")
    except Exception as e:  # noqa: BLE001 - any unreadable file is one clear message
        raise ResganError(f"cannot read checkpoint {path}: {str(e).splitlines()[0] if str(e) else e!r}") from None


def resolve_file(source: str | Path) -> Path:
    """A built-in name, a run directory or a checkpoint file -> the checkpoint file."""
    if str(source) in BUILTINS:
        p = builtin_path(str(source))
        if not p.is_file():
            raise ResganError(f"built-in model {source!r} is missing ({p}); reinstall resgan")
        return p
    p = checkpoint_file(source)
    if p is None and str(source) in PENDING:
        raise ResganError(f"built-in model {source!r} is not shipped yet ({BUILTIN_DIR / PENDING[str(source)][1]} is "
                          f"absent); give a run directory, a .safetensors file or a built-in: {', '.join(BUILTINS)}")
    if p is None:
        raise ResganError(f"no model {str(source)!r} (no checkpoint at {source}; give a run directory, "
                          f"a .safetensors file or a built-in: {', '.join(BUILTINS)})")
    return p


def resolve(source: str | Path) -> tuple[str | None, Path]:
    """(task, checkpoint file) of a source; the task is read from the file's header."""
    if str(source) in BUILTINS:
        return BUILTINS[str(source)][0], resolve_file(source)
    path = resolve_file(source)
    return checkpoint_task(path), path


def _load_ema(path: Path, task: str, what: str) -> tuple[Config, dict, dict[str, torch.Tensor]]:
    tensors, meta = load_checkpoint(path)
    if meta.get("task") != task:
        raise ResganError(f"{path} is not {what} (task {meta.get('task')!r})")
    state = {k: v.float() for k, v in unprefixed(EMA_NET[task][0], tensors).items()}
    check_finite(path, state)
    return model_config(path, meta), meta, state


def init_weights(modules: dict[str, torch.nn.Module], task: str, source: str) -> list[str]:
    """``train.init``: copy a trained model's EMA net into a fresh run's net and its EMA (``G`` / ``G_ema``,
    ``net`` / ``net_ema``): every tensor whose name and shape match (fine-tuning, e.g. a JPEG model from a
    denoiser of the same architecture). Returns the names left at their fresh initialisation; a source that
    shares no tensor at all is an error, since then nothing would be fine-tuned."""
    path = resolve_file(source)
    _, _, state = _load_ema(path, task, f"a {task} model")
    ema_name = EMA_NET[task][0]
    fresh: list[str] = []
    copied = 0
    for name in (ema_name.removesuffix("_ema"), ema_name):
        own = modules[name].state_dict()
        for k, v in own.items():
            if k in state and state[k].shape == v.shape:
                v.copy_(state[k].to(v.dtype))
                copied += 1
            elif name == ema_name:
                fresh.append(k)
    if not copied:
        raise ResganError(f"train.init: {path} shares no tensor (name and shape) with this run's net")
    return fresh


def model_config(path: Path, meta: dict) -> Config:
    """The Config stored in a checkpoint's header; a header without a usable one is a ResganError."""
    if not isinstance(meta.get("config"), dict):
        raise ResganError(f"{path}: the checkpoint's header holds no model config (not written by resgan "
                          "train / export, or edited); re-export it from its run directory")
    try:
        return stored_config(meta["config"])
    except (ResganError, TypeError, ValueError, KeyError, AttributeError) as e:
        raise ResganError(f"{path}: the checkpoint's model config is unusable: {e}") from None


def check_finite(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Weights holding NaN or infinity would give garbage images with exit 0: refuse them."""
    for k, v in tensors.items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise ResganError(f"{path}: weight {k} holds NaN or infinite values; the model is unusable "
                              "(a diverged run? use an earlier checkpoint)")


def _fit(net: torch.nn.Module, state: dict[str, torch.Tensor], path: Path, what: str) -> None:
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise ResganError(f"{path} does not fit the {what} its config describes: {str(e).splitlines()[0]}") from None


def load_generator(source: str | Path, device: str | torch.device = "cpu") -> tuple[ResNetGenerator, dict]:
    """The EMA generator of a run or an exported generator, in eval mode, and the checkpoint's meta."""
    device = torch_device(device)
    path = resolve_file(source)
    cfg, meta, state = _load_ema(path, "gan", "a GAN checkpoint")
    G = build_generator(cfg)
    _fit(G, state, path, "generator")
    return G.to(device).eval(), meta


@dataclass
class RestoreModel:
    net: torch.nn.Module
    cfg: Config
    source: str
    step: int = 0  # training steps of the weights

    @property
    def kind(self) -> str:
        return self.cfg.restore.kind

    @property
    def channels(self) -> int:
        return self.cfg.data.channels

    @property
    def scale(self) -> int:
        return self.cfg.restore.scale if self.kind == "sr" else 1


def load_restorer(source: str | Path, device: str | torch.device = "cpu") -> RestoreModel:
    """The EMA net of a restore run or an exported restorer, in eval mode (any kind)."""
    device = torch_device(device)
    path = resolve_file(source)
    cfg, meta, state = _load_ema(path, "restore", "a restoration model")
    net = build_net(cfg)
    _fit(net, state, path, "net")
    for p in net.parameters():
        p.requires_grad_(False)
    net = net.to(device, memory_format=torch.channels_last)  # 1.5x faster convolutions at inference on CPU
    return RestoreModel(net.eval(), cfg, str(path), int(meta.get("step", 0)))


# --set keys ``resgan export`` may change: how a trained net is used, not what it learned or its shapes
# (anything else would silently run the net out of its training, or not load)
EXPORT_KEYS = ("restore.fill_smooth",)


def export(source: str | Path, out: Path, half: bool = True, overrides: list[str] | None = None) -> Path:
    """Write a run's EMA net (generator or restorer) and config alone, float16 with ``half``: the built-in
    format. ``overrides`` (``key=value``, keys in :data:`EXPORT_KEYS`) change inference settings of the
    written config, e.g. the inpainting net's base fill."""
    path = resolve_file(source)
    tensors, meta = load_checkpoint(path)
    task = meta.get("task")
    if task not in EMA_NET:
        raise ResganError(f"{path} holds no generator or restoration net (task {task!r})")
    prefix, kind = EMA_NET[task]
    keep = {k: (v.half() if half and v.is_floating_point() else v) for k, v in tensors.items()
            if k.startswith(prefix + ".")}
    if not keep:
        raise ResganError(f"{path} holds no {kind}")
    cfg = model_config(path, meta)  # written in the current layout, whatever version wrote the run
    check_finite(path, keep)
    if overrides:
        for text in overrides:
            key = ".".join(parse_override(text)[0])
            if key not in EXPORT_KEYS:
                raise ResganError(f"resgan export --set {key}: not an inference setting; "
                                  f"export may change {', '.join(EXPORT_KEYS)}")
        cfg = config_from_dict(apply_overrides(cfg.to_dict(), overrides))
        if task != "restore" or cfg.restore.kind != "inpaint" or cfg.restore.arch != "ffc":
            raise ResganError(f"resgan export --set: {path} is not an FFC inpainting net; nothing to set")
    out_meta = {"kind": kind, "task": task, "version": __version__, "step": int(meta.get("step", 0)),
                "config": cfg.to_dict()}
    if overrides:
        out_meta["export_overrides"] = list(overrides)
    if task == "gan":
        out_meta["classes"] = meta.get("classes", [])
    save_checkpoint(Path(out), keep, out_meta)
    return Path(out)
