"""Shared helpers of the restore tests (no tests here): tiny untrained models saved as checkpoints."""

from pathlib import Path

import pytest
import torch
from helpers import photo, png_claiming  # noqa: F401 (re-exported for the tests that import them here)

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


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny nets run faster on one thread, above all on busy machines; restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
