"""``resgan serve``: every endpoint and every bad input, on tiny untrained models (FastAPI TestClient)."""

import io
import json
import threading
import time
import zipfile

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="resgan serve needs fastapi (pip install -e '.[test]')")
pytest.importorskip("multipart", reason="resgan serve needs python-multipart")

from fastapi.testclient import TestClient  # noqa: E402
from helpers import DIGIT_CLASSES as CLASSES  # noqa: E402
from helpers import photo, png_claiming, serve_limits, tiny_model_file  # noqa: E402
from PIL import Image  # noqa: E402

from resgan.cli import build_parser, main  # noqa: E402
from resgan.imageio import sniff  # noqa: E402
from resgan.serve import app as serve_app  # noqa: E402
from resgan.serve.app import Limits, WorkQueue, create_app, load_registry  # noqa: E402
from resgan.serve.jobs import ProgressTable  # noqa: E402
from resgan.serve.transport import GuardedH11Protocol  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny nets: one thread (conftest)


LIMITS = serve_limits()


def png(arr: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, format="PNG")
    return buf.getvalue()


def decode(content: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(content)))


def hole_mask(h: int, w: int) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[10:30, 20:50] = 255
    return m


def restore(client, image: bytes, task: str, mask: bytes | None = None, headers: dict | None = None, **fields):
    files = {"image": ("photo.png", image, "image/png")}
    if mask is not None:
        files["mask"] = ("mask.png", mask, "image/png")
    return client.post("/v1/restore", files=files, data={"task": task, **{k: str(v) for k, v in fields.items()}},
                       headers=headers)


def assert_error(r, status: int, text: str = ""):
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == status and text in body["error"], body


# ---------------------------------------------------------------- service endpoints


def test_healthz_models_and_openapi(client):
    assert client.get("/healthz").json()["status"] == "ok"
    m = client.get("/v1/models").json()
    assert m["tasks"] == {"inpaint": ["inpaint_3"], "denoise": ["den"], "sr": ["sr_3"]}
    sr = next(e for e in m["restore"] if e["name"] == "sr_3")
    assert sr["scale"] == 2 and sr["channels"] == 3
    (g,) = m["generators"]
    assert g["name"] == "digits" and g["classes"] == CLASSES and g["resolution"] == 16
    schema = client.get("/openapi.json").json()
    assert {"/v1/restore", "/v1/generate", "/v1/models", "/healthz"} <= set(schema["paths"])


def test_web_page_is_self_contained(client):
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "default-src 'self'" in r.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/editor.js", "/static/style.css"):
        assert client.get(asset).status_code == 200
    for f in serve_app.STATIC_DIR.iterdir():
        text = f.read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, f.name
    assert_error(client.get("/static/../app.py"), 404)


def test_favicon(client):
    r = client.get("/favicon.ico")
    assert r.status_code == 200 and r.headers["content-type"] == "image/x-icon" and len(r.content) < 4096
    icon = Image.open(io.BytesIO(r.content))
    assert icon.format == "ICO" and icon.size == (32, 32)


# ---------------------------------------------------------------- restore


def test_inpaint_keeps_known_pixels(client):
    img = photo(48, 64)
    r = restore(client, png(img), "inpaint", png(hole_mask(48, 64)))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png" and r.headers["x-model"] == "inpaint_3"
    out = decode(r.content)
    hole = hole_mask(48, 64) > 0
    assert out.shape == img.shape
    assert np.array_equal(out[~hole], img[~hole]) and not np.array_equal(out[hole], img[hole])
    # a canvas-style mask: white strokes on transparent; RGBA photo keeps its alpha
    rgba = np.dstack([img, np.full((48, 64), 200, np.uint8)])
    mask = np.zeros((48, 64, 4), np.uint8)
    mask[10:30, 20:50] = 255
    r = restore(client, png(rgba, "RGBA"), "inpaint", png(mask, "RGBA"))
    out = decode(r.content)
    assert r.status_code == 200 and out.shape == (48, 64, 4) and (out[:, :, 3] == 200).all()
    assert np.array_equal(out[~hole], rgba[~hole])


def test_denoise_and_sr(client):
    grey = photo(40, 52, 1)
    r = restore(client, png(grey), "denoise", sigma=30)
    assert r.status_code == 200, r.text
    assert decode(r.content).shape == (40, 52)
    jpeg = io.BytesIO()
    Image.fromarray(photo(40, 52)).save(jpeg, format="JPEG")
    r = restore(client, jpeg.getvalue(), "denoise")  # sigma estimated; a JPEG in, a PNG out
    assert r.status_code == 200 and r.content.startswith(b"\x89PNG") and decode(r.content).shape == (40, 52, 3)
    r = restore(client, png(photo(21, 30)), "sr", scale=2)
    assert r.status_code == 200 and decode(r.content).shape == (42, 60, 3)


def test_content_is_sniffed_not_the_name(client):
    files = {"image": ("notes.txt", png(photo(24, 24)), "text/plain")}
    assert client.post("/v1/restore", files=files, data={"task": "denoise"}).status_code == 200
    files = {"image": ("photo.png", b"<html>not an image</html>", "image/png")}
    assert_error(client.post("/v1/restore", files=files, data={"task": "denoise"}), 415, "image")
    assert sniff(png(photo(8, 8))) == "PNG" and sniff(b"GIF89a....") == "GIF" and sniff(b"%PDF-1.4") is None


def test_too_many_bytes(client):
    big = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)  # ~360 kB of noise
    assert_error(restore(client, png(big), "denoise"), 413, "body over the server's limit")

    def chunks():  # no Content-Length: counted while streaming
        for _ in range(40):
            yield b"x" * 10_000

    r = client.post("/v1/restore", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=zz"})
    assert_error(r, 413, "body over the server's limit")


def test_decompression_bomb_refused_before_decoding(client):
    zeros = png(np.zeros((1000, 1000), np.uint8))  # 1 Mpx in a few kB
    assert len(zeros) < 10_000
    assert_error(restore(client, zeros, "denoise"), 413, "over the limit of 200,000")
    assert_error(restore(client, png_claiming(60_000, 60_000), "denoise"), 413, "over the limit of 200,000")
    # an SR output counts too: 300x300 in, x2 -> 360,000 px out
    assert_error(restore(client, png(np.zeros((300, 300, 3), np.uint8)), "sr"), 413, "x2 output")


def test_corrupt_images(client):
    data = png(photo(40, 40))
    assert_error(restore(client, data[: len(data) // 2], "denoise"), 400, "cannot read image (corrupt, truncated")
    assert_error(restore(client, b"", "denoise"), 400, "empty")


def test_bad_masks(client):
    img = png(photo(48, 64))
    assert_error(restore(client, img, "inpaint", png(hole_mask(48, 60))), 400, "mask is 60x48 but the image is 64x48")
    colour = np.zeros((48, 64, 3), np.uint8)
    colour[5:9, 5:9, 0] = 255
    assert_error(restore(client, img, "inpaint", png(colour)), 400, "not single-channel")
    assert_error(restore(client, img, "inpaint"), 400, "needs a mask")
    assert_error(restore(client, img, "denoise", png(hole_mask(48, 64))), 400, "mask applies to task inpaint only")
    assert_error(restore(client, img, "inpaint", b"GIF89a garbage"), 400, "mask")


def test_unknown_model_task_and_options(client):
    img = png(photo(32, 32))
    assert_error(restore(client, img, "colorize"), 400, "unknown task 'colorize'")
    assert_error(restore(client, img, "deblur"), 404, "no model for task 'deblur'")
    assert_error(restore(client, img, "denoise", model="nope"), 404, "unknown model 'nope'")
    assert_error(restore(client, img, "denoise", model="/etc/passwd"), 404, "unknown model")  # names, never paths
    assert_error(restore(client, img, "denoise", model="sr_3"), 400, "sr_3 is a sr model, not a denoise model")
    assert_error(restore(client, img, "denoise", sigma=300), 400, "sigma must be within 0..255")
    assert_error(restore(client, img, "sr", sigma=10), 400, "sigma applies to task denoise only")
    assert_error(restore(client, img, "sr", scale=4), 400, "sr_3 is an x2 model, not x4")
    assert_error(restore(client, img, "denoise", sigma="abc"), 422, "sigma")
    assert_error(client.post("/v1/restore", data={"task": "denoise"}), 422, "image")
    assert_error(client.get("/v1/nothing"), 404)
    assert_error(client.get("/v1/restore"), 405)


# ---------------------------------------------------------------- progress of a named restore (X-Resgan-Job)


def test_tiled_restore_reports_its_tiles(registry, make_client):
    """A restore sent with X-Resgan-Job is queued / running / done at GET /v1/jobs/{id}, with its tiles:
    held in its 3rd tile it says 2 of 20 done; at the end 20 of 20 and "done"."""
    net = registry.restore["den"].model.net
    reached, gate, calls = threading.Event(), threading.Event(), []

    def hold_third_tile(module, args):
        calls.append(1)
        if len(calls) == 3:
            reached.set()
            assert gate.wait(20)

    img, job = png(photo(100, 150, 1)), "a1b2c3d4e5f6_-XY"
    limits = Limits(max_body_bytes=300_000, max_pixels=200_000, timeout_s=30, tile=64, overlap=16)
    handle = net.register_forward_pre_hook(hold_third_tile)
    try:
        with make_client(registry, limits) as c:
            first: dict = {}
            t = threading.Thread(target=lambda: first.setdefault(
                "r", restore(c, img, "denoise", headers={"X-Resgan-Job": job}, sigma=25)))
            t.start()
            assert reached.wait(20)
            p = c.get(f"/v1/jobs/{job}").json()
            assert p["state"] == "running" and (p["done"], p["total"]) == (2, 20) and p["elapsed_s"] >= 0, p
            # the id is taken while its job runs
            assert_error(restore(c, img, "denoise", headers={"X-Resgan-Job": job}), 409, "already queued or running")
            gate.set()
            t.join(20)
            assert first["r"].status_code == 200, first["r"].text
            p = c.get(f"/v1/jobs/{job}").json()
            assert p["state"] == "done" and p["done"] == p["total"] == 20, p
            assert c.get("/v1/jobs/never-sent-1234").json() == {"state": "unknown", "done": 0, "total": 0,
                                                                "elapsed_s": None}
            # an untiled image is one tile; a request that fails is "failed"; the id can be reused once finished
            assert restore(c, png(photo(24, 24, 1)), "denoise", headers={"X-Resgan-Job": job}).status_code == 200
            assert c.get(f"/v1/jobs/{job}").json()["total"] == 1
            assert_error(restore(c, b"garbage", "denoise", headers={"X-Resgan-Job": job}), 415)
            assert c.get(f"/v1/jobs/{job}").json()["state"] == "failed"
    finally:
        gate.set()
        handle.remove()


def test_bad_job_ids_are_400(client):
    img = png(photo(24, 24, 1))
    for bad in ("short", "x" * 65, "has space1", "semi;colon", "dot.dot.dot", "ünïcödé1"):
        r = restore(client, img, "denoise", headers={"X-Resgan-Job": bad.encode()})  # raw UTF-8 bytes
        assert_error(r, 400, "X-Resgan-Job must be 8 to 64 characters")
        assert len(r.json()["error"].splitlines()) == 1
    for bad in ("short", "x" * 65, "dot.dot.dot", "%20spaces%20"):
        assert_error(client.get(f"/v1/jobs/{bad}"), 400, "job id must be 8 to 64 characters")
    assert restore(client, img, "denoise", headers={"X-Resgan-Job": "0123456789abcdef" * 4}).status_code == 200


def test_progress_table_is_bounded():
    t = ProgressTable(max_entries=3, keep_s=0.2)
    jobs = [t.add(f"job-{i:04d}") for i in range(3)]
    jobs[1].report(1, 4)
    jobs[1].finish(ok=True)
    jobs[1].report(2, 4)  # after its end (a timed-out job finishing its layer): ignored
    assert t.get("job-0001") | {"elapsed_s": 0} == {"state": "done", "done": 1, "total": 4, "elapsed_s": 0}
    t.add("job-0003")  # full: the finished one goes first
    assert t.get("job-0001")["state"] == "unknown" and t.get("job-0000")["state"] == "queued" and len(t) == 3
    t.add("job-0004")  # none finished: the oldest goes
    assert t.get("job-0000")["state"] == "unknown" and len(t) == 3
    for j in range(3, 5):
        assert t.get(f"job-{j:04d}")["state"] == "queued"
    jobs[2].finish(ok=False)
    assert t.get("job-0002")["state"] == "failed"
    time.sleep(0.3)  # finished entries are forgotten keep_s after their end
    assert t.get("job-0002")["state"] == "unknown" and len(t) == 2


# ---------------------------------------------------------------- generate


def test_generate_png_zip_json(client):
    r = client.post("/v1/generate", json={"seeds": "0-5", "class": 3})
    assert r.status_code == 200, r.text
    assert decode(r.content).shape[:2] == (2 + 2 * 18, 2 + 3 * 18)  # 6 images, 3 a row, 16 px + 2 px pads
    assert r.headers["x-seeds"] == "0,1,2,3,4,5" and r.headers["x-labels"] == "3,3,3,3,3,3"
    r = client.post("/v1/generate", json={"seeds": [7, 9], "format": "zip", "class": "digit4"})
    z = zipfile.ZipFile(io.BytesIO(r.content))
    assert z.namelist() == ["seed0007.png", "seed0009.png"]  # as resgan generate names them
    first = decode(z.read("seed0007.png"))
    assert first.shape[:2] == (16, 16)
    r = client.post("/v1/generate", json={"seeds": [7], "format": "json", "class": 4})
    (item,) = r.json()["images"]
    assert item["seed"] == 7 and item["class"] == "digit4"
    import base64

    assert np.array_equal(decode(base64.b64decode(item["png_base64"])), first)  # a seed is always the same image
    r = client.post("/v1/generate", json={"count": 3, "trunc": 0.7, "format": "json"})
    assert len(r.json()["images"]) == 3


def test_generate_bad_requests(client):
    def gen(**body):
        return client.post("/v1/generate", json=body)

    assert_error(gen(seeds="0-100000000"), 400, "over the limit of 32")
    assert_error(gen(count=33), 400, "over the limit of 32")
    assert_error(gen(seeds="a-b"), 400, "seeds")
    assert_error(gen(seeds=[-1]), 400, "within 0..")
    assert_error(gen(seeds="1", count=2), 400, "not both")
    assert_error(gen(**{"class": 10}), 400, "class must be within 0..9")
    assert_error(gen(**{"class": "cat"}), 400, "unknown class 'cat'")
    assert_error(gen(model="none"), 404, "unknown generator 'none'")
    assert_error(gen(trunc=-1), 400, "trunc must be a finite number >= 0.05")
    assert_error(gen(psi="0.7"), 400, "psi must be a number")
    assert_error(gen(seeds=[1, 1], format="zip"), 400, "seed 1 is given twice")
    assert client.post("/v1/generate", json={"seeds": [5_000_000_000]}).status_code == 200  # one seed limit
    assert_error(gen(format="gif"), 422, "format")
    assert_error(gen(path="/etc"), 422, "path")  # unknown fields are refused
    r = client.post("/v1/generate", content=b"{", headers={"Content-Type": "application/json"})
    assert_error(r, 422)


# ---------------------------------------------------------------- robustness


def test_models_loaded_once(registry, monkeypatch, make_client):
    def no_load(*a, **k):
        raise AssertionError("a model was loaded during a request")

    import resgan.zoo
    from resgan.serve import registry as serve_registry

    for module in (serve_registry, resgan.zoo):
        monkeypatch.setattr(module, "load_restorer", no_load)
        monkeypatch.setattr(module, "load_generator", no_load)
    with make_client(registry, LIMITS) as c:
        for _ in range(2):
            assert restore(c, png(photo(24, 24, 1)), "denoise").status_code == 200
            assert c.post("/v1/generate", json={"seeds": "0"}).status_code == 200


def test_queue_full_503_and_timeout_504(registry, monkeypatch):
    gate = threading.Event()
    from resgan.serve import routes

    real = routes.restore_png

    def slow(*args):
        gate.wait(10)
        return real(*args)

    monkeypatch.setattr(routes, "restore_png", slow)
    app = create_app(registry, Limits(workers=1, queue=0, timeout_s=5))
    img = png(photo(24, 24, 1))
    with TestClient(app) as c:
        first: dict = {}
        t = threading.Thread(target=lambda: first.setdefault("r", restore(c, img, "denoise")))
        t.start()
        deadline = time.monotonic() + 5
        while app.state.work.pending < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        r = restore(c, img, "denoise")
        assert_error(r, 503, "server busy")
        assert r.headers["retry-after"] == "1"
        assert c.get("/healthz").status_code == 200  # the event loop is free while inference runs
        gate.set()
        t.join(10)
        assert first["r"].status_code == 200
    gate.clear()
    app = create_app(registry, Limits(workers=1, queue=4, timeout_s=0.3))
    with TestClient(app) as c:
        assert_error(restore(c, img, "denoise"), 504, "0.3 s")
        gate.set()


def test_work_queue_drops_timed_out_queued_jobs():
    import asyncio

    q = WorkQueue(workers=1, queue=2, timeout_s=0.2)
    gate = threading.Event()
    ran = []

    async def scenario():
        blocker = asyncio.ensure_future(q.run(gate.wait, 5))
        await asyncio.sleep(0.05)
        with pytest.raises(serve_app.ApiError) as e:
            await q.run(ran.append, 1)  # queued behind the blocker, times out, never runs
        assert e.value.status == 504
        with pytest.raises(serve_app.ApiError):
            await blocker
        gate.set()

    asyncio.run(scenario())
    q.executor.shutdown(wait=True)
    assert ran == [] and q.pending == 0


# ---------------------------------------------------------------- command line


def test_default_models_skip_absent_builtins(tmp_path, monkeypatch, caplog):
    import resgan.zoo as zoo

    monkeypatch.setattr(zoo, "BUILTIN_DIR", tmp_path)
    with caplog.at_level("INFO", logger="resgan.serve"):
        reg = load_registry(None)
    assert not reg.names()
    for name in ("inpaint", "denoise_gray", "sr_x4", "mnist"):
        assert "skipping built-in" in caplog.text and f" {name}: weights absent" in caplog.text
    # a built-in whose weights are present is served
    tiny_model_file(tmp_path, "inpaint", 3).rename(zoo.builtin_path("inpaint"))
    caplog.clear()
    with caplog.at_level("INFO", logger="resgan.serve"):
        reg = load_registry([])
    assert list(reg.restore) == ["inpaint"] and reg.tasks() == {"inpaint": ["inpaint"]}
    assert "inpaint: weights absent" not in caplog.text and "sr_x4: weights absent" in caplog.text


def test_cli_serve(tiny_models, monkeypatch, capsys, tmp_path):
    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.models) == ("127.0.0.1", 8000, None)
    import uvicorn

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **k: seen.update(app=app, host=host, port=port, **k))
    assert main(["serve", "--models", str(tiny_models["inpaint"]), "--port", "8123", "--workers", "2"]) == 0
    assert seen["host"] == "127.0.0.1" and seen["port"] == 8123
    # the guarded h11 protocol (read deadlines, URL limit); idle connections are not counted as requests
    assert issubclass(seen["http"], GuardedH11Protocol) and seen["limit_concurrency"] is None
    assert seen["http"].guard.header_timeout_s == Limits().header_timeout_s
    assert seen["app"].state.limits.workers == 2 and list(seen["app"].state.registry.restore) == ["inpaint_3"]
    assert main(["serve", "--models", str(tmp_path / "missing.safetensors")]) == 2
    assert "no such model" in capsys.readouterr().err
    (tmp_path / "bad.safetensors").write_bytes(b"junk")
    assert main(["serve", "--models", str(tmp_path / "bad.safetensors")]) == 2
    assert json.dumps(seen["app"].state.limits.__dict__)


def test_restore_picks_the_grey_or_colour_model_by_the_image_mode(tiny_models, tmp_path, make_client):
    colour = tiny_model_file(tmp_path, "denoise", 3, sigma=15.0, sigma_max=50.0, noise_map=True)
    reg = load_registry([f"grey={tiny_models['denoise']}", f"colour={colour}"])
    with make_client(reg, LIMITS) as c:
        for arr, want in ((photo(40, 48, 3), "colour"), (photo(40, 48, 1), "grey")):
            r = c.post("/v1/restore", files={"image": ("x.png", png(arr), "image/png")}, data={"task": "denoise"})
            assert r.status_code == 200 and r.headers["X-Model"] == want
        r = c.post("/v1/restore", files={"image": ("x.png", png(photo(40, 48, 3)), "image/png")},
                   data={"task": "denoise", "model": "grey"})  # an explicit model wins
        assert r.status_code == 200 and r.headers["X-Model"] == "grey"
