"""``resgan serve``'s own options, checked before any model is loaded: each bad one is one line
naming the option and its range, never a traceback from uvicorn or a server that starts and then
refuses (or never times out) every request. Imports no web framework and no torch.

The floors are the smallest values with which the server can still do its work: a request needs
at least a second (``--timeout``), a small photo's upload (``--max-upload-mb`` 0.1) and a 64x64 image
(``--max-pixels``); the ceilings keep the numbers within what one process can hold.
"""

from __future__ import annotations

import math
import numbers
import socket
from typing import Any

from ..errors import ResganError

MIN_TIMEOUT_S, MAX_TIMEOUT_S = 1.0, 24 * 3600.0
MIN_UPLOAD_MB, MAX_UPLOAD_MB = 0.1, 16 * 1024.0
MIN_PIXELS, MAX_PIXELS = 64 * 64, 2**30
MAX_WORKERS, MAX_QUEUE = 256, 100_000


def _whole(value: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not lo <= value <= hi:
        raise ResganError(f"{name} must be a whole number within {lo}..{hi:,}, got {value!r}")
    return int(value)


def _number(value: Any, name: str, lo: float, hi: float, unit: str) -> float:
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
    if not ok or not lo <= value <= hi:
        raise ResganError(f"{name} must be a finite number of {unit} within {lo:g}..{hi:g}, got {value!r}")
    return float(value)


def check_serve_options(host: str, port: int, workers: int, queue: int, timeout: float, max_upload_mb: float,
                        max_pixels: int, bind: bool = True) -> None:
    """The options of ``resgan serve``; with ``bind``, also that ``host:port`` can be listened on now (a
    name that does not resolve, a port in use or one below 1024 without the right is one line)."""
    _whole(port, "--port", 1, 65535)
    _whole(workers, "--workers", 1, MAX_WORKERS)
    _whole(queue, "--queue", 0, MAX_QUEUE)
    _number(timeout, "--timeout", MIN_TIMEOUT_S, MAX_TIMEOUT_S, "seconds")
    _number(max_upload_mb, "--max-upload-mb", MIN_UPLOAD_MB, MAX_UPLOAD_MB, "MiB")
    _whole(max_pixels, "--max-pixels", MIN_PIXELS, MAX_PIXELS)
    if not isinstance(host, str) or not host.strip():
        raise ResganError(f"--host must be an address or a host name, got {host!r}")
    if bind:
        check_bind(host, port)


def check_bind(host: str, port: int) -> None:
    """Bind ``host:port`` once and let go (as uvicorn will, with SO_REUSEADDR)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as e:
        raise ResganError(f"--host {host}: not an address this machine can resolve ({e})") from None
    family, kind, proto, _, addr = infos[0]
    try:
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(addr)
    except OSError as e:
        raise ResganError(f"--host {host} --port {port}: cannot listen there ({e.strerror or e})") from None
