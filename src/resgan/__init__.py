"""resgan: residual GANs for image generation and restoration.

The Python API (:mod:`resgan.api`), loaded on first use so that ``import resgan`` stays light::

    resgan.restore_image(image, task="denoise")            # PIL image or uint8 array in, the same type out
    resgan.generate_images("mnist", seeds=range(8), class_="7", psi=0.7)
    resgan.evaluate_images(images, "digits", metrics="fid,kid")
    resgan.list_classes("mnist")
"""

from ._version import __version__

_API = ("restore_image", "generate_images", "evaluate_images", "list_classes")
__all__ = [*_API, "ResganError", "__version__"]


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    if name == "ResganError":
        from .errors import ResganError

        return ResganError
    raise AttributeError(f"module 'resgan' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API, "ResganError"])
