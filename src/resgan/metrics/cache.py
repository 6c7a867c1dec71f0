"""On-disk cache of reference features and statistics (and the CAS classifier), as safetensors.

Location: ``$RESGAN_CACHE`` or ``~/.cache/resgan``. An entry's name is a hash of everything that
determines it (data set, path, split, resolution, channels, limit, weights, precision mode); its
JSON description is stored in the safetensors metadata and checked on load.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ..errors import ResganError

ENV_CACHE = "RESGAN_CACHE"


def cache_dir(override: str | Path | None = None) -> Path:
    if override:
        return Path(override)
    env = os.environ.get(ENV_CACHE)
    return Path(env) if env else Path.home() / ".cache" / "resgan"


def entry_key(kind: str, parts: dict) -> str:
    text = json.dumps({"kind": kind, **parts}, sort_keys=True, default=str)
    return f"{kind}-{hashlib.sha1(text.encode()).hexdigest()[:16]}"


def load_arrays(kind: str, parts: dict, override: str | Path | None = None) -> dict[str, np.ndarray] | None:
    """The cached arrays for (kind, parts), or None (missing, unreadable or not matching)."""
    from safetensors import SafetensorError, safe_open
    from safetensors.numpy import load_file

    path = cache_dir(override) / f"{entry_key(kind, parts)}.safetensors"
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="np") as f:
            meta = f.metadata() or {}
        if json.loads(meta.get("parts", "null")) != json.loads(json.dumps(parts, sort_keys=True, default=str)):
            return None
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError):
        return None


def save_arrays(kind: str, parts: dict, arrays: dict[str, np.ndarray], override: str | Path | None = None) -> Path:
    """Write atomically (temp file + rename)."""
    from safetensors.numpy import save_file

    d = cache_dir(override)
    path = d / f"{entry_key(kind, parts)}.safetensors"
    tmp = path.with_name(path.name + f".{os.getpid()}.part")
    meta = {"kind": kind, "parts": json.dumps(parts, sort_keys=True, default=str)}
    try:
        d.mkdir(parents=True, exist_ok=True)
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp), metadata=meta)
        os.replace(tmp, path)
    except OSError as e:
        if d.is_dir():
            tmp.unlink(missing_ok=True)
        raise ResganError(f"{d}: cannot write the cache there ({e.strerror or e}); give a writable --cache-dir "
                          f"or set ${ENV_CACHE}") from None
    return path
