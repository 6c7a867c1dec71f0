"""Checkpoints: tensors in one safetensors file, everything else as JSON in its header.

Nothing is pickled. Files are written atomically (temporary file in the same folder,
fsync, rename, fsync of the folder), so a crash at any moment leaves the previous
checkpoint whole and loadable.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
import threading
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save

from .errors import ResganError
from .runlock import LOCK_NAME, held_here

FORMAT = "resgan-checkpoint/1"
LATEST = "latest.safetensors"  # the newest whole checkpoint of a run directory
RUN_FILES = ("config.yaml", "metrics.jsonl", "report.html")  # a run's own files beside it (and samples/)
MAX_HEADER = 256 * 2**20  # a safetensors header larger than this is not read as one


def checkpoint_file(path: str | Path) -> Path | None:
    """A run directory's latest checkpoint, or ``path`` itself if it is a file; None if neither exists."""
    p = Path(path)
    if p.is_dir():
        p = p / LATEST
    return p if p.is_file() else None


def _os_error(path: Path, e: OSError, doing: str = "cannot write") -> ResganError:
    why = e.strerror or str(e) or type(e).__name__
    return ResganError(f"{path}: {doing} ({why})")


def prepare_dir(path: Path) -> Path:
    """Make sure ``path`` is a folder files can be written in (created if missing); an unwritable
    place, a file where the folder should be or a path under /proc is a ResganError naming it."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ResganError(f"{path}: is a file, but a folder is needed there")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".resgan-probe.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise _os_error(path, e, "cannot create this folder or write files in it") from None
    return path


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the OS tells it (Linux /proc); elsewhere
    set and restored under a lock (os.umask has no read-only form)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def new_file_mode(path: Path) -> int:
    """The permission bits a written file gets: an existing file's own, else 0666 less the umask
    (what ``open(path, "w")`` gives; mkstemp alone would leave 0600)."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o666 & ~current_umask()


def _training_meta(head: bytes) -> dict | None:
    """The settings in a safetensors header's JSON when they are a resgan training checkpoint's."""
    try:
        md = json.loads(head).get("__metadata__") or {}
        meta = json.loads(md["meta"]) if md.get("format") == FORMAT else None
    except (ValueError, AttributeError, TypeError, KeyError):
        return None
    return meta if isinstance(meta, dict) and meta.get("kind") == "train" else None


def training_header(path: Path) -> dict | None:
    """The header settings of ``path`` if it is a resgan training checkpoint (whatever its name), read
    from its header alone; None for any other file, or none."""
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            head = f.read(n) if 2 <= n <= MAX_HEADER else b""
    except OSError:
        return None
    return _training_meta(head) if head else None


def is_run_dir(path: Path) -> bool:
    """A folder holding a run: its training checkpoint, or the lock of a run in progress."""
    return (path / LATEST).is_file() or (path / LOCK_NAME).exists()


def check_overwrite(path: str | Path, data: bytes | None = None) -> None:
    """Refuse to write ``data`` (None: not yet made) at ``path`` where it would replace a training
    checkpoint (any file whose header says it is one) or take a run's checkpoint name
    (``latest.safetensors``), since the run could never resume; or replace one of a run's own files
    (config.yaml, metrics.jsonl, report.html, samples/) unless this process holds that run's
    folder (:mod:`resgan.runlock`). A training checkpoint itself is what ``resgan train`` writes
    into the folder it holds. Called by every writer (:func:`atomic_write_bytes`) and, before any
    work, by the commands that take an output path."""
    path = Path(path)
    if data is not None and len(data) > 8 and _training_meta(data[8:8 + int.from_bytes(data[:8], "little")]):
        return  # a training checkpoint: only resgan train writes one, into the run folder it holds
    meta = training_header(path) if path.is_file() else None
    if meta is not None:
        raise ResganError(f"{path} is a training checkpoint (step {meta.get('step', '?')}); refusing to write "
                          "over it with anything else (the run could not resume): choose another output")
    if path.name == LATEST:
        raise ResganError(f"{path}: {LATEST} is the name of a run's training checkpoint; choose another file name")
    run = path.parent.parent if path.parent.name == "samples" else path.parent
    if (path.name in RUN_FILES or run != path.parent) and is_run_dir(run) and not held_here(run):
        raise ResganError(f"{path} is one of the files of the run in {run}; choose another output")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix.
    The file gets the mode a plain write would give (0666 less the umask; a replaced file keeps its
    own). A place that cannot be written (permissions, a file where a folder is needed, a folder
    where the file should go, /proc, a full disk) is a ResganError naming ``path``, and so is a
    training checkpoint or a run's own file that ``data`` would replace (:func:`check_overwrite`)."""
    path = Path(path)
    if path.is_dir():
        raise ResganError(f"{path}: is a folder, but a file is to be written there")
    check_overwrite(path, data)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise _os_error(path, e) from None
    try:
        os.fchmod(fd, new_file_mode(path))
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise _os_error(path, e) from None
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """BLAKE2b of every tensor's name, dtype, shape and bytes, in name order: a flipped byte
    anywhere in the tensor data changes it."""
    h = hashlib.blake2b(digest_size=20)
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Save ``tensors`` and JSON-able ``meta`` atomically to ``path``, with a digest of the tensor data."""
    flat = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    header = {"format": FORMAT, "meta": json.dumps(meta), "digest": tensor_digest(flat)}
    atomic_write_bytes(path, save(flat, metadata=header))


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load a resgan checkpoint; a missing, corrupt or foreign file is a ResganError."""
    path = Path(path)
    if not path.is_file():
        raise ResganError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        if header.get("format") != FORMAT:
            raise ResganError(f"{path} is not a resgan checkpoint")
        meta = json.loads(header["meta"])
        tensors = load_file(str(path))
    except (SafetensorError, OSError, json.JSONDecodeError, KeyError) as e:
        raise ResganError(f"cannot read checkpoint {path}: {e}") from None
    if not isinstance(meta, dict):
        raise ResganError(f"{path} is not a resgan checkpoint (its header holds no settings)")
    if "digest" in header and tensor_digest(tensors) != header["digest"]:  # files before 0.1.1 have none
        raise ResganError(f"checkpoint {path} is corrupt: its tensor data does not match its digest")
    return tensors, meta


def prefixed(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in state.items()}


def unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    n = len(prefix) + 1
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def optimizer_to_flat(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer's state into tensors (for safetensors) and JSON (everything else)."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for name, value in st.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}.{pid}.{name}"] = value
            else:
                scalars[f"{pid}.{name}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_flat(opt: torch.optim.Optimizer, prefix: str, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in unprefixed(prefix, tensors).items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    for key, value in meta["scalars"].items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
