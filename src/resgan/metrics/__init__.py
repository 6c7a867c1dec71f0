"""Image-quality metrics that match torch-fidelity offline: FID / KID / IS / precision-recall on
the standard FID Inception, PSNR / SSIM as BasicSR reports them, and CAS. See docs/metrics.md.

Submodules import lazily: ``from resgan.metrics.stats import fid`` etc.
"""
