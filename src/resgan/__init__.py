"""resgan: residual GANs for image generation and restoration."""

__version__ = "0.1.0"
