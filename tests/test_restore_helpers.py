"""Shared helpers of the restore tests (no tests here): tiny untrained models saved as checkpoints."""

from pathlib import Path

import numpy as np
import pytest
import torch

from resgan.checkpoint import prefixed, save_checkpoint
from resgan.config import config_from_dict
from resgan.restore.models import build_net


def tiny_cfg(kind: str, channels: int = 1, **restore):
    base = {"kind": kind, "width": 8, "blocks": 1, "crop": 32, "patches_per_image": 4, "val_crop": 64, "val_limit": 1}
    base.update(restore)
    return config_from_dict({"task": "restore", "data": {"name": "folder", "channels": channels}, "restore": base})


def tiny_model_file(tmp_path: Path, kind: str, channels: int = 1, seed: int = 0, **restore) -> Path:
    """A randomly initialised (tail made non-zero) net of ``kind``, saved like an exported model."""
    cfg = tiny_cfg(kind, channels, **restore)
    torch.manual_seed(seed)
    net = build_net(cfg)
    with torch.no_grad():
        for p in net.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.01)
    path = tmp_path / f"{kind}_{channels}.safetensors"
    save_checkpoint(path, prefixed("net_ema", net.state_dict()),
                    {"kind": "restorer", "task": "restore", "step": 0, "config": cfg.to_dict()})
    return path


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


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny nets run faster on one thread, above all on busy machines; restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def png_claiming(w: int, h: int) -> bytes:
    """A valid tiny PNG whose header claims w x h (a decompression bomb's shape)."""
    import io
    import struct
    import zlib

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)
