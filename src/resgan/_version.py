"""resgan's version: a leaf module (imports nothing), so any layer may read it."""

__version__ = "0.1.0"
