"""``export``: write a run's EMA net alone (:func:`resgan.zoo.export`), after checking where it goes:
never over its own source, nor over any training checkpoint (a run whose ``latest.safetensors`` became
an exported model could never resume), only under a ``.safetensors`` name (``--out photo.png`` would
replace an image with a model file), and into a place that can be written."""

from __future__ import annotations

import json
from pathlib import Path

from ..checkpoint import prepare_dir
from ..errors import ResganError
from ..zoo import export as zoo_export
from ..zoo import resolve_file
from .options import source as check_source


def _kind(path: Path) -> str | None:
    """The ``kind`` in a resgan checkpoint's header (train / generator / restorer), None if unreadable."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return json.loads((f.metadata() or {}).get("meta", "{}")).get("kind")
    except Exception:  # noqa: BLE001 - not a checkpoint: an ordinary file the user chose to replace
        return None


def check_out(src: Path, out: Path) -> Path:
    out = Path(out)
    if out.is_dir():
        raise ResganError(f"--out {out}: is a folder; give a file name such as {out / 'model.safetensors'}")
    if out.suffix.lower() != ".safetensors":  # x.png would replace an image with a model file of its name
        raise ResganError(f"--out {out}: an exported model is a .safetensors file; give a name such as "
                          f"{out.with_suffix('.safetensors').name}")
    if out.exists():
        if out.resolve() == src.resolve() or out.samefile(src):
            raise ResganError(f"--out {out}: is the model being exported; choose another file")
        if _kind(out) == "train":
            raise ResganError(f"--out {out}: is a training checkpoint (its run could never resume); choose another "
                              "file")
    prepare_dir(out.parent)
    return out


def export(source: str | Path, out: str | Path, half: bool = True, overrides: list[str] | None = None) -> Path:
    src = resolve_file(check_source(source, "source"))
    return zoo_export(src, check_out(src, Path(out)), half=half, overrides=overrides)
