"""``resgan serve``: the HTTP API (FastAPI) and the offline web page (``static/``). Endpoints: ``POST
/v1/restore`` (multipart), ``GET /v1/jobs/{id}`` (a restore's tiles done, for a request sent with
``X-Resgan-Job: ID``), ``POST /v1/generate`` (JSON), ``GET /v1/models``, ``GET /healthz``, ``GET
/openapi.json``; ``GET /`` is the web page. Models are loaded once, when the app is built
(:mod:`.registry`); the routes (:mod:`.routes`) only translate requests into the request layer
(:mod:`resgan.verbs`) and its results or errors into responses. Every request's work (decoding,
inference, encoding) runs on a bounded worker pool (``workers`` threads) behind a bounded queue: a
request that finds ``workers + queue`` requests admitted gets 503 at once, and one that takes longer
than ``timeout_s`` gets 504 and its work is stopped at the next layer of the model (:mod:`.jobs`).
Connections are guarded by :mod:`.transport` (read deadlines, URL limit, idle connections shed).
Errors are JSON ``{"error": MESSAGE, "status": CODE}`` with a 4xx code for bad input.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from .limits import ApiError, Limits
from .queue import WorkQueue
from .registry import Registry, load_registry
from .routes import STATIC_DIR, create_app
from .transport import Guard, guarded_h11

__all__ = ["ApiError", "Limits", "Registry", "STATIC_DIR", "WorkQueue", "create_app", "load_registry", "serve",
           "server_options"]
log = logging.getLogger("resgan.serve")


# ---------------------------------------------------------------- command


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(models: list[str] | None, host: str = "127.0.0.1", port: int = 8000, device: str = "cpu",
          limits: Limits | None = None) -> int:
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    registry = load_registry(models, device)
    if not registry.names():
        log.warning("no models loaded: the API answers 404 to every restore / generate request "
                    "(pass --models RUN_DIR or a .safetensors file)")
    if not is_loopback(host):
        log.warning("listening on %s: reachable from other machines; there is no authentication", host)
    limits = limits or Limits()
    app = create_app(registry, limits)
    log.info("serving %s at http://%s:%d/", ", ".join(sorted(registry.names())) or "no models",
             f"[{host}]" if ":" in host else host, port)
    uvicorn.run(app, host=host, port=port, log_level="info", **server_options(limits))
    return 0


def server_options(limits: Limits) -> dict[str, Any]:
    """uvicorn settings: the guarded h11 protocol (:mod:`.transport`: read deadlines, URL limit,
    idle connections shed). Requests in progress are capped by the app (``InFlightLimit``), not by
    uvicorn's ``limit_concurrency``, which counted idle connections too."""
    guard = Guard(header_timeout_s=limits.header_timeout_s, body_timeout_s=limits.body_timeout_s,
                  body_min_rate=limits.body_min_rate, max_request_line=limits.max_url_bytes,
                  max_connections=limits.max_connections)
    return {"http": guarded_h11(guard), "ws": "none", "limit_concurrency": None, "timeout_keep_alive": 5,
            "h11_max_incomplete_event_size": guard.max_head}
