import pytest

from resgan.config import PRESET_DIR, load_config
from resgan.errors import ResganError


@pytest.mark.parametrize("preset", sorted(p.stem for p in PRESET_DIR.glob("*.yaml")))
def test_presets_load(preset):
    cfg = load_config(preset)
    assert cfg.train.steps > 0


def test_sngan_preset_values():
    t = load_config("cifar10_sngan").train
    assert (t.beta1, t.beta2, t.n_dis, t.loss, t.lr_decay) == (0.0, 0.9, 5, "hinge", "linear")
    m = load_config("cifar10_sngan").model
    assert (m.g_width, m.d_width) == (256, 128)


def test_classic_defaults():
    t = load_config("digits_classic").train
    assert (t.lr_g, t.beta1, t.beta2, t.loss) == (2e-4, 0.5, 0.999, "nonsaturating")


def test_overrides_and_types(tmp_path):
    cfg = load_config("digits", ["train.lr_g=1e-3", "model.d_norm=bn", "train.steps=7", "data.limit=100"])
    assert cfg.train.lr_g == 1e-3 and cfg.model.d_norm == "bn" and cfg.train.steps == 7 and cfg.data.limit == 100
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


def test_unknown_key_in_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data:\n  name: digits\n  resolutoin: 16\n")
    with pytest.raises(ResganError, match="unknown config key 'data.resolutoin'"):
        load_config(str(p))
    with pytest.raises(ResganError, match="no config file or preset named 'nope'"):
        load_config("nope")
