"""Batched Inception feature extraction: preprocessing (resize, scaling) runs on a background
thread while the network runs on the main one; channels_last, inference mode, BN folded into
the convolutions. ``fast=True`` runs the network in bfloat16 (opt-in: FID moves by a small,
printed amount; see benchmarks/eval_throughput.py)."""

from __future__ import annotations

import queue
import threading
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from ..accel import cpu_bf16_pays, torch_device
from ..errors import ResganError
from .inception import FIDInception, load_inception
from .preprocess import preprocess

Batch = torch.Tensor | list[torch.Tensor]  # uint8 (N, C, H, W), or a list of uint8 (C, H, W) of any sizes


def prepare(batch: Batch) -> torch.Tensor:
    """uint8 batch (or list of differently sized images) -> float (N, 3, 299, 299) channels_last."""
    if isinstance(batch, list):
        x = torch.cat([preprocess(img[None]) for img in batch])
    else:
        x = preprocess(batch)
    return x.contiguous(memory_format=torch.channels_last)


def _prefetch(batches: Iterable[Batch], depth: int = 2) -> Iterator[tuple[int, torch.Tensor]]:
    """Run ``prepare`` on a worker thread, ``depth`` batches ahead; re-raise its errors here."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def work():
        try:
            for b in batches:
                if stop.is_set():
                    return
                n = len(b)
                q.put((n, prepare(b)))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            q.put(e)
            return
        q.put(done)

    t = threading.Thread(target=work, daemon=True, name="resgan-preprocess")
    t.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while t.is_alive():  # unblock a worker waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(0.05)


class FeatureExtractor:
    """Pool3 features (and unbiased logits where the weights have them) of uint8 images."""

    def __init__(self, weights: str | Path | None = None, fast: bool = False, device: str = "cpu",
                 batch_size: int = 50, fold_bn: bool = True, download: bool = True):
        base = load_inception(weights, download)
        self.weights_path = base.weights_path
        self.has_logits = base.has_logits
        self.fast, self.batch_size = fast, batch_size
        self.device = torch_device(device)
        net: FIDInception = base.folded() if fold_bn else base
        net = net.to(self.device, memory_format=torch.channels_last)
        if fast:
            net = net.to(torch.bfloat16)
            if self.device.type == "cpu" and not cpu_bf16_pays():
                warnings.warn("fast (bf16) features on a CPU without native bf16 instructions (AMX or "
                              "AVX512-BF16) run slower than fp32 ones; drop --fast here", stacklevel=2)
        self.net = net.eval()

    @property
    def mode(self) -> str:
        return "bf16" if self.fast else "fp32"

    def run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = x.to(self.device, torch.bfloat16 if self.fast else torch.float32)
        pool3, logits = self.net(x)
        return pool3.float().cpu(), (logits.float().cpu() if logits is not None else None)

    @torch.inference_mode()
    def extract(self, batches: Iterable[Batch], total: int | None = None, progress: bool = False,
                desc: str = "features") -> dict[str, np.ndarray]:
        """``batches``: an iterable of uint8 batches (see :data:`Batch`). Returns ``{"pool3": (N, 2048)
        float32, "logits": (N, 1008) float32}`` (no "logits" for pool3-only weights)."""
        from tqdm import tqdm

        feats, logits = [], []
        with tqdm(total=total, desc=desc, unit="img", disable=not progress, leave=False) as bar:
            for n, x in _prefetch(batches):
                f, lg = self.run(x)
                feats.append(f)
                if lg is not None:
                    logits.append(lg)
                bar.update(n)
        if not feats:
            raise ResganError("no images to compute features of")
        out = {"pool3": torch.cat(feats).numpy()}
        if logits:
            out["logits"] = torch.cat(logits).numpy()
        return out

    def extract_tensor(self, images: torch.Tensor, progress: bool = False, desc: str = "features") -> dict:
        """Features of a uint8 (N, C, H, W) tensor."""
        return self.extract(images.split(self.batch_size), len(images), progress, desc)
