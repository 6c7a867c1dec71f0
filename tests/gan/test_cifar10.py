"""CIFAR-10 as class sub-folders of JPEG files (issue #27): the ``cifar10`` data set reads the
train/ and test/ layout with CIFAR-10's own labels (by class name), ``folder`` reads the same tree,
``cifar10:PATH:test`` is an evaluate reference, and the ``cifar10`` preset validates."""

from __future__ import annotations

import pytest
from helpers import make_cifar_tree

from resgan.config import DataConfig, load_config
from resgan.data import CIFAR10_CLASSES, load_dataset
from resgan.errors import ResganError


def decoded_class(image) -> int:
    """The class a fake image was painted for, from its red level (JPEG moves it by a few levels)."""
    return int(round((float(image[0].float().mean()) - 12) / 24))


@pytest.mark.parametrize("split", ["train", "test"])
def test_cifar10_reads_the_jpeg_tree_with_cifar_labels(tmp_path, split):
    root = make_cifar_tree(tmp_path / "cifar10_jpeg", per_class=3)
    ds = load_dataset(DataConfig(name="cifar10", path=str(root), split=split, resolution=32, channels=3))
    assert ds.classes == CIFAR10_CLASSES
    assert ds.images.shape == (30, 3, 32, 32)
    assert [decoded_class(x) for x in ds.images] == ds.labels.tolist()  # each image carries its folder's label
    assert ds.labels.tolist() == list(range(10)) * 3  # classes interleaved: a limit is class-balanced
    assert [round(float(x[1].float().mean()) / 40) for x in ds.images[::10]] == [0, 1, 2]  # files in name order
    ten = load_dataset(DataConfig(name="cifar10", path=str(root), split=split, resolution=16, channels=1, limit=10))
    assert ten.images.shape == (10, 1, 16, 16) and sorted(ten.labels.tolist()) == list(range(10))


def test_folder_reads_the_same_tree_in_the_same_class_order(tmp_path):
    """CIFAR-10's label order is alphabetical, so a ``folder`` run on train/ has the same class indices."""
    root = make_cifar_tree(tmp_path / "c", per_class=2, splits=("train",))
    ds = load_dataset(DataConfig(name="folder", path=str(root / "train"), resolution=32, channels=3, conditional=True))
    assert ds.classes == CIFAR10_CLASSES
    assert [decoded_class(x) for x in ds.images] == ds.labels.tolist()
    assert sorted(ds.labels.tolist()) == sorted(list(range(10)) * 2)


def test_a_tree_of_other_classes_is_refused(tmp_path):
    other = make_cifar_tree(tmp_path / "o", per_class=1, splits=("train",),
                            classes=[*CIFAR10_CLASSES[:3], "cats", *CIFAR10_CLASSES[4:]])
    with pytest.raises(ResganError, match=r"not CIFAR-10's ten .*'cats' does not fit.*data.name=folder"):
        load_dataset(DataConfig(name="cifar10", path=str(other), resolution=32, channels=3))
    nine = make_cifar_tree(tmp_path / "n", per_class=1, splits=("train",), classes=CIFAR10_CLASSES[:9])
    with pytest.raises(ResganError, match=r"'truck' does not fit"):
        load_dataset(DataConfig(name="cifar10", path=str(nine), resolution=32, channels=3))
    with pytest.raises(ResganError, match=r"has no test/ split"):
        load_dataset(DataConfig(name="cifar10", path=str(nine), split="test", resolution=32, channels=3))
    with pytest.raises(ResganError, match=r"data.split must be train or test"):
        load_dataset(DataConfig(name="cifar10", path=str(nine), split="val", resolution=32, channels=3))
    empty = tmp_path / "e"
    empty.mkdir()
    with pytest.raises(ResganError, match=r"nor train/ and test/ folders of class sub-folders"):
        load_dataset(DataConfig(name="cifar10", path=str(empty), resolution=32, channels=3))


def test_resgan_data_finds_cifar10_jpeg(tmp_path, monkeypatch):
    make_cifar_tree(tmp_path / "cifar10_jpeg", per_class=1, splits=("test",))
    monkeypatch.setenv("RESGAN_DATA", str(tmp_path))
    ds = load_dataset(DataConfig(name="cifar10", split="test", resolution=32, channels=3))
    assert len(ds) == 10 and ds.classes == CIFAR10_CLASSES


def test_cifar10_test_split_is_an_evaluate_reference(tmp_path):
    from resgan.evaluate import Source, load_source, source_kind

    root = make_cifar_tree(tmp_path / "cifar10_jpeg", per_class=2)
    spec = f"cifar10:{root}:test"
    assert source_kind(spec) == "dataset"
    src = load_source(spec, n=10, like=Source("g", "generator", shape=(32, 3)))
    assert src.images.shape == (10, 3, 32, 32) and src.num_classes == 10
    assert sorted(src.labels.tolist()) == list(range(10)) and src.data.split == "test"


def test_cifar10_preset(tmp_path, capsys):
    """The preset validates as shipped, is conditional RGB 32 px, tracks FID against the test split,
    and trains (2 tiny steps) on the JPEG tree with 10 classes."""
    import yaml
    from helpers import set_args, tiny_overrides

    from resgan.cli import main
    from resgan.gan.tracker import reference_spec

    cfg = load_config("cifar10")
    d, g = cfg.data, cfg.gan
    assert (d.name, d.split, d.resolution, d.channels, d.conditional) == ("cifar10", "train", 32, 3, True)
    assert (g.loss, g.n_dis, g.diffaug, g.g_width, g.d_width) == ("hinge", 2, "", 128, 128)
    assert g.fid_every > 0 and reference_spec(cfg) == "cifar10::test"
    assert load_config("cifar10_sngan").gan.n_dis == 5  # the SNGAN preset is kept as it was

    root = make_cifar_tree(tmp_path / "cifar10_jpeg", per_class=2, splits=("train",))
    small = [s for s in tiny_overrides() if not s.startswith("data.resolution")]
    sets = set_args([f"data.path={root}", "gan.fid_every=0", *small])
    run = tmp_path / "run"
    assert main(["train", "cifar10", "--out", str(run), "--steps", "2", "--quiet", *sets]) == 0
    stored = yaml.safe_load((run / "config.yaml").read_text())
    assert stored["gan"]["num_classes"] == 10 and stored["data"]["channels"] == 3
    assert reference_spec(load_config(str(run / "config.yaml"))) == f"cifar10:{root}:test"
    capsys.readouterr()
    assert main(["generate", str(run), "--list-classes"]) == 0
    assert capsys.readouterr().out.split()[1::2] == CIFAR10_CLASSES
