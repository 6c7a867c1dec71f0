"""The work queue of ``resgan serve``: a bounded worker pool behind a bounded queue, with deadlines
that stop a request's work (:mod:`.jobs`), not only its answer."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from .jobs import Job, JobCancelled, running
from .limits import ApiError


class WorkQueue:
    """At most ``workers`` jobs run at once (threads, off the event loop) and at most ``queue``
    wait; beyond that, 503 at once. A job past ``timeout_s`` (queue wait included) is 504: a
    queued job is dropped, a running one is stopped at its next layer (:mod:`.jobs`: every
    module of a served model checks the deadline) and then frees its slot."""

    def __init__(self, workers: int, queue: int, timeout_s: float, stuck_after_s: float = 10.0):
        self.workers = max(1, workers)
        self.executor = ThreadPoolExecutor(self.workers, thread_name_prefix="resgan-infer")
        self.capacity, self.timeout_s, self.stuck_after_s = self.workers + max(0, queue), timeout_s, stuck_after_s
        self.pending = 0
        self.stopped = 0  # jobs stopped past their deadline
        self.running: set[Job] = set()
        self._lock = threading.Lock()

    def _done(self, fut: Future | None) -> None:
        with self._lock:
            self.pending -= 1

    def _call(self, job: Job, fn, args):
        if job.cancelled():  # its deadline passed while it waited: it never starts
            raise JobCancelled
        with self._lock:
            job.started = time.monotonic()
            self.running.add(job)
        try:
            with running(job):
                return fn(*args)
        except JobCancelled:
            with self._lock:
                self.stopped += 1
            raise
        finally:
            with self._lock:
                self.running.discard(job)

    def health(self) -> dict[str, Any]:
        """Jobs running, how many of them are past their deadline (being stopped), and whether every
        worker is held by one more than ``stuck_after_s`` past it (nothing can be served)."""
        now = time.monotonic()
        with self._lock:
            late = [j.deadline for j in self.running if now > j.deadline]
            n_running = len(self.running)
        stuck = sum(now > d + self.stuck_after_s for d in late) >= self.workers
        return {"status": "stuck" if stuck else "ok", "pending": self.pending, "capacity": self.capacity,
                "running": n_running, "cancelling": len(late), "stopped": self.stopped}

    async def run(self, fn, *args):
        with self._lock:
            if self.pending >= self.capacity:
                raise ApiError(503, f"server busy ({self.pending} requests queued or running); retry later",
                               {"Retry-After": "1"})
            self.pending += 1
        job = Job(time.monotonic() + self.timeout_s)
        try:
            fut = self.executor.submit(self._call, job, fn, args)
        except BaseException:
            self._done(None)
            raise
        fut.add_done_callback(self._done)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), self.timeout_s)
        except (asyncio.TimeoutError, JobCancelled):
            job.cancel()
            fut.cancel()
            raise ApiError(504, f"the request took longer than the server's {self.timeout_s:g} s limit; "
                                "its work was stopped") from None
        except asyncio.CancelledError:  # the request itself was cancelled (shutdown): stop its work too
            job.cancel()
            fut.cancel()
            raise

    def shutdown(self) -> None:
        with self._lock:
            for job in self.running:  # running work stops at its next layer too
                job.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)
