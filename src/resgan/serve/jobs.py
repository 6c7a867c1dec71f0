"""Deadlines that stop a request's work (``resgan serve``), not only its answer.

A Python thread cannot be killed, and a process per job would copy the models and pay a start-up
per replacement. So work is stopped cooperatively, at layer granularity: every module of a served
model gets a forward pre-hook (:func:`install_cancel_hooks`) that raises :class:`JobCancelled`
in a worker thread whose :class:`Job` is past its deadline or was cancelled. A timed-out restore
or generation is thus abandoned at its next layer (its next tile, its next batch), its worker
thread is free again and the request's locks are released. Outside a job (the CLI, training,
another thread) the hook does nothing. Work that calls no module (decoding, PNG encoding) is
bounded up front by the pixel limits and checked with :func:`check_cancelled` between steps.

:class:`ProgressTable`: the tiles done of the restore jobs a client named (``X-Resgan-Job``), for
``GET /v1/jobs/{id}``; bounded, and safe to report into from worker threads.
"""

from __future__ import annotations

import re
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch


class JobCancelled(Exception):
    """Raised inside a worker thread whose job is past its deadline or was cancelled."""


@dataclass(eq=False)
class Job:
    deadline: float  # time.monotonic() seconds
    started: float | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)

    def cancelled(self) -> bool:
        return self.cancel_event.is_set() or time.monotonic() >= self.deadline

    def cancel(self) -> None:
        self.cancel_event.set()


_local = threading.local()


@contextmanager
def running(job: Job) -> Iterator[None]:
    """Make ``job`` this thread's current job (what the hooks check) for the block."""
    _local.job = job
    try:
        yield
    finally:
        _local.job = None


def check_cancelled() -> None:
    """Raise :class:`JobCancelled` if this thread runs a job that is past its deadline or cancelled."""
    job = getattr(_local, "job", None)
    if job is not None and job.cancelled():
        raise JobCancelled


def _pre_hook(module: torch.nn.Module, args: tuple) -> None:
    check_cancelled()


_hooked: weakref.WeakSet[torch.nn.Module] = weakref.WeakSet()


def install_cancel_hooks(model: torch.nn.Module) -> None:
    """A cancellation check before the forward of every module of ``model`` (once per module)."""
    for m in model.modules():
        if m not in _hooked:
            m.register_forward_pre_hook(_pre_hook)
            _hooked.add(m)


@contextmanager
def job_lock(lock: threading.Lock, poll_s: float = 0.05) -> Iterator[None]:
    """Hold ``lock``; while waiting for it, a cancelled job gives up (raises JobCancelled)."""
    while not lock.acquire(timeout=poll_s):
        check_cancelled()
    try:
        yield
    finally:
        lock.release()


# ---------------------------------------------------------------- progress of named jobs

JOB_ID_RE = re.compile(r"[A-Za-z0-9_-]{8,64}")


@dataclass(eq=False)
class JobProgress:
    """One named job: ``queued`` until a worker starts it, ``running`` (tiles ``done`` of
    ``total``), then ``done`` or ``failed``. Reports after the end (a timed-out job still finishing
    its layer) are ignored."""

    admitted: float  # time.monotonic()
    lock: threading.Lock
    state: str = "queued"
    done: int = 0
    total: int = 0
    ended: float | None = None

    def start(self) -> None:
        with self.lock:
            if self.ended is None:
                self.state = "running"

    def report(self, done: int, total: int) -> None:
        """The progress callback of :func:`resgan.restore.infer.restore_array`."""
        with self.lock:
            if self.ended is None:
                self.state, self.done, self.total = "running", done, total

    def finish(self, ok: bool) -> None:
        with self.lock:
            if self.ended is None:
                self.state, self.ended = "done" if ok else "failed", time.monotonic()

    def info(self, now: float) -> dict:
        with self.lock:
            return {"state": self.state, "done": self.done, "total": self.total,
                    "elapsed_s": round((self.ended or now) - self.admitted, 2)}


class ProgressTable:
    """Named jobs by id: at most ``max_entries`` (when full, the oldest finished entry goes, else the
    oldest), a finished one forgotten ``keep_s`` after its end. Thread-safe."""

    def __init__(self, max_entries: int = 256, keep_s: float = 60.0):
        self.max_entries, self.keep_s = max(1, max_entries), keep_s
        self._jobs: OrderedDict[str, JobProgress] = OrderedDict()
        self._lock = threading.Lock()  # one lock for the table and its entries

    def _forget_old(self, now: float) -> None:
        for k in [k for k, j in self._jobs.items() if j.ended is not None and now - j.ended > self.keep_s]:
            del self._jobs[k]

    def add(self, job_id: str) -> JobProgress | None:
        """A new entry for ``job_id``; None while a job of that id is still queued or running."""
        now = time.monotonic()
        with self._lock:
            self._forget_old(now)
            old = self._jobs.get(job_id)
            if old is not None and old.ended is None:
                return None
            self._jobs.pop(job_id, None)
            while len(self._jobs) >= self.max_entries:
                victim = next((k for k, j in self._jobs.items() if j.ended is not None), next(iter(self._jobs)))
                del self._jobs[victim]
            job = self._jobs[job_id] = JobProgress(now, self._lock)
            return job

    def get(self, job_id: str) -> dict:
        """``{state, done, total, elapsed_s}``; state ``unknown`` (elapsed_s None) for an id never
        sent, forgotten or evicted."""
        now = time.monotonic()
        with self._lock:
            self._forget_old(now)
            job = self._jobs.get(job_id)
        if job is None:
            return {"state": "unknown", "done": 0, "total": 0, "elapsed_s": None}
        return job.info(now)

    def __len__(self) -> int:
        with self._lock:
            return len(self._jobs)
