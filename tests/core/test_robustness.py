"""What a kill, a flipped bit or a hand-edited file leaves behind never loads silently or crashes a resume."""

import json

import pytest
import torch
from helpers import tiny_overrides
from safetensors.torch import save_file

from resgan.checkpoint import FORMAT, load_checkpoint, save_checkpoint
from resgan.config import load_config
from resgan.errors import ResganError
from resgan.train import CHECKPOINT, train


def test_a_flipped_byte_in_tensor_data_is_refused(tmp_path):
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, {"w": torch.arange(1000, dtype=torch.float32), "b": torch.ones(3, dtype=torch.bfloat16)},
                    {"step": 1})
    assert load_checkpoint(path)[1] == {"step": 1}
    raw = bytearray(path.read_bytes())
    raw[-100] ^= 0x10  # inside the tensor data, after the header
    path.write_bytes(bytes(raw))
    with pytest.raises(ResganError, match=rf"checkpoint {path} is corrupt"):
        load_checkpoint(path)


def test_a_header_that_is_not_a_settings_object_is_one_error(tmp_path):
    path = tmp_path / "c.safetensors"
    save_file({"w": torch.ones(2)}, str(path), metadata={"format": FORMAT, "meta": json.dumps([1, 2])})
    with pytest.raises(ResganError, match="not a resgan checkpoint"):
        load_checkpoint(path)


def test_resume_survives_a_torn_metrics_line_and_clears_stale_temp_files(tmp_path):
    run = tmp_path / "run"
    cfg = load_config("digits", tiny_overrides(**{"train.steps": 2, "train.log_every": 1}))
    train(cfg, run, progress=False)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "loss_d": 0.69')  # a kill mid-append
    (run / f".{CHECKPOINT}.abc123.tmp").write_bytes(b"half a checkpoint")  # a kill mid-write
    (run / "notes.tmp").write_text("not ours")
    more = load_config("digits", tiny_overrides(**{"train.steps": 3, "train.log_every": 1}))
    train(more, run, resume=True, progress=False)
    steps = [json.loads(ln)["step"] for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    assert not list(run.glob(f".{CHECKPOINT}.*.tmp")) and (run / "notes.tmp").exists()


def test_a_stop_asked_inside_a_step_saves_that_whole_step_and_resumes_exactly(tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from resgan.errors import Stopped
    from resgan.gan.task import GAN
    from resgan.train import request_stop

    def cfg(steps):
        return load_config("digits", tiny_overrides(**{"train.steps": steps, "train.ckpt_every": 100}))

    train(cfg(6), tmp_path / "straight", progress=False)
    step = GAN.train_step

    def stop_midway(self, next_batch):
        out = step(self, next_batch)
        if self.steps_done == 3:
            request_stop()  # a signal landing inside step 3, after its updates began
        return out

    monkeypatch.setattr(GAN, "train_step", stop_midway)
    with pytest.raises(Stopped, match="stopped at step 3"):
        train(cfg(6), tmp_path / "stopped", progress=False)
    monkeypatch.setattr(GAN, "train_step", step)
    assert load_checkpoint(tmp_path / "stopped" / CHECKPOINT)[1]["step"] == 3
    train(cfg(6), tmp_path / "stopped", resume=True, progress=False)
    a, b = load_file(tmp_path / "straight" / CHECKPOINT), load_file(tmp_path / "stopped" / CHECKPOINT)
    assert all(torch.equal(a[k], b[k]) for k in a)
