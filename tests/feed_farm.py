"""Many small RSS feeds on one loopback HTTP server that counts every fetch of each feed.

Used by the several-nodes tests and by `benchmarks/multinode.py`. Each feed has its own
distinct items (made-up words, so dedup keeps feeds' stories apart), a fixed `pubDate`, and
an ETag: a conditional request gets `304 Not Modified`, and counts as a fetch all the same.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from xml.sax.saxutils import escape

_SYLLABLES = ("ka ri to me su na lo vi de pa ze mu ro ti ba ne shi gu fa wo "
              "ly qu ex ob ar ul im en os ad ry po zi ce").split()


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))


def feed_body(number: int, items: int) -> bytes:
    """Feed `number`'s RSS document: `items` items of made-up, feed-specific words."""
    rng = random.Random(number)
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=number)
    entries = []
    for index in range(items):
        title = " ".join(_word(rng) for _ in range(6)).capitalize()
        text = " ".join(_word(rng) for _ in range(40)) + "."
        date = format_datetime(start + timedelta(minutes=index))
        entries.append(
            f"<item><title>{escape(title)}</title>"
            f"<link>http://127.0.0.1/story/{number}/{index}</link>"
            f"<guid>farm-{number}-{index}</guid><pubDate>{date}</pubDate>"
            f"<description>{escape(text)}</description></item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Feed {number}</title><link>http://127.0.0.1/{number}</link>"
        f"<description>Feed {number}</description>{''.join(entries)}</channel></rss>"
    ).encode()


class FeedFarm:
    """`count` feeds at /feed/<n>.xml on 127.0.0.1; `fetches` records when each was asked."""

    def __init__(self, count: int, items: int = 2) -> None:
        self.count = count
        self.bodies = {n: feed_body(n, items) for n in range(count)}
        self.fetches: dict[int, list[float]] = {n: [] for n in range(count)}
        """Feed number -> time.monotonic() of each request (200 or 304)."""
        self._lock = threading.Lock()
        farm = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                number = _feed_number(self.path)
                if number is None or number not in farm.bodies:
                    self.send_error(404)
                    return
                with farm._lock:
                    farm.fetches[number].append(time.monotonic())
                etag = f'"farm-{number}"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = farm.bodies[number]
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml")
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FeedFarm:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def url(self, number: int) -> str:
        """The URL of feed `number`."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/feed/{number}.xml"

    def sources_toml(self, agency: str = "nato", interval: str | None = None) -> str:
        """`[[sources]]` tables for every feed of the farm (with `interval`, if given)."""
        extra = f'interval = "{interval}"\n' if interval else ""
        return "".join(f'\n[[sources]]\ntype = "feed"\nagency = "{agency}"\n'
                       f'url = "{self.url(n)}"\n{extra}' for n in range(self.count))

    def snapshot(self) -> dict[int, list[float]]:
        """A copy of the fetch times so far."""
        with self._lock:
            return {n: list(times) for n, times in self.fetches.items()}


class _Server(ThreadingHTTPServer):
    # The stdlib's listen backlog of 5 drops connections when 16 fetch threads connect at
    # once, and the client's SYN retry then costs a whole second.
    request_queue_size = 128


def _feed_number(path: str) -> int | None:
    prefix, suffix = "/feed/", ".xml"
    if not (path.startswith(prefix) and path.endswith(suffix)):
        return None
    digits = path[len(prefix) : -len(suffix)]
    return int(digits) if digits.isdigit() else None
