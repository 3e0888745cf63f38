"""HTTP serving of the output directory, `/healthz` and `/metrics` (starlette on uvicorn).

Only published files are served: those the last publish listed in its manifest
(`aggregator.manifest`), never a hidden file (the lock, a temporary file), a stray file or a
directory listing. Each file is kept in
memory with its gzip twin and validators, and re-read only when its size, mtime or inode
changes; publishing renames whole files into place, so a reader sees the old file or the
new one. Conditional requests get 304s, the cheap path a feed reader polls.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import ipaddress
import logging
import os
import socket
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from aggregator.config import OutputConfig, ServeConfig
from aggregator.errors import ConfigError
from aggregator.logs import facts
from aggregator.manifest import Manifest
from aggregator.status import DaemonStatus
from aggregator.websub import HUB_PATH, MAX_REQUEST_BYTES, Hub

log = logging.getLogger(__name__)

CONTENT_TYPES = {
    ".atom": "application/atom+xml; charset=utf-8",
    ".rss": "application/rss+xml; charset=utf-8",
    ".json": "application/feed+json; charset=utf-8",
    ".opml": "text/x-opml; charset=utf-8",
    ".html": "text/html; charset=utf-8",
}
"""Media types by suffix (others go out as application/octet-stream)."""

_GZIP_MIN_SIZE = 512
"""Smaller bodies go out as they are: gzip's header would eat the saving."""
_LISTEN_BACKLOG = 2048
"""Connections the kernel queues before the server takes them."""
_ACCEPT_BATCH = 64
"""Connections the server accepts at a time (see `_Server.startup`)."""
_GRACEFUL_SHUTDOWN = 2
"""Seconds open connections get to finish on shutdown, within the daemon's stop budget."""


@dataclass(frozen=True, slots=True)
class Address:
    """Where to listen."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def resolve_address(option: str, config: ServeConfig) -> Address:
    """The address of `--serve [HOST:PORT]`; parts left out come from `[serve]`.

    Accepts `HOST:PORT`, `HOST`, `:PORT`, `PORT` and `[IPv6]:PORT`; raises ConfigError
    naming `--serve` for anything else.
    """
    text = option.strip()
    host, port_text = config.host, ""
    if not text:
        return Address(config.host, config.port)
    if text.isdigit():
        port_text = text
    elif text.startswith("["):
        inside, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ConfigError("--serve", None, f"{option!r}: expected [IPv6]:PORT")
        host, port_text = inside, rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        host = host or config.host
    elif ":" in text:
        host = text  # a bare IPv6 address
    else:
        host = text
    if not port_text:
        return Address(host, config.port)
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigError("--serve", None, f"{option!r}: the port must be a number 0-65535")
    return Address(host, int(port_text))


def listen(address: Address, *, where: str) -> socket.socket:
    """A listening socket on `address`; ConfigError naming `where` if it cannot be had.

    Bound before the first run, so a taken port costs nothing and says so at once.
    """
    try:
        infos = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(where, None, f"cannot listen on {address}: {exc.strerror}") from None
    family, kind, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        # A restarted daemon must not wait out the old one's TIME_WAIT connections.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(_LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        raise ConfigError(where, None, f"cannot listen on {address}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


@dataclass(frozen=True, slots=True)
class BaseUrlCheck:
    """What `--serve` makes of `[output] base_url`: a derived one, or a warning, or neither."""

    base_url: str
    """The base URL to publish with."""
    derived: bool = False
    warning: str | None = None


_WILDCARDS = frozenset({"0.0.0.0", "::", ""})


def check_base_url(output: OutputConfig, served: Address) -> BaseUrlCheck:
    """Compare the published base URL with the address the daemon serves on (pure).

    Left at its default, base_url follows the served address (`http://HOST:PORT/`), unless
    the daemon listens on every interface, where no single name is known: then a warning
    says to set it. Given in the config, it is kept; a warning says so when it names this
    machine (a loopback host) on another port or address, since links would then miss the
    server. A base_url naming another host is taken to be a reverse proxy, and left alone.
    """
    parts = urlsplit(output.base_url)
    host = (parts.hostname or "").lower()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    served_host = served.host.lower()
    same = (port == served.port and (host == served_host
                                     or (_loopback(host) and _loopback(served_host))))
    if not output.base_url_given:
        if served_host in _WILDCARDS:
            if port == served.port:
                return BaseUrlCheck(output.base_url)
            return BaseUrlCheck(output.base_url, warning=(
                f"[output] base_url is left at {output.base_url} but the daemon serves on "
                f"{served}: published links will not reach it; set base_url to the address "
                "readers use"))
        if same:
            return BaseUrlCheck(output.base_url)
        return BaseUrlCheck(f"http://{served}/", derived=True)
    if same or not _loopback(host):
        return BaseUrlCheck(output.base_url)
    return BaseUrlCheck(output.base_url, warning=(
        f"[output] base_url {output.base_url} names another address than the daemon serves "
        f"on ({served}): published links will not reach this server; fix base_url, or "
        "leave it out to follow --serve"))


def _loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bound_address(sock: socket.socket) -> Address:
    """The address a listening socket got (the real port when 0 was asked)."""
    host, port = sock.getsockname()[:2]
    return Address(str(host), int(port))


@dataclass(frozen=True, slots=True)
class CachedFile:
    """A published file in memory, with its gzip twin and validators."""

    key: tuple[int, int, int]
    """(size, mtime_ns, inode) when read: any change means the file was replaced."""
    body: bytes
    gzipped: bytes | None
    """None when gzip would not make it smaller."""
    etag: str
    etag_gzip: str
    last_modified: str
    """HTTP date of the mtime."""
    mtime: int
    """Whole seconds, as Last-Modified and If-Modified-Since compare."""
    content_type: str


class PublishedFiles:
    """The files the last publish listed (its manifest), cached in memory by size, mtime and
    inode. Anything else in the output directory is never served."""

    def __init__(self, out_dir: Path) -> None:
        self._dir = out_dir
        self._manifest = Manifest(out_dir)
        self._files: dict[str, CachedFile] = {}

    def get(self, name: str) -> CachedFile | None:
        """The file called `name` (a relative path) if it is published, else None."""
        if name not in self._manifest.names():
            self._files.pop(name, None)
            return None
        suffix = os.path.splitext(name)[1]
        content_type = CONTENT_TYPES.get(suffix, "application/octet-stream")
        path = os.path.join(self._dir, name)
        folder = name.rpartition("/")[0]
        try:
            if folder and not stat.S_ISDIR(os.lstat(os.path.join(self._dir, folder)).st_mode):
                return None  # a symlinked directory could lead anywhere
            info = os.lstat(path)  # lstat: a symlink is never followed out of the directory
        except OSError:
            self._files.pop(name, None)
            return None
        if not stat.S_ISREG(info.st_mode):
            return None
        cached = self._files.get(name)
        if cached is not None and cached.key == (info.st_size, info.st_mtime_ns, info.st_ino):
            return cached
        # Read synchronously: it happens once per published change, and a whole small file
        # costs less than handing it to a thread.
        try:
            with open(path, "rb") as handle:
                opened = os.fstat(handle.fileno())
                body = handle.read()
        except OSError:
            return None
        cached = _cache_entry(body, opened, content_type)
        self._files[name] = cached
        return cached


def _cache_entry(body: bytes, info: os.stat_result, content_type: str) -> CachedFile:
    digest = hashlib.blake2b(body, digest_size=16).hexdigest()
    gzipped = None
    if len(body) >= _GZIP_MIN_SIZE:
        packed = gzip.compress(body, compresslevel=6, mtime=0)
        gzipped = packed if len(packed) < len(body) else None
    mtime = int(info.st_mtime)
    return CachedFile(
        key=(info.st_size, info.st_mtime_ns, info.st_ino),
        body=body,
        gzipped=gzipped,
        # Strong validators of the bytes sent: the gzip twin is another representation.
        etag=f'"{digest}"',
        etag_gzip=f'"{digest}-gz"',
        last_modified=formatdate(mtime, usegmt=True),
        mtime=mtime,
        content_type=content_type,
    )


@lru_cache(maxsize=256)
def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding value admits gzip (`gzip;q=0` refuses it)."""
    star = False
    for part in accept_encoding.lower().split(","):
        coding, _, params = part.partition(";")
        coding = coding.strip()
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if coding in ("gzip", "x-gzip"):
            return quality > 0
        if coding == "*":
            star = quality > 0
    return star


def not_modified(headers: Mapping[str, str], etag: str, mtime: int) -> bool:
    """RFC 9110 conditional GET: If-None-Match wins; else If-Modified-Since."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        return _etag_listed(if_none_match, etag)
    if_modified_since = headers.get("if-modified-since")
    if if_modified_since is not None:
        since = _http_time(if_modified_since)
        return since is not None and mtime <= since
    return False


@lru_cache(maxsize=256)
def _etag_listed(if_none_match: str, etag: str) -> bool:
    if if_none_match.strip() == "*":
        return True
    # If-None-Match compares weakly: W/"x" matches "x".
    return any(tag.strip().removeprefix("W/") == etag for tag in if_none_match.split(","))


@lru_cache(maxsize=256)
def _http_time(value: str) -> int | None:
    try:
        return int(parsedate_to_datetime(value).timestamp())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


@dataclass(frozen=True, slots=True)
class ServeSettings:
    """What the HTTP side takes from the config; replaced on reload."""

    max_age: int
    """Cache-Control max-age of published files, in seconds."""


class Endpoints:
    """The request handlers: published files, health and metrics."""

    def __init__(self, out_dir: Path, status: DaemonStatus, settings: ServeSettings,
                 hub: Hub | None = None) -> None:
        self.files = PublishedFiles(out_dir)
        self.status = status
        self.settings = settings
        self.hub = hub

    async def published(self, request: Request) -> Response:
        """A published file (`/` is index.html), with validators, gzip and 304s."""
        return self._serve(request, request.path_params.get("name", "index.html"))

    def _serve(self, request: Request, name: str) -> Response:
        cached = self.files.get(name)
        if cached is None:
            return PlainTextResponse("not found\n", status_code=404)
        request_headers = request.headers
        use_gzip = cached.gzipped is not None and accepts_gzip(
            request_headers.get("accept-encoding", "")
        )
        etag = cached.etag_gzip if use_gzip else cached.etag
        headers = {
            "etag": etag,
            "last-modified": cached.last_modified,
            "cache-control": f"public, max-age={self.settings.max_age}",
            "vary": "Accept-Encoding",
            "x-content-type-options": "nosniff",
        }
        link = self.hub.discovery_link(name) if self.hub is not None else None
        if link is not None:
            headers["link"] = link  # WebSub discovery (its §4) in HTTP as well as in the feed
        if not_modified(request_headers, etag, cached.mtime):
            return Response(status_code=304, headers=headers)
        if use_gzip:
            headers["content-encoding"] = "gzip"
            body = cached.gzipped or b""
        else:
            body = cached.body
        return Response(body, headers=headers, media_type=cached.content_type)

    async def websub(self, request: Request) -> Response:
        """A WebSub subscription request (form-encoded POST): 202 and verification to come,
        or 4xx naming what is wrong."""
        if self.hub is None:
            return PlainTextResponse("not found\n", status_code=404)
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/x-www-form-urlencoded":
            return PlainTextResponse("expected an application/x-www-form-urlencoded body\n",
                                     status_code=415)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_REQUEST_BYTES:
                return PlainTextResponse("request body too large\n", status_code=413)
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            return PlainTextResponse("the body is not UTF-8\n", status_code=400)
        status, text = self.hub.request(form)
        return PlainTextResponse(text, status_code=status, headers={"cache-control": "no-store"})

    async def healthz(self, request: Request) -> Response:
        """200 while the last run succeeded and is recent, else 503 with the reason."""
        health = self.status.health()
        return JSONResponse(dict(health.body), status_code=200 if health.healthy else 503,
                            headers={"cache-control": "no-store"})

    async def metrics(self, request: Request) -> Response:
        """Prometheus text exposition of the daemon's counters."""
        return Response(self.status.prometheus(), headers={"cache-control": "no-store"},
                        media_type="text/plain; version=0.0.4; charset=utf-8")


def create_app(site: Endpoints) -> Starlette:
    """The ASGI application serving `site`."""
    methods = ["GET", "HEAD"]
    app = Starlette(routes=[
        Route("/healthz", site.healthz, methods=methods),
        *([Route(f"/{HUB_PATH}", site.websub, methods=["POST"])] if site.hub else []),
        Route("/metrics", site.metrics, methods=methods),
        Route("/", site.published, methods=methods),
        # Any path, subdirectories included; only the manifest's names are found.
        Route("/{name:path}", site.published, methods=methods),
    ])
    # `/x/` is not found, rather than redirected to `/x`: no path invites a second request.
    app.router.redirect_slashes = False
    return app


class _Server(uvicorn.Server):
    """uvicorn, minus its own SIGINT/SIGTERM handlers: the daemon's handlers stay in force, so
    a stop signal stops the scheduler and the server together, timed from the signal."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        # asyncio accepts up to `backlog` connections in one go before any of them is
        # looked at: a small batch keeps a burst of clients from taking every descriptor
        # before the connection cap can act, while the kernel still queues a long line.
        for sock in sockets or ():
            sock.listen(_LISTEN_BACKLOG)


class HttpServer:
    """uvicorn serving one app on an already-bound socket; `run` blocks the calling thread."""

    def __init__(self, site: Endpoints, sock: socket.socket, *, access_log: bool,
                 read_timeout: float = 10.0, idle_timeout: float = 5.0) -> None:
        from aggregator import http_limits

        self._sock = sock
        self.limits = http_limits.ConnectionLimits(
            read_timeout=read_timeout, max_connections=http_limits.connection_cap())
        _throttle_accept_errors()
        config = uvicorn.Config(
            create_app(site),
            # The standard asyncio loop, not uvloop: with 200 busy keep-alive clients uvloop
            # served ~7% more requests but starved some connections for up to a second (p99
            # 290 ms against 26 ms; benchmarks/serve_load.py).
            loop="asyncio",
            # httptools' C parser (about twice the requests per second of h11), with limits
            # on request heads, slow clients and connections (aggregator.http_limits).
            http=http_limits.protocol_for(self.limits),
            timeout_keep_alive=max(1, round(idle_timeout)),
            lifespan="off",
            log_config=None,  # keep the aggregator's own log format
            access_log=access_log,
            server_header=False,
            timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN,
            backlog=_ACCEPT_BATCH,
        )
        self._server = _Server(config)

    def run(self) -> None:
        """Serve until `stop` is called."""
        log.info("serving", extra=facts(url=f"http://{bound_address(self._sock)}/",
                                        max_connections=self.limits.max_connections))
        self._server.run(sockets=[self._sock])

    def stop(self) -> None:
        """Ask the server to finish; safe from any thread."""
        self._server.should_exit = True


_ACCEPT_THROTTLE: logging.Filter | None = None


def _throttle_accept_errors() -> None:
    """asyncio reports each failed accept with a traceback: keep one line per interval."""
    global _ACCEPT_THROTTLE
    if _ACCEPT_THROTTLE is None:
        from aggregator.http_limits import AcceptErrorThrottle

        _ACCEPT_THROTTLE = AcceptErrorThrottle()
        logging.getLogger("asyncio").addFilter(_ACCEPT_THROTTLE)
