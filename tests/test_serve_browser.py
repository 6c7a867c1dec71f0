"""``resgan serve`` end to end in a real browser: Playwright drives Debian's Chromium (/usr/bin/chromium).

Uploads a photo, paints a stroke, runs inpainting, downloads the result and checks that it differs
from the input inside the stroke and nowhere else. The page's screenshot goes to test-artifacts/.
"""

import io
import os
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = os.environ.get("RESGAN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"

if not Path(CHROMIUM).is_file():
    pytest.skip(f"browser test: no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="browser test: playwright is not installed "
                               "(pip install -e '.[test]')")
pytest.importorskip("fastapi", reason="resgan serve needs fastapi")
uvicorn = pytest.importorskip("uvicorn", reason="resgan serve needs uvicorn")

from test_serve import photo, tiny_generator_file, tiny_model_file  # noqa: E402

from resgan.serve.app import Limits, create_app, load_registry  # noqa: E402


@pytest.fixture
def server(tmp_path):
    """uvicorn in a thread on a free loopback port (the socket is bound here: no race for the port)."""
    registry = load_registry([str(tiny_model_file(tmp_path, "inpaint", 3)), str(tiny_generator_file(tmp_path))])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(registry, Limits(timeout_s=60)), log_level="warning"))
    t = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    t.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline and t.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    t.join(10)
    sock.close()


def segment_distance(h: int, w: int, a: tuple[float, float], b: tuple[float, float]) -> np.ndarray:
    """Distance of every pixel centre (x + .5, y + .5) to the segment a-b, in pixels."""
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    (ax, ay), (bx, by) = a, b
    dx, dy = bx - ax, by - ay
    t = np.clip(((xx - ax) * dx + (yy - ay) * dy) / (dx * dx + dy * dy), 0, 1)
    return np.hypot(xx - (ax + t * dx), yy - (ay + t * dy))


def test_inpaint_in_the_browser(server, tmp_path):
    h, w = 96, 128
    img = photo(h, w, seed=3)
    src = tmp_path / "photo.png"
    Image.fromarray(img).save(src)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 800}, accept_downloads=True)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            external: list[str] = []
            local = (server, "blob:", "data:")
            page.on("request", lambda r: None if r.url.startswith(local) else external.append(r.url))
            page.goto(server + "/")
            # (waits on selectors: the page's CSP forbids the eval behind wait_for_function's polling)
            page.wait_for_selector("#task option[value='inpaint']", state="attached")
            page.set_input_files("#file", str(src))
            page.wait_for_selector("#editor:not([hidden])")
            page.eval_on_selector("#brush", "e => { e.value = 40; e.dispatchEvent(new Event('input')); }")
            box = page.locator("#mask").bounding_box()
            k = w / box["width"]  # canvas pixels per CSS pixel
            a, b = (box["width"] * 0.2, box["height"] * 0.4), (box["width"] * 0.75, box["height"] * 0.4)

            def stroke(p0, p1):
                page.mouse.move(box["x"] + p0[0], box["y"] + p0[1])
                page.mouse.down()
                page.mouse.move(box["x"] + p1[0], box["y"] + p1[1], steps=12)
                page.mouse.up()

            stroke(a, b)
            stroke((box["width"] * 0.2, box["height"] * 0.8), (box["width"] * 0.6, box["height"] * 0.8))
            page.click("#undo")  # the second stroke goes
            page.click("#clear")
            page.click("#undo")  # and the first comes back
            page.click("#run")
            page.wait_for_selector("body[data-result='ready']", timeout=30_000)
            page.wait_for_selector("#compare:not([hidden])")
            assert page.locator("#after").is_visible() and page.locator("#editor").is_hidden()
            assert page.locator("#panel-generate").is_hidden()
            page.screenshot(path=str(ARTIFACTS / "serve_inpaint.png"), full_page=True)
            with page.expect_download() as dl:
                page.click("#download")
            out_path = tmp_path / "result.png"
            dl.value.save_as(out_path)
            status = page.inner_text("#status")
            # the generation tab: a class and seeds -> the grid
            page.click("#tab-generate")
            page.select_option("#gen-class", "3")
            page.fill("#seeds", "0-8")
            page.click("#gen-run")
            page.wait_for_selector("#grid:not([hidden])", timeout=30_000)
            grid_size = page.evaluate("[document.querySelector('#grid').naturalWidth, "
                                      "document.querySelector('#grid').naturalHeight]")
            assert page.locator("#panel-restore").is_hidden()
            page.screenshot(path=str(ARTIFACTS / "serve_generate.png"), full_page=True)
        finally:
            browser.close()
    assert not errors, errors
    assert not external, f"the page fetched outside the server: {external}"
    assert status.startswith("done"), status
    assert grid_size == [2 + 3 * 18, 2 + 3 * 18]  # 9 images of 16 px, 3 a row, 2 px pads
    out = np.asarray(Image.open(io.BytesIO(out_path.read_bytes())))
    assert out.shape == img.shape
    changed = (out != img).any(axis=2)
    dist = segment_distance(h, w, (a[0] * k, a[1] * k), (b[0] * k, b[1] * k))
    radius = 40 * k / 2  # the brush's half width in canvas pixels
    assert not changed[dist > radius + 1.5].any(), "pixels outside the stroke changed"
    core = dist < radius - 1.5
    assert core.sum() > 100 and changed[core].mean() > 0.9, "the stroke was not inpainted"
