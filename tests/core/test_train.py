import json

import pytest
import torch
from helpers import tiny_overrides
from safetensors.torch import load_file

from resgan import checkpoint as ckpt_mod
from resgan.checkpoint import load_checkpoint, save_checkpoint
from resgan.config import load_config
from resgan.errors import ResganError, TrainingDiverged
from resgan.gan.task import GAN
from resgan.train import CHECKPOINT, resume_config, train


def tiny_cfg(**extra):
    return load_config("digits", tiny_overrides(**extra))


def test_train_writes_run_outputs(tmp_path):
    ckpt = train(tiny_cfg(**{"train.steps": 4}), tmp_path / "run", progress=False)
    run = tmp_path / "run"
    assert ckpt == run / CHECKPOINT
    tensors, meta = load_checkpoint(ckpt)
    assert meta["step"] == 4 and meta["config"]["gan"]["num_classes"] == 10
    expected = {"G.linear.weight", "D.linear.parametrizations.weight.original", "G_ema.linear.weight", "rng.cpu"}
    assert expected <= set(tensors)
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_0000002.png", "step_0000004.png"]
    lines = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert [ln["step"] for ln in lines] == [1, 2, 3, 4] and {"loss_d", "loss_g", "img_per_s"} <= set(lines[0])
    html = (run / "report.html").read_text()
    assert "<svg" in html and "samples/step_0000004.png" in html
    assert not list(run.glob("*.tmp")) and not list(run.glob(".*.tmp"))


@pytest.mark.parametrize("loss", ["hinge", "wgan-gp"])
def test_resume_is_exact(tmp_path, loss):
    """Stopped at step 3 and resumed to 6 == 6 steps straight, bit for bit (CPU, same seed)."""
    extra = {"gan.loss": loss, "gan.diffaug": "color,translation,cutout", "gan.r1_gamma": 0.1,
             "gan.n_dis": 2, "train.ema_decay": 0.9}
    train(tiny_cfg(**{"train.steps": 6}, **extra), tmp_path / "straight", progress=False)
    train(tiny_cfg(**{"train.steps": 3}, **extra), tmp_path / "resumed", progress=False)
    cfg = resume_config(tmp_path / "resumed", None, steps=6)
    train(cfg, tmp_path / "resumed", resume=True, progress=False)
    a = load_file(tmp_path / "straight" / CHECKPOINT)
    b = load_file(tmp_path / "resumed" / CHECKPOINT)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    steps = [json.loads(ln)["step"] for ln in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_resume_rules(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(ResganError, match="no checkpoint"):
        train(tiny_cfg(**{"train.steps": 2}), run, resume=True, progress=False)
    train(tiny_cfg(**{"train.steps": 2}), run, progress=False)
    with pytest.raises(ResganError, match="already holds a run"):
        train(tiny_cfg(**{"train.steps": 2}), run, progress=False)
    with pytest.raises(ResganError, match=r"--set gan.g_width=16: the run .* was trained with gan.g_width="):
        resume_config(run, ["gan.g_width=16"], steps=4)
    with pytest.raises(ResganError, match="train.seed"):  # the seed belongs to the run
        resume_config(run, ["train.seed=7"], steps=4)
    stored = resume_config(run, None)
    assert stored.train == tiny_cfg(**{"train.steps": 2}).train and stored.data == tiny_cfg().data
    # an explicit train setting is applied; one that repeats the stored value is fine
    cfg = resume_config(run, ["train.lr_g=1e-5", f"data.name={stored.data.name}", "data.path=/moved"], steps=4)
    assert cfg.train.lr_g == 1e-5 and cfg.train.steps == 4 and cfg.gan == stored.gan
    assert cfg.data.path == "/moved"  # the same files in another place


def test_crash_mid_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "latest.safetensors"
    save_checkpoint(path, {"w": torch.ones(3)}, {"kind": "train", "step": 1})

    def crash(fd):
        raise OSError("simulated power cut during fsync")

    monkeypatch.setattr(ckpt_mod.os, "fsync", crash)
    with pytest.raises(ResganError, match=rf"{path}: cannot write \(simulated"):  # one line naming the file
        save_checkpoint(path, {"w": torch.zeros(3)}, {"kind": "train", "step": 2})
    monkeypatch.undo()
    tensors, meta = load_checkpoint(path)
    assert meta["step"] == 1 and torch.equal(tensors["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["latest.safetensors"]  # no temp file left


def test_truncated_or_foreign_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00garbage")
    with pytest.raises(ResganError, match="cannot read checkpoint"):
        load_checkpoint(bad)
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, tmp_path / "other.safetensors")
    with pytest.raises(ResganError, match="not a resgan checkpoint"):
        load_checkpoint(tmp_path / "other.safetensors")


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(tiny_cfg(**{"train.steps": 2}), run, progress=False)
    good = (run / CHECKPOINT).read_bytes()
    real_step = GAN.g_step

    def g_step_nan(self, n):
        out = real_step(self, n)
        return {**out, "loss_g": float("nan")} if self.steps_done >= 3 else out

    monkeypatch.setattr(GAN, "g_step", g_step_nan)
    cfg = resume_config(run, None, steps=8)
    with pytest.raises(TrainingDiverged, match=r"loss_g became nan at step 4"):
        train(cfg, run, resume=True, progress=False)
    assert (run / CHECKPOINT).read_bytes() == good


def _losses_on_fixed_batch(gan, real, y, steps, which):
    out = []
    for _ in range(steps):
        torch.manual_seed(0)  # same noise every step: only the trained network changes
        out.append(gan.d_step(real, y)["loss_d"] if which == "d" else gan.g_step(real.shape[0])["loss_g"])
    return out


def test_steps_move_losses_the_expected_way():
    cfg = tiny_cfg(**{"gan.num_classes": 10, "train.lr_d": 1e-3, "train.lr_g": 1e-3})
    gan = GAN(cfg, torch.device("cpu"))
    torch.manual_seed(1)
    real, y = torch.rand(16, 1, 16, 16) * 2 - 1, torch.randint(0, 10, (16,))
    d = _losses_on_fixed_batch(gan, real, y, 15, "d")  # D alone: it learns to tell real from fake
    assert d[-1] < d[0] - 0.3
    g = _losses_on_fixed_batch(gan, real, y, 15, "g")  # G alone against a fixed D: it fools D more
    assert g[-1] < g[0] - 0.3


def test_every_task_follows_the_task_protocol():
    """The loop calls nothing a task lacks: every TASKS entry has every method of train.Task."""
    from resgan.train import TASKS, Task

    wanted = [n for n, v in vars(Task).items() if not n.startswith("_") and callable(getattr(Task, n))]
    assert {"load_data", "configure", "train_step", "validate", "sample_grid", "modules"} <= set(wanted)
    for name, cls in TASKS.items():
        missing = [n for n in wanted if not callable(getattr(cls, n, None))]
        assert not missing, f"task {name} lacks {missing}"
