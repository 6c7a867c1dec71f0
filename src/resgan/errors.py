"""Errors that the CLI reports as one clear line and a non-zero exit code."""


class ResganError(Exception):
    """A user-facing error: bad input, bad config, unusable data or checkpoint. ``status``: the
    HTTP code ``resgan serve`` answers it with (400 unless the input was too large, 413, or of
    a type it does not take, 415)."""

    def __init__(self, message: str = "", status: int = 400):
        super().__init__(message)
        self.status = status


class TrainingDiverged(ResganError):
    """A loss became NaN or infinite; the last good checkpoint stays the latest."""


class Stopped(Exception):
    """Training was asked to stop (Ctrl-C / SIGTERM) and saved its last whole step; exit code 130."""
