"""The models ``resgan serve`` loaded (once, when the app is built), by name: restoration models by
task, generators; a request names a model, never a path."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import checkpoint_file
from ..errors import ResganError
from ..gan.sampling import class_names
from ..restore.infer import RESTORE_TASKS, check_model
from ..zoo import BUILTINS, RestoreModel, builtin_path, load_generator, load_restorer, resolve
from .limits import ApiError

log = logging.getLogger("resgan.serve")


@dataclass
class RestoreEntry:
    name: str
    model: RestoreModel
    tasks: list[str]

    def info(self) -> dict[str, Any]:
        m = self.model
        return {"name": self.name, "tasks": self.tasks, "kind": m.kind, "channels": m.channels, "scale": m.scale,
                "resolution": None, "multiple": getattr(m.net, "multiple", 1),
                "noise_map": bool(getattr(m.net, "noise_map", False))}


@dataclass
class GeneratorEntry:
    name: str
    G: torch.nn.Module
    meta: dict
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def classes(self) -> list[str]:
        return class_names(self.G.num_classes or 0, self.meta)

    def info(self) -> dict[str, Any]:
        data = self.meta.get("config", {}).get("data", {})
        return {"name": self.name, "tasks": ["generate"], "classes": self.classes,
                "num_classes": self.G.num_classes or 0, "resolution": data.get("resolution"),
                "channels": data.get("channels"), "z_dim": self.G.z_dim}


@dataclass
class Registry:
    restore: dict[str, RestoreEntry] = field(default_factory=dict)
    generators: dict[str, GeneratorEntry] = field(default_factory=dict)

    def names(self) -> set[str]:
        return set(self.restore) | set(self.generators)

    def add_restore(self, name: str, model: RestoreModel) -> None:
        self._check_name(name)
        kind = model.kind
        tasks = ["denoise", "deblur", "jpeg"] if kind == "real" else [kind]
        self.restore[name] = RestoreEntry(name, model, tasks)

    def add_generator(self, name: str, G: torch.nn.Module, meta: dict) -> None:
        self._check_name(name)
        self.generators[name] = GeneratorEntry(name, G, meta)

    def _check_name(self, name: str) -> None:
        if name in self.names():
            raise ResganError(f"two models are named {name!r}; name one with NAME=PATH")

    def tasks(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for e in self.restore.values():
            for t in e.tasks:
                out.setdefault(t, []).append(e.name)
        return out

    def restorer(self, task: str, name: str | None, channels: int | None = None) -> RestoreEntry:
        """The named model, else the task's model for images of ``channels`` (grey 1 / colour 3) if
        one is loaded, else the task's first."""
        if name:
            if name not in self.restore:
                raise ApiError(404, f"unknown model {name!r}; loaded restoration models: "
                                    f"{', '.join(self.restore) or 'none'}")
            e = self.restore[name]
            check_model(e.model, task, name=name)
            return e
        if task not in RESTORE_TASKS:
            raise ApiError(400, f"unknown task {task!r}; tasks: {', '.join(RESTORE_TASKS)}")
        found = [e for e in self.restore.values() if task in e.tasks]
        for e in found:
            if channels is None or e.model.channels == channels:
                return e
        if found:
            return found[0]
        raise ApiError(404, f"no model for task {task!r} is loaded; this server does: "
                            f"{', '.join(self.tasks()) or 'no restoration'}")

    def generator(self, name: str | None) -> GeneratorEntry:
        if name:
            if name not in self.generators:
                raise ApiError(404, f"unknown generator {name!r}; loaded: {', '.join(self.generators) or 'none'}")
            return self.generators[name]
        if not self.generators:
            raise ApiError(404, "no generator is loaded")
        return next(iter(self.generators.values()))


def _add(reg: Registry, name: str, source: str | Path, device: str) -> None:
    """Load one model through :mod:`resgan.zoo`; its task (from the checkpoint) says which kind it is."""
    task, file = resolve(source)
    if task == "gan":
        G, meta = load_generator(file, device)
        reg.add_generator(name, G, meta)
    elif task == "restore":
        reg.add_restore(name, load_restorer(file, device))  # a ``real`` model serves denoise / deblur / jpeg
    else:
        raise ResganError(f"{file}: neither a generator nor a restoration model (task {task!r})")


def load_registry(specs: list[str] | None = None, device: str = "cpu") -> Registry:
    """``specs``: built-in names, run directories or checkpoint files, each optionally
    ``NAME=SOURCE``. None or empty: every built-in whose weights are present (a missing one is
    skipped with a log line)."""
    reg = Registry()
    if not specs:
        for name, (task, _) in BUILTINS.items():
            what = "generator" if task == "gan" else "restoration model"
            path = builtin_path(name)
            if not path.is_file():
                log.warning("skipping built-in %s %s: weights absent (%s)", what, name, path)
                continue
            _add(reg, name, name, device)
            log.info("loaded %s %s", what, name)
        return reg
    for spec in specs:
        name, source = "", spec
        if "=" in spec and not Path(spec).exists():
            name, source = spec.split("=", 1)
        if source not in BUILTINS:
            p = Path(source)
            file = checkpoint_file(p) or p
            if not file.is_file():
                raise ResganError(f"--models {spec}: no such model (give a built-in name "
                                  f"({', '.join(BUILTINS)}), a run directory or a .safetensors file)")
            if not name:
                name = file.resolve().parent.name if file.stem == "latest" else file.stem
            source = file
        _add(reg, name or str(source), source, device)
        log.info("loaded model %s from %s", name or source, source)
    return reg


class RegistryModels:
    """A request's model from the loaded ones (the :class:`resgan.verbs.restore.Models` of the server):
    the named one, else the task's model for the image's channels (grey / colour), else its first."""

    def __init__(self, registry: Registry, task: str, name: str | None):
        self.registry, self.task, self.name = registry, task, name
        self.fixed = registry.restorer(task, name) if name else None
        registry.restorer(task, None)  # 404 now, before the upload is decoded, when no model does the task

    def pick(self, channels: int) -> tuple[str, RestoreModel]:
        e = self.fixed or self.registry.restorer(self.task, None, channels)
        return e.name, e.model
