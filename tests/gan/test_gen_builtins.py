"""Every built-in generator (``zoo.builtins("gan")``: ``mnist`` today, ``cifar10`` once its weights
ship): it loads, names its classes, gives the same image for the same seed and class, and its class
label changes what it draws. Class names survive export (issue #27)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import resgan
from resgan import zoo
from resgan.cli import main
from resgan.data import CIFAR10_CLASSES

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny nets: one thread (conftest)

GENERATORS = zoo.builtins("gan")
# the class names each built-in must give, in label order (a built-in not listed: distinct names, 2 or more)
EXPECTED_CLASSES = {"mnist": [str(i) for i in range(10)], "cifar10": CIFAR10_CLASSES}


def test_the_generator_builtins_are_the_catalogue_s():
    assert "mnist" in GENERATORS and all(zoo.BUILTINS[n][0] == "gan" for n in GENERATORS)
    for name, (task, file) in zoo.PENDING.items():  # a pending built-in is listed exactly when its file is there
        assert (name in zoo.BUILTINS) == (zoo.BUILTIN_DIR / file).is_file() and task == "gan"


@pytest.mark.parametrize("name", GENERATORS)
def test_builtin_loads_and_names_its_classes(name, capsys):
    G, meta = zoo.load_generator(name)
    names = resgan.list_classes(name)
    assert G.num_classes == len(names) >= 2 and len(set(names)) == len(names)
    assert names == EXPECTED_CLASSES.get(name, names)
    assert meta["classes"] == names  # stored in the file, not made up from indices
    assert main(["generate", name, "--list-classes"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{i}\t{n}" for i, n in enumerate(names)]


@pytest.mark.parametrize("name", GENERATORS)
def test_builtin_same_seed_and_class_same_image(name, tmp_path):
    from resgan.data import to_uint8
    from resgan.gan.sampling import generate

    names = resgan.list_classes(name)
    a = resgan.generate_images(name, seeds=[3, 11], class_=names[1], as_array=True)
    G, _ = zoo.load_generator(name)  # a fresh load, not the API's cached one
    x, labels = generate(G, [3, 11], 1)
    b = to_uint8(x).permute(0, 2, 3, 1).numpy()
    assert labels.tolist() == [1, 1] and (a == b.reshape(a.shape)).all()
    assert (a[0] != a[1]).any()  # and another seed is another image
    out = tmp_path / "g.png"
    assert main(["generate", name, "--seeds", "3", "--class", names[1], "--out", str(out)]) == 0
    assert out.is_file()


def _features(name: str, class_name: str, seeds: range) -> torch.Tensor:
    """Cheap image features: pixels in [0, 1], 4x4 average-pooled (8x8 per channel at 32 px)."""
    arr = torch.from_numpy(resgan.generate_images(name, seeds=seeds, class_=class_name, as_array=True)).float()
    x = arr[:, None] if arr.dim() == 3 else arr.permute(0, 3, 1, 2)
    return F.avg_pool2d(x / 255, 4).flatten(1)


@pytest.mark.parametrize("name", GENERATORS)
def test_builtin_classes_differ_more_between_than_within(name):
    """Classes 0 and 1, 64 seeds per half. (1) The two classes' mean images, over the same seeds, are
    further apart than the means of one class over two disjoint halves of the seeds (1.5x; MNIST 0 / 1:
    ~6x at 32 seeds; real CIFAR-10 airplane / automobile test images: ~3.4x at 64 per half). (2) Samples
    of two classes are further apart, on average over pairs, than samples of the same class."""
    a_name, b_name = resgan.list_classes(name)[:2]
    s1, s2 = range(0, 64), range(64, 128)
    a1, a2, b1, b2 = (_features(name, c, s) for c in (a_name, b_name) for s in (s1, s2))
    between = (a1.mean(0) - b1.mean(0)).norm()
    within = torch.maximum((a1.mean(0) - a2.mean(0)).norm(), (b1.mean(0) - b2.mean(0)).norm())
    assert between > 1.5 * within, (float(between), float(within))
    pair_between = torch.cdist(a1, b2).mean()  # disjoint seeds, as within a class
    pair_within = (torch.cdist(a1, a2).mean() + torch.cdist(b1, b2).mean()) / 2
    assert pair_between > pair_within, (float(pair_between), float(pair_within))


def test_class_names_round_trip_through_export(tmp_path, capsys):
    """A tiny RGB conditional folder run (2 steps), exported: the file holds the class names, and
    generate --list-classes / --class NAME, the Python API and the server's model list use them."""
    from helpers import make_cifar_tree, set_args, tiny_overrides

    from resgan.checkpoint import load_checkpoint

    root = make_cifar_tree(tmp_path / "c", per_class=2, splits=("train",))
    small = [s for s in tiny_overrides() if not s.startswith("data.resolution")]
    sets = set_args([f"data.path={root / 'train'}", *small])
    run = tmp_path / "run"
    assert main(["train", "folder", "--out", str(run), "--steps", "2", "--quiet", *sets]) == 0
    out = tmp_path / "g.safetensors"
    assert main(["export", str(run), "--out", str(out)]) == 0
    tensors, meta = load_checkpoint(out)
    assert meta["kind"] == "generator" and meta["classes"] == CIFAR10_CLASSES
    assert all(k.startswith("G_ema.") for k in tensors)
    capsys.readouterr()
    assert main(["generate", str(out), "--list-classes"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{i}\t{n}" for i, n in enumerate(CIFAR10_CLASSES)]
    assert resgan.list_classes(out) == CIFAR10_CLASSES
    cats = resgan.generate_images(out, seeds=range(4), class_="cat", as_array=True)
    assert cats.shape == (4, 32, 32, 3)
    assert (cats == resgan.generate_images(out, seeds=range(4), class_=3, as_array=True)).all()

    from resgan.serve.app import load_registry

    (entry,) = load_registry([f"tiny={out}"]).generators.values()
    info = entry.info()
    assert info["classes"] == CIFAR10_CLASSES and info["num_classes"] == 10 and info["channels"] == 3
