"""One honest training loop: config -> data -> task -> steps -> samples, logs, checkpoints.

The run directory holds ``latest.safetensors`` (always the newest whole checkpoint),
``config.yaml``, ``metrics.jsonl``, ``samples/step_NNNNNNN.png`` and ``report.html``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import torch
import yaml
from torch import nn
from tqdm import tqdm

from ._version import __version__
from .accel import torch_device
from .checkpoint import (
    LATEST,
    RUN_FILES,
    atomic_write_bytes,
    load_checkpoint,
    optimizer_from_flat,
    optimizer_to_flat,
    prefixed,
    prepare_dir,
    save_checkpoint,
    unprefixed,
)
from .config import Config, apply_overrides, config_from_dict, stored_config, validate
from .data import BatchSampler, ImageSet, to_float
from .dist import SINGLE, World, average_stats, barrier, init_world, shutdown, writes_here
from .errors import ResganError, Stopped, TrainingDiverged
from .gan.task import GAN
from .report import MetricsLog, make_grid, save_png, write_report
from .restore.task import Restorer
from .runlock import RunLock, hold_run
from .zoo import init_weights

CHECKPOINT = LATEST

Batch = tuple[torch.Tensor, torch.Tensor]  # images in [-1, 1] (N, C, H, W), labels (N,)


class Task(Protocol):
    """What the loop needs of a task (the class that owns its models, optimizers and step).

    The loop knows nothing else about a task: it loads the data with ``load_data``, lets the task
    adjust the config to it (``configure``), then calls ``train_step`` once per step, ``validate``
    every step (the task keeps its own schedule and returns ``{}`` when nothing is due),
    ``sample_grid`` every ``sample_every`` steps, and saves ``modules`` / ``optimizers`` /
    ``steps_done`` (after ``finalize_ema``) in each checkpoint. Optional: ``grid_rows(classes)``, the
    label of each row of the sample grid (the report shows them beside the grids).
    """

    cfg: Config
    steps_done: int

    @staticmethod
    def load_data(cfg: Config) -> ImageSet: ...

    @staticmethod
    def configure(cfg: Config, data: ImageSet) -> Config: ...

    def __init__(self, cfg: Config, device: torch.device, world: World = SINGLE) -> None: ...

    def train_step(self, next_batch: Callable[[], Batch]) -> dict[str, float]: ...

    def images_per_step(self) -> int: ...

    def finalize_ema(self) -> None: ...

    def sample_grid(self) -> tuple[torch.Tensor, int]: ...

    def validate(self) -> dict[str, float]: ...

    def modules(self) -> dict[str, nn.Module]: ...

    def optimizers(self) -> dict[str, torch.optim.Optimizer]: ...


# cfg.task -> its Task: the one table of tasks
TASKS: dict[str, type[Task]] = {"gan": GAN, "restore": Restorer}


_STOP = threading.Event()


def request_stop(signum=None, frame=None) -> None:
    """A signal handler (Ctrl-C, SIGTERM): the loop stops after the step in progress and saves it,
    so a checkpoint never holds half a step; a second signal stops at once without saving."""
    if _STOP.is_set():
        raise KeyboardInterrupt
    _STOP.set()


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch_device(name, "train.device")


def save_run_checkpoint(path: Path, task, step: int, sampler: BatchSampler, classes: list[str]) -> None:
    task.finalize_ema()
    tensors: dict[str, torch.Tensor] = {}
    meta: dict = {"kind": "train", "task": task.cfg.task, "version": __version__, "step": step,
                  "config": task.cfg.to_dict(), "classes": classes, "sampler": sampler.state_dict(),
                  "optimizers": {}, "steps_done": task.steps_done,
                  "threads": torch.get_num_threads()}  # resgan train --resume takes it again (resgan.runtime)
    for name, module in task.modules().items():
        tensors.update(prefixed(name, module.state_dict()))
    for name, opt in task.optimizers().items():
        t, m = optimizer_to_flat(opt, name)
        tensors.update(t)
        meta["optimizers"][name] = m
    tensors["rng.cpu"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    save_checkpoint(path, tensors, meta)


def _whole(v, lo: int = 0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= lo


def check_run_header(path: Path, meta: dict) -> Config:
    """A training checkpoint's header, field by field, and its stored config (every setting checked):
    a damaged or hand-edited header is one line naming the field, never a traceback from the loop."""
    def bad(key: str, want: str) -> ResganError:
        got = json_short(meta.get(key))
        return ResganError(f"checkpoint {path}: header field {key!r} must be {want}, got {got} (edited or damaged)")

    if meta.get("kind") != "train":
        raise ResganError(f"{path} is not a training checkpoint")
    if meta.get("task") not in TASKS:
        raise bad("task", f"one of {', '.join(TASKS)}")
    for key in ("step", "steps_done"):
        if not _whole(meta.get(key)):
            raise bad(key, "a whole number >= 0")
    if not isinstance(meta.get("config"), dict):
        raise bad("config", "a mapping of settings")
    classes = meta.get("classes", [])
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise bad("classes", "a list of class names")
    s = meta.get("sampler")
    if not isinstance(s, dict) or not (_whole(s.get("epoch")) and _whole(s.get("pos"))):
        raise bad("sampler", "a mapping of whole numbers 'epoch' and 'pos' (the data order's position)")
    opts = meta.get("optimizers")
    if not isinstance(opts, dict) or not all(isinstance(o, dict) and isinstance(o.get("param_groups"), list)
                                             and isinstance(o.get("scalars"), dict) for o in opts.values()):
        raise bad("optimizers", "a mapping of each optimizer's 'param_groups' (a list) and 'scalars' (a mapping)")
    if "threads" in meta and not _whole(meta["threads"], 1):
        raise bad("threads", "a whole number >= 1")
    try:
        cfg = stored_config(meta["config"])
    except ResganError as e:
        raise ResganError(f"checkpoint {path}: header field 'config': {e}") from None
    if cfg.task != meta["task"]:
        raise ResganError(f"checkpoint {path}: header field 'task' is {meta['task']!r} but its config's task is "
                          f"{cfg.task!r} (edited or damaged)")
    return cfg


def json_short(value, limit: int = 60) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_run_checkpoint(path: Path, task, sampler: BatchSampler) -> int:
    tensors, meta = load_checkpoint(path)
    check_run_header(path, meta)
    rng = tensors.get("rng.cpu")
    if rng is None or rng.dtype != torch.uint8:
        raise ResganError(f"checkpoint {path}: tensor 'rng.cpu' (the random state) is missing or not bytes")
    try:
        for name, module in task.modules().items():
            module.load_state_dict(unprefixed(name, tensors))
        for name, opt in task.optimizers().items():
            optimizer_from_flat(opt, name, tensors, meta["optimizers"][name])
    except (RuntimeError, KeyError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise ResganError(f"checkpoint {path} does not fit this model: {str(e).splitlines()[0]}") from None
    sampler.load_state_dict(meta["sampler"])
    task.steps_done = int(meta["steps_done"])
    try:
        torch.set_rng_state(rng)
    except RuntimeError as e:
        raise ResganError(f"checkpoint {path}: tensor 'rng.cpu' is not a random state ({str(e).splitlines()[0]})") \
            from None
    cuda_states = [tensors[f"rng.cuda.{i}"] for i in range(torch.cuda.device_count()) if f"rng.cuda.{i}" in tensors]
    if cuda_states:
        torch.cuda.set_rng_state_all(cuda_states)
    return int(meta["step"])


RELOCATABLE = ("data.path", "restore.val_path", "restore.mask_path")  # folders a resumed run may find elsewhere
GAN_EVALUATION = ("gan.fid_every", "gan.fid_samples", "gan.fid_reference")  # measure, change no weight


def resume_config(run_dir: Path, overrides: list[str] | None = None, steps: int | None = None) -> Config:
    """The config stored in ``run_dir``'s checkpoint, with the user's explicit ``--set`` overrides:
    a ``train.*`` setting (learning rate, logging, ...) is applied and recorded in config.yaml, and so
    is a moved folder (``data.path``, ``restore.val_path``, ``restore.mask_path``: the same files
    elsewhere); one that would change the run's task, data, model, restoration setup or seed is an
    error naming the key, since the weights and the data order belong to them. ``steps``: on to N."""
    if not (run_dir / CHECKPOINT).exists():
        raise ResganError(f"--resume: no checkpoint in {run_dir}")
    _, meta = load_checkpoint(run_dir / CHECKPOINT)
    saved = check_run_header(run_dir / CHECKPOINT, meta)
    stored = saved.to_dict()
    new = config_from_dict(apply_overrides(copy.deepcopy(stored), list(overrides or [])))
    for text in overrides or []:
        key = text.split("=", 1)[0].strip()
        section = key.split(".", 1)[0]
        if (section != "train" or key == "train.seed") and key not in RELOCATABLE + GAN_EVALUATION:
            a, b = _lookup(saved, key), _lookup(new, key)
            if a != b:
                raise ResganError(f"--set {key}={b!r}: the run in {run_dir} was trained with {key}={a!r}; a resumed "
                                  "run keeps its task, data, model and seed (use another --out for a new run)")
    if steps is not None:
        if not _whole(steps, meta["step"]):
            raise ResganError(f"--steps {steps}: the run in {run_dir} is at step {meta['step']} already; --steps is "
                              f"the run's total, so give {meta['step']} or more")
        new = dataclasses.replace(new, train=dataclasses.replace(new.train, steps=steps))
        validate(new)
    return new


def _lookup(cfg: Config, key: str):
    node = cfg
    for part in key.split("."):
        node = getattr(node, part, None)
    return node


def train(cfg: Config, run_dir: Path, resume: bool = False, progress: bool = True) -> Path:
    """Train ``cfg`` in ``run_dir`` up to ``cfg.train.steps`` generator steps; returns the checkpoint path.

    Under torchrun (WORLD_SIZE > 1) every rank runs this; rank 0 alone writes (see :mod:`resgan.dist`).
    Every setting is checked first (``cfg`` may have been changed since it was loaded, e.g. by
    ``--steps``); then rank 0 takes the run folder's lock (:mod:`resgan.runlock`) before it reads,
    writes or cleans up anything there, and holds it to the end: a second process on the same folder
    is refused, and a failure before anything was written leaves no new folder behind.
    """
    run_dir = Path(run_dir)
    validate(cfg)
    pick_device(cfg.train.device)  # a device this machine lacks: refused before the data loads
    _STOP.clear()  # a stop asked from here on (even while the data loads) ends the run after a whole step
    with hold_run(run_dir, enabled=writes_here()) as lock:
        check_run_dir(run_dir, resume)
        data = TASKS[cfg.task].load_data(cfg)
        cfg = TASKS[cfg.task].configure(cfg, data)
        world = init_world(cfg.train.device)
        if data.note and world.is_main and not resume:  # what was inferred from the data (the folder preset)
            print(data.note)
        try:
            return _train(cfg, data, run_dir, resume, progress, world, lock)
        finally:
            shutdown(world)


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """``--resume`` needs the run's checkpoint; a fresh run needs a folder that holds no run, so that
    nothing of an earlier one (its checkpoint, config, metrics, samples) is replaced."""
    ckpt_path = run_dir / CHECKPOINT
    if resume and not ckpt_path.exists():
        raise ResganError(f"--resume: no checkpoint in {run_dir}")
    if not resume and ckpt_path.exists():
        raise ResganError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
    left = [n for n in (*RUN_FILES, "samples") if (run_dir / n).exists()] if not resume else []
    if left:
        raise ResganError(f"{run_dir} holds the files of an earlier run ({', '.join(left)}) but no checkpoint to "
                          "resume; choose another --out, or remove them to start afresh there")


def _train(cfg: Config, data: ImageSet, run_dir: Path, resume: bool, progress: bool, world: World,
           lock: RunLock) -> Path:
    ckpt_path = run_dir / CHECKPOINT
    device = pick_device(cfg.train.device)
    if device.type == "cuda" and world.size > 1:
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if cfg.train.batch_size % world.size:
        raise ResganError(f"train.batch_size {cfg.train.batch_size} must be a multiple of the world size {world.size}")
    torch.manual_seed(cfg.train.seed)  # the same on every rank: noise is drawn globally, then sliced
    task = TASKS[cfg.task](cfg, device, world)
    sampler = BatchSampler(len(data), cfg.train.batch_size, cfg.train.seed)
    step = load_run_checkpoint(ckpt_path, task, sampler) if resume else 0
    if not resume and cfg.train.init:
        fresh = init_weights(task.modules(), cfg.task, cfg.train.init)
        if world.is_main:
            print(f"train.init: weights from {cfg.train.init}" + (f"; fresh: {', '.join(fresh)}" if fresh else ""))

    main = world.is_main
    if main:
        lock.keep_dir = True  # from here on the run folder holds this run
        prepare_dir(run_dir / "samples")  # a place that cannot be written: one line naming it
        for name in (CHECKPOINT, *RUN_FILES):  # our writer's temp files left by a kill (we hold the lock)
            for stale in run_dir.glob(f".{name}.*.tmp"):
                stale.unlink(missing_ok=True)
        for stale in (run_dir / "samples").glob(".step_*.tmp"):
            stale.unlink(missing_ok=True)
        atomic_write_bytes(run_dir / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False).encode())
    log = MetricsLog(run_dir, step) if main else None
    images, labels = data.images, data.labels
    part = world.slice(cfg.train.batch_size)

    def next_batch() -> Batch:
        idx = sampler.next()[part]
        return to_float(images[idx]).to(device, non_blocking=True), labels[idx].to(device)

    title = f"resgan run {run_dir.name}: {cfg.data.name} {cfg.data.resolution}px, {cfg.task}"
    rows = task.grid_rows(data.classes) if hasattr(task, "grid_rows") else []  # the report labels grid rows
    bar = tqdm(total=cfg.train.steps, initial=step, disable=not (progress and main), dynamic_ncols=True, unit="step")
    t_last, step_last = time.perf_counter(), step
    last_saved = step
    try:
        while step < cfg.train.steps:
            stats = average_stats(task.train_step(next_batch), world, device)
            step += 1
            for k, v in stats.items():
                if k.startswith("loss") and not math.isfinite(v):
                    raise TrainingDiverged(f"{k} became {v} at step {step}; stopping. The latest checkpoint "
                                           f"({ckpt_path}, step {last_saved}) is the last good one")
            if main and (step % cfg.train.log_every == 0 or step == cfg.train.steps):
                now = time.perf_counter()
                stats["img_per_s"] = (step - step_last) * task.images_per_step() / max(now - t_last, 1e-9)
                t_last, step_last = now, step
                log.log(step, stats)
                bar.set_postfix({k.removeprefix("loss_"): f"{v:.3f}" for k, v in stats.items() if k.startswith("loss")}
                                | {"img/s": f"{stats['img_per_s']:.0f}"})
            bar.update(1)
            if main and (step % cfg.train.sample_every == 0 or step == cfg.train.steps):
                grid, ncol = task.sample_grid()
                save_png(make_grid(grid, ncol), run_dir / "samples" / f"step_{step:07d}.png")
            if main:  # the task keeps its own schedule (val_every, fid_every)
                scores = task.validate()
                if scores:
                    log.log(step, scores)
            if main and (step % cfg.train.ckpt_every == 0 or step == cfg.train.steps):
                save_run_checkpoint(ckpt_path, task, step, sampler, data.classes)
                last_saved = step
                write_report(run_dir, title, row_labels=rows)
            if _STOP.is_set():  # asked to stop: the step just finished is whole, keep it
                if main and step > last_saved:
                    save_run_checkpoint(ckpt_path, task, step, sampler, data.classes)
                    write_report(run_dir, title, row_labels=rows)
                raise Stopped(f"stopped at step {step}; checkpoint saved, continue with --resume")
    except KeyboardInterrupt:
        # raised anywhere, possibly inside a step: nothing is saved, the last checkpoint stays the latest
        raise ResganError(f"interrupted during step {step + 1}; the latest checkpoint ({ckpt_path}, step "
                          f"{last_saved}) is kept, continue with --resume") from None
    finally:
        bar.close()
        if log is not None:
            log.close()
    if main:
        write_report(run_dir, title, row_labels=rows)
    barrier(world)
    return ckpt_path
