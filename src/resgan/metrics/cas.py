"""Classification Accuracy Score (Ravuri & Vinyals 2019, in its "train on real, test on fake"
form): a small CNN is trained once on the real data set, cached as safetensors in the cache dir,
and its accuracy on class-conditional samples against the classes they were asked for is the score.

Public API (``benchmarks/mnist_cas.py`` and ``resgan evaluate --metrics cas`` use it)::

    clf, info = load_or_train_classifier(data_cfg)           # DataConfig of the real data
    acc = classifier_accuracy(images_uint8, labels, data_cfg) # float in [0, 1]
    model, _ = train_classifier(fake_u8, fake_labels, 10)    # the other way round: train on fake,
    acc = accuracy(model, real_u8, real_labels, 32, 3)        # test on real (benchmarks/gen_cifar10.py)

(``resgan.evaluate.cas_for_generator`` samples a generator and scores it with these.)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import DataConfig
from ..errors import ResganError
from . import cache

CLASSIFIER_VERSION = 2


class SmallClassifier(nn.Module):
    """conv 32 -> conv 64 (stride 2) -> conv 128 (stride 2) -> 4x4 average map -> linear; any resolution.

    The 4x4 map keeps the layout that tells digits apart (a global average did not: 96.7% on MNIST)."""

    def __init__(self, channels: int, num_classes: int, width: int = 32):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(channels, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU(),
            nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1), nn.BatchNorm2d(4 * w), nn.ReLU(),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Dropout(0.3),
        )
        self.head = nn.Linear(4 * w * 16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _inputs(images: torch.Tensor, resolution: int, channels: int) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float [-1, 1] at the classifier's resolution and channel count."""
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ResganError(f"CAS wants uint8 (N, C, H, W) images, got {images.dtype} {tuple(images.shape)}")
    x = images.float().div(127.5).sub(1.0)
    if x.shape[1] != channels:
        if channels == 1:
            x = x.mean(1, keepdim=True)
        elif x.shape[1] == 1:
            x = x.expand(-1, channels, -1, -1)
        else:
            raise ResganError(f"images have {x.shape[1]} channels, the classifier wants {channels}")
    if x.shape[2:] != (resolution, resolution):
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
    return x


def _parts(data: DataConfig, epochs: int, seed: int) -> dict:
    from ..data import data_root

    d = dataclasses.asdict(data)
    d["path"] = None if data.name == "digits" else str(data_root(data).resolve())
    d.pop("download", None)
    return {"data": d, "epochs": epochs, "seed": seed, "version": CLASSIFIER_VERSION}


def train_classifier(images: torch.Tensor, labels: torch.Tensor, num_classes: int, epochs: int = 2,
                     seed: int = 0, batch_size: int = 64, progress: bool = False) -> tuple[SmallClassifier, float]:
    """Train on 90% of (images, labels); returns the model (eval mode) and its accuracy on the other 10%."""
    from tqdm import tqdm

    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    n = len(images)
    perm = torch.randperm(n, generator=g)
    n_val = max(1, n // 10)
    val, tr = perm[:n_val], perm[n_val:]
    res, ch = images.shape[-1], images.shape[1]
    model = SmallClassifier(ch, num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    steps = epochs * max(1, len(tr) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    model.train()
    with tqdm(total=steps, desc="CAS classifier", unit="step", disable=not progress, leave=False) as bar:
        for _ in range(epochs):
            order = tr[torch.randperm(len(tr), generator=g)]
            for i in range(0, len(order) - batch_size + 1 if len(order) >= batch_size else 1, batch_size):
                idx = order[i:i + batch_size]
                x = _inputs(images[idx], res, ch)
                x = x + 0.05 * torch.randn(x.shape, generator=g)  # a little noise: less brittle on samples
                loss = F.cross_entropy(model(x), labels[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if sched.last_epoch < steps - 1:
                    sched.step()
                bar.update(1)
    model.eval()
    acc = _accuracy(model, images[val], labels[val], res, ch)
    return model, acc


@torch.inference_mode()
def _accuracy(model: SmallClassifier, images: torch.Tensor, labels: torch.Tensor, res: int, ch: int) -> float:
    correct = 0
    for i in range(0, len(images), 512):
        pred = model(_inputs(images[i:i + 512], res, ch)).argmax(1)
        correct += int((pred == labels[i:i + 512]).sum())
    return correct / max(1, len(images))


def accuracy(model: SmallClassifier, images: torch.Tensor, labels: torch.Tensor, resolution: int,
             channels: int) -> float:
    """Accuracy of a :func:`train_classifier` model (trained at ``resolution`` / ``channels``) on uint8
    (N, C, H, W) images against ``labels``: e.g. one trained on generated images, scored on real ones
    (CAS in Ravuri & Vinyals' own "train on fake, test on real" form; ``benchmarks/gen_cifar10.py``)."""
    labels = torch.as_tensor(labels, dtype=torch.int64)
    if len(images) != len(labels):
        raise ResganError(f"{len(images)} images but {len(labels)} labels")
    return _accuracy(model, images, labels, resolution, channels)


def load_or_train_classifier(data: DataConfig, epochs: int = 2, seed: int = 0, cache_dir: str | Path | None = None,
                             progress: bool = False) -> tuple[SmallClassifier, dict]:
    """The CAS classifier of a real data set (``data.conditional`` must hold labels): loaded from
    the cache, or trained on ``load_dataset(data)`` and cached. ``info``: resolution, channels,
    num_classes, classes, real_accuracy (held-out 10% of the real data), cache path."""
    from ..data import load_dataset

    parts = _parts(data, epochs, seed)
    arrays = cache.load_arrays("cas", parts, cache_dir)
    if arrays is not None:
        meta = {k: int(arrays[k].reshape(-1)[0]) for k in ("resolution", "channels", "num_classes")}
        model = SmallClassifier(meta["channels"], meta["num_classes"])
        model.load_state_dict({k[len("model."):]: torch.from_numpy(v.copy()) for k, v in arrays.items()
                               if k.startswith("model.")})
        return model.eval(), {**meta, "real_accuracy": float(arrays["real_accuracy"].reshape(-1)[0]), "cached": True}
    ds = load_dataset(data)
    if not ds.classes or len(ds.classes) < 2:
        raise ResganError(f"CAS needs a labelled data set; {data.name} at {data.path} has no classes")
    model, acc = train_classifier(ds.images, ds.labels, len(ds.classes), epochs, seed, progress=progress)
    meta = {"resolution": ds.images.shape[-1], "channels": ds.images.shape[1], "num_classes": len(ds.classes)}
    arrays = {f"model.{k}": v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    arrays.update({k: np.array([v], dtype=np.int64) for k, v in meta.items()})
    arrays["real_accuracy"] = np.array([acc], dtype=np.float64)
    path = cache.save_arrays("cas", parts, arrays, cache_dir)
    return model, {**meta, "real_accuracy": acc, "cached": False, "path": str(path)}


def classifier_accuracy(images: torch.Tensor, labels: torch.Tensor, data: DataConfig, epochs: int = 2, seed: int = 0,
                        cache_dir: str | Path | None = None, progress: bool = False) -> float:
    """Accuracy of the real-data classifier of ``data`` on uint8 (N, C, H, W) ``images`` against
    ``labels`` (the classes the images were generated for). Images of another size are resized
    (bilinear) to the classifier's resolution."""
    if len(images) != len(labels):
        raise ResganError(f"{len(images)} images but {len(labels)} labels")
    model, info = load_or_train_classifier(data, epochs, seed, cache_dir, progress)
    labels = torch.as_tensor(labels, dtype=torch.int64)
    if int(labels.max()) >= info["num_classes"] or int(labels.min()) < 0:
        raise ResganError(f"labels must lie in 0..{info['num_classes'] - 1}")
    return _accuracy(model, images, labels, info["resolution"], info["channels"])
