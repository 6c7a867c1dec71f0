"""Deadlines that stop a request's work (``resgan serve``), not only its answer.

A Python thread cannot be killed, and a process per job would copy the models and pay a start-up
per replacement. So work is stopped cooperatively, at layer granularity: every module of a served
model gets a forward pre-hook (:func:`install_cancel_hooks`) that raises :class:`JobCancelled`
in a worker thread whose :class:`Job` is past its deadline or was cancelled. A timed-out restore
or generation is thus abandoned at its next layer (its next tile, its next batch), its worker
thread is free again and the request's locks are released. Outside a job (the CLI, training,
another thread) the hook does nothing. Work that calls no module (decoding, PNG encoding) is
bounded up front by the pixel limits and checked with :func:`check_cancelled` between steps.
"""

from __future__ import annotations

import threading
import time
import weakref
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
