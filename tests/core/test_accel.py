"""Speed switches: precision per device, channels_last, torch.compile."""

import pytest
import torch
from helpers import tiny_overrides
from safetensors.torch import load_file

from resgan import accel
from resgan.config import load_config
from resgan.errors import ResganError
from resgan.gan.task import GAN
from resgan.train import CHECKPOINT, train

CPU = torch.device("cpu")


def test_auto_precision_follows_the_cpu(monkeypatch):
    monkeypatch.delenv("RESGAN_CPU_BF16", raising=False)
    flags = {"_is_amx_tile_supported": False, "_is_avx512_bf16_supported": False}
    monkeypatch.setattr(accel, "_probe", lambda name: flags[name])
    assert accel.resolve_precision("auto", CPU) == "fp32"  # no native bf16: it would be emulated
    flags["_is_avx512_bf16_supported"] = True
    assert accel.resolve_precision("auto", CPU) == "bf16"
    flags.update(_is_amx_tile_supported=True, _is_avx512_bf16_supported=False)
    assert accel.resolve_precision("auto", CPU) == "bf16"
    monkeypatch.setenv("RESGAN_CPU_BF16", "0")  # a host where bf16 kernels trail fp32 ones
    assert accel.resolve_precision("auto", CPU) == "fp32"
    flags["_is_amx_tile_supported"] = False
    monkeypatch.setenv("RESGAN_CPU_BF16", "1")
    assert accel.resolve_precision("auto", CPU) == "bf16"
    assert accel.resolve_precision("fp32", CPU) == "fp32"
    assert accel.resolve_precision("bf16", CPU) == "bf16"
    with pytest.raises(ResganError, match="fp16 needs CUDA"):
        accel.resolve_precision("fp16", CPU)


def test_bf16_autocast_and_channels_last_reach_the_step():
    cfg = load_config("digits", tiny_overrides(**{"train.precision": "bf16", "train.channels_last": "true"}))
    gan = GAN(cfg, CPU)
    assert gan.precision == "bf16"
    assert gan.G.blocks[0].conv1.weight.is_contiguous(memory_format=torch.channels_last)
    seen = []
    gan.D.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    real = torch.rand(16, 1, 16, 16) * 2 - 1
    gan.train_step(lambda: (real, torch.randint(0, 10, (16,))))
    assert seen and all(d == torch.bfloat16 for d in seen)


def test_compiled_run_writes_checkpoints_an_eager_model_loads(tmp_path):
    """torch.compile with the parametrized spectral norm trains, and compiling changes no state-dict key."""
    cfg = load_config("digits", tiny_overrides(**{"train.steps": 2, "train.compile": "true",
                                                  "train.precision": "fp32"}))
    train(cfg, tmp_path / "run", progress=False)
    state = load_file(tmp_path / "run" / CHECKPOINT)
    assert not any("_orig_mod" in k for k in state)
    eager = GAN(load_config("digits", tiny_overrides(**{"gan.num_classes": 10})), CPU)
    eager.G.load_state_dict({k[2:]: v for k, v in state.items() if k.startswith("G.")})
    eager.D.load_state_dict({k[2:]: v for k, v in state.items() if k.startswith("D.")})
