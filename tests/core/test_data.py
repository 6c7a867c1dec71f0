import gzip
import hashlib
import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from resgan.config import DataConfig
from resgan.data import BatchSampler, download, load_dataset, read_idx, to_float, to_uint8
from resgan.errors import ResganError


def write_idx(path, arr: np.ndarray):
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def make_mnist(root, n=12):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = np.arange(n) % 10
    root.mkdir(parents=True, exist_ok=True)
    write_idx(root / "train-images-idx3-ubyte.gz", imgs)
    write_idx(root / "train-labels-idx1-ubyte.gz", labels)
    return imgs, labels


def test_idx_loader(tmp_path):
    imgs, labels = make_mnist(tmp_path / "mnist")
    ds = load_dataset(DataConfig(name="mnist", path=str(tmp_path / "mnist"), resolution=32))
    assert ds.images.shape == (12, 1, 32, 32) and ds.images.dtype == torch.uint8
    assert ds.labels.tolist() == labels.tolist() and ds.classes[7] == "7"
    ds28 = load_dataset(DataConfig(name="mnist", path=str(tmp_path / "mnist"), resolution=16, limit=5))
    assert len(ds28) == 5
    assert np.array_equal(read_idx(tmp_path / "mnist" / "train-images-idx3-ubyte.gz"), imgs)


def test_idx_errors(tmp_path):
    make_mnist(tmp_path / "m")
    (tmp_path / "m" / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(ResganError, match="train-labels-idx1-ubyte.*not found"):
        load_dataset(DataConfig(name="mnist", path=str(tmp_path / "m")))
    with gzip.open(tmp_path / "trunc.gz", "wb") as f:
        f.write(struct.pack(">BBBBIII", 0, 0, 8, 3, 10, 28, 28) + b"\0" * 100)
    with pytest.raises(ResganError, match="truncated"):
        read_idx(tmp_path / "trunc.gz")
    with pytest.raises(ResganError, match="does not exist"):
        load_dataset(DataConfig(name="mnist", path=str(tmp_path / "nowhere")))


def test_download_checks_md5(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"resgan" * 100)
    good = hashlib.md5(src.read_bytes()).hexdigest()
    download(src.as_uri(), tmp_path / "ok.bin", good)
    assert (tmp_path / "ok.bin").read_bytes() == src.read_bytes()
    with pytest.raises(ResganError, match="checksum mismatch"):
        download(src.as_uri(), tmp_path / "bad.bin", "0" * 32)
    assert not (tmp_path / "bad.bin").exists() and not list(tmp_path.glob("*.part"))


def test_folder_loader_classes_and_resize(tmp_path):
    for cls, colour in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.new("RGB", (40, 20), colour).save(tmp_path / cls / f"{i}.png")
    ds = load_dataset(DataConfig(name="folder", path=str(tmp_path), resolution=16, channels=3))
    assert ds.images.shape == (6, 3, 16, 16) and ds.classes == ["cat", "dog"]
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert ds.images[0, 0].float().mean() == 255 and ds.images[5, 2].float().mean() == 255
    grey = load_dataset(DataConfig(name="folder", path=str(tmp_path), resolution=16, channels=1))
    assert grey.images.shape == (6, 1, 16, 16)


def test_folder_errors(tmp_path):
    with pytest.raises(ResganError, match="not a folder"):
        load_dataset(DataConfig(name="folder", path=str(tmp_path / "missing")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResganError, match="no images"):
        load_dataset(DataConfig(name="folder", path=str(tmp_path / "empty")))
    (tmp_path / "bad").mkdir()
    Image.new("L", (8, 8)).save(tmp_path / "bad" / "a.png")
    (tmp_path / "bad" / "b.png").write_bytes(b"not a png")
    with pytest.raises(ResganError, match=r"b\.png: cannot read image"):
        load_dataset(DataConfig(name="folder", path=str(tmp_path / "bad"), resolution=16))


def test_cifar_batches(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        batch = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": [i % 10, 1, 2, 3]}
        (root / f"data_batch_{i}").write_bytes(pickle.dumps(batch))
    (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": [f"c{i}".encode() for i in range(10)]}))
    ds = load_dataset(DataConfig(name="cifar10", path=str(tmp_path), resolution=32, channels=3))
    assert ds.images.shape == (20, 3, 32, 32) and ds.classes[3] == "c3"
    first = np.asarray(pickle.loads((root / "data_batch_1").read_bytes())[b"data"][0]).reshape(3, 32, 32)
    assert np.array_equal(ds.images[0].numpy(), first)


def test_cifar_refuses_code_in_pickles(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["batches.meta"]:
        (root / name).write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(ResganError, match="refusing to unpickle builtins.print"):
        load_dataset(DataConfig(name="cifar10", path=str(tmp_path), channels=3))


def test_digits_builtin():
    ds = load_dataset(DataConfig(name="digits", resolution=16))
    assert ds.images.shape == (1797, 1, 16, 16) and len(ds.classes) == 10
    assert ds.images.max() > 200  # scaled from 0..16 to 0..255


def test_scaling_round_trip():
    x = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    f = to_float(x)
    assert f.min() == -1 and f.max() == 1
    assert torch.equal(to_uint8(f), x)


def test_batch_sampler_order_and_state():
    s = BatchSampler(10, 4, seed=3)
    seen = [s.next() for _ in range(3)]  # 2 batches of epoch 0, then epoch 1
    assert len(set(torch.cat(seen[:2]).tolist())) == 8 and s.epoch == 1
    state = s.state_dict()
    nxt = s.next()
    t = BatchSampler(10, 4, seed=3)
    t.load_state_dict(state)
    assert torch.equal(t.next(), nxt)
    with pytest.raises(ResganError, match="batch size 11 is larger than the data set"):
        BatchSampler(10, 11, 0)
