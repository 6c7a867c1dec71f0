"""Models by source (a built-in name, a run directory or a ``.safetensors`` file), as the command line
and the Python API name them, loaded through :mod:`resgan.zoo` and kept between calls (a few, by
file and modification time). The server names its models itself (:mod:`resgan.serve.registry`)."""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from ..errors import ResganError
from ..gan.sampling import class_names
from ..restore.infer import COLOUR_DEFAULTS, RESTORE_TASKS, check_model, load_model
from ..zoo import RestoreModel, load_generator, load_restorer, resolve_file
from .options import source as check_source


def _key(source: str | Path) -> tuple[str, int]:
    path = resolve_file(source)
    return str(path.resolve()), path.stat().st_mtime_ns


@functools.lru_cache(maxsize=4)
def _restorer(file: str, mtime: int, device: str) -> RestoreModel:
    return load_restorer(file, device)


@functools.lru_cache(maxsize=4)
def _generator(file: str, mtime: int, device: str) -> tuple[torch.nn.Module, list[str]]:
    G, meta = load_generator(file, device)
    return G, class_names(G.num_classes, meta)


def restorer(source: str | Path, device: str = "cpu") -> RestoreModel:
    return _restorer(*_key(check_source(source)), str(device))


def generator(source: str | Path, device: str = "cpu") -> tuple[torch.nn.Module, list[str]]:
    """(EMA generator in eval mode, its class names in label order)."""
    src = check_source(source)
    if src is None:
        raise ResganError("model: give a built-in name, a run directory or a .safetensors file, not None")
    return _generator(*_key(src), str(device))


@functools.lru_cache(maxsize=8)
def _builtin(task: str, name: str, device: str) -> RestoreModel:
    return load_model(task, name, device)


class SourceModels:
    """The restore model(s) of a request: ``model`` (checked against ``task`` and ``scale``), else the
    task's built-in, or its grey and colour built-ins where it has both (the image's mode picks)."""

    def __init__(self, task: str, model: str | None = None, scale: int | None = None, device: str = "cpu"):
        self.task = task
        if model is None and task == "sr" and scale not in (None, 4):
            raise ResganError(f"the built-in sr model is x4; for x{scale} pass the model of an x{scale} run")
        if model is not None:
            m = check_model(restorer(model, device), task, scale)
            self.by_channels = {1: m, 3: m}
        elif task in COLOUR_DEFAULTS:
            self.by_channels = {1: _builtin(task, RESTORE_TASKS[task], str(device)),
                                3: _builtin(task, COLOUR_DEFAULTS[task], str(device))}
        else:
            name = RESTORE_TASKS[task]
            m = _builtin(task, name, str(device)) if name else load_model(task)  # None: "train one first"
            self.by_channels = {1: m, 3: m}

    def pick(self, channels: int) -> tuple[str, RestoreModel]:
        m = self.by_channels[channels]
        return m.source, m
