"""Limits that keep the HTTP server up against slow, greedy or hostile clients.

uvicorn's httptools protocol, with what it lacks for a server facing the internet:

- a cap on the request line and headers (`MAX_HEADER_BYTES`, `MAX_HEADERS`): past it the
  client gets `431` and the connection closes, so one request cannot grow the daemon;
- a request-read timeout: a client has `read_timeout` seconds from connecting (or from the
  end of its previous response) to send a whole request head, however slowly it trickles;
- a connection cap well under the process's file limit, so a run always has descriptors:
  at the cap, the connection that has waited longest without a request in progress is
  closed to make room (a slow client loses its place, a new request is served); when every
  connection is busy, the newcomer gets `503`;
- accept errors (the file limit reached anyway) logged at most once per interval, with a count.

uvicorn's own `timeout_keep_alive` closes idle keep-alive connections.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEADER_BYTES = 32 * 1024
"""Request line and headers together; a bigger request head gets 431."""
MAX_HEADERS = 100
"""Header fields in one request; more get 431."""
_SLICE = 8 * 1024
"""Bytes fed to the parser at a time, so the header count never runs more than this past
the cap before it is checked."""
ACCEPT_ERROR_INTERVAL = 10.0
"""Seconds between two log lines about failing accepts."""


def connection_cap(reserve_fraction: float = 0.5) -> int:
    """Connections served at once: half the soft file limit (the rest is for runs), 16-4096."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 65536
    return max(16, min(4096, int(soft * reserve_fraction)))


@dataclass(slots=True)
class ConnectionLimits:
    """The limits of one server, and the connections they watch."""

    read_timeout: float
    max_connections: int
    open: set[LimitedHttpProtocol] = field(default_factory=set)
    waiting: OrderedDict[LimitedHttpProtocol, float] = field(default_factory=OrderedDict)
    """Connections without a request in progress (reading a request head, or idle), with
    the monotonic time they started waiting, oldest first: the ones to close when the cap
    is reached, and the ones the sweep times out."""
    evicted: int = 0
    refused: int = 0
    timed_out: int = 0
    sweeping: bool = False

    def await_request(self, connection: LimitedHttpProtocol, now: float) -> None:
        """`connection` waits for a request head from `now` on."""
        # Never waiting already (a request in progress took it out), so this lands last.
        self.waiting[connection] = now
        if not self.sweeping:
            self.sweeping = True
            connection.loop.call_later(self._sweep_interval(), self._sweep, connection.loop)

    def _sweep_interval(self) -> float:
        return max(0.05, min(1.0, self.read_timeout / 4))

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close the connections that waited longer than the read timeout. One timer for
        all connections, not one per request: the oldest wait first, so this stops at the
        first connection still in time."""
        deadline = time.monotonic() - self.read_timeout
        waiting = self.waiting
        while waiting:
            connection, since = next(iter(waiting.items()))
            if since > deadline:
                break
            del waiting[connection]
            if connection.transport is not None and not connection.transport.is_closing():
                self.timed_out += 1
                connection.transport.close()
        if waiting:
            loop.call_later(self._sweep_interval(), self._sweep, loop)
        else:
            self.sweeping = False


def protocol_for(limits: ConnectionLimits) -> type[LimitedHttpProtocol]:
    """A protocol class bound to `limits` (uvicorn creates one instance per connection)."""

    class Bound(LimitedHttpProtocol):
        _limits = limits

    return Bound


class LimitedHttpProtocol(HttpToolsProtocol):
    """httptools' protocol with header, time and connection limits (see the module doc)."""

    _limits: ConnectionLimits

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._reading_head = True

    # -- connection ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        limits = self._limits
        if len(limits.open) >= limits.max_connections and not self._make_room():
            limits.refused += 1
            transport.write(_response(503, "too many connections\n"))
            transport.close()
            return
        super().connection_made(transport)
        limits.open.add(self)
        self._await_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self._limits.open.discard(self)
        self._limits.waiting.pop(self, None)
        if self.transport is not None:
            super().connection_lost(exc)

    def _make_room(self) -> bool:
        """Close the connection that has waited longest for a request; False if none waits."""
        limits = self._limits
        while limits.waiting:
            oldest, _ = limits.waiting.popitem(last=False)
            limits.open.discard(oldest)
            if oldest.transport is not None and not oldest.transport.is_closing():
                limits.evicted += 1
                oldest.transport.close()
                return True
        return False

    # -- request head -------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if len(data) <= _SLICE:  # the common case: a whole small request, no copy
            self._take(data)
            return
        for start in range(0, len(data), _SLICE):
            if self.transport.is_closing():
                return
            self._take(data[start : start + _SLICE])

    def _take(self, chunk: bytes) -> None:
        if self._reading_head:
            self._head_bytes += len(chunk)
            if self._head_bytes > MAX_HEADER_BYTES:
                self._refuse_head()
                return
        super().data_received(chunk)
        # Counted per slice, not per header: no cost on the path every request takes.
        if (self._reading_head and self.headers and len(self.headers) > MAX_HEADERS
                and not self.transport.is_closing()):
            self._refuse_head()

    def on_headers_complete(self) -> None:
        if len(self.headers) > MAX_HEADERS:
            self._refuse_head()
            return
        self._reading_head = False
        self._head_bytes = 0
        self._limits.waiting.pop(self, None)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self.cycle is not None and not self.transport.is_closing():
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self.cycle is not None and not self.transport.is_closing():
            super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self._await_request()

    def _await_request(self) -> None:
        """From now, a whole request head must arrive within the read timeout."""
        self._reading_head = True
        self._head_bytes = 0
        self._limits.await_request(self, time.monotonic())

    def _refuse_head(self) -> None:
        self._limits.waiting.pop(self, None)
        self.transport.write(_response(431, "request header fields too large\n"))
        self.transport.close()


def _response(status: int, text: str) -> bytes:
    reason = {431: "Request Header Fields Too Large", 503: "Service Unavailable"}[status]
    body = text.encode()
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body


class AcceptErrorThrottle(logging.Filter):
    """Lets through one asyncio "accept" error per interval, saying how many it stood for.

    When the process is out of descriptors every accept fails at once and again after a
    second: without this, each failure is a multi-line traceback in the log.
    """

    def __init__(self, interval: float = ACCEPT_ERROR_INTERVAL) -> None:
        super().__init__()
        self._interval = interval
        self._last = float("-inf")
        self._count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if "accept" not in record.getMessage():
            return True
        self._count += 1
        now = time.monotonic()
        if now - self._last < self._interval:
            return False
        error = record.exc_info[1] if record.exc_info else None
        reason = getattr(error, "strerror", None) or str(error or "unknown error")
        record.msg = "cannot accept connections: %s (%d failed accepts since the last report)"
        record.args = (reason, self._count)
        record.exc_info = None
        record.exc_text = None
        self._last, self._count = now, 0
        return True
