"""Image data sets without torchvision: image folders, MNIST / Fashion-MNIST IDX files,
CIFAR-10/100 python batches (or CIFAR-10 as class sub-folders of image files) and scikit-learn's
8x8 digits (the built-in default).

Every loader returns an :class:`ImageSet`: uint8 images (N, C, H, W) already resized and
centre-cropped to the training resolution, integer labels and class names. Batches are
drawn by :class:`BatchSampler` in an order that depends only on (seed, epoch), so a resumed
run sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import struct
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .config import DataConfig
from .errors import ResganError
from .imageio import IMAGE_EXTS, open_still  # noqa: F401 (IMAGE_EXTS: also read from here)


@dataclass
class ImageSet:
    images: torch.Tensor  # uint8 (N, C, H, W)
    labels: torch.Tensor  # int64 (N,)
    classes: list[str]
    note: str = ""  # what a loader inferred, in words (printed when a run starts)

    def __len__(self) -> int:
        return self.images.shape[0]


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1]."""
    return images.float().div(127.5).sub(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255] (rounded)."""
    return images.detach().float().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def fit_image(img: Image.Image, resolution: int, channels: int) -> np.ndarray:
    """Resize the shorter side to ``resolution`` (bicubic, or box when shrinking a lot),
    centre-crop to a square, convert to grey or RGB; returns uint8 (C, H, W)."""
    img = img.convert("L" if channels == 1 else "RGB")
    w, h = img.size
    scale = resolution / min(w, h)
    if (w, h) != (resolution, resolution):
        nw, nh = max(resolution, round(w * scale)), max(resolution, round(h * scale))
        img = img.resize((nw, nh), Image.Resampling.BICUBIC, reducing_gap=3.0)
        left, top = (nw - resolution) // 2, (nh - resolution) // 2
        img = img.crop((left, top, left + resolution, top + resolution))
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _from_arrays(arrays: np.ndarray, labels: np.ndarray, classes: list[str], cfg: DataConfig) -> ImageSet:
    """uint8 (N, H, W) or (N, H, W, 3) arrays -> ImageSet at the configured size."""
    if cfg.limit:
        arrays, labels = arrays[: cfg.limit], labels[: cfg.limit]
    out = np.stack([fit_image(Image.fromarray(a), cfg.resolution, cfg.channels) for a in arrays])
    return ImageSet(torch.from_numpy(out), torch.from_numpy(labels.astype(np.int64)), classes)


# ---------------------------------------------------------------- image folders

def folder_entries(cfg: DataConfig) -> tuple[list[tuple[Path, int]], list[str]]:
    """(image file, label) of an image folder (sub-folders = classes, each searched recursively;
    none: every image directly in it, unlabelled) and the class names; ``data.limit`` applied."""
    root = Path(cfg.path or "")
    if not cfg.path:
        raise ResganError("data.path is not set: give the image folder, --set data.path=DIR "
                          "(one sub-folder per class, or the images directly in DIR)")
    if not root.is_dir():
        raise ResganError(f"data.path {cfg.path!r} is not a folder of images")
    subdirs = sorted(d for d in root.iterdir() if d.is_dir())
    if subdirs:
        entries = [(f, i) for i, d in enumerate(subdirs)
                   for f in sorted(d.rglob("*")) if f.suffix.lower() in IMAGE_EXTS]
        classes = [d.name for d in subdirs]
    else:
        entries = [(f, 0) for f in sorted(root.iterdir()) if f.suffix.lower() in IMAGE_EXTS]
        classes = []
    if not entries:
        raise ResganError(f"no images ({', '.join(sorted(IMAGE_EXTS))}) found in {root}")
    if cfg.limit:
        entries = entries[: cfg.limit]
    return entries, classes


# the sizes the GAN nets are built for (resgan.gan.models); a folder's inferred resolution is one of them
GAN_RESOLUTIONS = (16, 32, 64, 128)
INFER_SAMPLE = 256  # images (spread over the folder) looked at to infer a folder's settings
GREY_SPREAD = 3  # an RGB image whose channels differ by at most this (99th percentile) is grey


def _is_grey(img: Image.Image) -> bool:
    """Grey by its mode, or an RGB / palette image whose three channels are (nearly) equal."""
    if img.mode in ("1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "F"):
        return True
    small = img.copy()
    small.thumbnail((64, 64))
    arr = np.asarray(small.convert("RGB"), dtype=np.int16)
    spread = np.maximum(np.abs(arr[..., 0] - arr[..., 1]), np.abs(arr[..., 1] - arr[..., 2]))
    return float(np.percentile(spread, 99)) <= GREY_SPREAD


def infer_folder(cfg: DataConfig) -> tuple[DataConfig, str]:
    """A folder's settings left to be inferred (``resolution: 0``, ``channels: 0``, ``conditional:
    null``, as the ``folder`` preset has them) filled from its images: colour if any looked-at image
    is colour, else grey; the supported resolution (16 / 32 / 64 / 128) nearest, on a log scale, to
    the median shorter side; conditional when there are two or more class sub-folders. Returns the
    config and one line saying what the data is and what was inferred."""
    import dataclasses

    entries, classes = folder_entries(cfg)
    step = max(1, len(entries) // INFER_SAMPLE)
    sides, grey = [], True
    for f, _ in entries[::step][:INFER_SAMPLE]:
        try:
            with open_still(f) as img:
                sides.append(min(img.size))
                if cfg.channels == 0 and grey:
                    grey = _is_grey(img)
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise ResganError(f"cannot read image {f}: {e}") from None
    inferred = []
    if cfg.channels == 0:
        cfg = dataclasses.replace(cfg, channels=1 if grey else 3)
        inferred.append("channels")
    if cfg.resolution == 0:
        median = float(np.median(sides))
        res = min(GAN_RESOLUTIONS, key=lambda r: (abs(np.log2(r / median)), -r))
        cfg = dataclasses.replace(cfg, resolution=res)
        inferred.append(f"resolution (median shorter side {median:g} px)")
    if cfg.conditional is None:
        cfg = dataclasses.replace(cfg, conditional=len(classes) >= 2)
        inferred.append("classes")
    if cfg.conditional:
        kinds = f"{len(classes)} classes ({', '.join(classes[:8])}{', ...' if len(classes) > 8 else ''})"
    else:
        kinds = "unconditional" + (f" ({len(classes)} sub-folder{'s' * (len(classes) > 1)})" if classes else "")
    line = (f"data: {cfg.path}: {len(entries):,} images, {kinds}, {'grey' if cfg.channels == 1 else 'RGB'}, "
            f"{cfg.resolution}x{cfg.resolution}")
    if inferred:
        line += f" (inferred: {', '.join(inferred)})"
    return cfg, line


def load_folder(cfg: DataConfig) -> ImageSet:
    note = ""
    if cfg.resolution == 0 or cfg.channels == 0 or cfg.conditional is None:
        cfg, note = infer_folder(cfg)
    entries, classes = folder_entries(cfg)
    return read_entries(entries, classes, cfg, note)


def read_entries(entries: list[tuple[Path, int]], classes: list[str], cfg: DataConfig, note: str = "") -> ImageSet:
    """(image file, label) pairs -> ImageSet at the configured size (one PIL decode each)."""
    images = []
    for f, _ in entries:
        try:
            with open_still(f) as img:
                images.append(fit_image(img, cfg.resolution, cfg.channels))
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise ResganError(f"cannot read image {f}: {e}") from None
    labels = np.array([c for _, c in entries], dtype=np.int64)
    return ImageSet(torch.from_numpy(np.stack(images)), torch.from_numpy(labels), classes, note)


# ---------------------------------------------------------------- MNIST / Fashion-MNIST (IDX)

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# md5 of the .gz files, as torchvision checks them
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
FASHION_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
MIRRORS = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/", MNIST_MD5),
    "fashion_mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", FASHION_MD5),
}
MNIST_CLASSES = [str(i) for i in range(10)]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise ResganError(f"cannot read IDX file {path}: {e}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ResganError(f"{path} is not an IDX file of unsigned bytes")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ResganError(f"{path} is truncated: header says {shape}, found {body.size} bytes")
    return body.reshape(shape)


def file_hash(path: Path, algorithm: str = "md5") -> str:
    """Hex digest of a file, read in chunks (md5 for data sets, sha1 for weight files)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def download(url: str, dest: Path, md5: str) -> None:
    """Fetch ``url`` to ``dest`` atomically, refusing a file whose md5 differs."""
    tmp = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
            f.write(r.read())
        if file_hash(tmp) != md5:
            raise ResganError(f"checksum mismatch for {url}")
        os.replace(tmp, dest)
    except OSError as e:
        raise ResganError(f"cannot download {url}: {e}") from None
    finally:
        tmp.unlink(missing_ok=True)


def find_idx(root: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx")):
        if (root / name).is_file():
            return root / name
    return None


def load_idx_set(cfg: DataConfig) -> ImageSet:
    root = data_root(cfg)
    if cfg.split not in IDX_FILES:
        raise ResganError(f"data.split must be train or test, got {cfg.split!r}")
    paths = []
    for stem in IDX_FILES[cfg.split]:
        p = find_idx(root, stem)
        if p is None and cfg.download:
            base, sums = MIRRORS[cfg.name]
            root.mkdir(parents=True, exist_ok=True)
            p = root / (stem + ".gz")
            download(base + p.name, p, sums[p.name])
        if p is None:
            raise ResganError(f"{stem}[.gz] not found in {root} (set data.download=true where a network exists)")
        paths.append(p)
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or labels.shape[0] != images.shape[0]:
        raise ResganError(f"{paths[0]} and {paths[1]} do not match")
    classes = FASHION_CLASSES if cfg.name == "fashion_mnist" else MNIST_CLASSES
    return _from_arrays(images, labels, classes, cfg)


# ---------------------------------------------------------------- CIFAR python batches

class _SafeUnpickler(pickle.Unpickler):
    """Unpickles only dicts, lists, strings, bytes and numpy arrays: never code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")


def read_cifar_batch(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            batch = _SafeUnpickler(f, encoding="bytes").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as e:
        raise ResganError(f"cannot read CIFAR batch {path}: {e}") from None
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}


# CIFAR-10's label order (batches.meta's label_names)
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def cifar10_image_tree(root: Path) -> bool:
    """Whether ``root`` holds CIFAR-10 as image files: train/ and / or test/ with class sub-folders."""
    return any((root / split).is_dir() and any(d.is_dir() for d in (root / split).iterdir())
               for split in ("train", "test"))


def load_cifar10_images(root: Path, cfg: DataConfig) -> ImageSet:
    """CIFAR-10 as ``root/<split>/<class>/*.jpg`` (or any image type): labels by class name, in
    CIFAR-10's label order, whatever order the folders sort in; a folder whose class sub-folders are
    not CIFAR-10's ten is refused. The classes are interleaved (image 0 of each class, then image 1,
    ...), so ``data.limit`` (and ``evaluate -n``) takes a class-balanced subset."""
    split_dir = root / cfg.split
    if cfg.split not in ("train", "test"):
        raise ResganError(f"data.split must be train or test, got {cfg.split!r}")
    if not split_dir.is_dir():
        raise ResganError(f"CIFAR-10 image folder {split_dir} not found ({root} has no {cfg.split}/ split)")
    names = sorted(d.name for d in split_dir.iterdir() if d.is_dir())
    if set(names) != set(CIFAR10_CLASSES):
        odd = [n for n in names if n not in CIFAR10_CLASSES] or [c for c in CIFAR10_CLASSES if c not in names]
        raise ResganError(f"{split_dir}: class folders {', '.join(names) or '(none)'} are not CIFAR-10's ten "
                          f"({', '.join(CIFAR10_CLASSES)}; {odd[0]!r} does not fit); for other classes use "
                          "data.name=folder")
    per_class = [sorted(f for f in (split_dir / c).rglob("*") if f.suffix.lower() in IMAGE_EXTS)
                 for c in CIFAR10_CLASSES]
    entries = [(files[i], label) for i in range(max(len(f) for f in per_class))
               for label, files in enumerate(per_class) if i < len(files)]
    if not entries:
        raise ResganError(f"no images ({', '.join(sorted(IMAGE_EXTS))}) found in {split_dir}")
    return read_entries(entries[: cfg.limit] if cfg.limit else entries, list(CIFAR10_CLASSES), cfg)


def load_cifar(cfg: DataConfig) -> ImageSet:
    root = data_root(cfg)
    has_batches = (root / "cifar-10-batches-py").is_dir() or (root / "batches.meta").is_file()
    if cfg.name == "cifar10" and not has_batches and cifar10_image_tree(root):
        return load_cifar10_images(root, cfg)
    for sub in ("cifar-10-batches-py", "cifar-100-python"):
        if (root / sub).is_dir():
            root = root / sub
    if cfg.name == "cifar10":
        files = [f"data_batch_{i}" for i in range(1, 6)] if cfg.split == "train" else ["test_batch"]
        meta, label_key, names_key = "batches.meta", "labels", "label_names"
    else:
        files = ["train" if cfg.split == "train" else "test"]
        meta, label_key, names_key = "meta", "fine_labels", "fine_label_names"
    missing = [f for f in files + [meta] if not (root / f).is_file()]
    if missing:
        alt = " (nor train/ and test/ folders of class sub-folders of images)" if cfg.name == "cifar10" else ""
        raise ResganError(f"CIFAR files {', '.join(missing)} not found in {root}{alt}")
    batches = [read_cifar_batch(root / f) for f in files]
    data = np.concatenate([np.asarray(b["data"], dtype=np.uint8) for b in batches]).reshape(-1, 3, 32, 32)
    labels = np.concatenate([np.asarray(b[label_key]) for b in batches])
    classes = [c.decode() if isinstance(c, bytes) else c for c in read_cifar_batch(root / meta)[names_key]]
    return _from_arrays(data.transpose(0, 2, 3, 1), labels, classes, cfg)


# ---------------------------------------------------------------- built-in: scikit-learn digits

def load_digits(cfg: DataConfig) -> ImageSet:
    """scikit-learn's 1,797 8x8 digits (values 0-16), scaled to 0-255 and upsampled."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    images = (d.images * (255.0 / 16.0)).round().astype(np.uint8)
    return _from_arrays(images, d.target, MNIST_CLASSES, cfg)


# ---------------------------------------------------------------- dispatch

# RESGAN_DATA=DIR: where a data set is looked for when DIR/<name> is absent
ALT_DIRS = {"cifar10": "cifar10_jpeg"}


def data_root(cfg: DataConfig) -> Path:
    if cfg.path:
        return Path(cfg.path)
    env = os.environ.get("RESGAN_DATA")
    if env:
        own, alt = Path(env) / cfg.name, ALT_DIRS.get(cfg.name)
        return Path(env) / alt if alt and not own.exists() and (Path(env) / alt).is_dir() else own
    raise ResganError(f"data set {cfg.name!r} needs data.path (--set data.path=DIR) or RESGAN_DATA=DIR")


LOADERS = {
    "digits": load_digits, "mnist": load_idx_set, "fashion_mnist": load_idx_set,
    "cifar10": load_cifar, "cifar100": load_cifar, "folder": load_folder,
}


def load_dataset(cfg: DataConfig) -> ImageSet:
    if cfg.name not in LOADERS:
        raise ResganError(f"unknown data set {cfg.name!r}; choose one of {', '.join(LOADERS)}")
    if cfg.name != "digits" and cfg.name != "folder" and not data_root(cfg).exists() and not cfg.download:
        raise ResganError(f"data path {data_root(cfg)} does not exist")
    ds = LOADERS[cfg.name](cfg)
    if len(ds) == 0:
        raise ResganError(f"data set {cfg.name!r} at {cfg.path} is empty")
    return ds


class BatchSampler:
    """Shuffled batches, drop-last, in an order fixed by (seed, epoch); its position is state."""

    def __init__(self, n: int, batch_size: int, seed: int):
        if batch_size > n:
            raise ResganError(f"batch size {batch_size} is larger than the data set ({n} images)")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.epoch, self.pos = 0, 0
        self._perm = self._permutation()

    def _permutation(self) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(self.n, generator=g)

    def next(self) -> torch.Tensor:
        if self.pos + self.batch_size > self.n:
            self.epoch, self.pos = self.epoch + 1, 0
            self._perm = self._permutation()
        idx = self._perm[self.pos : self.pos + self.batch_size]
        self.pos += self.batch_size
        return idx

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])
        self._perm = self._permutation()

