"""WebSub (W3C Recommendation, 23 January 2018): the hub `aggregate --serve` runs for its own
feeds, and the pings that tell external hubs which feeds changed.

Subscribing (spec §5.1): a subscriber POSTs `hub.mode`, `hub.callback`, `hub.topic` and, if it
likes, `hub.lease_seconds` and `hub.secret` to `<base_url>websub`. Only our own published feeds
are topics; anything else is refused at once (400, naming the parameter). Otherwise the hub
answers 202 and verifies the intent (§5.3) off the request: a GET to the callback carrying
`hub.mode`, `hub.topic`, `hub.challenge` and the granted `hub.lease_seconds`, which must answer
2xx with the challenge as its whole body. Only then is the subscription stored (so it survives
restarts) or removed. A lease ends it unless the subscriber renews it.

Distribution (§7): after a run that rewrote a feed, each subscriber gets a POST of the feed's
new bytes with its Content-Type, `Link: <hub>; rel="hub", <topic>; rel="self"` and, when it
gave a secret, `X-Hub-Signature: sha256=<HMAC-SHA256 of the body>`. A delivery that fails is
retried with doubling waits. Verification and delivery run on the hub's own threads from a
bounded queue: a run only hands over the names of the files it wrote, so a slow or failing
callback never delays a run.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

from aggregator import clock
from aggregator.config import Config
from aggregator.logs import facts

if TYPE_CHECKING:
    import httpx

    from aggregator.store import Store

log = logging.getLogger(__name__)

HUB_PATH = "websub"
"""Where `aggregate --serve` takes subscription requests, under `[output] base_url`."""
FEED_TYPES = {
    ".atom": "application/atom+xml; charset=utf-8",
    ".rss": "application/rss+xml; charset=utf-8",
    ".json": "application/feed+json; charset=utf-8",
}
"""The published files that are WebSub topics, by suffix, with the type they are sent as."""
MAX_REQUEST_BYTES = 16_384
"""Largest subscription request body read: four URLs, a number and a secret fit easily."""

_FEED_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\.(?:atom|rss|json)")
_MAX_URL = 2048
_MAX_SECRET_BYTES = 199
"""The spec: `hub.secret` MUST be less than 200 bytes."""
_MAX_ANSWER_BYTES = 4096
"""A callback's answer is read this far: enough for any challenge, never a flood."""
_WORKERS = 4
"""Threads verifying and delivering: a few slow callbacks do not hold up the others."""
_STOP_WAIT = 1.0
"""Seconds the daemon waits for deliveries in flight when it stops."""


# -- pure steps ---------------------------------------------------------------------------


class HubRequestError(Exception):
    """A subscription request the hub refuses; the message names the parameter."""


@dataclass(frozen=True, slots=True)
class HubSettings:
    """What the hub takes from the config; replaced on reload."""

    base_url: str
    hub_url: str
    advertised: tuple[str, ...]
    """Every hub the feeds name (this one first), for the `Link` headers of feeds served."""
    out_dir: Path
    store_url: str
    lease: int
    min_lease: int
    max_lease: int
    attempts: int
    retry_backoff: float
    queue: int
    timeout: float

    @classmethod
    def of(cls, config: Config) -> HubSettings:
        """The settings of the hub `aggregate --serve` runs for `config`."""
        websub = config.websub
        return cls(
            base_url=config.output.base_url,
            hub_url=served_hub_url(config.output.base_url),
            advertised=with_served_hub(config).websub.advertised,
            out_dir=config.output.dir,
            store_url=config.store.url,
            lease=int(websub.lease),
            min_lease=max(1, int(websub.min_lease)),
            max_lease=int(websub.max_lease),
            attempts=websub.attempts,
            retry_backoff=websub.retry_backoff,
            queue=websub.queue,
            timeout=websub.timeout,
        )


@dataclass(frozen=True, slots=True)
class HubRequest:
    """A valid subscription request: what to verify with the subscriber."""

    mode: Literal["subscribe", "unsubscribe"]
    callback: str
    topic: str
    lease_seconds: int
    """The lease granted (subscribe); 0 for unsubscribe."""
    secret: str | None = None


def served_hub_url(base_url: str) -> str:
    """The URL of the hub `aggregate --serve` runs, beside the feeds it serves."""
    return base_url + HUB_PATH


def with_served_hub(config: Config) -> Config:
    """The config as a serving daemon runs it: its own hub advertised in every feed."""
    hub = served_hub_url(config.output.base_url)
    return replace(config, websub=replace(config.websub, served_hub=hub))


def topic_name(topic: str, base_url: str) -> str | None:
    """The published file a topic URL names, if it names one of our feeds; else None."""
    if not topic.startswith(base_url):
        return None
    name = topic[len(base_url):]
    return name if _FEED_NAME.fullmatch(name) else None


def feed_names(names: Collection[str]) -> list[str]:
    """The names among published files that are WebSub topics (feeds, not the page)."""
    return sorted(n for n in names if _FEED_NAME.fullmatch(n))


def granted_lease(requested: int | None, settings: HubSettings) -> int:
    """The lease the hub grants: the default when none is asked, else within min and max."""
    if requested is None:
        return settings.lease
    return min(max(requested, settings.min_lease), settings.max_lease)


def parse_request(form: Mapping[str, Sequence[str]], settings: HubSettings) -> HubRequest:
    """A subscription request from its form fields; HubRequestError naming the bad field."""

    def field(name: str) -> str | None:
        values = form.get(name) or []
        if len(values) > 1:
            raise HubRequestError(f"{name}: given more than once")
        return values[0] if values else None

    mode = field("hub.mode")
    if mode not in ("subscribe", "unsubscribe"):
        raise HubRequestError(f"hub.mode: expected subscribe or unsubscribe, got {mode!r}")
    callback = field("hub.callback")
    if not callback:
        raise HubRequestError("hub.callback: missing")
    parts = urlsplit(callback)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
        raise HubRequestError(f"hub.callback: not an http(s) URL without fragment: {callback!r}")
    if len(callback) > _MAX_URL:
        raise HubRequestError(f"hub.callback: longer than {_MAX_URL} characters")
    topic = field("hub.topic")
    if not topic:
        raise HubRequestError("hub.topic: missing")
    if topic_name(topic, settings.base_url) is None:
        raise HubRequestError(
            f"hub.topic: {topic!r} is not a feed of this hub (expected "
            f"{settings.base_url}<feed>.atom, .rss or .json)"
        )
    lease_text = field("hub.lease_seconds")
    requested: int | None = None
    if lease_text:
        if not lease_text.isdigit():
            raise HubRequestError(f"hub.lease_seconds: not a whole number: {lease_text!r}")
        requested = int(lease_text)
    secret = field("hub.secret") or None
    if secret is not None and len(secret.encode()) > _MAX_SECRET_BYTES:
        raise HubRequestError(f"hub.secret: must be less than {_MAX_SECRET_BYTES + 1} bytes")
    if mode == "unsubscribe":
        return HubRequest("unsubscribe", callback, topic, 0)
    return HubRequest("subscribe", callback, topic, granted_lease(requested, settings), secret)


def signature(secret: str, body: bytes) -> str:
    """The `X-Hub-Signature` of a delivery: `sha256=` and the body's HMAC in hex."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def link_header(hub_url: str, topic: str) -> str:
    """The `Link` header of a delivery: the hub and the topic (the feed's self URL)."""
    return discovery_links((hub_url,), topic)


def discovery_links(hubs: Sequence[str], topic: str) -> str:
    """A `Link` header naming every hub and the topic's self URL (spec §4, discovery)."""
    return ", ".join([*(f'<{hub}>; rel="hub"' for hub in hubs), f'<{topic}>; rel="self"'])


def with_query(url: str, params: Mapping[str, str]) -> str:
    """`url` with `params` added to the query it may already have (as the spec asks)."""
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit(parts._replace(query=query))


def retry_delay(attempt: int, settings: HubSettings) -> float:
    """Seconds to wait after failed attempt number `attempt` (1, 2, ...): doubling."""
    return float(settings.retry_backoff * 2.0 ** (attempt - 1))


# -- pinging external hubs ----------------------------------------------------------------


def ping_hubs(hubs: Sequence[str], feed_urls: Sequence[str], timeout: float) -> list[str]:
    """Tell every hub that `feed_urls` changed (`hub.mode=publish`, one `hub.url` each),
    all hubs at once, waiting `timeout` seconds in all; one message per hub that failed."""
    results: dict[str, str | None] = {}
    body = urlencode([("hub.mode", "publish"), *(("hub.url", url) for url in feed_urls)])

    def ping(hub: str) -> None:
        import httpx

        from aggregator.sources._http import user_agent

        try:
            with httpx.Client(timeout=timeout, follow_redirects=False) as client:
                response = client.post(hub, content=body, headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "User-Agent": user_agent(),
                })
            results[hub] = (None if response.is_success
                            else f"HTTP {response.status_code} {response.reason_phrase}")
        except httpx.HTTPError as exc:
            results[hub] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

    # Daemon threads: a hub that never answers is left behind, and never holds up an exit.
    threads = [threading.Thread(target=ping, args=(hub,), name="websub-ping", daemon=True)
               for hub in hubs]
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    failures = []
    for hub in hubs:
        reason = results.get(hub, f"no answer within {timeout:g}s")
        if reason is not None:
            failures.append(f"{hub}: WebSub ping failed: {reason}")
    return failures


# -- the hub ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Verify:
    request: HubRequest


@dataclass(frozen=True, slots=True)
class _Fanout:
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Deliver:
    callback: str
    topic: str
    attempt: int


@dataclass(frozen=True, slots=True)
class _Payload:
    body: bytes
    content_type: str


@dataclass(frozen=True, slots=True)
class _Update:
    """An update waiting for one subscriber."""

    payload: _Payload
    secret: str | None
    """The subscription's secret when the update was queued (a retry reads it again)."""


_Task = _Verify | _Fanout | _Deliver


class _TaskQueue:
    """A bounded queue of tasks, each due at a time (retries wait their turn)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._heap: list[tuple[float, int, _Task]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._closed = False

    def put(self, task: _Task, delay: float = 0.0) -> bool:
        """Add a task due in `delay` seconds; False when the queue is full or closed."""
        with self._changed:
            if self._closed or len(self._heap) >= self.limit:
                return False
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._order), task))
            self._changed.notify()
            return True

    def get(self) -> _Task | None:
        """The next due task, waiting for it; None once the queue is closed."""
        with self._changed:
            while not self._closed:
                if not self._heap:
                    self._changed.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait <= 0:
                    return heapq.heappop(self._heap)[2]
                self._changed.wait(wait)
            return None

    def empty(self) -> bool:
        """Whether no task waits, due or not."""
        with self._changed:
            return not self._heap

    def close(self) -> None:
        """Wake every waiting worker and take no more tasks."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()


class Hub:
    """The WebSub hub of a serving daemon: takes requests, verifies, stores, delivers."""

    def __init__(self, settings: HubSettings, *,
                 now: Callable[[], datetime] = clock.real_now) -> None:
        self.settings = settings
        self._now = now
        self._queue = _TaskQueue(settings.queue)
        self._lock = threading.Lock()
        self._latest: dict[tuple[str, str], _Update] = {}
        """(callback, topic) -> the newest update waiting for delivery to it."""
        self._busy: set[tuple[str, str]] = set()
        """(callback, topic) with a delivery queued or in flight."""
        self._threads: list[threading.Thread] = []
        self._store: Store | None = None
        self._client: httpx.Client | None = None

    def start(self) -> None:
        """Start the workers. The store is opened when a task first needs it, so a store
        that is down costs the hub's tasks (logged), never the daemon's start."""
        import httpx

        from aggregator.sources._http import user_agent

        self._client = httpx.Client(timeout=self.settings.timeout, follow_redirects=False,
                                    headers={"User-Agent": user_agent()})
        for number in range(_WORKERS):
            thread = threading.Thread(target=self._work, name=f"websub-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def configure(self, settings: HubSettings) -> None:
        """Take new settings (a reloaded config); the queue keeps its size until a restart."""
        with self._lock:
            if self._store is not None and settings.store_url != self.settings.store_url:
                self._store.close()
                self._store = None  # the next task opens the new store
            self.settings = settings

    def stop(self) -> None:
        """Stop the workers, giving deliveries in flight a moment to end."""
        self._queue.close()
        deadline = time.monotonic() + _STOP_WAIT
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(thread.is_alive() for thread in self._threads):
            return  # a callback still holds a worker: the process exit ends it
        if self._client is not None:
            self._client.close()
        if self._store is not None:
            self._store.close()

    def request(self, form: Mapping[str, Sequence[str]]) -> tuple[int, str]:
        """Answer a subscription request: (202, ...) to verify it, else a 4xx/503 reason."""
        settings = self.settings
        try:
            request = parse_request(form, settings)
        except HubRequestError as exc:
            return 400, f"{exc}\n"
        name = topic_name(request.topic, settings.base_url)
        if request.mode == "subscribe" and not (name and (settings.out_dir / name).is_file()):
            return 400, f"hub.topic: {request.topic!r} is not published here\n"
        if not self._queue.put(_Verify(request)):
            return 503, "the hub is busy; try again later\n"
        return 202, "accepted: the hub will verify the intent at hub.callback\n"

    def discovery_link(self, name: str) -> str | None:
        """The `Link` header a served file carries: hubs and self for a feed, else None."""
        if not _FEED_NAME.fullmatch(name):
            return None
        settings = self.settings
        return discovery_links(settings.advertised, settings.base_url + name)

    def feeds_changed(self, names: Collection[str]) -> None:
        """A run rewrote these published files: send the feeds among them to subscribers.
        Only queues the work, so it never delays the run that calls it."""
        feeds = feed_names(names)
        if feeds and not self._queue.put(_Fanout(tuple(feeds))):
            log.warning("websub queue full: an update is not delivered",
                        extra=facts(feeds=len(feeds), queue=self._queue.limit))

    # -- worker side ----------------------------------------------------------------------

    def _work(self) -> None:
        while (task := self._queue.get()) is not None:
            try:
                if isinstance(task, _Verify):
                    self._verify(task.request)
                elif isinstance(task, _Fanout):
                    self._fanout(task.names)
                else:
                    self._deliver(task)
            except Exception as exc:  # one bad task (a store hiccup, a bug) costs that task
                log.warning("websub task failed", extra=facts(error=repr(exc)))
                log.debug("websub task failed", exc_info=True)
            finally:
                if self._queue.empty():
                    self._release_store()

    def _db(self) -> Store:
        """The store, opened (and migrated) on first use."""
        with self._lock:
            if self._store is None:
                from aggregator.store import open_store

                self._store = open_store(self.settings.store_url)
            return self._store

    def _release_store(self) -> None:
        """Close the store's idle connections: while idle the hub holds no database open,
        so it never keeps a replaced or deleted SQLite file alive for the runs."""
        if self._store is not None:
            self._store.close()  # the engine reconnects on the next use

    def _verify(self, request: HubRequest) -> None:
        store = self._db()
        challenge = secrets.token_urlsafe(24)
        params = {"hub.mode": request.mode, "hub.topic": request.topic,
                  "hub.challenge": challenge}
        if request.mode == "subscribe":
            params["hub.lease_seconds"] = str(request.lease_seconds)
        status, answer, error = self._call("GET", with_query(request.callback, params))
        if error is not None or not 200 <= status < 300 or answer != challenge.encode():
            reason = error or (f"HTTP {status}" if not 200 <= status < 300
                               else "the answer was not the challenge")
            log.info("websub intent not verified", extra=facts(
                mode=request.mode, callback=request.callback, topic=request.topic,
                reason=reason))
            return
        if request.mode == "unsubscribe":
            store.delete_subscription(request.callback, request.topic)
            log.info("websub unsubscribed", extra=facts(callback=request.callback,
                                                        topic=request.topic))
            return
        from aggregator.store import Subscription

        now = self._now()
        store.save_subscription(Subscription(
            callback=request.callback, topic=request.topic, secret=request.secret,
            lease_seconds=request.lease_seconds, verified=now,
            expires=now + timedelta(seconds=request.lease_seconds),
        ))
        log.info("websub subscribed", extra=facts(
            callback=request.callback, topic=request.topic,
            lease_seconds=request.lease_seconds, signed=request.secret is not None))

    def _fanout(self, names: Sequence[str]) -> None:
        store = self._db()
        settings = self.settings
        now = self._now()
        store.expire_subscriptions(now)
        topics = {settings.base_url + name: name for name in names}
        payloads: dict[str, _Payload] = {}
        for subscription in store.subscribers(topics, now):
            topic = subscription.topic
            if topic not in payloads:
                name = topics[topic]
                try:
                    body = (settings.out_dir / name).read_bytes()
                except OSError:
                    continue  # taken down since: nothing to send
                payloads[topic] = _Payload(body, FEED_TYPES[Path(name).suffix])
            key = (subscription.callback, topic)
            with self._lock:
                # One delivery per subscriber and topic at a time, queued or in flight, so
                # an older feed never arrives after a newer one: when one is under way, it
                # sends this newest update next.
                self._latest[key] = _Update(payloads[topic], subscription.secret)
                if key in self._busy:
                    continue
                self._busy.add(key)
                if not self._queue.put(_Deliver(key[0], key[1], 1)):
                    self._drop(key)
                    log.warning("websub queue full: an update is not delivered",
                                extra=facts(callback=key[0], topic=topic))

    def _drop(self, key: tuple[str, str]) -> None:
        """Forget what waits for a subscriber (call with the lock held)."""
        self._latest.pop(key, None)
        self._busy.discard(key)

    def _deliver(self, task: _Deliver) -> None:
        key = (task.callback, task.topic)
        try:
            retry = self._attempt(task)
        except Exception:
            with self._lock:
                self._drop(key)
            raise
        with self._lock:
            if retry is not None:
                update, delay = retry
                self._latest.setdefault(key, update)  # a newer update goes in its place
                if not self._queue.put(_Deliver(key[0], key[1], task.attempt + 1), delay):
                    self._drop(key)
                    log.warning("websub queue full: a retry is dropped",
                                extra=facts(callback=key[0], topic=key[1]))
            elif key in self._latest:  # a newer update came while this one was sent
                if not self._queue.put(_Deliver(key[0], key[1], 1)):
                    self._drop(key)
            else:
                self._busy.discard(key)

    def _attempt(self, task: _Deliver) -> tuple[_Update, float] | None:
        """Send the newest update to one subscriber; (the update, delay) to retry it."""
        store = self._db()
        settings = self.settings
        with self._lock:
            update = self._latest.pop((task.callback, task.topic), None)
        if update is None:
            return None
        secret = update.secret
        if task.attempt > 1:  # the fan-out just read the subscription; a retry reads it again
            subscription = store.subscription(task.callback, task.topic, self._now())
            if subscription is None:
                return None  # unsubscribed, or its lease ended, while the retry waited
            secret = subscription.secret
        payload = update.payload
        headers = {"Content-Type": payload.content_type,
                   "Link": link_header(settings.hub_url, task.topic)}
        if secret:
            headers["X-Hub-Signature"] = signature(secret, payload.body)
        status, _, error = self._call("POST", task.callback, content=payload.body,
                                      headers=headers)
        if error is None and 200 <= status < 300:
            log.debug("websub delivered", extra=facts(callback=task.callback,
                                                      topic=task.topic, status=status))
            return None
        if status == 410:  # Gone: the subscriber wants no more
            store.delete_subscription(task.callback, task.topic)
            with self._lock:
                self._latest.pop((task.callback, task.topic), None)
            log.info("websub subscription gone (HTTP 410)",
                     extra=facts(callback=task.callback, topic=task.topic))
            return None
        reason = error or f"HTTP {status}"
        if task.attempt >= settings.attempts:
            log.warning("websub delivery failed; giving up", extra=facts(
                callback=task.callback, topic=task.topic, attempts=task.attempt,
                reason=reason))
            return None
        delay = retry_delay(task.attempt, settings)
        log.warning("websub delivery failed; will retry", extra=facts(
            callback=task.callback, topic=task.topic, attempt=task.attempt, reason=reason,
            retry_in=delay))
        return update, delay

    def _call(self, method: str, url: str, **options: Any) -> tuple[int, bytes, str | None]:
        """One request to a subscriber: (status, the start of the answer, error or None)."""
        import httpx

        assert self._client is not None
        try:
            with self._client.stream(method, url, timeout=self.settings.timeout,
                                     **options) as response:
                answer = b""
                for chunk in response.iter_bytes():
                    answer += chunk
                    if len(answer) > _MAX_ANSWER_BYTES:
                        break
                return response.status_code, answer, None
        except httpx.HTTPError as exc:
            return 0, b"", f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
