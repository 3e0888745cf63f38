"""Fetching live feeds over HTTP: one shared client and the fetch policy.

A `Fetcher` serves one run: one httpx client for every feed, and the rules that keep a run
polite and bounded:

- at most `concurrency` fetches in flight (the client's pool) and `per_host` to one host;
- a total deadline per fetch: httpx bounds each network operation, not the exchange, so the
  transport (`_transport`) gives every operation at most the time left (a server that drips
  a byte at a time is cut at the deadline, not kept alive for ever); connections are kept
  alive between fetches, and no thread watches over them;
- a size cap enforced while streaming, on the bytes as sent and once decompressed, so a
  gzip bomb stops at the cap instead of filling memory;
- conditional GET from stored validators (a 304 means nothing new);
- redirects followed by hand: a hop limit, loop detection, http(s) only, and a note when
  every hop was permanent so the caller can remember the new address;
- 429 and 503 pass the server's Retry-After on to the caller's back-off.

Every failure raises `FetchError` naming the URL and the reason.
"""

from __future__ import annotations

import email.utils
import importlib.metadata
import threading
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

import httpx

from aggregator import __version__, clock
from aggregator.config import FetchConfig
from aggregator.errors import FetchError
from aggregator.sources._transport import Deadline, DeadlineTransport, deadline

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
PERMANENT_REDIRECT_STATUSES = frozenset({301, 308})
RETRY_AFTER_STATUSES = frozenset({429, 503})
ALLOWED_SCHEMES = frozenset({"http", "https"})
ACCEPT = (
    "application/atom+xml, application/rss+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.8, text/xml;q=0.8, */*;q=0.5"
)
# Only what this module decodes itself: brotli or zstd would slip past the size cap.
ACCEPT_ENCODING = "gzip, deflate"


@cache
def user_agent() -> str:
    """`newswire/<version> (+<project URL>)`: tells a publisher who fetches and where to ask."""
    try:
        urls = importlib.metadata.metadata("newswire").get_all("Project-URL") or []
    except importlib.metadata.PackageNotFoundError:
        urls = []
    homepage = next((u.split(",", 1)[1].strip() for u in urls if u.startswith("Homepage,")), "")
    return f"newswire/{__version__} (+{homepage})" if homepage else f"newswire/{__version__}"


@dataclass(frozen=True, slots=True)
class Validators:
    """What a server said to recognise its version of a document next time."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class Response:
    """A fetch that worked: the document (2xx) or "not modified" (304)."""

    url: str
    """The URL that answered, after any redirects."""
    status: int
    body: bytes
    headers: Mapping[str, str]
    """Response headers, names lowercased."""
    moved_to: str | None
    """The new address when every redirect was permanent (301/308), else None."""

    @property
    def not_modified(self) -> bool:
        """The server's copy is the one we already have."""
        return self.status == 304

    @property
    def validators(self) -> Validators:
        """The ETag and Last-Modified the server sent with this response."""
        return Validators(self.headers.get("etag"), self.headers.get("last-modified"))


class Fetcher:
    """One run's HTTP client and policy; fetch from many threads, then close."""

    def __init__(self, policy: FetchConfig) -> None:
        self.policy = policy
        self._client = httpx.Client(
            headers={
                "User-Agent": user_agent(),
                "Accept": ACCEPT,
                "Accept-Encoding": ACCEPT_ENCODING,
            },
            follow_redirects=False,
            # Keep-alive: feeds on one host reuse its connections (a TLS handshake saved
            # per feed); the transport holds every operation to the fetch's deadline.
            transport=DeadlineTransport(max_connections=policy.concurrency),
            timeout=policy.timeout,
            # Proxies from the environment would bypass the transport, and its deadline.
            trust_env=False,
        )
        self._host_slots: dict[str, threading.BoundedSemaphore] = {}
        self._slots_lock = threading.Lock()

    def close(self) -> None:
        """Close the client and its connections."""
        self._client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def fetch(self, url: str, validators: Validators | None = None) -> Response:
        """GET `url` under the policy; FetchError for anything but a document or a 304."""
        conditional = _conditional_headers(validators)
        visited = [url]
        permanent = True
        current = url
        limit: Deadline | None = None
        for hop in range(self.policy.max_redirects + 1):
            with self._host_slot(url, current, limit):
                # The clock starts once the first host lets us in: waiting behind other
                # fetches to the same host is politeness, not slowness.
                limit = limit or Deadline(self.policy.timeout)
                with deadline(limit):
                    status, headers, body = self._exchange(url, current, conditional, limit)
            if status not in REDIRECT_STATUSES:
                return Response(
                    url=current, status=status, body=body, headers=headers,
                    moved_to=current if hop and permanent else None,
                )
            target = _redirect_target(url, current, headers)
            if target in visited:
                chain = " -> ".join([*visited[visited.index(target):], target])
                raise FetchError(url, f"redirect loop: {chain}", status=status)
            if hop == self.policy.max_redirects:
                raise FetchError(
                    url, f"too many redirects (more than {self.policy.max_redirects}; "
                    f"the last went to {target})", status=status,
                )
            permanent = permanent and status in PERMANENT_REDIRECT_STATUSES
            visited.append(target)
            current = target
        raise AssertionError("unreachable: the loop returns or raises")

    def _exchange(
        self, url: str, current: str, conditional: Mapping[str, str], limit: Deadline
    ) -> tuple[int, dict[str, str], bytes]:
        """One request and its response: status, lowercased headers, body (2xx only)."""
        where = "" if current == url else f" (at {current})"
        try:
            with self._client.stream(
                "GET", current, headers=conditional,
                timeout=httpx.Timeout(max(limit.remaining(), 0.001)),
            ) as response:
                status = response.status_code
                headers = {k.lower(): v for k, v in response.headers.items()}
                if status in REDIRECT_STATUSES or status == 304:
                    body = b""
                elif 200 <= status < 300:
                    body = _read_capped(response, url, where, self.policy.max_bytes)
                else:
                    raise _status_error(url, where, response)
                return status, headers, body
        except (httpx.HTTPError, OSError) as exc:
            # The deadline surfaces as a timeout of whichever operation was under way.
            if limit.expired:
                raise FetchError(
                    url, f"gave up after {self.policy.timeout:g} s{where}: the whole fetch "
                    "must finish within [fetch] timeout",
                ) from None
            raise FetchError(url, f"{_describe(exc)}{where}") from None

    @contextmanager
    def _host_slot(self, url: str, current: str, limit: Deadline | None) -> Iterator[None]:
        """Hold one of the `per_host` slots of the host `current` is on."""
        try:
            parsed = httpx.URL(current)
        except httpx.InvalidURL as exc:
            raise FetchError(url, f"invalid URL {current!r}: {exc}") from None
        host = f"{parsed.scheme}://{parsed.host}:{parsed.port or ''}"
        with self._slots_lock:
            slot = self._host_slots.setdefault(
                host, threading.BoundedSemaphore(self.policy.per_host)
            )
        timeout = None if limit is None else limit.remaining()
        if not slot.acquire(timeout=timeout):
            raise FetchError(
                url, f"gave up after {self.policy.timeout:g} s waiting to connect to {host}"
            )
        try:
            yield
        finally:
            slot.release()


def _conditional_headers(validators: Validators | None) -> dict[str, str]:
    headers = {}
    if validators is not None and validators.etag:
        headers["If-None-Match"] = validators.etag
    if validators is not None and validators.last_modified:
        headers["If-Modified-Since"] = validators.last_modified
    return headers


def _redirect_target(url: str, current: str, headers: Mapping[str, str]) -> str:
    location = headers.get("location", "").strip()
    if not location:
        raise FetchError(url, f"redirect without a Location header (at {current})")
    try:
        target = httpx.URL(current).join(location)
    except httpx.InvalidURL as exc:
        raise FetchError(url, f"redirect to an invalid URL {location!r}: {exc}") from None
    if target.scheme not in ALLOWED_SCHEMES:
        raise FetchError(
            url, f"redirect to {str(target)!r} refused: only http and https URLs are fetched"
        )
    return str(target)


def _read_capped(response: httpx.Response, url: str, where: str, limit: int) -> bytes:
    """The decoded body, failing as soon as it passes `limit` bytes sent or decompressed."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise FetchError(url, f"response too large{where}: {int(declared):,} bytes "
                         f"(limit {limit:,}, [fetch] max_bytes)")
    decoder = _Decoder.for_encoding(response.headers.get("content-encoding", ""), url, limit)
    received = 0
    parts: list[bytes] = []
    for chunk in response.iter_raw():
        received += len(chunk)
        if received > limit:
            raise FetchError(url, f"response too large{where}: more than {limit:,} bytes "
                             "([fetch] max_bytes)")
        parts.append(decoder.feed(chunk))
    parts.append(decoder.finish())
    return b"".join(parts)


class _Decoder:
    """Undoes a Content-Encoding, never producing more than `limit` bytes in all.

    zlib with `max_length` rather than httpx's decoders: those inflate a whole chunk at
    once, so a small chunk of a gzip bomb could expand a thousandfold before any check.
    """

    def __init__(self, url: str, limit: int, wbits: int | None, name: str) -> None:
        self._url = url
        self._limit = limit
        self._name = name
        self._wbits = wbits
        self._zlib = zlib.decompressobj(wbits) if wbits is not None else None
        self._produced = 0
        self._started = False

    @classmethod
    def for_encoding(cls, header: str, url: str, limit: int) -> _Decoder:
        """The decoder for a Content-Encoding header value; FetchError if we cannot decode it."""
        name = header.strip().lower()
        if name in ("", "identity"):
            return cls(url, limit, None, "identity")
        if name in ("gzip", "x-gzip"):
            return cls(url, limit, 16 + zlib.MAX_WBITS, "gzip")
        if name == "deflate":
            return cls(url, limit, zlib.MAX_WBITS, "deflate")
        raise FetchError(url, f"unsupported Content-Encoding {header!r} "
                         f"(we asked for {ACCEPT_ENCODING})")

    def feed(self, data: bytes) -> bytes:
        """Decode the next piece of the body."""
        if self._zlib is None:
            return data
        try:
            out = self._inflate(data)
        except zlib.error as exc:
            if self._name != "deflate" or self._started:
                raise FetchError(self._url, f"corrupt {self._name} body: {exc}") from None
            # "deflate" is often sent as a raw stream without the zlib header.
            self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
            try:
                out = self._inflate(data)
            except zlib.error as exc2:
                raise FetchError(self._url, f"corrupt deflate body: {exc2}") from None
        self._started = True
        return out

    def finish(self) -> bytes:
        """Whatever the decoder still holds at the end of the body."""
        if self._zlib is None:
            return b""
        try:
            tail = self._zlib.flush()
        except zlib.error as exc:
            raise FetchError(self._url, f"corrupt {self._name} body: {exc}") from None
        self._count(len(tail))
        return tail

    def _inflate(self, data: bytes) -> bytes:
        assert self._zlib is not None
        pieces = []
        while data and not self._zlib.eof:
            # One byte more than the room left: producing it proves the body too large.
            piece = self._zlib.decompress(data, self._limit - self._produced + 1)
            self._count(len(piece))
            pieces.append(piece)
            data = self._zlib.unconsumed_tail
        return b"".join(pieces)

    def _count(self, produced: int) -> None:
        self._produced += produced
        if self._produced > self._limit:
            raise FetchError(self._url, f"response too large once decompressed: more than "
                             f"{self._limit:,} bytes ([fetch] max_bytes); a compression bomb?")


def _status_error(url: str, where: str, response: httpx.Response) -> FetchError:
    status = response.status_code
    # The standard phrase: servers send anything there ("TOO MANY REQUESTS", nothing at all).
    phrase = httpx.codes.get_reason_phrase(status) or response.reason_phrase
    reason = f"HTTP {status} {phrase}".rstrip() + where
    if status in RETRY_AFTER_STATUSES:
        dates = response.headers.get_list("date")
        wait = retry_after_seconds(response.headers.get("retry-after"),
                                   dates[0] if len(dates) == 1 else None)
        if wait is not None:
            return FetchError(url, f"{reason}; the server asks us to wait "
                              f"{_wait_phrase(response.headers['retry-after'], wait)}",
                              status=status, retry_after=wait)
    if status == 410:
        reason += ": the feed is gone for good; remove it from the config or update its url"
    return FetchError(url, reason, status=status)


def _wait_phrase(header: str, seconds: float) -> str:
    """How long a Retry-After asks, for a person: `120 s`, `30 min`, `until <date> (3 days)`."""
    length = human_duration(seconds)
    until = None if header.strip().isdigit() else _http_date(header.strip())
    if until is None:
        return length
    return f"until {until.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z ({length})"


def human_duration(seconds: float) -> str:
    """A duration as a person says it: `45 s`, `30 min`, `5 h`, `3 days`, `72 years`."""
    for limit, unit, size in ((600, "s", 1), (7200, "min", 60), (172800, "h", 3600),
                              (2 * 365 * 86400, "days", 86400)):
        if seconds < limit:
            return f"{round(seconds / size):d} {unit}"
    return f"{round(seconds / (365.25 * 86400)):d} years"


def retry_after_seconds(value: str | None, server_date: str | None = None) -> float | None:
    """Seconds a Retry-After header asks for (delay-seconds or an HTTP date), or None.

    An HTTP date is measured from the response's own Date header when it has one, so a
    server whose clock differs from ours still gets the wait it asked for.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    until = _http_date(text)
    if until is None:
        return None
    since = _http_date(server_date) if server_date else None
    return max(0.0, (until - (since or clock.now())).total_seconds())


def _http_date(text: str) -> datetime | None:
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _describe(exc: httpx.HTTPError | OSError) -> str:
    """A short reason for a transport error, without httpx's internals."""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return f"no response in time ({detail})"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect: {detail}"
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return f"invalid URL: {detail}"
    return f"network error: {detail}"
