import pytest

from resgan.config import PRESET_DIR, load_config
from resgan.errors import ResganError


@pytest.mark.parametrize("preset", sorted(p.stem for p in PRESET_DIR.glob("*.yaml")))
def test_presets_load(preset):
    cfg = load_config(preset)
    assert cfg.train.steps > 0


def test_sngan_preset_values():
    cfg = load_config("cifar10_sngan")
    t, g = cfg.train, cfg.gan
    assert (t.beta1, t.beta2, g.n_dis, g.loss, t.lr_decay) == (0.0, 0.9, 5, "hinge", "linear")
    assert (g.g_width, g.d_width) == (256, 128)


def test_classic_defaults():
    cfg = load_config("digits_classic")
    t = cfg.train
    assert (t.lr_g, t.beta1, t.beta2, cfg.gan.loss) == (2e-4, 0.5, 0.999, "nonsaturating")


def test_overrides_and_types(tmp_path):
    cfg = load_config("digits", ["train.lr_g=1e-3", "gan.d_norm=bn", "train.steps=7", "data.limit=100"])
    assert cfg.train.lr_g == 1e-3 and cfg.gan.d_norm == "bn" and cfg.train.steps == 7 and cfg.data.limit == 100
    assert load_config("digits", ["train.lr_g=1"]).train.lr_g == 1.0  # int where float wanted


@pytest.mark.parametrize("override,message", [
    ("train.lrr=1", "unknown config key 'train.lrr'"),
    ("bogus.x=1", "unknown config key 'bogus'"),
    ("train.steps=abc", "config key 'train.steps' wants int"),
    ("train.precision=fp8", "train.precision must be one of auto, fp32, bf16, fp16"),
    ("task=paint", "unknown task 'paint'"),
    ("train.steps", "--set wants key=value"),
])
def test_bad_overrides(override, message):
    with pytest.raises(ResganError, match=message):
        load_config("digits", [override])


def test_bad_restore_values():
    with pytest.raises(ResganError, match="restore.jpeg_draw must be uniform or low"):
        load_config("jpeg_gray", ["restore.jpeg_draw=high"])
    assert load_config("jpeg_gray", ["restore.jpeg_draw=low"]).restore.jpeg_draw == "low"
    with pytest.raises(ResganError, match=r"restore.d_layers must be within 1..6"):
        load_config("inpaint", ["restore.d_layers=0"])
    assert load_config("inpaint", ["restore.d_layers=4"]).restore.d_layers == 4


def test_unknown_key_in_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data:\n  name: digits\n  resolutoin: 16\n")
    with pytest.raises(ResganError, match="unknown config key 'data.resolutoin'"):
        load_config(str(p))
    with pytest.raises(ResganError, match="no config file or preset named 'nope'"):
        load_config("nope")


def test_old_layout_is_named_and_stored_configs_upgrade():
    """Before each task had its own section, GAN sizes sat under model: and its losses under train:.
    A user's config in that layout is an error naming the new key; a checkpoint's stored one loads."""
    from resgan.config import config_from_dict, stored_config

    with pytest.raises(ResganError, match="section 'model' is now 'gan'"):
        load_config("digits", ["model.g_width=8"])
    with pytest.raises(ResganError, match="'train.loss' is now 'gan.loss'"):
        load_config("digits", ["train.loss=hinge"])
    new = load_config("digits", ["gan.g_width=8", "gan.loss=wgan-gp", "gan.fid_every=5"])
    old = new.to_dict()
    gan = old.pop("gan")
    old["model"] = {k: gan.pop(k) for k in list(gan) if k not in ("loss", "n_dis", "gp_weight", "r1_gamma", "diffaug",
                                                                   "standing_stats", "sync_bn", "fid_every",
                                                                   "fid_samples", "fid_reference")}
    old["train"].update(gan)
    old["restore"] = {"kind": "denoise"}  # old headers carried the other task's section too
    with pytest.raises(ResganError):
        config_from_dict(old)
    assert stored_config(old) == new
    restore = load_config("denoise_gray")
    old_restore = {**restore.to_dict(), "model": {"z_dim": 128}}
    old_restore["train"] = {**old_restore["train"], "loss": "hinge", "n_dis": 1}
    assert stored_config(old_restore) == restore
