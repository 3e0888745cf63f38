"""An httpx transport whose every network operation ends by the running fetch's deadline.

httpx bounds each operation (connect, one read, one write), not an exchange: a server that
sends a byte now and then would keep a fetch alive for ever. Here each operation gets at
most the time left before the deadline of the fetch running in the calling thread (set
with `deadline`), so a slow drip is cut when the time is up — on a new connection or a
kept-alive one alike, with no watchdog thread.

The transport is httpcore's connection pool with a network backend that applies the
deadline; it maps httpcore's errors to httpx's, as httpx's own transport does.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import certifi
import httpcore
import httpx

_ENDS: ContextVar[float | None] = ContextVar("newswire_fetch_deadline", default=None)
"""When the fetch running in this thread must end (time.monotonic), or None."""

_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
)


class Deadline:
    """A fetch's total time limit."""

    def __init__(self, seconds: float) -> None:
        self.ends = time.monotonic() + seconds

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.ends - time.monotonic())

    @property
    def expired(self) -> bool:
        """The time is up (within a few milliseconds: a socket timeout ends about then)."""
        return self.remaining() < 0.01


@contextmanager
def deadline(limit: Deadline) -> Iterator[Deadline]:
    """Bound every network operation in this thread by `limit` while inside."""
    token = _ENDS.set(limit.ends)
    try:
        yield limit
    finally:
        _ENDS.reset(token)


def _bounded(timeout: float | None, expired: type[httpcore.TimeoutException]) -> float | None:
    """The operation's own timeout, or the time left before the deadline if shorter."""
    ends = _ENDS.get()
    if ends is None:
        return timeout
    left = ends - time.monotonic()
    if left <= 0:
        raise expired("the fetch's deadline has passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose reads and writes end by the deadline of whichever fetch uses it."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._stream.start_tls(
            ssl_context, server_hostname, _bounded(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """The standard socket backend, with connects and connections under the deadline."""

    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self, host: str, port: int, timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(self._backend.connect_tcp(
            host, port, _bounded(timeout, httpcore.ConnectTimeout), local_address,
            socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(self._backend.connect_unix_socket(
            path, _bounded(timeout, httpcore.ConnectTimeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class DeadlineTransport(httpx.BaseTransport):
    """HTTP/1.1 over keep-alive connection pools, every operation under the deadline.

    Plain-HTTP and HTTPS requests have a pool each, so a run that fetches only http URLs
    never pays for loading the CA certificates.
    """

    def __init__(self, max_connections: int, keepalive_expiry: float = 5.0) -> None:
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._plain = self._new_pool(None)
        self._secure: httpcore.ConnectionPool | None = None
        self._lock = threading.Lock()

    def _new_pool(self, ssl_context: ssl.SSLContext | None) -> httpcore.ConnectionPool:
        return httpcore.ConnectionPool(
            ssl_context=ssl_context, max_connections=self._max_connections,
            max_keepalive_connections=self._max_connections,
            keepalive_expiry=self._keepalive_expiry, network_backend=_DeadlineBackend(),
        )

    def _pool(self, scheme: bytes) -> httpcore.ConnectionPool:
        if scheme != b"https":
            return self._plain
        with self._lock:
            if self._secure is None:
                self._secure = self._new_pool(
                    ssl.create_default_context(cafile=certifi.where()))
            return self._secure

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=request.url.raw_scheme, host=request.url.raw_host,
                             port=request.url.port, target=request.url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _httpx_errors(request):
            response = self._pool(request.url.raw_scheme).handle_request(core_request)
        assert isinstance(response.stream, Iterable)
        return httpx.Response(
            status_code=response.status, headers=response.headers,
            stream=_ResponseStream(response.stream, request), extensions=response.extensions,
        )

    def close(self) -> None:
        self._plain.close()
        with self._lock:
            if self._secure is not None:
                self._secure.close()


class _ResponseStream(httpx.SyncByteStream):
    def __init__(self, stream: Iterable[bytes], request: httpx.Request) -> None:
        self._stream = stream
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        with _httpx_errors(self._request):
            yield from self._stream

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


@contextmanager
def _httpx_errors(request: httpx.Request) -> Iterator[None]:
    """httpcore's exceptions as the httpx ones callers catch."""
    try:
        yield
    except Exception as exc:
        for core_error, httpx_error in _ERRORS:
            if isinstance(exc, core_error):
                raise httpx_error(str(exc), request=request) from exc
        raise
