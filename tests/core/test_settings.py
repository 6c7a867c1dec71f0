"""Every option and setting is checked before work starts, with a one-line error (issue 30, family 4).

The table of the issue's cases, then every numeric setting of every section given a negative / NaN /
infinite value and every closed-vocabulary string given a junk one (a new setting is checked too), a
hand-edited checkpoint header on --resume, ``resgan serve``'s options and devices. Each is a
ResganError naming the key; on the command line exit code 2, one ``resgan: error:`` line, no
traceback, and no run folder made or changed.
"""

import dataclasses
import json
import socket
import typing
from pathlib import Path

import pytest
import torch
from helpers import run_cli, tiny_overrides
from safetensors.torch import load_file, save_file

from resgan import config as C
from resgan import settings
from resgan.checkpoint import LATEST, load_checkpoint
from resgan.config import load_config
from resgan.errors import ResganError
from resgan.serve.startup import check_serve_options
from resgan.train import resume_config, train


def one_error(code: int, err: str, text: str) -> None:
    assert code == 2, err
    assert err.startswith("resgan: error:") and "\n" not in err, err
    assert text in err, err


# (preset, --set KEY=VALUE, what the error names): the examples and their kin
BAD = [
    ("digits", "train.steps=0", "train.steps"),
    ("digits", "train.steps=-1", "train.steps"),
    ("digits", "train.lr_g=-1", "train.lr_g"),
    ("digits", "train.lr_d=0", "train.lr_d"),
    ("digits", "train.lr_g=nan", "train.lr_g"),
    ("digits", "train.lr_g=.inf", "train.lr_g"),
    ("digits", "train.beta1=2", "train.beta1"),
    ("digits", "train.beta2=1", "train.beta2"),
    ("digits", "train.beta1=-0.1", "train.beta1"),
    ("digits", "train.device=foo", "train.device"),
    ("digits", "train.device=cuda:x", "train.device"),
    ("digits", "train.seed=-1", "train.seed"),
    ("digits", "train.seed=99999999999999999999", "train.seed"),
    ("digits", "train.ema_decay=nan", "train.ema_decay"),
    ("digits", "train.ema_start=-5", "train.ema_start"),
    ("digits", "gan.g_width=0", "gan.g_width"),
    ("digits", "gan.d_width=-3", "gan.d_width"),
    ("digits", "gan.z_dim=0", "gan.z_dim"),
    ("digits", "gan.g_mults=[1,0,1]", "gan.g_mults"),
    ("digits", "gan.g_mults=[1,1]", "gan.g_mults"),
    ("digits", "gan.gp_weight=-1", "gan.gp_weight"),
    ("digits", "gan.r1_gamma=nan", "gan.r1_gamma"),
    ("digits", "gan.loss=wasserstein", "gan.loss"),
    ("digits", "gan.diffaug=color,zoom", "gan.diffaug"),
    ("digits", "gan.standing_stats=-1", "gan.standing_stats"),
    ("digits", "gan.cbn_embed=-1", "gan.cbn_embed"),
    ("digits", "gan.g_norm=none", "gan.g_norm"),  # digits is conditional: G's labels enter through its BN
    ("digits", "data.limit=0", "data.limit"),
    ("digits", "data.limit=-1", "data.limit"),
    ("digits", "data.resolution=20", "data.resolution"),
    ("digits", "data.name=imagenet", "data.name"),
    ("digits", "data.split=val", "data.split"),
    ("denoise_gray", "restore.sigma=-5", "restore.sigma"),
    ("denoise_gray", "restore.sigma_max=.nan", "restore.sigma_max"),
    ("denoise_gray", "restore.down=0", "restore.down"),
    ("denoise_gray", "restore.levels=0", "restore.levels"),
    ("denoise_gray", "restore.width=0", "restore.width"),
    ("denoise_gray", "restore.dilations=[]", "restore.dilations"),
    ("denoise_gray", "restore.val_limit=0", "restore.val_limit"),
    ("denoise_gray", "restore.val_crop=4", "restore.val_crop"),
    ("deblur", "restore.motion_prob=1.5", "restore.motion_prob"),
    ("deblur", "restore.blur_sigma=[0.5, .inf]", "restore.blur_sigma"),
    ("jpeg_gray", "restore.jpeg_quality=[10]", "restore.jpeg_quality"),
    ("inpaint", "restore.global_ratio=1", "restore.global_ratio"),
    ("inpaint", "restore.adv_weight=-1", "restore.adv_weight"),
]


@pytest.mark.parametrize("preset,override,key", BAD, ids=[b[1] for b in BAD])
def test_a_bad_setting_is_one_error_naming_it_and_no_run_folder(tmp_path, capsys, preset, override, key):
    with pytest.raises(ResganError, match=rf"^{key}\b.*must\b"):
        load_config(preset, [override])
    out = tmp_path / "run"
    code, err = run_cli(capsys, "train", preset, "--out", out, "--set", override, "--quiet")
    one_error(code, err, key)
    assert not out.exists()


@pytest.mark.parametrize("steps", [0, -1])
def test_steps_below_one_is_refused_before_anything(tmp_path, capsys, steps):
    out = tmp_path / "run"
    code, err = run_cli(capsys, "train", "digits", "--out", out, "--steps", steps)
    one_error(code, err, "train.steps")
    assert not out.exists() and "checkpoint:" not in capsys.readouterr().out
    base = load_config("digits")
    cfg = dataclasses.replace(base, train=dataclasses.replace(base.train, steps=steps))
    with pytest.raises(ResganError, match="train.steps must be >= 1"):
        train(cfg, out, progress=False)  # the library checks a config changed after it was loaded
    assert not out.exists()


def _leaves(section: str) -> list[tuple[str, typing.Any]]:
    cls = typing.get_type_hints(C.Config)[section]
    hints = typing.get_type_hints(cls)
    return [(f"{section}.{f.name}", hints[f.name]) for f in dataclasses.fields(cls)]


def _base(tp) -> set:
    args = typing.get_args(tp)
    if typing.get_origin(tp) is list:
        return {list} | _base(args[0])
    return {a for a in args if a is not type(None)} if args else {tp}


SECTIONS = [("digits", s) for s in ("data", "train", "gan")] + [("denoise_gray", "restore")]
NUMERIC = [(p, k, tp) for p, s in SECTIONS for k, tp in _leaves(s) if _base(tp) & {int, float}]
CLOSED = [(p, k) for p, s in SECTIONS for k, tp in _leaves(s) if _base(tp) == {str} and k not in settings.FREE]


@pytest.mark.parametrize("preset,key,tp", NUMERIC, ids=[n[1] for n in NUMERIC])
def test_every_number_refuses_negative_and_non_finite_values(preset, key, tp):
    """No setting of resgan is negative, NaN or infinite: each is refused naming its key (a setting
    added later is covered too: a number without a rule of its own must be >= 0)."""
    is_list = list in _base(tp)
    for bad in ("-1", ".nan", ".inf", "-.inf") if float in _base(tp) else ("-1",):
        value = f"[{bad}, {bad}]" if is_list else bad
        with pytest.raises(ResganError, match=rf"^(config key '{key}'|{key}\b)"):
            load_config(preset, [f"{key}={value}"])


@pytest.mark.parametrize("preset,key", CLOSED, ids=[c[1] for c in CLOSED])
def test_every_closed_vocabulary_string_refuses_a_junk_value(preset, key):
    with pytest.raises(ResganError, match=rf"\b{key}\b"):
        load_config(preset, [f"{key}=zz-no-such-choice"])


def test_good_values_at_the_edges_pass():
    cfg = load_config("digits", ["train.beta1=0", "train.beta2=0.99", "train.ema_decay=0", "data.limit=1",
                                 "gan.diffaug=color, cutout", "train.device=cpu", "train.seed=4294967295"])
    assert cfg.train.beta1 == 0.0 and cfg.data.limit == 1
    assert load_config("digits", ["data.limit="]).data.limit is None  # null: every image
    assert load_config("folder", ["data.resolution=0", "data.channels=0"]).data.resolution == 0


def test_the_copied_choices_match_the_modules_that_define_them():
    from resgan.data import LOADERS
    from resgan.gan.diffaug import POLICIES
    from resgan.gan.losses import LOSSES
    from resgan.gan.models import D_MULTS, G_MULTS, RESOLUTIONS

    assert set(settings.DATA_NAMES) == set(LOADERS)
    assert set(settings.GAN_LOSSES) == set(LOSSES) and settings.DIFFAUG == POLICIES
    assert settings.GAN_RESOLUTIONS == RESOLUTIONS
    assert settings.MULTS == {r: len(m) for r, m in G_MULTS.items()} == {r: len(m) for r, m in D_MULTS.items()}
    assert settings.RULES["train.precision"].want == "one of " + ", ".join(C.PRECISIONS)


def test_every_preset_and_built_in_passes():
    from resgan import zoo

    for p in sorted(C.PRESET_DIR.glob("*.yaml")):
        load_config(p.stem)
    for name in zoo.BUILTINS:
        zoo.model_config(name, load_checkpoint(zoo.builtin_path(name))[1])


# ---------------------------------------------------------------- a hand-edited checkpoint header


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    r = tmp_path_factory.mktemp("hdr") / "run"
    train(load_config("digits", tiny_overrides(**{"train.steps": 2})), r, progress=False)
    return r


def _edit(meta: dict, path: str, value) -> dict:
    meta = json.loads(json.dumps(meta))
    node, *keys = meta, *path.split(".")
    for k in keys[:-1]:
        node = node[k]
    if value is KeyError:  # the field removed
        node.pop(keys[-1])
    else:
        node[keys[-1]] = value
    return meta


HEADER_EDITS = [
    ("sampler", None, "'sampler'"),
    ("sampler", {"epoch": 0}, "'sampler'"),
    ("sampler.pos", -3, "'sampler'"),
    ("step", "two", "'step'"),
    ("steps_done", None, "'steps_done'"),
    ("optimizers", None, "'optimizers'"),
    ("optimizers.G", [], "'optimizers'"),
    ("classes", 5, "'classes'"),
    ("threads", 0, "'threads'"),
    ("task", "paint", "'task'"),
    ("task", "restore", "'task'"),
    ("config", None, "'config'"),
    ("config.train.lr_g", -1, "'config': train.lr_g"),
    ("config.gan.z_dim", 0, "'config': gan.z_dim"),
    ("config.gan", KeyError, "'config'"),  # the model's settings gone: its defaults do not fit the weights
]


@pytest.mark.parametrize("field,value,text", HEADER_EDITS, ids=[f"{e[0]}={e[1]!r}" for e in HEADER_EDITS])
def test_a_hand_edited_header_is_one_line_on_resume(tmp_path, capsys, run, field, value, text):
    import shutil

    r = tmp_path / "r"
    shutil.copytree(run, r)
    tensors = load_file(r / LATEST)
    from safetensors import safe_open

    with safe_open(str(r / LATEST), "pt") as f:
        header = f.metadata()
    header["meta"] = json.dumps(_edit(json.loads(header["meta"]), field, value))
    save_file(tensors, str(r / LATEST), metadata=header)  # the digest covers the tensors, not the header
    before = (r / LATEST).read_bytes()
    code, err = run_cli(capsys, "train", "digits", "--out", r, "--resume", "--steps", 3, "--quiet")
    one_error(code, err, f"checkpoint {r / LATEST}" + (f": header field {text}" if value is not KeyError else ""))
    assert (r / LATEST).read_bytes() == before


def test_a_missing_random_state_is_one_line(tmp_path, run):
    import shutil

    from resgan.checkpoint import save_checkpoint

    r = tmp_path / "r"
    shutil.copytree(run, r)
    tensors, meta = load_checkpoint(r / LATEST)
    tensors.pop("rng.cpu")
    save_checkpoint(r / LATEST, tensors, meta)
    with pytest.raises(ResganError, match=r"tensor 'rng.cpu'"):
        train(resume_config(r, None, steps=3), r, resume=True, progress=False)


# ---------------------------------------------------------------- serve options and devices


SERVE_BAD = [
    (["--port", "70000"], "--port"), (["--port", "0"], "--port"), (["--port", "-1"], "--port"),
    (["--timeout", "nan"], "--timeout"), (["--timeout", "inf"], "--timeout"), (["--timeout", "-1"], "--timeout"),
    (["--timeout", "0"], "--timeout"), (["--max-upload-mb", "-1"], "--max-upload-mb"),
    (["--max-upload-mb", "nan"], "--max-upload-mb"), (["--max-upload-mb", "0"], "--max-upload-mb"),
    (["--max-pixels", "0"], "--max-pixels"), (["--max-pixels", "-1"], "--max-pixels"),
    (["--workers", "0"], "--workers"), (["--queue", "-1"], "--queue"), (["--host", "no such host!"], "--host"),
]


@pytest.mark.parametrize("args,option", SERVE_BAD, ids=[" ".join(a) for a, _ in SERVE_BAD])
def test_serve_options_are_checked_before_it_starts(capsys, monkeypatch, args, option):
    pytest.importorskip("fastapi")
    import resgan.serve.app as app

    monkeypatch.setattr(app, "serve", lambda *a, **k: pytest.fail("started with a bad option"))
    code, err = run_cli(capsys, "serve", "--models", "mnist", *args)
    one_error(code, err, option)


def test_serve_refuses_a_port_in_use_and_takes_good_options():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ResganError, match=rf"--port {port}: cannot listen there"):
            check_serve_options("127.0.0.1", port, 1, 64, 120.0, 32.0, 4096 * 4096)
    check_serve_options("127.0.0.1", port, 1, 0, 1.0, 0.1, 64 * 64)
    check_serve_options("localhost", 8000, 2, 64, 120.0, 32.0, 4096 * 4096, bind=False)


@pytest.mark.parametrize("device", ["foo", "cuda:x", "tpu"] + ([] if torch.cuda.is_available() else ["cuda"]))
def test_a_device_this_machine_lacks_is_one_line(tmp_path, capsys, device):
    code, err = run_cli(capsys, "generate", "mnist", "--seeds", "0", "--out", tmp_path / "g.png", "--device", device)
    one_error(code, err, "--device")
    assert not (tmp_path / "g.png").exists()
