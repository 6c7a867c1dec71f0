"""``resgan serve``'s web page in a real browser: Playwright drives Debian's Chromium (/usr/bin/chromium).

Each test runs at a desktop (1280x800) and a phone (390x844, touch) size: the page opens on Inpaint
with the brush ready; a stroke then Run inpaints exactly the stroke (the downloaded result differs from
the photo inside it and nowhere else); the buttons are disabled and a spinner counts the seconds while a
request runs (a tiled one: "tile k / n" and a bar); zoom (buttons, wheel, pinch) and pan change the view
and a stroke still lands on the image pixels under the pointer; the before / after line follows a drag;
stale messages go; the page never scrolls sideways. Screenshots go to test-artifacts/
(docs/serve_desktop.png and docs/serve_phone.png are copies of serve_desktop.png and serve_phone.png).
"""

import io
import os
import re
import threading
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, photo, running_server
from PIL import Image, ImageDraw, ImageFilter

CHROMIUM = os.environ.get("RESGAN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = REPO / "test-artifacts"
SIZES = {"desktop": {"viewport": {"width": 1280, "height": 800}},
         "phone": {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True,
                   "has_touch": True}}

if not Path(CHROMIUM).is_file():
    pytest.skip(f"browser test: no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="browser test: playwright is not installed "
                               "(pip install -e '.[test]')")
pytest.importorskip("fastapi", reason="resgan serve needs fastapi")
uvicorn = pytest.importorskip("uvicorn", reason="resgan serve needs uvicorn")


from resgan.serve import routes as serve_app  # noqa: E402 (where the routes find restore_png / G.run)
from resgan.serve.app import ApiError, Limits, load_registry  # noqa: E402
from resgan.zoo import builtin_path  # noqa: E402

# the built-in inpainting model, when its weights are installed, only for the screenshots (a real fill)
HAVE_BUILTIN = builtin_path("inpaint").is_file()


@pytest.fixture(scope="module")
def server(tiny_models):
    """resgan serve (uvicorn in a thread, its connection guards included) on a free loopback port.
    The tiny untrained inpainting model comes first, so it is the page's default."""
    specs = [str(tiny_models["inpaint"]), str(tiny_models["gen"])] + ["inpaint"] * HAVE_BUILTIN
    with running_server(load_registry(specs), Limits(timeout_s=60)) as port:  # resgan serve's own options
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield b
        b.close()


class Page:
    """A page at one size, recording script errors and any request that leaves the server."""

    def __init__(self, browser, server: str, size: str):
        self.size, self.server = size, server
        self.context = browser.new_context(**SIZES[size], accept_downloads=True)
        self.p = self.context.new_page()
        self.errors: list[str] = []
        self.external: list[str] = []
        local = (server, "blob:", "data:")
        self.p.on("pageerror", lambda e: self.errors.append(str(e)))
        self.p.on("request", lambda r: None if r.url.startswith(local) else self.external.append(r.url))
        self.p.goto(server + "/")
        # (waits on selectors: the page's CSP forbids the eval behind wait_for_function's polling)
        self.p.wait_for_selector("#restore-model option[value='inpaint_3']", state="attached")

    def box(self, selector: str) -> dict:
        return self.p.locator(selector).bounding_box()

    def zoom(self) -> float:
        return float(self.p.get_attribute("#viewport", "data-zoom"))

    def open_photo(self, path: Path, brush: int) -> None:
        self.p.set_input_files("#file", str(path))
        self.p.wait_for_selector("#viewport[data-view='edit']")
        self.p.eval_on_selector("#brush", f"e => {{ e.value = {brush}; e.dispatchEvent(new Event('input')); }}")

    def drag(self, points: list[tuple[float, float]], steps: int = 8) -> None:
        """A mouse drag through screen points (CSS px)."""
        self.p.mouse.move(*points[0])
        self.p.mouse.down()
        for q in points[1:]:
            self.p.mouse.move(*q, steps=steps)
        self.p.mouse.up()

    def to_screen(self, ix: float, iy: float, w: int) -> tuple[float, float]:
        """Image pixel coordinates -> screen coordinates, from the photo layer's box on screen."""
        b = self.box("#canvas")
        k = b["width"] / w
        return b["x"] + ix * k, b["y"] + iy * k

    def mask_alpha(self, w: int, h: int) -> np.ndarray:
        data = self.p.evaluate(f"Array.from(document.querySelector('#mask').getContext('2d')"
                               f".getImageData(0, 0, {w}, {h}).data.filter((_, i) => i % 4 === 3))")
        return np.array(data, np.uint8).reshape(h, w)

    def run_and_download(self, tmp_path: Path) -> np.ndarray:
        self.p.click("#run")
        self.p.wait_for_selector("body[data-result='ready']", timeout=60_000)
        with self.p.expect_download() as dl:
            self.p.click("#download")
        out = tmp_path / f"result_{self.size}.png"
        dl.value.save_as(out)
        return np.asarray(Image.open(io.BytesIO(out.read_bytes())))

    def check(self) -> None:
        """No script errors, nothing fetched elsewhere, and no sideways scrolling."""
        widths = self.p.evaluate("[document.scrollingElement.scrollWidth, innerWidth]")
        assert widths[0] <= widths[1], f"{self.size}: the page scrolls sideways ({widths})"
        assert not self.errors, self.errors
        assert not self.external, f"the page fetched outside the server: {self.external}"

    def shot(self, name: str, full_page: bool = False) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.p.screenshot(path=str(ARTIFACTS / name), full_page=full_page)


@pytest.fixture(params=list(SIZES))
def page(request, browser, server):
    pg = Page(browser, server, request.param)
    yield pg
    pg.context.close()


def segment_distance(h: int, w: int, *points: tuple[float, float]) -> np.ndarray:
    """Distance of every pixel centre (x + .5, y + .5) to the polyline through points, in pixels."""
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    best = np.full((h, w), np.inf)
    for (ax, ay), (bx, by) in zip(points, points[1:]):
        dx, dy = bx - ax, by - ay
        t = np.clip(((xx - ax) * dx + (yy - ay) * dy) / max(dx * dx + dy * dy, 1e-9), 0, 1)
        best = np.minimum(best, np.hypot(xx - (ax + t * dx), yy - (ay + t * dy)))
    return best


def assert_only_stroke_changed(out: np.ndarray, img: np.ndarray, dist: np.ndarray, radius: float) -> None:
    assert out.shape == img.shape
    changed = (out != img).any(axis=2)
    assert not changed[dist > radius + 1.5].any(), "pixels outside the stroke changed"
    core = dist < radius - 1.5
    assert core.sum() > 30 and changed[core].mean() > 0.9, "the stroke was not inpainted"


@pytest.fixture
def small_photo(tmp_path):
    img = photo(96, 128, seed=3)
    path = tmp_path / "photo.png"
    Image.fromarray(img).save(path)
    return img, path


# ---------------------------------------------------------------- the main flow


def test_inpaint_flow(page, small_photo, tmp_path):
    p, (img, src) = page.p, small_photo
    h, w = img.shape[:2]
    # opens on Inpaint, the brush ready; the icon answers
    assert p.get_attribute("#tab-inpaint", "aria-selected") == "true"
    assert p.get_attribute("#tool-brush", "aria-pressed") == "true"
    assert p.locator("#panel-generate").is_hidden() and p.locator("#empty").is_visible()
    icon = p.request.get(page.server + "/favicon.ico")
    assert icon.status == 200 and icon.headers["content-type"] == "image/x-icon"
    assert Image.open(io.BytesIO(icon.body())).size == (32, 32)
    page.check()

    brush = 12  # image pixels
    page.open_photo(src, brush)
    vp = page.box("#viewport")
    if page.size == "phone":  # one column: the photo fills the width and is on the first screen
        assert vp["width"] > 350 and vp["y"] + vp["height"] <= 844
        assert page.box("#panel-restore .controls")["width"] > 350
        assert page.box("#run")["y"] + page.box("#run")["height"] <= 844, "Run is below the first screen"
    # Run with no hole: a clear message, gone with the first stroke
    p.click("#run")
    assert p.locator("#msg.error").is_visible() and "Paint the hole" in p.inner_text("#msg")
    a, b = (0.2 * w, 0.4 * h), (0.75 * w, 0.4 * h)
    # the brush preview: a circle of the brush's size on screen, centred on the pointer
    x, y = page.to_screen(*a, w)
    p.mouse.move(x, y)
    c = page.box("#cursor")
    assert p.locator("#cursor").is_visible()
    assert abs(c["x"] + c["width"] / 2 - x) < 1.5 and abs(c["y"] + c["height"] / 2 - y) < 1.5
    assert abs(c["width"] - brush * page.zoom()) < 1.5
    page.drag([page.to_screen(*a, w), page.to_screen(*b, w)])
    assert p.locator("#msg").is_hidden(), "the stale 'paint the hole' message stayed"
    page.drag([page.to_screen(0.2 * w, 0.8 * h, w), page.to_screen(0.6 * w, 0.8 * h, w)])
    p.click("#undo")  # the second stroke goes
    p.click("#clear")
    p.click("#undo")  # and the first comes back
    out = page.run_and_download(tmp_path)
    assert p.locator("#after").is_visible() and p.locator("#split").is_visible()
    assert p.inner_text("#msg").startswith("Done")
    assert_only_stroke_changed(out, img, segment_distance(h, w, a, b), brush / 2)

    # before / after: the line follows a drag (from its knob), and the result is clipped there
    knob = page.box(".knob")
    cb = page.box("#canvas")
    assert abs(knob["x"] + knob["width"] / 2 - (cb["x"] + cb["width"] / 2)) < 2
    start = (knob["x"] + knob["width"] / 2, knob["y"] + knob["height"] / 2)
    page.drag([start, (cb["x"] + 0.8 * cb["width"], start[1])])
    line = page.box("#split")
    assert abs(line["x"] + line["width"] / 2 - (cb["x"] + 0.8 * cb["width"])) < 2
    assert p.eval_on_selector("#after", "e => e.style.clipPath").startswith("inset(0px 0px 0px 80")
    page.shot(f"serve_inpaint_{page.size}.png")
    p.click("#back")  # back to the brush with the mask kept
    assert p.locator("#mask").is_visible() and page.mask_alpha(w, h).max() > 0

    # Generate: a long seeds line wraps, never widening the page
    p.click("#tab-generate")
    assert p.locator("#panel-restore").is_hidden()
    p.select_option("#gen-class", "3")
    seeds = ",".join(str(4_000_000_000 + i) for i in range(9))
    p.fill("#seeds", seeds)
    p.click("#gen-run")
    p.wait_for_selector("#grid:not([hidden])", timeout=30_000)
    grid = p.eval_on_selector("#grid", "g => [g.naturalWidth, g.naturalHeight]")
    assert grid == [2 + 3 * 18, 2 + 3 * 18]  # 9 images of 16 px, 3 a row, 2 px pads
    assert p.inner_text("#gen-info").replace(" ", "") == f"Seeds:{seeds}"
    page.shot(f"serve_generate_{page.size}.png", full_page=True)
    page.check()


# ---------------------------------------------------------------- zoom, pan, alignment


def pinch(page: Page, center: tuple[float, float], d0: float, d1: float, steps: int = 8) -> None:
    """Two fingers moving apart from d0 to d1 CSS px around center (CDP touch events)."""
    cdp = page.context.new_cdp_session(page.p)
    cx, cy = center

    def touches(d):
        return [{"x": cx - d / 2, "y": cy, "id": 0}, {"x": cx + d / 2, "y": cy, "id": 1}]

    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": touches(d0)})
    for i in range(1, steps + 1):
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": touches(d0 + (d1 - d0) * i / steps)})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


def test_zoom_pan_and_painting_stay_aligned(page, small_photo, tmp_path):
    p, (img, src) = page.p, small_photo
    h, w = img.shape[:2]
    page.open_photo(src, 10)
    s0 = page.zoom()
    assert abs(page.box("#canvas")["width"] - w * s0) < 1
    p.click("#zoom-in")
    p.click("#zoom-in")
    s1 = page.zoom()
    assert abs(s1 / s0 - 1.25**2) < 1e-3 and abs(page.box("#canvas")["width"] - w * s1) < 1
    assert p.inner_text("#zoom-fit") == f"{round(s1 * 100)}%"
    vp = page.box("#viewport")
    centre = (vp["x"] + vp["width"] / 2, vp["y"] + vp["height"] / 2)

    def image_point(x, y):
        cb = page.box("#canvas")
        return ((x - cb["x"]) * w / cb["width"], (y - cb["y"]) * w / cb["width"])

    # the wheel zooms about the pointer: the image point under it stays put
    q = (centre[0] + 30, centre[1] - 20)
    before = image_point(*q)
    p.mouse.move(*q)
    p.mouse.wheel(0, -200)
    p.wait_for_selector(f"#viewport:not([data-zoom='{s1:.4f}'])")
    s2 = page.zoom()
    assert s2 > s1 * 1.1
    assert np.allclose(image_point(*q), before, atol=0.05)
    # pan: desktop holds Space and drags, the phone uses the hand tool; then two fingers pinch out
    c0 = page.box("#canvas")
    if page.size == "desktop":
        p.keyboard.down("Space")
        page.drag([centre, (centre[0] - 40, centre[1] - 25)])
        p.keyboard.up("Space")
    else:
        p.click("#tool-pan")
        page.drag([centre, (centre[0] - 40, centre[1] - 25)])
        p.click("#tool-brush")
    c1 = page.box("#canvas")
    assert abs(c1["x"] - c0["x"] + 40) < 1 and abs(c1["y"] - c0["y"] + 25) < 1
    assert page.mask_alpha(w, h).max() == 0, "panning painted"
    if page.size == "phone":
        pinch(page, centre, 60, 120)
        assert page.zoom() > s2 * 1.5
        assert page.mask_alpha(w, h).max() == 0, "the pinch painted"
    s = page.zoom()
    # a stroke at this zoom lands on the image pixels under the pointer (and inside the view)
    a, b = image_point(centre[0] - 40, centre[1]), image_point(centre[0] + 40, centre[1] + 10)
    assert 0 < a[0] < b[0] < w and 0 < a[1] < b[1] < h
    page.drag([page.to_screen(*a, w), page.to_screen(*b, w)])
    assert page.zoom() == s
    dist = segment_distance(h, w, a, b)
    alpha = page.mask_alpha(w, h)
    assert (alpha[dist < 5 - 1] > 0).all() and not alpha[dist > 5 + 1].any()
    out = page.run_and_download(tmp_path)
    assert_only_stroke_changed(out, img, dist, 5)
    page.check()


# ---------------------------------------------------------------- busy state, messages


@pytest.fixture
def gate(monkeypatch):
    """Holds every restore and generate job on the server until opened; counts the jobs."""
    ev, calls = threading.Event(), []

    def held(fn):
        def wrapper(*args, **kwargs):
            calls.append(fn.__name__)
            assert ev.wait(30)
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(serve_app, "restore_png", held(serve_app.restore_png))
    monkeypatch.setattr(serve_app.G, "run", held(serve_app.G.run))
    yield ev, calls
    ev.set()


def seconds(text: str) -> float:
    return float(re.search(r"([0-9.]+) s", text).group(1))


def test_buttons_disabled_and_a_clock_while_running(page, small_photo, gate):
    p, (img, src), (ev, calls) = page.p, small_photo, gate
    h, w = img.shape[:2]
    page.open_photo(src, 10)
    page.drag([page.to_screen(0.3 * w, 0.5 * h, w), page.to_screen(0.6 * w, 0.5 * h, w)])
    assert p.locator("#run").is_enabled()
    p.click("#run")
    p.wait_for_selector("#busy:not([hidden])")
    assert p.locator("#run").is_disabled() and p.locator(".spinner").first.is_visible()
    t0 = seconds(p.inner_text("#busy-text"))
    p.wait_for_timeout(600)
    assert seconds(p.inner_text("#busy-text")) >= t0 + 0.4, "the clock does not run"
    assert p.locator("#busy-progress").is_hidden()  # polled, but no tiles reported: no tile line
    p.click("#run", force=True)  # a disabled button: no second request
    assert "Inpainting" in p.inner_text("#busy-text")
    page.shot(f"serve_busy_{page.size}.png")
    ev.set()
    p.wait_for_selector("body[data-result='ready']", timeout=30_000)
    assert p.locator("#busy").is_hidden() and p.locator("#run").is_enabled()
    assert calls == ["restore_png"]

    ev.clear()
    p.click("#tab-generate")
    p.click("#gen-run")
    p.wait_for_selector("#gen-busy:not([hidden])")
    assert p.locator("#gen-run").is_disabled()
    ev.set()
    p.wait_for_selector("#grid:not([hidden])", timeout=30_000)
    assert p.locator("#gen-run").is_enabled() and p.locator("#gen-busy").is_hidden()
    assert calls == ["restore_png", "run"]  # verbs.generate.run
    page.check()


def test_tile_progress_while_a_tiled_job_runs(page, small_photo, monkeypatch):
    """The page polls GET /v1/jobs/ID for its restore: "tile k / n" and a bar under the clock, gone after."""
    p, (img, src) = page.p, small_photo
    h, w = img.shape[:2]
    ev, real = threading.Event(), serve_app.restore_png

    def tiled(*args):  # (models, request, image, mask, limits, progress): 6 of 24 tiles, then held
        for done in range(7):
            args[5](done, 24)
        assert ev.wait(30)
        args[5](24, 24)
        return real(*args[:5])

    monkeypatch.setattr(serve_app, "restore_png", tiled)
    page.open_photo(src, 10)
    page.drag([page.to_screen(0.3 * w, 0.5 * h, w), page.to_screen(0.6 * w, 0.5 * h, w)])
    p.click("#run")
    p.wait_for_selector("#busy-progress:not([hidden])", timeout=10_000)
    assert p.inner_text("#busy-tiles") == "tile 7 / 24" and "Inpainting" in p.inner_text("#busy-text")
    track = page.box("#busy-progress .bar")
    p.wait_for_timeout(400)  # (the bar's width eases in)
    bar = page.box("#busy-bar")
    assert abs(bar["width"] / track["width"] - 0.25) < 0.02, (bar, track)
    page.shot(f"serve_tiles_{page.size}.png")
    ev.set()
    p.wait_for_selector("body[data-result='ready']", timeout=30_000)
    assert p.locator("#busy").is_hidden() and p.locator("#busy-progress").is_hidden()
    page.check()


def test_errors_shown_and_cleared(page, small_photo, tmp_path, monkeypatch):
    p, (img, src) = page.p, small_photo
    h, w = img.shape[:2]
    junk = tmp_path / "notes.png"
    junk.write_text("not an image")
    p.set_input_files("#file", str(junk))
    p.wait_for_selector("#msg.error:not([hidden])")
    assert "Cannot read notes.png" in p.inner_text("#msg")
    page.open_photo(src, 10)
    assert p.locator("#msg").is_hidden(), "a new photo keeps the old error"
    page.drag([page.to_screen(0.3 * w, 0.5 * h, w), page.to_screen(0.6 * w, 0.5 * h, w)])

    def broken(*args, **kwargs):
        raise ApiError(400, "the model broke")

    real = serve_app.restore_png
    monkeypatch.setattr(serve_app, "restore_png", broken)
    p.click("#run")
    p.wait_for_selector("body[data-result='error']", timeout=30_000)
    assert p.locator("#msg.error").is_visible() and "Error 400: the model broke" in p.inner_text("#msg")
    assert p.locator("#run").is_enabled() and p.locator("#busy").is_hidden()
    page.shot(f"serve_error_{page.size}.png")
    monkeypatch.setattr(serve_app, "restore_png", real)
    p.click("#run")
    p.wait_for_selector("body[data-result='ready']", timeout=30_000)
    assert p.locator("#msg.error").count() == 0 and p.inner_text("#msg").startswith("Done")
    p.click("#msg-close")
    assert p.locator("#msg").is_hidden()

    p.click("#tab-generate")
    p.fill("#seeds", "seven")
    p.click("#gen-run")
    p.wait_for_selector("#gen-msg.error:not([hidden])")
    assert "Error 400" in p.inner_text("#gen-msg") and "seven" in p.inner_text("#gen-msg")
    p.fill("#seeds", "0-3")
    p.click("#gen-run")
    p.wait_for_selector("#grid:not([hidden])", timeout=30_000)
    assert p.locator("#gen-msg").is_hidden()
    page.check()


# ---------------------------------------------------------------- screenshots for the docs


def scene(h: int = 320, w: int = 480, seed: int = 0) -> np.ndarray:
    """A small synthetic landscape (sky, sun, hills, lake) with a pole and two wires to remove."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    horizon = 0.62
    t = np.clip(yy / horizon, 0, 1)[..., None]
    img = (1 - t) * np.array([62, 118, 196]) + t * np.array([200, 222, 238])
    glow = np.exp(-(((xx - 0.74) * w) ** 2 + ((yy - 0.22) * h) ** 2) / (2 * (0.09 * w) ** 2))[..., None]
    img = img * (1 - 0.6 * glow) + np.array([255, 244, 214]) * 0.6 * glow
    img[np.hypot((xx - 0.74) * w, (yy - 0.22) * h) < 0.035 * w] = (255, 250, 232)
    x = np.arange(w) / w
    far = horizon - 0.16 - 0.07 * np.sin(x * 7 + 1) - 0.04 * np.sin(x * 17 + 2) - 0.015 * np.sin(x * 41)
    near = horizon - 0.05 - 0.05 * np.sin(x * 4 + 4) - 0.02 * np.sin(x * 13 + 1)
    for ridge, top, bottom in ((far, (112, 128, 160), (150, 165, 188)), (near, (52, 96, 70), (88, 128, 82))):
        k = np.clip((yy - ridge[None, :]) / 0.25, 0, 1)[..., None]
        img = np.where((yy >= ridge[None, :])[..., None], (1 - k) * np.array(top) + k * np.array(bottom), img)
    below = yy >= horizon + 0.08
    mirrored = img[np.clip((2 * (horizon + 0.08) - yy) * h, 0, h - 1).astype(int), np.arange(w)[None, :]]
    ripple = 1 + 0.04 * np.sin(yy * h * 1.7 + np.sin(xx * 30))
    img = np.where(below[..., None], mirrored * 0.78 * ripple[..., None] + np.array([10, 30, 40]) * 0.22, img)
    pic = Image.fromarray(np.clip(img + rng.normal(0, 1, img.shape), 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(pic)
    for x0, y0, x1, y1 in pole_boxes(h, w):
        d.rectangle((x0, y0, x1, y1), fill=(58, 46, 38))
    for dy in (0, 7):
        d.line([(x, wire_y(x, h, w) + dy) for x in range(pole_x(w), w + 8, 8)], fill=(35, 35, 40), width=2)
    return np.asarray(pic.filter(ImageFilter.SMOOTH))


def pole_x(w: int) -> int:
    return int(0.16 * w)


def pole_boxes(h: int, w: int) -> list[tuple[int, int, int, int]]:
    px = pole_x(w)
    return [(px - 3, int(0.12 * h), px + 3, int(0.75 * h)), (px - 14, int(0.15 * h), px + 14, int(0.15 * h) + 4)]


def wire_y(x: float, h: int, w: int) -> float:
    return 0.155 * h + 0.00105 * h * (x - pole_x(w)) * (w - x) / w


def test_screenshots(page, tmp_path):
    """The pole and its wires painted out (with the built-in model when installed): the page's pictures."""
    p = page.p
    h, w = 320, 480
    src = tmp_path / "lake.png"
    Image.fromarray(scene(h, w)).save(src)
    if HAVE_BUILTIN:
        p.select_option("#restore-model", "inpaint")
    page.open_photo(src, 14)
    px = pole_x(w)
    page.drag([page.to_screen(px, 0.1 * h, w), page.to_screen(px, 0.77 * h, w)])
    page.drag([page.to_screen(px - 16, 0.16 * h, w), page.to_screen(px + 16, 0.16 * h, w)])
    page.drag([page.to_screen(x, wire_y(x, h, w) + 4, w) for x in range(px, w + 12, 12)], steps=3)
    p.mouse.move(*page.to_screen(0.55 * w, 0.45 * h, w))  # the brush preview, off the strokes
    page.shot(f"serve_{page.size}_edit.png")
    p.click("#run")
    p.wait_for_selector("body[data-result='ready']", timeout=120_000)
    cb = page.box("#canvas")
    knob = page.box(".knob")
    page.drag([(knob["x"] + knob["width"] / 2, knob["y"] + knob["height"] / 2),
               (cb["x"] + 0.3 * cb["width"], knob["y"] + knob["height"] / 2)])
    page.shot(f"serve_{page.size}.png")
    page.check()
