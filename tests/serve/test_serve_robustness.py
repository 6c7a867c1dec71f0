"""``resgan serve`` against hostile or unlucky clients (issue #15), on a real uvicorn server with
real sockets on a free loopback port, configured as ``resgan serve`` configures it
(``server_options``): work past the timeout is stopped and the next request is served; idle
connections and half-sent heads or bodies are closed on deadlines and never make other requests
503; an over-long URL is 414, not a reset connection; unicode digits are 400 JSON.

Slow model layers are simulated with forward hooks that sleep, so the timings do not depend on
the machine's load; ``-m slow`` runs one case on real compute.
"""

import http.client
import io
import json
import socket
import time

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="resgan serve needs fastapi (pip install -e '.[test]')")
pytest.importorskip("multipart", reason="resgan serve needs python-multipart")
uvicorn = pytest.importorskip("uvicorn", reason="resgan serve needs uvicorn")

from helpers import photo, running_server  # noqa: E402
from PIL import Image  # noqa: E402

from resgan.serve.app import Limits, load_registry  # noqa: E402
from resgan.serve.transport import InFlightLimit  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny nets: one thread (conftest)


@pytest.fixture
def registry(tiny_models):
    """A fresh registry per test: the tests put sleeping hooks on its models."""
    return load_registry([f"den={tiny_models['denoise']}", f"digits={tiny_models['gen']}"])


def request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
            timeout: float = 20) -> tuple[int, bytes, float]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    t0 = time.monotonic()
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read(), time.monotonic() - t0
    finally:
        c.close()


def generate(port: int, body: dict, timeout: float = 20):
    return request(port, "POST", "/v1/generate", json.dumps(body).encode(), {"Content-Type": "application/json"},
                   timeout)


def restore(port: int, arr: np.ndarray, timeout: float = 60):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    b = "resganboundary"
    body = (f"--{b}\r\nContent-Disposition: form-data; name=\"task\"\r\n\r\ndenoise\r\n"
            f"--{b}\r\nContent-Disposition: form-data; name=\"sigma\"\r\n\r\n20\r\n"
            f"--{b}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode() + buf.getvalue() + f"\r\n--{b}--\r\n".encode()
    return request(port, "POST", "/v1/restore", body, {"Content-Type": f"multipart/form-data; boundary={b}"}, timeout)


def raw(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Send ``data`` on a fresh connection (all of it, even after the server answered) and read
    until the server closes. A reset connection raises."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def status_and_json(response: bytes) -> tuple[int, dict]:
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def healthz(port: int) -> tuple[int, dict]:
    status, body, _ = request(port, "GET", "/healthz", timeout=5)
    return status, json.loads(body)


def wait_for(cond, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def sleeping_hook(seconds: float, calls: list):
    def hook(module, args, output):
        calls.append(time.monotonic())
        time.sleep(seconds)
    return hook


# ---------------------------------------------------------------- work past the timeout is stopped


def test_timed_out_restore_is_stopped_and_the_next_request_is_served(registry):
    """A restore whose layers sleep 0.2 s per tile (196 tiles, ~40 s) gets 504 at 1 s; its work
    stops at the next tile, so the next request is served at once and /healthz says so."""
    net = registry.restore["den"].model.net
    calls: list[float] = []
    net.register_forward_hook(sleeping_hook(0.2, calls))
    limits = Limits(workers=1, timeout_s=1.0, tile=64, overlap=8, max_pixels=1_000_000)
    with running_server(registry, limits) as port:
        status, body, took = restore(port, photo(640, 640, 1))
        assert status == 504 and b"its work was stopped" in body and took < 5, (status, body, took)
        status, body, took = restore(port, photo(32, 32, 1))  # one tile
        assert status == 200 and took < 5, (status, body[:200], took)
        code, h = healthz(port)
        assert code == 200 and h["status"] == "ok" and h["running"] == 0 and h["stopped"] == 1, h
    assert len(calls) < 20  # of 196 tiles (+1 for the small image)


def test_timed_out_generation_releases_the_worker_and_the_lock(registry):
    G = registry.generators["digits"].G
    calls: list[float] = []
    handle = next(m for m in G.modules() if m is not G).register_forward_hook(sleeping_hook(1.0, calls))
    limits = Limits(workers=2, timeout_s=0.4, max_images=32)
    with running_server(registry, limits) as port:
        status, body, took = generate(port, {"seeds": "0-31"})
        assert status == 504, body
        # a second one waits for the generator's lock, gives up at its own deadline, and stops too
        status, _, _ = generate(port, {"seeds": "0"})
        assert status == 504
        handle.remove()
        wait_for(lambda: healthz(port)[1]["running"] == 0, 5, "the timed-out jobs did not stop")
        status, body, took = generate(port, {"seeds": "0-3"})
        assert status == 200 and body.startswith(b"\x89PNG") and took < 5, (status, body[:200])
        assert healthz(port)[1]["stopped"] == 2


def test_healthz_tells_when_every_worker_is_stuck(registry):
    """Work that cannot be stopped (one layer sleeping 3 s stands for a native call that hangs):
    /healthz turns 503 "stuck" once it is ``stuck_after_s`` past its deadline, and ok again after."""
    net = registry.restore["den"].model.net
    handle = net.register_forward_hook(sleeping_hook(3.0, []))
    limits = Limits(workers=1, timeout_s=0.3, stuck_after_s=0.5)
    with running_server(registry, limits) as port:
        assert restore(port, photo(32, 32, 1))[0] == 504
        code, h = healthz(port)
        assert code == 200 and h["running"] == 1 and h["cancelling"] == 1, h
        wait_for(lambda: healthz(port)[0] == 503, 5, "/healthz never said stuck")
        assert healthz(port)[1]["status"] == "stuck"
        handle.remove()
        wait_for(lambda: healthz(port)[0] == 200, 10, "/healthz stayed stuck")
        assert restore(port, photo(32, 32, 1))[0] == 200


@pytest.mark.slow
def test_timed_out_restore_on_real_compute(registry):
    """No sleeping hooks: a 4000 x 4000 restore (tiles of 64 px, ~15,000 of them: seconds even on an
    idle machine; 2400 x 2400 in 128-px tiles finished inside 1 s there) past a 1 s timeout, then a small one."""
    limits = Limits(workers=1, timeout_s=1.0, tile=64, overlap=16, max_pixels=17_000_000)
    rng = np.random.default_rng(0)
    with running_server(registry, limits) as port:
        t0 = time.monotonic()
        status, _, _ = restore(port, (rng.random((4000, 4000)) * 255).astype(np.uint8))
        assert status == 504
        status, _, _ = restore(port, photo(32, 32, 1))
        assert status == 200 and time.monotonic() - t0 < 10
        assert healthz(port)[1]["stopped"] == 1


# ---------------------------------------------------------------- idle connections, slow clients


def test_idle_connections_and_half_sent_heads_do_not_block_requests(registry):
    limits = Limits(header_timeout_s=1.0)
    with running_server(registry, limits) as port:
        idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(100)]
        half = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(5)]
        for s in half:
            s.sendall(b"POST /v1/generate HTTP/1.1\r\nHost: x\r\nContent-")
        try:
            code, h = healthz(port)
            assert code == 200 and h["status"] == "ok"
            status, body, took = generate(port, {"seeds": "0-3"}, timeout=10)
            assert status == 200 and took < 5, (status, body[:200], took)
            # after the head deadline: idle ones closed silently, half-sent heads answered 408
            for s in idle[:10]:
                assert s.recv(100) == b""
            for s in half:
                code, err = status_and_json(s.recv(4096))
                assert code == 408 and "request head not received within" in err["error"]
        finally:
            for s in idle + half:
                s.close()
        assert healthz(port)[0] == 200


def test_a_body_that_stops_is_408_and_the_server_goes_on(registry):
    limits = Limits(body_timeout_s=0.5, body_min_rate=1000)
    with running_server(registry, limits) as port:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"POST /v1/restore HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=zz\r\n"
                      b"Content-Length: 100000\r\n\r\n--zz\r\n")
            t0 = time.monotonic()
            code, err = status_and_json(s.recv(4096))
            assert code == 408 and "request body too slow" in err["error"] and time.monotonic() - t0 < 5
        assert healthz(port)[0] == 200 and generate(port, {"seeds": "0"})[0] == 200


def test_past_max_connections_the_oldest_idle_connection_is_shed(registry):
    limits = Limits(max_connections=20)
    with running_server(registry, limits) as port:
        idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(40)]
        try:
            status, _, took = generate(port, {"seeds": "0"}, timeout=10)
            assert status == 200 and took < 5
            assert all(s.recv(100) == b"" for s in idle[:20])  # the oldest were closed to make room
        finally:
            for s in idle:
                s.close()


def test_in_flight_requests_are_capped_but_healthz_answers():
    import asyncio

    from starlette.responses import JSONResponse

    gate = asyncio.Event()

    async def app(scope, receive, send):
        if scope["path"] != "/healthz":
            await gate.wait()
        await JSONResponse({"ok": 1})(scope, receive, send)

    guard = InFlightLimit(app, limit=1)
    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    def scope(path):
        return {"type": "http", "path": path, "method": "GET", "headers": []}

    async def scenario():
        first = asyncio.ensure_future(guard(scope("/v1/generate"), receive, send))
        await asyncio.sleep(0.01)
        await guard(scope("/v1/generate"), receive, send)
        assert sent[0]["status"] == 503 and json.loads(sent[1]["body"])["status"] == 503
        await guard(scope("/healthz"), receive, send)
        assert sent[2]["status"] == 200
        gate.set()
        await first
        assert sent[4]["status"] == 200 and guard.count == 0

    asyncio.run(scenario())


# ---------------------------------------------------------------- malformed requests: JSON, not resets


@pytest.mark.parametrize("size", [10_000, 100_000, 2_000_000])
def test_an_over_long_url_is_414(registry, size):
    with running_server(registry, Limits()) as port:
        for target in ("/" + "a" * size, "/healthz?q=" + "a" * size):
            code, err = status_and_json(raw(port, f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode()))
            assert code == 414 and "over the server's limit of 8,192 bytes" in err["error"]
        assert request(port, "GET", "/healthz?q=" + "a" * 4000)[0] == 200  # under the limit: served


def test_an_over_long_head_is_431_and_garbage_is_400(registry):
    with running_server(registry, Limits()) as port:
        big = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 100) for i in range(300))
        code, err = status_and_json(raw(port, big + b"\r\n"))
        assert code == 431 and "request head over" in err["error"]
        code, err = status_and_json(raw(port, b"\x16\x03\x01 not http at all\r\n\r\n"))
        assert code == 400 and err["error"] == "invalid HTTP request"
        # a Content-Length in unicode digits: h11 refuses it, and the answer is JSON too
        code, err = status_and_json(raw(port, "POST /v1/generate HTTP/1.1\r\nHost: x\r\nContent-Length: ²\r\n\r\n"
                                        .encode()))
        assert code == 400


@pytest.mark.parametrize("body,why", [({"seeds": "²-³"}, "seeds wants a list"), ({"seeds": "0-²"}, "seeds"),
                                      ({"seeds": "0", "class": "²"}, "unknown class")])
def test_unicode_digits_are_400_json(registry, body, why):
    with running_server(registry, Limits()) as port:
        status, data, _ = generate(port, body)
        assert status == 400 and why in json.loads(data)["error"], data


# ---------------------------------------------------------------- half-closed clients (issue 30 family 8)


def half_closed(port: int, data: bytes, timeout: float = 20) -> bytes:
    """Send ``data``, then shut the sending side (``shutdown(SHUT_WR)``: the client's EOF), and read
    until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def post(path: str, body: bytes, content_type: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def test_a_client_that_half_closes_after_its_request_gets_the_response(registry):
    """A complete request followed by the client's EOF is still answered (uvicorn alone closed the
    connection on EOF, so the response was lost), and the connection is closed after it."""
    with running_server(registry, Limits()) as port:
        for _ in range(3):  # "usually": the EOF often arrives while the work is still running
            t0 = time.monotonic()
            response = half_closed(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            code, h = status_and_json(response)
            assert code == 200 and h["status"] == "ok"
            response = half_closed(port, post("/v1/generate", json.dumps({"seeds": "0-3"}).encode(),
                                              "application/json"))
            head, _, png = response.partition(b"\r\n\r\n")
            assert head.split()[1] == b"200" and png.startswith(b"\x89PNG"), head
            Image.open(io.BytesIO(png)).verify()  # all of it
            assert time.monotonic() - t0 < 4  # closed after the response, not by the 5 s keep-alive timeout
        calls: list = []
        # a request whose work outlasts the EOF by a second: answered all the same
        registry.restore["den"].model.net.register_forward_hook(sleeping_hook(1.0, calls))
        buf = io.BytesIO()
        Image.fromarray(photo(32, 32, 1)).save(buf, format="PNG")
        b = "zz"
        form = (f"--{b}\r\nContent-Disposition: form-data; name=\"task\"\r\n\r\ndenoise\r\n"
                f"--{b}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.png\"\r\n"
                "Content-Type: image/png\r\n\r\n").encode() + buf.getvalue() + f"\r\n--{b}--\r\n".encode()
        head, _, png = half_closed(port, post("/v1/restore", form, f"multipart/form-data; boundary={b}"))\
            .partition(b"\r\n\r\n")
        assert calls and head.split()[1] == b"200" and Image.open(io.BytesIO(png)).size == (32, 32), head
        # two pipelined requests, then the EOF: both answered, in order, then the connection is closed
        one = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        two = post("/v1/generate", json.dumps({"seeds": "5"}).encode(), "application/json")
        response = half_closed(port, one + two)
        assert response.count(b"HTTP/1.1 200 OK") == 2 and response.index(b'"status"') < response.index(b"\x89PNG")
        # a bad request half-closed: its 400, JSON
        code, err = status_and_json(half_closed(port, post("/v1/generate", b'{"seeds": "x"}', "application/json")))
        assert code == 400 and "seeds" in err["error"]
        assert healthz(port)[0] == 200


def test_a_client_that_half_closes_in_the_middle_of_a_request_gets_400(registry):
    with running_server(registry, Limits()) as port:
        for partial, what in ((b"GET /healthz HTTP/1.1\r\nHost: x\r\n", "request head"),
                              (post("/v1/generate", b'{"seeds": "0-3"}', "application/json")[:-5], "request body")):
            t0 = time.monotonic()
            code, err = status_and_json(half_closed(port, partial))
            assert code == 400 and err["error"].startswith(f"{what} incomplete: the client closed its side"), err
            assert time.monotonic() - t0 < 5
        # a complete request, then half of the next: the first answered, the second 400
        response = half_closed(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHo")
        first, _, rest = response.partition(b"HTTP/1.1 400 ")
        assert first.startswith(b"HTTP/1.1 200 OK") and b"request head incomplete" in rest, response
        assert half_closed(port, b"") == b""  # nothing sent: closed without a word
        assert healthz(port)[0] == 200
