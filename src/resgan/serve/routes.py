"""The HTTP routes of ``resgan serve``: each translates a request into the request layer's
(:mod:`resgan.verbs`) and its result or ``ResganError`` into a response; the work runs on the
:class:`.queue.WorkQueue`. Errors are JSON ``{"error": MESSAGE, "status": CODE}``."""

from __future__ import annotations

import base64
import functools
import io
import secrets
import zipfile
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from fastapi import FastAPI, File, Form, Header, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from .._version import __version__
from ..errors import ResganError
from ..imageio import ACCEPTED, decode_bytes, decode_mask, encode
from ..verbs import generate as G
from ..verbs.options import whole
from ..verbs.restore import RestoreRequest, restore_one, restore_request
from .jobs import JOB_ID_RE, ProgressTable, check_cancelled, install_cancel_hooks, job_lock
from .limits import ApiError, BodyLimit, Limits, error_response
from .queue import WorkQueue
from .registry import Registry, RegistryModels
from .transport import InFlightLimit

STATIC_DIR = Path(__file__).resolve().parent / "static"
RANDOM_SEEDS = 2**32  # /v1/generate with count: random seeds below this (any seed up to verbs.seeds.MAX_SEED works)


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


def restore_png(models: RegistryModels, req: RestoreRequest, image: bytes, mask: bytes | None, limits: Limits,
                progress=None) -> tuple[bytes, str]:
    """Decode (the one decoder), restore (the one restore), encode as PNG in the input's mode."""
    loaded = decode_bytes(image, "image", limits.max_pixels)
    hole = decode_mask(mask, loaded.size, limits.max_pixels) if mask is not None else None
    check_cancelled()
    q, name = restore_one(models, req, loaded, hole, progress, max_output_pixels=limits.max_pixels)
    return encode(q, loaded.mode, Path("result.png")), name


def _job_id(value: str, what: str) -> str:
    if not JOB_ID_RE.fullmatch(value):
        raise ApiError(400, f"{what} must be 8 to 64 characters of A-Z, a-z, 0-9, '_' and '-' (e.g. a uuid4 "
                            f"in hex), got {value[:80]!r}")
    return value


class GenerateRequest(BaseModel):
    """``seeds`` ("0-15", "1,5,9" or a list) or ``count`` (that many random seeds; default 16). The values are
    checked by the request layer, as the command line's and the Python API's are."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    model: str | None = Field(None, description="generator name (default: the first loaded)")
    class_: Any = Field(None, alias="class", description="class index or name (conditional models)")
    seeds: Any = Field(None, description='e.g. "0-15", "1,5,9" or [1, 5, 9]')
    count: Any = Field(None, description="that many random seeds (returned in the response)")
    psi: Any = Field(None, description="truncation psi (StyleGAN's), 0-2: z scaled toward the mean latent; "
                                       "1 = off, 0.7 = mild, 0 = the mean image")
    trunc: Any = Field(None, description="truncation threshold (BigGAN's), >= 0.05: z values beyond +-trunc are "
                                         "redrawn, e.g. 1.0; not psi")
    format: Literal["png", "zip", "json"] = Field("png", description="png: one grid; zip: a PNG per seed; json: "
                                                                      "base64 PNGs")


def _generate_request(body: GenerateRequest, max_images: int) -> G.GenerateRequest:
    seeds = body.seeds
    if seeds is not None and body.count is not None:
        raise ApiError(400, "give seeds or count, not both")
    if seeds is None:
        n = 16 if body.count is None else whole(body.count, "count", 1)
        if n > max_images:
            raise ApiError(400, f"count {n} is over the limit of {max_images} images a request")
        seeds = [secrets.randbelow(RANDOM_SEEDS) for _ in range(n)]
    req = G.generate_request(seeds, body.class_, body.psi, body.trunc, max_seeds=max_images)
    if body.format == "zip":
        G.distinct(req.seeds, "a zip of one file per seed")
    return req


RESTORE_FIELDS = ("image", "task", "mask", "model", "sigma", "scale")


def check_form_fields(form) -> None:
    """/v1/restore's form: each field at most once and no other (a second image would be dropped
    unread, a misspelt option ignored: the request is refused instead, as /v1/generate refuses an
    unknown key)."""
    keys = [k for k, _ in form.multi_items()]
    for key in dict.fromkeys(keys):
        if key not in RESTORE_FIELDS:
            raise ApiError(400, f"unknown form field {key[:64]!r}; /v1/restore takes {', '.join(RESTORE_FIELDS)}")
        if keys.count(key) > 1:
            raise ApiError(400, f"form field {key!r} is given {keys.count(key)} times; one request restores one "
                                "image with one value per option")


def _exception_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request, exc: ApiError):
        return error_response(exc.status, exc.message, exc.headers)

    @app.exception_handler(ResganError)
    async def resgan_error(request, exc: ResganError):
        return error_response(exc.status, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc: StarletteHTTPException):
        return error_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc: RequestValidationError):
        parts = [f"{'.'.join(str(x) for x in e.get('loc', ()) if x != 'body') or 'body'}: {e.get('msg')}"
                 for e in exc.errors()]
        return error_response(422, "invalid request: " + "; ".join(parts))


def _page_routes(app: FastAPI, registry: Registry, limits: Limits, work: WorkQueue) -> None:
    @app.middleware("http")
    async def security_headers(request, call_next):
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Content-Security-Policy", "default-src 'self'; img-src 'self' blob: data:; "
                                                               "object-src 'none'; frame-ancestors 'none'")
        return response

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


def _restore_routes(app: FastAPI, registry: Registry, limits: Limits, work: WorkQueue,
                    progress: ProgressTable) -> None:
    @app.post("/v1/restore", tags=["restore"], response_class=Response,
              responses={200: {"content": {"image/png": {}}, "description": "the restored image (PNG)"},
                         400: {"description": "bad input"}, 404: {"description": "unknown model / no model"},
                         413: {"description": "too many bytes or pixels"}, 415: {"description": "not an image"},
                         503: {"description": "queue full"}, 504: {"description": "timed out"}})
    async def restore(request: Request,
                      image: Annotated[UploadFile, File(description=f"the photo ({ACCEPTED})")],
                      task: Annotated[str, Form(description="inpaint | denoise | deblur | jpeg | sr")],
                      mask: Annotated[UploadFile | None, File(description=(
                          "inpaint: the hole mask (white = hole; transparent = known), the image's size"))] = None,
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
        check_form_fields(await request.form())
        if job_id is not None:
            _job_id(job_id, "X-Resgan-Job")
        req = restore_request(task, model or None, mask=mask is not None, sigma=sigma, scale=scale,
                              tile=limits.tile, overlap=limits.overlap)
        if req.task == "inpaint" and mask is None:
            raise ApiError(400, "inpainting needs a mask (white = hole, the image's size)")
        models = RegistryModels(registry, req.task, req.model)
        image_bytes = await image.read()
        mask_bytes = await mask.read() if mask is not None else None
        track = progress.add(job_id) if job_id is not None else None
        if job_id is not None and track is None:
            raise ApiError(409, f"job {job_id!r} is already queued or running; name each request anew")

        def job() -> tuple[bytes, str]:
            if track is not None:
                track.start()
            return restore_png(models, req, image_bytes, mask_bytes, limits, track.report if track else None)

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


def _generate_routes(app: FastAPI, registry: Registry, limits: Limits, work: WorkQueue) -> None:
    @app.post("/v1/generate", tags=["generate"], response_class=Response,
              responses={200: {"content": {"image/png": {}, "application/zip": {}, "application/json": {}},
                               "description": "png: a grid; zip: seedNNNN.png each; json: base64 PNGs"}})
    async def generate_images(body: GenerateRequest):
        """Sample a generator: one image per seed (the same seed is always the same image)."""
        entry = registry.generator(body.model)
        req = _generate_request(body, limits.max_images)

        def job() -> G.Generated:
            with job_lock(entry.lock), torch.no_grad():
                return G.run(entry.G, entry.classes, req)

        g = await work.run(job)
        headers = {"X-Model": entry.name, "X-Seeds": ",".join(map(str, g.seeds)),
                   "X-Labels": ",".join("" if v is None else str(v) for v in g.labels)}
        if body.format == "png":
            return Response(G.grid_png(g), media_type="image/png", headers=headers)
        if body.format == "zip":
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
                for name, data in G.seed_pngs(g):
                    z.writestr(name, data)
            return Response(buf.getvalue(), media_type="application/zip",
                            headers={**headers, "Content-Disposition": 'attachment; filename="generated.zip"'})
        items = [{"seed": s, "label": y, "class": g.classes[y] if y is not None else None,
                  "png_base64": base64.b64encode(data).decode()}
                 for s, y, data in zip(g.seeds, g.labels, G.image_pngs(g), strict=True)]
        return JSONResponse({"model": entry.name, "images": items}, headers=headers)


def create_app(registry: Registry, limits: Limits | None = None) -> FastAPI:
    """The app over loaded models: routes, a bounded work queue, body and in-flight limits."""
    limits = limits or Limits()
    work = WorkQueue(limits.workers, limits.queue, limits.timeout_s, limits.stuck_after_s)
    progress = ProgressTable()  # restore jobs named by their client (X-Resgan-Job): tiles done
    for e in registry.restore.values():  # timed-out work stops at the next layer (see .jobs)
        install_cancel_hooks(e.model.net)
    for g in registry.generators.values():
        install_cancel_hooks(g.G)

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
    _exception_handlers(app)
    _page_routes(app, registry, limits, work)
    _restore_routes(app, registry, limits, work, progress)
    _generate_routes(app, registry, limits, work)
    return app
