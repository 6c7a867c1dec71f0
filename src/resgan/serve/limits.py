"""The server's limits, its JSON errors, and the request-body limit (an ASGI middleware)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..restore.infer import DEFAULT_OVERLAP


@dataclass
class Limits:
    """Server limits (all overridable from ``resgan serve``)."""

    max_body_bytes: int = 32 * 2**20  # a whole request (image + mask + fields)
    max_pixels: int = 4096 * 4096  # per input image (checked from the header, before decoding); SR: per output
    max_images: int = 64  # images per /v1/generate request
    workers: int = 1  # inference threads (requests running at once)
    queue: int = 64  # requests waiting beyond those running; more get 503
    timeout_s: float = 120.0  # per request, queue wait included; then 504 (and the work stops at its next layer)
    stuck_after_s: float = 10.0  # /healthz is 503 "stuck" once every worker holds a job this long past its deadline
    header_timeout_s: float = 10.0  # a request head must arrive within this (from connect / the last response)
    body_timeout_s: float = 20.0  # a body must start within this, then average body_min_rate; else 408
    body_min_rate: int = 16 * 1024  # bytes/s
    max_url_bytes: int = 8192  # the request line (method, URL, version); then 414
    max_connections: int = 512  # open connections; beyond, the oldest idle one is closed
    tile: int = 512
    overlap: int = DEFAULT_OVERLAP


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


def is_int(text: str | bytes) -> bool:
    """ASCII digits only: str.isdigit() also takes superscripts such as "²", which int() refuses."""
    text = text.strip()
    return text.isascii() and text.isdigit()


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``max_bytes`` (413), by Content-Length up
    front and by counting the bytes of a chunked upload."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        msg = f"request body over the server's limit of {self.max_bytes:,} bytes"
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not is_int(length) or int(length) > self.max_bytes):
            return await error_response(413, msg)(scope, receive, send)
        total = 0

        async def limited():
            nonlocal total
            message = await receive()
            if message["type"] == "http.request":
                total += len(message.get("body", b""))
                if total > self.max_bytes:
                    raise StarletteHTTPException(413, msg)
            return message

        await self.app(scope, limited, send)
