"""The fixtures every test folder shares (tests/core, gan, restore, metrics, serve, verbs): the real data
sets, one thread for tiny nets, a test photo, the tiny untrained models (restoration nets and generators,
saved as ``resgan export`` writes them), a loaded registry and a ``TestClient`` of ``resgan serve``'s app.
Plain helpers (image files, model builders, a real server on a free port) are in ``helpers.py``."""

import os
from pathlib import Path

import pytest
import torch
from helpers import NAMES, SHARED_DATA, photo, png_bytes, serve_limits, tiny_generator, tiny_model_file

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set RESGAN_DATA)")
    return SHARED_DATA


@pytest.fixture
def one_thread():
    """Tiny nets run faster on one thread, above all on busy machines; restored afterwards. A module
    opts in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def feature_cache(tmp_path, monkeypatch) -> Path:
    """A feature / classifier cache of the test's own (``$RESGAN_CACHE``). A module opts in with
    ``pytestmark = pytest.mark.usefixtures("feature_cache")``."""
    monkeypatch.setenv("RESGAN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def good_png() -> bytes:
    """A small grey photo as PNG bytes (24 x 20)."""
    return png_bytes(photo(24, 20, 1))


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """The tiny untrained models, made once: ``denoise`` (grey, noise-level map, sigma 15, up to 50),
    ``denoise25`` (grey, fixed sigma 25), ``inpaint`` (colour), ``sr`` (colour, x2), ``gen`` (a 16-px
    class-conditional generator, classes ``digit0``..``digit9``) and ``gen_named`` (the same, classes
    ``zero``..``nine``). Read-only: a test that changes one copies it first."""
    d = tmp_path_factory.mktemp("tiny_models")
    (d / "named").mkdir()
    (d / "d25").mkdir()
    return {"denoise": tiny_model_file(d, "denoise", 1, sigma=15.0, sigma_max=50.0, noise_map=True),
            "denoise25": tiny_model_file(d / "d25", "denoise", 1, sigma=25.0),
            "inpaint": tiny_model_file(d, "inpaint", 3),
            "sr": tiny_model_file(d, "sr", 3, scale=2),
            "gen": tiny_generator(d / "gen.safetensors"),
            "gen_named": tiny_generator(d / "named" / "gen.safetensors", NAMES)}


@pytest.fixture(scope="module")
def registry(tiny_models):
    """The server's models, loaded once per module: ``inpaint``, ``den`` (denoise), ``sr`` and ``digits``
    (the generator)."""
    pytest.importorskip("fastapi", reason="resgan serve needs fastapi (pip install -e '.[test]')")
    from resgan.serve.app import load_registry

    return load_registry([str(tiny_models["inpaint"]), f"den={tiny_models['denoise']}", str(tiny_models["sr"]),
                          f"digits={tiny_models['gen']}"])


@pytest.fixture(scope="session")
def make_client():
    """``make_client(registry, limits)``: a ``TestClient`` of ``resgan serve``'s app, as a context manager."""
    pytest.importorskip("fastapi", reason="resgan serve needs fastapi (pip install -e '.[test]')")
    pytest.importorskip("multipart", reason="resgan serve needs python-multipart")
    from fastapi.testclient import TestClient

    from resgan.serve.app import create_app

    return lambda registry, limits: TestClient(create_app(registry, limits))


@pytest.fixture
def client(registry, make_client):
    """A fresh app over the module's :func:`registry` with ``helpers.serve_limits()``."""
    with make_client(registry, serve_limits()) as c:
        yield c
