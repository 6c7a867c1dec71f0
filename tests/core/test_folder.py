"""Training on one's own images (issue #14): the ``folder`` preset infers grey / RGB, classes
(sub-folders; one folder = unconditional) and a resolution from the images, says what it
inferred, and the report labels each grid row with its class name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from resgan.config import DataConfig
from resgan.data import infer_folder, load_dataset

AUTO = {"name": "folder", "resolution": 0, "channels": 0, "conditional": None}


def make_folder(root: Path, classes: list[str] | None, size: tuple[int, int] = (40, 36), colour: bool = True,
                n: int = 6, mode: str | None = None) -> Path:
    """``n`` small images per class sub-folder (or directly in ``root`` when ``classes`` is None)."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(classes or [""]):
        d = root / name if name else root
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            arr[: size[1] // 2] = 255 * (c % 2)
            if not colour:
                arr[:] = arr[:, :, :1]  # RGB files whose three channels are equal: grey content
            img = Image.fromarray(arr)
            (img.convert(mode) if mode else img).save(d / f"{i}.png")
    return root


def test_rgb_classes_and_resolution_are_inferred(tmp_path):
    root = make_folder(tmp_path / "pets", ["cats", "dogs", "owls"], size=(70, 60))
    cfg, line = infer_folder(DataConfig(path=str(root), **AUTO))
    assert (cfg.channels, cfg.resolution, cfg.conditional) == (3, 64, True)
    assert "18 images, 3 classes (cats, dogs, owls), RGB, 64x64" in line and "inferred: channels, resolution" in line
    ds = load_dataset(cfg)
    assert ds.images.shape == (18, 3, 64, 64) and ds.classes == ["cats", "dogs", "owls"]


def test_one_folder_is_unconditional_and_grey_content_is_grey(tmp_path):
    root = make_folder(tmp_path / "flat", None, size=(30, 30), colour=False)
    cfg, line = infer_folder(DataConfig(path=str(root), **AUTO))
    assert (cfg.channels, cfg.resolution, cfg.conditional) == (1, 32, False)
    assert "unconditional, grey, 32x32" in line
    grey = make_folder(tmp_path / "L", ["a", "b"], size=(200, 300), mode="L")
    cfg, _ = infer_folder(DataConfig(path=str(grey), **AUTO))
    assert (cfg.channels, cfg.resolution, cfg.conditional) == (1, 128, True)  # capped at 128


@pytest.mark.parametrize("side, res", [(8, 16), (20, 16), (28, 32), (45, 32), (46, 64), (100, 128), (1000, 128)])
def test_resolution_is_the_nearest_supported_size(tmp_path, side, res):
    root = make_folder(tmp_path / "f", None, size=(side, side), n=2)
    assert infer_folder(DataConfig(path=str(root), **AUTO))[0].resolution == res


def test_explicit_settings_win(tmp_path):
    root = make_folder(tmp_path / "pets", ["cats", "dogs"], size=(70, 60), colour=False)
    cfg, line = infer_folder(DataConfig(name="folder", path=str(root), resolution=16, channels=3, conditional=False))
    assert (cfg.channels, cfg.resolution, cfg.conditional) == (3, 16, False)
    assert "inferred" not in line and "unconditional (2 sub-folders)" in line


def test_train_folder_preset_end_to_end(tmp_path, capsys):
    """``resgan train folder --set data.path=DIR``: what was inferred is printed and stored, the
    report names each grid row, and generate knows the classes by name."""
    import yaml
    from helpers import set_args, tiny_overrides

    from resgan.cli import main

    root = make_folder(tmp_path / "pets", ["cats", "dogs", "owls"], size=(40, 36))
    small = [s for s in tiny_overrides() if not s.startswith("data.resolution")]
    sets = set_args([f"data.path={root}", *small])
    run = tmp_path / "run"
    assert main(["train", "folder", "--out", str(run), "--steps", "2", "--quiet", *sets]) == 0
    out = capsys.readouterr().out
    assert "18 images, 3 classes (cats, dogs, owls), RGB, 32x32 (inferred: channels, resolution" in out
    stored = yaml.safe_load((run / "config.yaml").read_text())
    assert stored["data"] | {"path": None} == {**stored["data"], "path": None, "resolution": 32, "channels": 3,
                                               "conditional": True}
    assert stored["gan"]["num_classes"] == 3
    report = (run / "report.html").read_text()
    assert all(f'title="{c}">{c}</div>' in report for c in ("cats", "dogs", "owls"))
    assert main(["generate", str(run), "--list-classes"]) == 0
    assert capsys.readouterr().out.split() == ["0", "cats", "1", "dogs", "2", "owls"]
    assert main(["generate", str(run), "--class", "dogs", "--seeds", "0-3", "--out", str(tmp_path / "d.png")]) == 0
    assert Image.open(tmp_path / "d.png").mode == "RGB"
    # resumed: the stored (inferred) config is used as it is
    assert main(["train", "folder", "--out", str(run), "--steps", "3", "--resume", "--quiet"]) == 0


def test_train_folder_without_sub_folders_is_unconditional(tmp_path, capsys):
    from helpers import set_args, tiny_overrides

    from resgan.cli import main

    root = make_folder(tmp_path / "flat", None, size=(20, 20), colour=False, n=16)
    small = [s for s in tiny_overrides() if not s.startswith("data.resolution")]
    sets = set_args([f"data.path={root}", *small])
    assert main(["train", "folder", "--out", str(tmp_path / "run"), "--steps", "1", "--quiet", *sets]) == 0
    assert "16 images, unconditional, grey, 16x16" in capsys.readouterr().out
    assert 'class="row"' not in (tmp_path / "run" / "report.html").read_text()
    code = main(["train", "folder", "--out", str(tmp_path / "r2"), "--quiet"])
    assert code == 2 and "data.path is not set: give the image folder" in capsys.readouterr().err


def test_a_training_folder_as_the_evaluate_reference(tmp_path):
    """``resgan evaluate RUN folder:DIR``: the folder read as training reads it, at the generator's size."""
    from resgan.evaluate import Source, load_source, source_kind

    root = make_folder(tmp_path / "pets", ["cats", "dogs"], size=(70, 60))
    assert source_kind(f"folder:{root}") == "dataset" and source_kind(str(root)) == "folder"
    alone = load_source(f"folder:{root}")
    assert alone.images.shape == (12, 3, 64, 64) and "inferred from the images" in alone.resolution
    assert alone.cache_parts["signature"] and alone.num_classes == 2
    like = Source("g", "generator", shape=(16, 1))
    src = load_source(f"folder:{root}", n=5, like=like)
    assert src.images.shape == (5, 1, 16, 16) and "read at the other side's size" in src.resolution
