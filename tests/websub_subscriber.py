"""A WebSub subscriber on 127.0.0.1, written from the W3C Recommendation (§5.1, §5.3, §7),
for tests of the hub `aggregate --serve` runs.

Each callback path is one subscription's endpoint. A verification GET is confirmed (200 and
the challenge as the whole body, §5.3.1) only if the test said it wants that mode and topic,
else refused with 404 as the spec asks. Content distribution POSTs are recorded with the time
they arrived and answered with whatever status the test set for that callback.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx


@dataclass(frozen=True)
class Verification:
    """A verification of intent the hub asked for."""

    path: str
    params: dict[str, str]
    confirmed: bool
    at: float


@dataclass(frozen=True)
class Delivery:
    """A content distribution request the hub sent."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    """time.monotonic() when it arrived."""

    def signed_with(self, secret: str) -> bool:
        """Whether `X-Hub-Signature` is the body's HMAC-SHA256 under `secret` (§8)."""
        method, _, digest = self.headers.get("x-hub-signature", "").partition("=")
        if method != "sha256":
            return False
        expected = hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, digest)

    def links(self) -> dict[str, str]:
        """The `Link` header's targets by rel."""
        found = {}
        for part in self.headers.get("link", "").split(","):
            target, _, params = part.strip().partition(";")
            rel = params.strip().removeprefix("rel=").strip('"')
            found[rel] = target.strip().strip("<>")
        return found


@dataclass
class _State:
    intents: set[tuple[str, str, str]] = field(default_factory=set)
    """(path, mode, topic) the subscriber confirms."""
    answers: dict[str, list[int]] = field(default_factory=dict)
    """path -> statuses to answer deliveries with, in turn (then 204)."""
    delays: dict[str, float] = field(default_factory=dict)
    """path -> seconds to hold each delivery before answering."""
    miscounted: set[str] = field(default_factory=set)
    """Paths that answer a verification 200 with a body other than the challenge."""
    verifications: list[Verification] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)


class Subscriber:
    """A loopback WebSub subscriber; use as a context manager."""

    def __init__(self) -> None:
        self._state = _State()
        self._changed = threading.Condition()
        state, changed = self._state, self._changed

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                params = {k: v[0] for k, v in parse_qs(parts.query).items()}
                mode, topic = params.get("hub.mode", ""), params.get("hub.topic", "")
                with changed:
                    confirmed = (parts.path, mode, topic) in state.intents
                    wrong = parts.path in state.miscounted
                    state.verifications.append(
                        Verification(parts.path, params, confirmed, time.monotonic()))
                    changed.notify_all()
                body = params.get("hub.challenge", "").encode() if confirmed else b"no\n"
                if wrong:
                    body = b"ok"
                self.send_response(200 if confirmed or wrong else 404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                arrived = time.monotonic()
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                path = urlsplit(self.path).path
                with changed:
                    queued = state.answers.get(path) or []
                    status = queued.pop(0) if queued else 204
                    delay = state.delays.get(path, 0.0)
                    state.deliveries.append(Delivery(
                        path, {k.lower(): v for k, v in self.headers.items()}, body, arrived))
                    changed.notify_all()
                time.sleep(delay)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Subscriber:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def callback(self, path: str) -> str:
        """The callback URL of `path`."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{path}"

    def answer(self, path: str, *statuses: int, delay: float = 0.0) -> None:
        """Answer the next deliveries to `path` with these statuses; hold each `delay` s."""
        with self._changed:
            self._state.answers[path] = list(statuses)
            self._state.delays[path] = delay

    def answer_challenges_wrongly(self, path: str) -> None:
        """Answer verifications of `path` with 200 and a body that is not the challenge."""
        with self._changed:
            self._state.miscounted.add(path)

    def request(self, hub: str, mode: str, path: str, topic: str, *,
                secret: str | None = None, lease_seconds: int | None = None) -> httpx.Response:
        """Ask the hub to (un)subscribe `path` to `topic`, wanting it (§5.1)."""
        with self._changed:
            self._state.intents.add((path, mode, topic))
        form = {"hub.mode": mode, "hub.callback": self.callback(path), "hub.topic": topic}
        if secret is not None:
            form["hub.secret"] = secret
        if lease_seconds is not None:
            form["hub.lease_seconds"] = str(lease_seconds)
        return httpx.post(hub, data=form, timeout=10)

    def verifications(self, path: str | None = None) -> list[Verification]:
        with self._changed:
            return [v for v in self._state.verifications if path in (None, v.path)]

    def deliveries(self, path: str | None = None) -> list[Delivery]:
        with self._changed:
            return [d for d in self._state.deliveries if path in (None, d.path)]

    def wait(self, found: Callable[[], list[Verification] | list[Delivery]], count: int,
             timeout: float, what: str) -> None:
        """Wait until `found()` holds `count` records; fail after `timeout` s."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(found()) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
                self._changed.wait(remaining)
