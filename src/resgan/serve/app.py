"""``resgan serve``: the HTTP API (FastAPI) and the offline web page (``static/``).

Endpoints: ``POST /v1/restore`` (multipart), ``GET /v1/jobs/{id}`` (a restore's tiles done, for a
request sent with ``X-Resgan-Job: ID``), ``POST /v1/generate`` (JSON), ``GET /v1/models``,
``GET /healthz``, ``GET /openapi.json``; ``GET /`` is the web page. Models are loaded once, when
the app is built. Every request's work (decoding, inference, encoding) runs on a bounded
worker pool (``workers`` threads) behind a bounded queue: a request that finds ``workers +
queue`` requests admitted gets 503 at once, and one that takes longer than ``timeout_s`` gets
504 and its work is stopped at the next layer of the model (:mod:`.jobs`). Connections are
guarded by :mod:`.transport` (read deadlines, URL limit, idle connections shed). Errors are JSON
``{"error": MESSAGE, "status": CODE}`` with a 4xx code for bad input.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import io
import ipaddress
import logging
import math
import secrets
import threading
import time
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from fastapi import FastAPI, File, Form, Header, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from .._version import __version__
from ..checkpoint import checkpoint_file
from ..errors import ResganError
from ..gan.sampling import check_trunc, class_index, class_names, generate, parse_seeds
from ..imageio import Loaded, decode_image, decode_mask, encode_image, keep_known
from ..report import make_grid
from ..restore.infer import DEFAULT_OVERLAP, RESTORE_TASKS, Progress, restore_array
from ..zoo import BUILTINS, RestoreModel, builtin_path, load_generator, load_restorer, resolve
from .jobs import JOB_ID_RE, Job, JobCancelled, ProgressTable, check_cancelled, install_cancel_hooks, job_lock, running
from .transport import Guard, InFlightLimit, guarded_h11

log = logging.getLogger("resgan.serve")
STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_SEED = 2**32 - 1


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


# ---------------------------------------------------------------- models


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
            if task not in e.tasks:
                raise ApiError(400, f"model {name!r} does {', '.join(e.tasks)}, not {task}")
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


# ---------------------------------------------------------------- images

ACCEPTED = "PNG, JPEG, WebP, BMP or GIF"


@functools.cache
def favicon_ico() -> bytes:
    """The page's icon, drawn here (no file, nothing fetched): a 32x32 ICO of a dark tile with a
    blue brush dab and a white core (drawn 4x larger, then downsampled for smooth edges)."""
    from PIL import ImageDraw

    big = Image.new("RGBA", (128, 128), (0, 0, 0, 0))
    d = ImageDraw.Draw(big)
    d.rounded_rectangle((0, 0, 127, 127), 28, fill=(29, 29, 31, 255))
    d.ellipse((24, 24, 104, 104), fill=(10, 132, 255, 255))
    d.ellipse((50, 50, 78, 78), fill=(255, 255, 255, 255))
    buf = io.BytesIO()
    big.resize((32, 32), Image.Resampling.LANCZOS).save(buf, format="ICO", sizes=[(32, 32)])
    return buf.getvalue()


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def restore_png(model: RestoreModel, loaded: Loaded, mask: np.ndarray | None, sigma: float | None,
                tile: int, overlap: int, progress: Progress | None = None) -> bytes:
    """Restore and encode as PNG in the input's mode; inpainting keeps every known pixel's stored value.
    ``progress(done, total)``: tiles done (:func:`resgan.restore.infer.restore_array`)."""
    out = restore_array(model, loaded.data, mask, sigma, tile, overlap, progress)
    if mask is not None:
        return keep_known(out, loaded, mask, Path("result.png"))
    return encode_image(out, loaded, Path("result.png"))


# ---------------------------------------------------------------- work queue


class WorkQueue:
    """At most ``workers`` jobs run at once (threads, off the event loop) and at most ``queue``
    wait; beyond that, 503 at once. A job past ``timeout_s`` (queue wait included) is 504: a
    queued job is dropped, a running one is stopped at its next layer (:mod:`.jobs`: every
    module of a served model checks the deadline) and then frees its slot."""

    def __init__(self, workers: int, queue: int, timeout_s: float, stuck_after_s: float = 10.0):
        self.workers = max(1, workers)
        self.executor = ThreadPoolExecutor(self.workers, thread_name_prefix="resgan-infer")
        self.capacity, self.timeout_s, self.stuck_after_s = self.workers + max(0, queue), timeout_s, stuck_after_s
        self.pending = 0
        self.stopped = 0  # jobs stopped past their deadline
        self.running: set[Job] = set()
        self._lock = threading.Lock()

    def _done(self, fut: Future | None) -> None:
        with self._lock:
            self.pending -= 1

    def _call(self, job: Job, fn, args):
        if job.cancelled():  # its deadline passed while it waited: it never starts
            raise JobCancelled
        with self._lock:
            job.started = time.monotonic()
            self.running.add(job)
        try:
            with running(job):
                return fn(*args)
        except JobCancelled:
            with self._lock:
                self.stopped += 1
            raise
        finally:
            with self._lock:
                self.running.discard(job)

    def health(self) -> dict[str, Any]:
        """Jobs running, how many of them are past their deadline (being stopped), and whether every
        worker is held by one more than ``stuck_after_s`` past it (nothing can be served)."""
        now = time.monotonic()
        with self._lock:
            late = [j.deadline for j in self.running if now > j.deadline]
            n_running = len(self.running)
        stuck = sum(now > d + self.stuck_after_s for d in late) >= self.workers
        return {"status": "stuck" if stuck else "ok", "pending": self.pending, "capacity": self.capacity,
                "running": n_running, "cancelling": len(late), "stopped": self.stopped}

    async def run(self, fn, *args):
        with self._lock:
            if self.pending >= self.capacity:
                raise ApiError(503, f"server busy ({self.pending} requests queued or running); retry later",
                               {"Retry-After": "1"})
            self.pending += 1
        job = Job(time.monotonic() + self.timeout_s)
        try:
            fut = self.executor.submit(self._call, job, fn, args)
        except BaseException:
            self._done(None)
            raise
        fut.add_done_callback(self._done)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), self.timeout_s)
        except (asyncio.TimeoutError, JobCancelled):
            job.cancel()
            fut.cancel()
            raise ApiError(504, f"the request took longer than the server's {self.timeout_s:g} s limit; "
                                "its work was stopped") from None
        except asyncio.CancelledError:  # the request itself was cancelled (shutdown): stop its work too
            job.cancel()
            fut.cancel()
            raise

    def shutdown(self) -> None:
        with self._lock:
            for job in self.running:  # running work stops at its next layer too
                job.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)


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
        if length is not None and (not _is_int(length) or int(length) > self.max_bytes):
            return await _error(413, msg)(scope, receive, send)
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


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


def _job_id(value: str, what: str) -> str:
    if not JOB_ID_RE.fullmatch(value):
        raise ApiError(400, f"{what} must be 8 to 64 characters of A-Z, a-z, 0-9, '_' and '-' (e.g. a uuid4 "
                            f"in hex), got {value[:80]!r}")
    return value


# ---------------------------------------------------------------- app


class GenerateRequest(BaseModel):
    """``seeds`` ("0-15", "1,5,9" or a list) or ``count`` (that many random seeds; default 16)."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    model: str | None = Field(None, description="generator name (default: the first loaded)")
    class_: int | str | None = Field(None, alias="class", description="class index or name (conditional models)")
    seeds: str | list[int] | None = Field(None, description='e.g. "0-15", "1,5,9" or [1, 5, 9]')
    count: int | None = Field(None, ge=1, description="that many random seeds (returned in the response)")
    psi: float | None = Field(None, ge=0, le=2, description="truncation psi (StyleGAN's): z scaled toward the mean "
                                                        "latent; 1 = off, 0.7 = mild, 0 = the mean image")
    trunc: float | None = Field(None, gt=0, description="truncation threshold (BigGAN's): z values beyond +-trunc "
                                                        "are redrawn, e.g. 1.0; not psi")
    format: Literal["png", "zip", "json"] = Field("png", description="png: one grid; zip: a PNG per seed; json: "
                                                                      "base64 PNGs")


def _seeds(req: GenerateRequest, max_images: int) -> list[int]:
    if req.seeds is not None and req.count is not None:
        raise ApiError(400, "give seeds or count, not both")
    if req.seeds is None:
        n = req.count or 16
        if n > max_images:
            raise ApiError(400, f"count {n} is over the limit of {max_images} images a request")
        return [secrets.randbelow(MAX_SEED + 1) for _ in range(n)]
    if isinstance(req.seeds, list):
        seeds = req.seeds
    else:
        n = 0
        for part in req.seeds.split(","):
            a, sep, b = part.strip().partition("-") if not part.strip().startswith("-") else ("", "", "")
            n += (int(b) - int(a) + 1) if sep and _is_int(a) and _is_int(b) else 1
            if n > max_images:
                raise ApiError(400, f"seeds {req.seeds!r}: over the limit of {max_images} images a request")
        try:
            seeds = parse_seeds(req.seeds)
        except ResganError:
            raise ApiError(400, f"seeds wants a list like 0-15 or 1,5,9, got {req.seeds!r}") from None
    if not seeds or len(seeds) > max_images:
        raise ApiError(400, f"give 1 to {max_images} seeds")
    if min(seeds) < 0 or max(seeds) > MAX_SEED:
        raise ApiError(400, f"seeds must be within 0..{MAX_SEED}")
    return seeds


def _is_int(text: str) -> bool:
    """ASCII digits only: str.isdigit() also takes superscripts such as "²", which int() refuses."""
    text = text.strip()
    return text.isascii() and text.isdigit()


def _trunc(value: float | None) -> float | None:
    try:
        check_trunc(value, "trunc")
    except ResganError as e:
        raise ApiError(400, str(e)) from None
    return value


def _class_idx(entry: GeneratorEntry, value: int | str | None) -> int | None:
    if value is None or value == "":
        return None
    if not entry.G.num_classes:
        raise ApiError(400, f"generator {entry.name!r} is unconditional; drop class")
    try:  # the CLI's rule (resgan generate --class): a class name first, else an index
        return class_index(entry.classes, value, "class")
    except ResganError as e:
        raise ApiError(400, str(e)) from None


def create_app(registry: Registry, limits: Limits | None = None) -> FastAPI:
    limits = limits or Limits()
    work = WorkQueue(limits.workers, limits.queue, limits.timeout_s, limits.stuck_after_s)
    progress = ProgressTable()  # restore jobs named by their client (X-Resgan-Job): tiles done
    for e in registry.restore.values():  # timed-out work stops at the next layer (see .jobs)
        install_cancel_hooks(e.model.net)
    for g in registry.generators.values():
        install_cancel_hooks(g.G)

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        work.shutdown()

    # /docs and /redoc load Swagger / ReDoc from a CDN, so they are off (the page works offline);
    # the schema is at /openapi.json.
    app = FastAPI(title="resgan", version=__version__, docs_url=None, redoc_url=None, lifespan=lifespan,
                  description="Image restoration (inpaint, denoise, super-resolve, ...) and generation with "
                              "residual GANs. Errors: JSON {error, status}.")
    app.state.registry, app.state.limits, app.state.work, app.state.progress = registry, limits, work, progress
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    # requests in progress (uploading, queued, computing): bounded, JSON 503 beyond; /healthz always answers
    app.add_middleware(InFlightLimit, limit=limits.workers + limits.queue + 32)

    @app.middleware("http")
    async def security_headers(request, call_next):
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Content-Security-Policy", "default-src 'self'; img-src 'self' blob: data:; "
                                                               "object-src 'none'; frame-ancestors 'none'")
        return response

    @app.exception_handler(ApiError)
    async def api_error(request, exc: ApiError):
        return _error(exc.status, exc.message, exc.headers)

    @app.exception_handler(ResganError)
    async def resgan_error(request, exc: ResganError):
        return _error(exc.status, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc: RequestValidationError):
        parts = [f"{'.'.join(str(x) for x in e.get('loc', ()) if x != 'body') or 'body'}: {e.get('msg')}"
                 for e in exc.errors()]
        return _error(422, "invalid request: " + "; ".join(parts))

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon():
        return Response(favicon_ico(), media_type="image/x-icon", headers={"Cache-Control": "max-age=86400"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/healthz", tags=["service"])
    async def healthz():
        """``status`` "ok", or "stuck" (HTTP 503) once every worker holds a job that has not stopped
        ``stuck_after_s`` past its deadline; ``running``, ``cancelling`` (past their deadline) jobs."""
        h = work.health()
        return JSONResponse({**h, "models": len(registry.names())}, status_code=503 if h["status"] == "stuck" else 200)

    @app.get("/v1/models", tags=["service"])
    async def models() -> dict:
        """What is loaded: restoration models (tasks, channels, scale), generators (classes, resolution)."""
        return {"restore": [e.info() for e in registry.restore.values()],
                "generators": [e.info() for e in registry.generators.values()],
                "tasks": registry.tasks(), "limits": asdict(limits)}

    @app.post("/v1/restore", tags=["restore"], response_class=Response,
              responses={200: {"content": {"image/png": {}}, "description": "the restored image (PNG)"},
                         400: {"description": "bad input"}, 404: {"description": "unknown model / no model"},
                         413: {"description": "too many bytes or pixels"}, 415: {"description": "not an image"},
                         503: {"description": "queue full"}, 504: {"description": "timed out"}})
    async def restore(image: Annotated[UploadFile, File(description=f"the photo ({ACCEPTED})")],
                      task: Annotated[str, Form(description="inpaint | denoise | deblur | jpeg | sr")],
                      mask: Annotated[UploadFile | None, File(description="inpaint: the hole mask (white = hole), "
                                                                          "the image's size")] = None,
                      model: Annotated[str | None, Form(description="a loaded model's name "
                                                                    "(default: the task's first)")] = None,
                      sigma: Annotated[float | None, Form(description="denoise: noise sigma, 0-255 "
                                                                      "(default: estimated)")] = None,
                      scale: Annotated[int | None, Form(description="sr: the expected scale "
                                                                    "(checked against the model)")] = None,
                      job_id: Annotated[str | None, Header(alias="X-Resgan-Job", description=(
                          "a name for this job (8-64 of A-Z a-z 0-9 _ -, e.g. a uuid4 in hex): its tiles done "
                          "are then at GET /v1/jobs/{id} while it runs"))] = None):
        """Restore one image; the PNG result has the input's size (x scale for sr) and mode."""
        if job_id is not None:
            _job_id(job_id, "X-Resgan-Job")
        entry = registry.restorer(task, model or None)
        m = entry.model
        if task == "inpaint" and mask is None:
            raise ApiError(400, "inpaint needs a mask (white = hole)")
        if task != "inpaint" and mask is not None:
            raise ApiError(400, f"mask applies to inpaint only, not {task}")
        if sigma is not None and task != "denoise":
            raise ApiError(400, f"sigma applies to denoise only, not {task}")
        if sigma is not None and not 0 <= sigma <= 255:
            raise ApiError(400, f"sigma must be within 0..255, got {sigma:g}")
        if scale is not None and scale != m.scale:
            raise ApiError(400, f"model {entry.name!r} is x{m.scale}, not x{scale}")
        image_bytes = await image.read()
        mask_bytes = await mask.read() if mask is not None else None
        track = progress.add(job_id) if job_id is not None else None
        if job_id is not None and track is None:
            raise ApiError(409, f"job {job_id!r} is already queued or running; name each request anew")

        def job() -> tuple[bytes, str]:
            if track is not None:
                track.start()
            loaded = decode_image(image_bytes, "image", limits.max_pixels)
            chosen = entry if model else registry.restorer(task, None, loaded.data.shape[2])
            m = chosen.model
            h, w = loaded.data.shape[:2]
            if h * w * m.scale**2 > limits.max_pixels:
                raise ApiError(413, f"image: x{m.scale} output of {w}x{h} is over the limit of "
                                    f"{limits.max_pixels:,} pixels")
            hole = decode_mask(mask_bytes, (w, h), limits.max_pixels) if mask_bytes is not None else None
            check_cancelled()
            report = track.report if track is not None else None
            return restore_png(m, loaded, hole, sigma, limits.tile, limits.overlap, report), chosen.name

        try:
            png, name = await work.run(job)
        except BaseException:  # an error, 503, 504, or the request cancelled: the entry must not stay "running"
            if track is not None:
                track.finish(ok=False)
            raise
        if track is not None:
            track.finish(ok=True)
        return Response(png, media_type="image/png", headers={"X-Model": name})

    @app.get("/v1/jobs/{job_id}", tags=["restore"])
    async def job_progress(job_id: str) -> dict:
        """Progress of a restore sent with the header ``X-Resgan-Job: ID``: ``state`` (queued, running,
        done, failed, or unknown: never sent, or finished over a minute ago), ``done`` / ``total`` tiles
        (an untiled image is 1 tile), ``elapsed_s`` since it was admitted."""
        return progress.get(_job_id(job_id, "job id"))

    @app.post("/v1/generate", tags=["generate"], response_class=Response,
              responses={200: {"content": {"image/png": {}, "application/zip": {}, "application/json": {}},
                               "description": "png: a grid; zip: seedNNNNNNNNNN.png each; json: base64 PNGs"}})
    async def generate_images(req: GenerateRequest):
        """Sample a generator: one image per seed (the same seed is always the same image)."""
        entry = registry.generator(req.model)
        seeds = _seeds(req, limits.max_images)
        class_idx = _class_idx(entry, req.class_)
        _trunc(req.trunc)

        def job():
            with job_lock(entry.lock), torch.no_grad():
                images, labels = generate(entry.G, seeds, class_idx, req.trunc, req.psi)
            return images, labels

        images, labels = await work.run(job)
        label_list = labels.tolist() if labels is not None else [None] * len(seeds)
        headers = {"X-Model": entry.name, "X-Seeds": ",".join(map(str, seeds)),
                   "X-Labels": ",".join("" if v is None else str(v) for v in label_list)}
        if req.format == "png":
            grid = make_grid(images, math.ceil(math.sqrt(len(seeds))))
            return Response(png_bytes(grid), media_type="image/png", headers=headers)
        pngs = [png_bytes(make_grid(img[None], 1, pad=0)) for img in images]
        if req.format == "zip":
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
                for s, data in zip(seeds, pngs, strict=True):
                    z.writestr(f"seed{s:010d}.png", data)
            return Response(buf.getvalue(), media_type="application/zip",
                            headers={**headers, "Content-Disposition": 'attachment; filename="generated.zip"'})
        classes = entry.classes
        items = [{"seed": s, "label": y, "class": classes[y] if y is not None else None,
                  "png_base64": base64.b64encode(data).decode()}
                 for s, y, data in zip(seeds, label_list, pngs, strict=True)]
        return JSONResponse({"model": entry.name, "images": items}, headers=headers)

    return app


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
