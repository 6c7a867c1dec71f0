"""resgan.zoo: one table of built-ins; a name, a run dir or a file -> (task, file); export of either task."""

import pytest
import torch
from helpers import tiny_cfg

from resgan import zoo
from resgan.checkpoint import LATEST, load_checkpoint, prefixed, save_checkpoint
from resgan.cli import main
from resgan.errors import ResganError
from resgan.restore.infer import load_model
from resgan.restore.models import build_net

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny nets: one thread (conftest)


def fake_restore_run(run_dir):
    """A restore run's checkpoint as the loop writes it (net, net_ema, meta kind=train), without training."""
    cfg = tiny_cfg("denoise", 1, sigma=25.0)
    torch.manual_seed(0)
    net = build_net(cfg)
    tensors = {**prefixed("net", net.state_dict()), **prefixed("net_ema", net.state_dict())}
    save_checkpoint(run_dir / LATEST, tensors, {"kind": "train", "task": "restore", "step": 7,
                                                "config": cfg.to_dict(), "classes": []})
    return net


@pytest.mark.parametrize("name", list(zoo.BUILTINS))
def test_builtin_names_resolve_to_their_task(name):
    task, path = zoo.resolve(name)
    assert task == zoo.BUILTINS[name][0] and path == zoo.builtin_path(name) and path.is_file()
    assert zoo.checkpoint_task(path) == task  # the table agrees with the weights' own header


def test_run_dir_and_file_resolve(tmp_path):
    fake_restore_run(tmp_path)
    assert zoo.resolve(tmp_path) == ("restore", tmp_path / LATEST)
    assert zoo.resolve(str(tmp_path / LATEST)) == ("restore", tmp_path / LATEST)
    with pytest.raises(ResganError, match="no model"):
        zoo.resolve(tmp_path / "nope")


def test_builtins_load_with_their_loader():
    G, meta = zoo.load_generator("mnist")
    assert meta["task"] == "gan" and G.num_classes == 10
    m = zoo.load_restorer("inpaint")  # fp16 weights written before zoo existed
    assert m.kind == "inpaint" and next(m.net.parameters()).dtype == torch.float32
    with pytest.raises(ResganError, match="not a GAN checkpoint"):
        zoo.load_generator("denoise_gray")
    with pytest.raises(ResganError, match="not a restoration model"):
        zoo.load_restorer("mnist")


@pytest.mark.parametrize("fp32", [False, True])
def test_cli_export_of_a_restore_run_loads_with_the_restore_loader(tmp_path, capsys, fp32):
    run = tmp_path / "run"
    run.mkdir()
    net = fake_restore_run(run)
    out = tmp_path / "dn.safetensors"
    assert main(["export", str(run), "--out", str(out), *(["--fp32"] if fp32 else [])]) == 0
    tensors, meta = load_checkpoint(out)
    assert meta["kind"] == "restorer" and meta["task"] == "restore" and meta["step"] == 7
    assert tensors and all(k.startswith("net_ema.") for k in tensors)
    assert {v.dtype for v in tensors.values() if v.is_floating_point()} == {torch.float32 if fp32 else torch.float16}
    m = load_model("denoise", str(out))
    assert m.step == 7 and m.kind == "denoise"
    for k, v in net.state_dict().items():
        torch.testing.assert_close(m.net.state_dict()[k], v, atol=0 if fp32 else 1e-2, rtol=0 if fp32 else 1e-2)


def test_export_refuses_a_foreign_checkpoint(tmp_path):
    f = tmp_path / "x.safetensors"
    save_checkpoint(f, {"w": torch.zeros(1)}, {"kind": "train", "task": "other", "step": 0, "config": {}})
    with pytest.raises(ResganError, match="holds no generator or restoration net"):
        zoo.export(f, tmp_path / "o.safetensors")


def test_export_set_changes_an_inference_setting_and_nothing_else(tmp_path, capsys):
    """``resgan export --set restore.fill_smooth=N``: same weights, the written config's base fill changed
    (the fill and so the output differ); a key that would change what the net learned is refused, no file."""
    import numpy as np
    from helpers import photo, tiny_model_file

    from resgan.restore.infer import restore_array

    src = tiny_model_file(tmp_path, "inpaint", 3, arch="ffc", levels=2)
    out = tmp_path / "smooth.safetensors"
    assert main(["export", str(src), "--out", str(out), "--fp32", "--set", "restore.fill_smooth=20"]) == 0
    plain, smooth = load_model("inpaint", str(src)), load_model("inpaint", str(out))
    assert plain.net.fill_smooth == 0 and smooth.net.fill_smooth == 20
    assert load_checkpoint(out)[1]["export_overrides"] == ["restore.fill_smooth=20"]
    for k, v in plain.net.state_dict().items():
        assert torch.equal(smooth.net.state_dict()[k], v)
    img = photo(48, 64).astype(np.float32) / 255
    hole = np.zeros((48, 64), bool)
    hole[10:30, 20:50] = True
    a, b = restore_array(plain, img, hole), restore_array(smooth, img, hole)
    assert np.array_equal(a[~hole], b[~hole]) and not np.allclose(a[hole], b[hole])
    bad = tmp_path / "bad.safetensors"
    assert main(["export", str(src), "--out", str(bad), "--set", "restore.slope=0.2"]) == 2
    assert "not an inference setting" in capsys.readouterr().err and not bad.exists()
    denoiser = tiny_model_file(tmp_path, "denoise", 1)  # no base fill to set: refused, not silently ignored
    assert main(["export", str(denoiser), "--out", str(bad), "--set", "restore.fill_smooth=5"]) == 2
    assert "not an FFC inpainting net" in capsys.readouterr().err and not bad.exists()
