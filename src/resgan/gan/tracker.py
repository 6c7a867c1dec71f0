"""Quality of the generator while it trains: FID (and CAS for conditional models) of the EMA
generator every ``gan.fid_every`` steps, logged to ``metrics.jsonl`` and drawn in ``report.html``.

The reference is a data set spec or folder (``gan.fid_reference``), by default the training data's
test split (its train split when it has none: ``digits``, ``folder``), loaded at the generator's
resolution; its features and statistics are computed once and cached (:mod:`resgan.metrics.cache`).
Samples are class-balanced, from seeds 0..n-1 (the same images at every evaluation), and drawing them
leaves the global random state as it was, so a run with FID tracking resumes as exactly as one without.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..config import Config

HAS_TEST_SPLIT = ("mnist", "fashion_mnist", "cifar10", "cifar100")


def reference_spec(cfg: Config) -> str:
    g, d = cfg.gan, cfg.data
    if g.fid_reference:
        return g.fid_reference
    if d.name == "folder":
        return str(d.path)
    split = "test" if d.name in HAS_TEST_SPLIT else "train"
    return f"{d.name}:{d.path or ''}:{split}"


class QualityTracker:
    """``tracker(G) -> {"fid": ..., "cas": ...}`` for a generator in eval mode."""

    def __init__(self, cfg: Config, device: torch.device):
        self.cfg, self.device = cfg, device
        self.extractor = None
        self.ref_stats: tuple[np.ndarray, np.ndarray] | None = None

    def _reference(self) -> tuple[np.ndarray, np.ndarray]:
        from ..metrics.features import FeatureExtractor
        from ..metrics.sources import Source, reference_source, source_features
        from ..metrics.stats import mean_cov

        if self.extractor is None:
            self.extractor = FeatureExtractor(device=str(self.device))
        if self.ref_stats is None:
            like = Source("training data", "generator", data=self.cfg.data)
            ref = reference_source(reference_spec(self.cfg), like=like)
            feats = source_features(ref, self.extractor)
            self.ref_stats = (feats["mu"], feats["sigma"]) if "mu" in feats else mean_cov(
                feats["pool3"].astype(np.float64))
        return self.ref_stats

    def __call__(self, G: torch.nn.Module) -> dict[str, float]:
        # the global RNG state is put back afterwards (training a CAS classifier seeds it), so that
        # tracking never changes the run it watches
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            return self._score(G)

    def _score(self, G: torch.nn.Module) -> dict[str, float]:
        from ..data import to_uint8
        from ..metrics.stats import fid_from_stats, mean_cov
        from .sampling import generate

        mu_ref, sigma_ref = self._reference()
        images, labels = generate(G, list(range(self.cfg.gan.fid_samples)))
        images = to_uint8(images)
        feats = self.extractor.extract_tensor(images)["pool3"].astype(np.float64)
        mu, sigma = mean_cov(feats)
        out = {"fid": fid_from_stats(mu, sigma, mu_ref, sigma_ref)}
        if labels is not None:
            from ..metrics.cas import classifier_accuracy

            out["cas"] = classifier_accuracy(images, labels, dataclasses.replace(self.cfg.data, limit=None))
        return out
