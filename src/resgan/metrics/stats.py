"""Feature statistics and the distribution metrics on them: FID, KID, Inception Score and
precision / recall. Everything is float64 NumPy unless said otherwise.

* FID (Heusel et al. 2017): ``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^1/2)``, where the
  last trace is the sum of the square roots of the eigenvalues of ``S1 S2`` (torchmetrics' way,
  not scipy's ``sqrtm``). They are taken from the symmetric matrix ``(S1^1/2) S2 (S1^1/2)`` that
  has the same eigenvalues (see :func:`trace_sqrt_product`), which is faster and keeps them real; tiny
  negative ones are rounding and count as 0.
* KID (Binkowski et al. 2018): unbiased MMD^2 with the cubic polynomial kernel
  ``(x.y / d + 1)^3``, averaged over random subsets (torch-fidelity's defaults: 100 subsets of
  1000, NumPy ``RandomState(2020)``); mean and standard deviation.
* IS (Salimans et al. 2016): ``exp(E KL(p(y|x) || p(y)))`` over 10 splits of the (seeded, shuffled)
  unbiased logits; mean and standard deviation.
* Precision / recall (Kynkäänniemi et al. 2019, k = 3): a sample is covered when it lies within the
  distance from some sample of the other set to that sample's k-th nearest neighbour (itself excluded).
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ResganError

KID_SUBSETS, KID_SUBSET_SIZE, SEED = 100, 1000, 2020


class StreamingStats:
    """Running float64 mean and covariance of feature batches (sum and sum of outer products)."""

    def __init__(self, dim: int):
        self.n = 0
        self.sum = np.zeros(dim, dtype=np.float64)
        self.outer = np.zeros((dim, dim), dtype=np.float64)

    def update(self, feats: np.ndarray | torch.Tensor) -> None:
        f = feats.detach().cpu().double().numpy() if isinstance(feats, torch.Tensor) else np.asarray(feats, np.float64)
        self.n += f.shape[0]
        self.sum += f.sum(0)
        self.outer += f.T @ f

    @property
    def mean(self) -> np.ndarray:
        return self.sum / max(self.n, 1)

    @property
    def cov(self) -> np.ndarray:
        if self.n < 2:
            raise ResganError("a covariance needs at least 2 images")
        mu = self.mean
        return (self.outer - self.n * np.outer(mu, mu)) / (self.n - 1)


def mean_cov(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(feats, dtype=np.float64)
    if f.shape[0] < 2:
        raise ResganError("FID needs at least 2 images per side")
    return f.mean(0), np.cov(f, rowvar=False)


def _sqrt_eig_sum(m: np.ndarray) -> float:
    ev = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(ev, 0, None)).sum())


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray, rows1: np.ndarray | None = None) -> float:
    """tr((S1 S2)^1/2) = sum of sqrt(eigenvalues of S1 S2), for symmetric PSD S1, S2.

    The eigenvalues are read off a symmetric matrix similar to S1 S2 (so they come out real):
    with ``rows1`` (A with S1 = A^T A: centred features / sqrt(n - 1)) and fewer rows than
    dimensions, the small ``A S2 A^T``; else ``L^T S2 L`` with S1 = L L^T (Cholesky); for a
    singular S1, ``R^T S2 R`` with R = V diag(sqrt(w)) from S1's eigendecomposition."""
    if rows1 is not None and rows1.shape[0] < rows1.shape[1]:
        return _sqrt_eig_sum(rows1 @ sigma2 @ rows1.T)
    try:
        low = np.linalg.cholesky(sigma1)
        return _sqrt_eig_sum(low.T @ sigma2 @ low)
    except np.linalg.LinAlgError:
        pass
    w, v = np.linalg.eigh((sigma1 + sigma1.T) / 2)
    root = v * np.sqrt(np.clip(w, 0, None))
    return _sqrt_eig_sum(root.T @ sigma2 @ root)


def fid_from_stats(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                   rows1: np.ndarray | None = None) -> float:
    """FID from means and covariances (``rows1``: see :func:`trace_sqrt_product`)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ResganError(f"feature statistics differ in shape: {mu1.shape} vs {mu2.shape}")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2, rows1))


def fid(feats1: np.ndarray, feats2: np.ndarray) -> float:
    """FID between two feature sets (float64)."""
    f1 = np.asarray(feats1, dtype=np.float64)
    mu1, s1 = mean_cov(f1)
    rows1 = (f1 - mu1) / np.sqrt(len(f1) - 1) if len(f1) < f1.shape[1] else None
    return fid_from_stats(mu1, s1, *mean_cov(feats2), rows1=rows1)


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0) -> np.ndarray:
    return (x @ y.T / x.shape[1] + coef0) ** degree


def mmd2_unbiased(kxx: np.ndarray, kxy: np.ndarray, kyy: np.ndarray) -> float:
    """Unbiased MMD^2 (diagonals of K_XX and K_YY left out; all of K_XY kept, as torch-fidelity)."""
    m = kxx.shape[0]
    sxx = kxx.sum() - np.trace(kxx)
    syy = kyy.sum() - np.trace(kyy)
    return float((sxx + syy) / (m * (m - 1)) - 2 * kxy.sum() / (m * m))


def kid(feats1: np.ndarray, feats2: np.ndarray, subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE,
        seed: int = SEED) -> dict:
    """KID mean and std over ``subsets`` random subsets (a smaller set shrinks the subset size)."""
    f1, f2 = np.asarray(feats1, np.float64), np.asarray(feats2, np.float64)
    m = min(subset_size, len(f1), len(f2))
    if m < 2:
        raise ResganError("KID needs at least 2 images per side")
    rng = np.random.RandomState(seed)
    vals = np.empty(subsets)
    for i in range(subsets):
        x = f1[rng.choice(len(f1), m, replace=False)]
        y = f2[rng.choice(len(f2), m, replace=False)]
        vals[i] = mmd2_unbiased(polynomial_kernel(x, x), polynomial_kernel(x, y), polynomial_kernel(y, y))
    return {"kid": float(vals.mean()), "kid_std": float(vals.std()), "kid_subset_size": m, "kid_subsets": subsets}


def inception_score(logits: np.ndarray | torch.Tensor, splits: int = 10, seed: int = SEED) -> dict:
    """IS mean and std over ``splits`` chunks of the shuffled logits (float64 softmax)."""
    lg = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    n = lg.shape[0]
    if n < splits:
        raise ResganError(f"the Inception Score needs at least {splits} images")
    lg = lg[torch.from_numpy(np.random.RandomState(seed).permutation(n))]
    p, log_p = lg.softmax(1), lg.log_softmax(1)
    scores = []
    for i in range(splits):
        lo, hi = i * n // splits, (i + 1) * n // splits
        q = p[lo:hi].mean(0, keepdim=True)
        scores.append(float((p[lo:hi] * (log_p[lo:hi] - q.log())).sum(1).mean().exp()))
    return {"is": float(np.mean(scores)), "is_std": float(np.std(scores))}


def _kth_nn_radius(f: torch.Tensor, k: int, chunk: int) -> torch.Tensor:
    return torch.cat([torch.cdist(c, f).kthvalue(k + 1, dim=1).values for c in f.split(chunk)])


def _coverage(queries: torch.Tensor, refs: torch.Tensor, radii: torch.Tensor, chunk: int) -> float:
    hit = [(torch.cdist(c, refs) <= radii[None]).any(1) for c in queries.split(chunk)]
    return float(torch.cat(hit).double().mean())


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3, chunk: int = 2048) -> dict:
    """Improved precision and recall (k-NN manifolds), torch-fidelity's ``prc`` convention:
    precision = share of fake samples inside the real manifold, recall = share of real inside the fake one."""
    r = torch.as_tensor(np.asarray(real), dtype=torch.float32)
    f = torch.as_tensor(np.asarray(fake), dtype=torch.float32)
    if len(r) <= k or len(f) <= k:
        raise ResganError(f"precision / recall need more than k={k} images per side")
    precision = _coverage(f, r, _kth_nn_radius(r, k, chunk), chunk)
    recall = _coverage(r, f, _kth_nn_radius(f, k, chunk), chunk)
    f_score = 2 * precision * recall / max(1e-5, precision + recall)
    return {"precision": precision, "recall": recall, "f_score": f_score}
