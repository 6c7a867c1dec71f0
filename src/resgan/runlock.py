"""A run folder belongs to one process: an OS lock on ``RUN/.resgan.lock``.

``resgan train`` takes it (:func:`hold_run`) before it writes or cleans up anything in the run
folder and holds it to the end of the run, so a second ``resgan train`` on the same ``--out``
(fresh or ``--resume``) is refused at once with one line naming the holder's pid, instead of both
writing one folder. The lock is ``fcntl.flock`` on an open file: the kernel releases it when the
holding process ends in any way (kill -9 included), so a crashed run never blocks its own resume.
The lock file is removed when the run ends normally or with an error; after a kill it stays
behind, unlocked, and is reused. Other writers may not replace a run's own files unless this
process holds its folder (:func:`held_here`, used by :func:`resgan.checkpoint.check_overwrite`).

Where ``fcntl`` does not exist (Windows) nothing is locked. A lock on a network file system is
as good as that file system's ``flock``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from .errors import ResganError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".resgan.lock"

_HELD: dict[Path, RunLock] = {}  # run folders this process holds (resolved paths)


def _key(run_dir: Path) -> Path:
    return Path(os.path.realpath(run_dir))


class RunLock:
    """The exclusive lock on one run folder (created if missing), taken without waiting."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self.fd: int | None = None
        self.created_dir = False  # the folder did not exist before the lock made it
        self.keep_dir = False  # something was written: on release, leave the folder in place

    def acquire(self) -> RunLock:
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise ResganError(f"{self.run_dir}: is a file, but a run folder is needed there")
        self.created_dir = not self.run_dir.exists()
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ResganError(f"{self.run_dir}: cannot create this folder ({e.strerror or e})") from None
        if fcntl is None:  # nothing to lock with: this process still counts as the folder's holder
            _HELD[_key(self.run_dir)] = self
            return self
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
            except OSError as e:
                raise ResganError(f"{self.run_dir}: cannot create its lock file ({e.strerror or e})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                pid = _read_pid(fd)
                os.close(fd)
                raise ResganError(f"run folder {self.run_dir} is in use by another resgan process "
                                  f"(pid {pid or 'unknown'}); wait for it to end or choose another --out") from None
            # the file locked must still be the one at the path: a holder removes it just before it lets go
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        with contextlib.suppress(OSError):  # the pid is for the message of a second process only
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        _HELD[_key(self.run_dir)] = self
        return self

    def release(self) -> None:
        """Let go; the lock file is removed first (while still held), and the folder too when the
        lock created it and nothing else was written there."""
        if _HELD.get(_key(self.run_dir)) is self:
            del _HELD[_key(self.run_dir)]
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        if self.created_dir and not self.keep_dir:
            with contextlib.suppress(OSError):
                self.run_dir.rmdir()  # only if empty
        os.close(self.fd)  # the kernel drops the flock with the last descriptor
        self.fd = None


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


@contextlib.contextmanager
def hold_run(run_dir: str | Path, enabled: bool = True) -> Iterator[RunLock]:
    """``with hold_run(RUN) as lock:`` the run folder is this process's (created if missing) until the
    block ends. Call ``lock.keep_dir = True`` once something is written, so that a failure before
    that leaves no new empty folder behind. ``enabled=False`` (ranks other than 0): no lock."""
    lock = RunLock(run_dir)
    if enabled:
        lock.acquire()
    try:
        yield lock
    finally:
        lock.release()


def held_here(run_dir: str | Path) -> bool:
    """Whether this process holds the lock of ``run_dir``."""
    return _key(Path(run_dir)) in _HELD
