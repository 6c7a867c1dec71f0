"""Connection guards for ``resgan serve``: uvicorn's h11 protocol with read deadlines, a request
line limit, a connection cap that sheds idle connections, and replies that do not reset.

uvicorn alone keeps a connection that never sends a byte (or sends half a request head) open for
good, and its ``limit_concurrency`` counts such connections, so ~100 of them made every request
a 503. Here:

- a request head must arrive within ``header_timeout_s`` of the connection opening (or of the
  previous response on a kept-alive connection), else the connection is closed: silently if
  nothing was sent, with 408 if part of a head was;
- a request body must start within ``body_timeout_s`` and then keep up ``body_min_rate`` bytes/s
  on average (the deadline moves ``1 / body_min_rate`` s later per byte received), else 408;
- a request line (method, URL, version) over ``max_request_line`` bytes is 414, a head over
  ``max_head`` bytes 431, an unparsable one 400: JSON, like the app's errors;
- beyond ``max_connections`` open connections, the oldest connection waiting for a request head
  is closed to make room (a newcomer gets 503 only if none is idle);
- these replies are written, then the connection is half-closed and drained for ``linger_s``
  before it is closed, so a client still sending a long URL or body reads the status instead of a
  reset (closing a socket with unread data makes the kernel send RST);
- a client that half-closes its side (``shutdown(SHUT_WR)``, an EOF) after a complete request gets
  its response, and then the connection is closed (uvicorn alone closes on EOF and the response is
  lost); one that half-closes in the middle of a request head or body gets 400 (there is no more to
  come); one that half-closes between requests is closed silently.

Requests in progress are capped by :class:`InFlightLimit` (an ASGI middleware: JSON 503), not by
connections; ``/healthz`` is exempt, so it keeps answering. Only the h11 implementation is
guarded: :func:`server_options` selects it whatever else is installed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import h11
from starlette.responses import JSONResponse
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("resgan.serve")
REASONS = {400: "Bad Request", 408: "Request Timeout", 414: "URI Too Long",
           431: "Request Header Fields Too Large", 503: "Service Unavailable"}


@dataclass(eq=False)
class Guard:
    """The limits, and the open connections of one server (oldest first)."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 20.0
    body_min_rate: float = 16 * 1024
    max_request_line: int = 8192
    max_head: int = 16 * 1024
    max_connections: int = 512
    linger_s: float = 2.0
    conns: dict[Any, None] = field(default_factory=dict)
    _timer: asyncio.TimerHandle | None = None

    @property
    def tick(self) -> float:
        return max(0.05, min(1.0, self.header_timeout_s / 4, self.body_timeout_s / 4))

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is None:
            self._timer = loop.call_later(self.tick, self._sweep, loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        now = time.monotonic()
        for p in list(self.conns):
            p.check_deadlines(now)
        if self.conns:
            self.watch(loop)

    def shed(self, newcomer: GuardedH11Protocol) -> None:
        """Over ``max_connections``: close the oldest connection waiting for a request head."""
        for p in self.conns:
            if p is not newcomer and not p.rejected and p.waiting_for_head():
                p.expire_head("closed to make room for a new connection")
                return
        newcomer.reject(503, f"too many connections ({len(self.conns)} open); retry later")


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the guards above; :func:`guarded_h11` binds it to a :class:`Guard`."""

    guard: Guard

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.rejected = False  # a guard's reply was written: everything after it is discarded
        self.client_eof = False  # the client half-closed its side (eof_received)
        self._new_head_phase()
        g = self.guard
        g.conns[self] = None
        if len(g.conns) > g.max_connections:
            g.shed(self)
        g.watch(self.loop)

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.conns.pop(self, None)
        super().connection_lost(exc)

    def _new_head_phase(self) -> None:
        self._phase_start = time.monotonic()
        self._head_bytes = 0  # bytes of the request head so far
        self._line_done = False
        self._tail = b""  # the last 3 bytes, to find b"\r\n\r\n" across reads
        self._body_deadline: float | None = None

    def waiting_for_head(self) -> bool:
        return self.conn.their_state is h11.IDLE and (self.cycle is None or self.cycle.response_complete)

    def data_received(self, data: bytes) -> None:
        if self.rejected:
            return  # draining after a reply
        g = self.guard
        if self.waiting_for_head():
            seen = self._tail + data
            if not self._line_done:
                nl = data.find(b"\n")
                line = self._head_bytes + (nl if nl >= 0 else len(data))
                if line > g.max_request_line:
                    return self.reject(414, f"request line (method, URL and version) over the server's limit of "
                                            f"{g.max_request_line:,} bytes")
                self._line_done = nl >= 0
            end = seen.find(b"\r\n\r\n")
            head = self._head_bytes + (end + 4 - len(self._tail) if end >= 0 else len(data))
            if head > g.max_head:
                return self.reject(431, f"request head over the server's limit of {g.max_head:,} bytes")
            self._head_bytes += len(data)
            self._tail = seen[-3:]
        elif self.conn.their_state is h11.SEND_BODY and self._body_deadline is not None:
            self._body_deadline += len(data) / g.body_min_rate
        super().data_received(data)
        if self.conn.their_state is h11.SEND_BODY and self._body_deadline is None:
            self._body_deadline = time.monotonic() + g.body_timeout_s

    def on_response_complete(self) -> None:
        self._new_head_phase()
        super().on_response_complete()  # starts a pipelined request already received, if any
        if self.client_eof and not self.rejected and not self.transport.is_closing() and self._after_eof() == "close":
            self.transport.close()  # the client has nothing more to send: everything is answered

    def eof_received(self) -> bool | None:
        """The client half-closed its side: keep ours open (True) while its requests are answered."""
        if self.rejected or self.transport.is_closing():
            return None  # a reply is written or the connection is going: the EOF closes it
        self.client_eof = True
        return None if self._after_eof() == "close" else True

    def _after_eof(self) -> str:
        """What the client's EOF means now: "close" (between requests, nothing buffered), "rejected"
        (a head or body cut short: 400) or "answer" (a complete request is being answered; checked
        again when its response is complete, for the pipelined requests behind it)."""
        if self.waiting_for_head():
            if self._head_bytes == 0 and not self.conn.trailing_data[0]:
                return "close"
            self.reject(400, "request head incomplete: the client closed its side before the head ended")
            return "rejected"
        if self.conn.their_state is h11.SEND_BODY:
            self.reject(400, "request body incomplete: the client closed its side before the body ended")
            return "rejected"
        return "answer"

    def send_400_response(self, msg: str) -> None:  # h11 could not parse the request
        self.reject(400, "invalid HTTP request")

    def check_deadlines(self, now: float) -> None:
        if self.rejected or self.transport.is_closing():
            return
        g = self.guard
        if self.waiting_for_head():
            if now - self._phase_start > g.header_timeout_s:
                self.expire_head(f"request head not received within the server's {g.header_timeout_s:g} s")
        elif self.conn.their_state is h11.SEND_BODY and self._body_deadline is not None and now > self._body_deadline:
            self.reject(408, f"request body too slow (it must start within {g.body_timeout_s:g} s and then "
                             f"average {g.body_min_rate:,.0f} bytes/s)")

    def expire_head(self, why: str) -> None:
        """A connection waiting for a request head: closed silently if it sent nothing, else 408."""
        if self._head_bytes == 0:
            self.rejected = True
            self.transport.close()
        else:
            self.reject(408, why)

    def reject(self, status: int, message: str) -> None:
        """Answer ``status`` (JSON) unless a response is already under way, then half-close, drain for
        ``linger_s`` and close. A request the app is handling sees a disconnect."""
        if self.rejected or self.transport.is_closing():
            return
        self.rejected = True
        self._unset_keepalive_if_required()
        log.warning("%s %s: %s", self.client[0] if self.client else "client", status, message)
        cycle = self.cycle
        reply = cycle is None or not cycle.response_started or self.waiting_for_head()
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()
        if reply:
            body = json.dumps({"error": message, "status": status}, separators=(",", ":")).encode()
            self.transport.write(f"HTTP/1.1 {status} {REASONS.get(status, '')}\r\ncontent-type: application/json\r\n"
                                 f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode() + body)
        try:
            if self.transport.can_write_eof():
                self.transport.write_eof()
            self.transport.resume_reading()
        except (OSError, RuntimeError):
            self.transport.close()
            return
        self.loop.call_later(self.guard.linger_s, self._close)

    def _close(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()


def guarded_h11(guard: Guard) -> type[GuardedH11Protocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` bound to ``guard`` (one per server)."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"guard": guard})


class InFlightLimit:
    """ASGI middleware: at most ``limit`` requests in progress (uploading, queued, computing,
    answering); one more gets JSON 503 at once. ``exempt`` paths (``/healthz``) are never refused."""

    def __init__(self, app, limit: int, exempt: tuple[str, ...] = ("/healthz",)):
        self.app, self.limit, self.exempt = app, limit, exempt
        self.count = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in self.exempt:
            return await self.app(scope, receive, send)
        if self.count >= self.limit:
            response = JSONResponse({"error": f"server busy ({self.count} requests in progress); retry later",
                                     "status": 503}, status_code=503, headers={"Retry-After": "1"})
            return await response(scope, receive, send)
        self.count += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.count -= 1
