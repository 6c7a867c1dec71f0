import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RESGAN_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set RESGAN_DATA)")
    return SHARED_DATA


def tiny_overrides(**extra) -> list[str]:
    """A digits run small enough for a test: 16 px, width 8, batch 16."""
    base = {"data.resolution": 16, "gan.g_width": 8, "gan.d_width": 8, "gan.z_dim": 16,
            "train.batch_size": 16, "train.log_every": 1, "train.sample_every": 2, "train.ckpt_every": 2,
            "gan.standing_stats": 2}
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]
