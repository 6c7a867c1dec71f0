"""Errors that the CLI reports as one clear line and a non-zero exit code."""


class ResganError(Exception):
    """A user-facing error: bad input, bad config, unusable data or checkpoint."""


class TrainingDiverged(ResganError):
    """A loss became NaN or infinite; the last good checkpoint stays the latest."""
