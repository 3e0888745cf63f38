"""The live-feed adapter: RSS 0.9x/1.0/2.0 and Atom over HTTP(S).

A configured feed is one unit. Units are read together (`FeedUnit.read_many`): fetches run
concurrently on one shared client (`_http.Fetcher`), and the documents are parsed in the
run's worker processes when it has them (`aggregator.execution` starts them for many feeds:
feedparser is pure Python, and threads would queue on one core), so a run's results arrive
while others are still being fetched and parsed.

Parsing gives feedparser the bytes and the response headers, never a URL. It keeps
feedparser's own sanitizer and URL rewriting off: they are the slow half of feedparser, and
everything published passes the nh3 allow-list in normalize (with relative links resolved
against the item's xml:base or the feed's URL) anyway. Item identity is the feed's guid/id,
else the link, else title and date; undated items stay undated, so the store records when
they were first seen.
"""

from __future__ import annotations

import hashlib
import io
import logging
import queue
import random
import xml.sax
from collections import defaultdict
from collections.abc import Collection, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from aggregator.config import Config, FeedSource, FetchConfig, SourceConfig
from aggregator.errors import FetchError, ParseError, SourceError
from aggregator.markup import html_to_text
from aggregator.model import RawItem
from aggregator.normalize import title_key
from aggregator.prepare import Prepared
from aggregator.sources import Fetched, Preparer, ReadJob, ReadOutcome, fastparse
from aggregator.sources._http import Fetcher, Response, Validators
from aggregator.store import SourceState

log = logging.getLogger(__name__)

PARALLEL_PARSE_MIN_FEEDS = 8
"""Below this many feeds bringing a document, parsing in the fetching threads beats starting
processes (`execution.WORKERS_FROM_UNITS` is this figure)."""
_TYPICAL_FEED_BYTES = 100_000

_DUE_SLACK = 60.0
"""Seconds before its interval is up that a feed already counts as due."""
_LINK_SCHEMES = frozenset({"http", "https"})
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_HTML_MARKS = (b"<!doctype html", b"<html")


def expand_source(source: SourceConfig, config: Config) -> Sequence[FeedUnit]:
    """A feed source is one unit."""
    assert isinstance(source, FeedSource)
    return [FeedUnit(source=source, policy=config.fetch)]


@dataclass(frozen=True, slots=True)
class FeedUnit:
    """One live feed. Its identity is its configured URL, even after it moves."""

    source: FeedSource
    policy: FetchConfig
    jitter: random.Random = field(default_factory=random.Random, compare=False, repr=False)
    """Spreads the back-off of feeds that failed together, so they are not retried in step."""

    @property
    def source_id(self) -> str:
        """`feed:` and the configured URL: a permanent redirect does not change it."""
        return "feed:" + self.source.url

    @property
    def name(self) -> str:
        """The configured URL, as the user wrote it."""
        return self.source.url

    def due(self, state: SourceState | None, now: datetime) -> bool:
        """Due unless its interval or its back-off after failures has not yet passed.

        A little early counts as on time: a run that a jittered tick starts seconds before
        the feed's interval is up would otherwise leave it for a whole tick more.
        """
        if state is None or state.next_attempt is None:
            return True
        slack = min(_DUE_SLACK, 0.1 * (self.source.interval or 0))
        return now >= state.next_attempt - timedelta(seconds=slack)

    def read(self, state: SourceState | None, now: datetime, *, force: bool) -> Fetched:
        """Fetch and parse this feed alone (a run reads its feeds with `read_many`)."""
        with FeedUnit.read_many([ReadJob(self, state, force)], now) as outcomes:
            outcome = next(iter(outcomes))
        if outcome.error is not None:
            raise outcome.error
        assert outcome.fetched is not None
        return outcome.fetched

    def failed(self, state: SourceState | None, now: datetime, error: SourceError) -> SourceState:
        """Count the failure and wait before the next attempt: exponentially longer after
        each failure in a row, with jitter, and at least as long as a Retry-After asks."""
        base = state or SourceState(source_id=self.source_id, kind="feed")
        failures = base.failures + 1
        delay = min(self.policy.max_backoff, self.policy.backoff * 2 ** (failures - 1))
        delay *= self.jitter.uniform(0.8, 1.0)
        if isinstance(error, FetchError) and error.retry_after is not None:
            delay = max(delay, min(error.retry_after, self.policy.max_backoff))
        return replace(
            base, failures=failures, last_error=str(error), last_attempt=now,
            next_attempt=now + timedelta(seconds=round(delay)),
        )

    @staticmethod
    @contextmanager
    def read_many(
        jobs: Sequence[ReadJob], now: datetime, pool: Executor | None = None,
        preparer: Preparer | None = None,
    ) -> Iterator[Iterator[ReadOutcome]]:
        """Fetch and parse many feeds concurrently (parsing in `pool`'s worker processes,
        which then also prepare the items with `preparer`, or else in the fetch threads); the
        outcomes come as each is ready."""
        with _FeedBatch(jobs, now, pool, preparer if pool is not None else None) as batch:
            yield batch.outcomes()

    def expected_work(self, state: SourceState | None, force: bool) -> int:
        """Bytes of document this run will likely parse: a feed asked without validators
        sends one; with them, it mostly answers 304."""
        sends_document = force or state is None or not (state.etag or state.last_modified)
        return _TYPICAL_FEED_BYTES if sends_document else 0

    # -- what a response does to the state ------------------------------------------------

    def start_url(self, state: SourceState | None) -> str:
        """Where to fetch: where the feed moved to for good, else the configured URL."""
        return state.current_url if state is not None and state.current_url else self.source.url

    def fetched_state(
        self, state: SourceState | None, now: datetime, response: Response
    ) -> SourceState:
        """The state after a good response: validators, a permanent move, the next fetch."""
        base = state or SourceState(source_id=self.source_id, kind="feed")
        validators = response.validators
        if response.not_modified:
            # A 304 may refresh the validators; when it does not, the old ones still hold.
            validators = Validators(validators.etag or base.etag,
                                    validators.last_modified or base.last_modified)
        current_url = base.current_url
        if response.moved_to is not None:
            current_url = None if response.moved_to == self.source.url else response.moved_to
            log.warning("%s: moved permanently to %s; fetching that from now on "
                        "(update the url in the config)", self.name, response.moved_to)
        interval = self.source.interval
        return replace(
            base, etag=validators.etag, last_modified=validators.last_modified,
            current_url=current_url,
            next_attempt=now + timedelta(seconds=interval) if interval else None,
        )


# -- reading many feeds at once -----------------------------------------------------------


class _FeedBatch:
    """The fetch threads, the parse workers and the queue their outcomes arrive on."""

    def __init__(self, jobs: Sequence[ReadJob], now: datetime, pool: Executor | None,
                 preparer: Preparer | None) -> None:
        self._jobs = _interleave_hosts(jobs)
        self._now = now
        self._results: queue.Queue[ReadOutcome] = queue.Queue()
        self._stack = ExitStack()
        self._parsers: Executor | None = pool
        self._preparer = preparer

    def __enter__(self) -> _FeedBatch:
        if not self._jobs:
            return self
        policy = self._feed(self._jobs[0]).policy
        with self._stack as stack:
            fetcher = stack.enter_context(Fetcher(policy))
            fetching = ThreadPoolExecutor(
                min(policy.concurrency, len(self._jobs)), thread_name_prefix="newswire-fetch",
            )
            # Closed first: on the way out of an aborted run, fetches not yet started are
            # dropped, and the ones under way end by their deadline.
            stack.callback(fetching.shutdown, wait=True, cancel_futures=True)
            for job in self._jobs:
                fetching.submit(self._fetch, fetcher, job)
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    def outcomes(self) -> Iterator[ReadOutcome]:
        """Each job's outcome, in the order they finish."""
        for _ in self._jobs:
            yield self._results.get()

    @staticmethod
    def _feed(job: ReadJob) -> FeedUnit:
        assert isinstance(job.unit, FeedUnit)
        return job.unit

    def _fetch(self, fetcher: Fetcher, job: ReadJob) -> None:
        """In a fetch thread: fetch one feed, then parse it (here, or in a worker)."""
        try:
            unit = self._feed(job)
            validators = None if job.force or job.state is None else Validators(
                job.state.etag, job.state.last_modified)
            response = self._fetch_response(fetcher, unit, job.state, validators)
            if response.not_modified:
                state = unit.fetched_state(job.state, self._now, response)
                self._results.put(ReadOutcome(job, Fetched(None, state)))
                return
            request = ParseRequest.of(unit, response)
            try:
                future = self._parsers.submit(parse_and_prepare, request, self._preparer,
                                              job.known) \
                    if self._parsers else None
            except BrokenProcessPool:  # a worker died earlier in the run: go on without
                future = None
            if future is None:
                self._results.put(self._parsed(job, response, parse_feed(request)))
                return
            future.add_done_callback(lambda done: self._results.put(
                self._parsed_in_worker(job, response, done)))
        except SourceError as exc:
            self._results.put(ReadOutcome(job, error=exc))
        except Exception as exc:  # a bug must cost one feed, never hang the run
            log.debug("unexpected error reading %s", job.unit.name, exc_info=True)
            self._results.put(ReadOutcome(job, error=SourceError(
                job.unit.name, f"internal error while reading: {exc!r}")))

    @staticmethod
    def _fetch_response(fetcher: Fetcher, unit: FeedUnit, state: SourceState | None,
                        validators: Validators | None) -> Response:
        start = unit.start_url(state)
        try:
            return fetcher.fetch(start, validators)
        except FetchError as exc:
            if start == unit.name:
                raise
            # Errors name the feed as configured, and say where it was fetched from.
            raise FetchError(unit.name, f"{exc.reason} (fetched from {start}, where it moved)",
                             status=exc.status, retry_after=exc.retry_after) from None

    def _parsed_in_worker(
        self, job: ReadJob, response: Response, done: Future[ParsedFeed]
    ) -> ReadOutcome:
        # The worker returns the parsed feed with its items prepared, when it could.
        try:
            return self._parsed(job, response, done.result())
        except Exception as exc:  # a crashed worker (BrokenProcessPool) or a bug
            return ReadOutcome(job, error=SourceError(
                job.unit.name, f"internal error while parsing: {exc!r}"))

    def _parsed(self, job: ReadJob, response: Response, parsed: ParsedFeed) -> ReadOutcome:
        unit = self._feed(job)
        for level, note in parsed.notes:
            log.log(level, "%s", note)
        if parsed.error is not None:
            return ReadOutcome(job, error=ParseError(unit.name, None, parsed.error))
        state = unit.fetched_state(job.state, self._now, response)
        return ReadOutcome(job, Fetched(parsed.items, state, parsed.prepared))


def _interleave_hosts(jobs: Sequence[ReadJob]) -> list[ReadJob]:
    """Jobs in round-robin order of their hosts, so a host with many feeds does not hold
    every fetch thread waiting for its few per-host slots while other hosts sit idle."""
    by_host: dict[str, list[ReadJob]] = defaultdict(list)
    for job in jobs:
        unit = job.unit
        assert isinstance(unit, FeedUnit)
        by_host[urlsplit(unit.start_url(job.state)).netloc.lower()].append(job)
    queues = list(by_host.values())
    ordered: list[ReadJob] = []
    for round_ in range(max((len(q) for q in queues), default=0)):
        ordered.extend(q[round_] for q in queues if round_ < len(q))
    return ordered


# -- parsing (pure; runs in worker processes) ---------------------------------------------


@dataclass(frozen=True, slots=True)
class ParseRequest:
    """What a parse worker needs: the bytes, the headers and the feed's identity."""

    body: bytes
    headers: Mapping[str, str]
    url: str
    """The URL the document came from: relative links resolve against it."""
    name: str
    """The configured URL, for messages and item origins."""
    source_id: str
    agency: str

    @classmethod
    def of(cls, unit: FeedUnit, response: Response) -> ParseRequest:
        """The request for a fetched response of `unit`."""
        return cls(body=response.body, headers=response.headers, url=response.url,
                   name=unit.name, source_id=unit.source_id, agency=unit.source.agency)


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """A parsed document: its items, or why it is not a feed; notes to log either way."""

    items: tuple[RawItem, ...] = ()
    error: str | None = None
    notes: tuple[tuple[int, str], ...] = ()
    """(logging level, message) pairs: a worker process cannot log for the parent."""
    prepared: Prepared | None = None
    """The items prepared for the store, when the parsing worker could do it too."""


def parse_and_prepare(request: ParseRequest, preparer: Preparer | None,
                      known: Collection[str] = ()) -> ParsedFeed:
    """In a worker: parse a document, then prepare its items, sparing them a second trip
    between processes. Preparation trouble is left to the pipeline (it prepares again)."""
    parsed = parse_feed(request)
    if preparer is None or parsed.error is not None or not parsed.items:
        return parsed
    try:
        return replace(parsed, items=(), prepared=preparer(parsed.items, known))
    except Exception:  # the pipeline prepares the items itself and reports what fails
        return parsed


def parse_feed(request: ParseRequest) -> ParsedFeed:
    """Parse a fetched document into raw items (pure; safe to run in a worker process):
    through the fast parser when it takes the document, else through feedparser."""
    if not request.body.strip():
        return ParsedFeed(error="empty response: no feed in it")
    fast = fastparse.parse_entries(request.body, request.headers, request.url)
    if fast is not None:
        notes: list[tuple[int, str]] = []
        try:
            return ParsedFeed(items=tuple(_items(fast, request, notes)), notes=tuple(notes))
        except Exception:  # whatever the fast path trips on, the reference decides
            log.debug("fast parse of %s failed; parsing with feedparser", request.name,
                      exc_info=True)
    return parse_feed_with_feedparser(request)


def parse_feed_with_feedparser(request: ParseRequest) -> ParsedFeed:
    """Parse a document with feedparser alone: the reference the fast path is held to,
    and the path of every document the fast one declines."""
    body = request.body
    if not body.strip():
        return ParsedFeed(error="empty response: no feed in it")
    # Only what helps decoding and relative links; Content-Location is where it came from.
    headers = {"content-location": request.url}
    for name in ("content-type", "content-language"):
        if name in request.headers:
            headers[name] = request.headers[name]
    # Imported here: a run whose feeds all answer 304 (or parse fast) never needs it.
    import feedparser

    # A stream, not bytes: given bytes or a string, feedparser may treat them as a file
    # name or a URL and open it.
    document = feedparser.parse(io.BytesIO(body), response_headers=headers,
                                sanitize_html=False, resolve_relative_uris=False)
    problem = document.get("bozo_exception") if document.get("bozo") else None
    ill_formed = isinstance(problem, xml.sax.SAXException)
    if not document.entries:
        if not document.get("version"):
            return ParsedFeed(error=_not_a_feed(body, request.headers, problem))
        if ill_formed:
            return ParsedFeed(error=f"not well-formed XML ({_one_line(problem)}) and no "
                              "items could be read from it")
    notes: list[tuple[int, str]] = []
    if problem is not None:
        notes.append((
            logging.WARNING if ill_formed else logging.INFO,
            f"{request.name}: {'not well-formed XML' if ill_formed else 'feed has a problem'}"
            f" ({_one_line(problem)}); read {len(document.entries)} items anyway",
        ))
    items = _items(document.entries, request, notes)
    return ParsedFeed(items=tuple(items), notes=tuple(notes))


def _not_a_feed(body: bytes, headers: Mapping[str, str], problem: object) -> str:
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    head = body[:1024].lower()
    if content_type in _HTML_TYPES or any(mark in head for mark in _HTML_MARKS):
        shown = f" (Content-Type: {content_type})" if content_type else ""
        return f"got an HTML page, not a feed{shown}; is this the feed's URL?"
    reason = _one_line(problem) if problem is not None else "no RSS or Atom elements in it"
    return f"not an RSS or Atom feed: {reason}"


def _one_line(problem: object) -> str:
    return " ".join(str(problem).split())[:300] or type(problem).__name__


def _items(entries: Sequence[Any], request: ParseRequest,
           notes: list[tuple[int, str]]) -> list[RawItem]:
    items: list[RawItem] = []
    first_with_guid: dict[str, RawItem] = {}
    for position, entry in enumerate(entries):
        item = _item(entry, request, position)
        if item.guid is not None and item.guid in first_with_guid:
            earlier = first_with_guid[item.guid]
            if (earlier.title, earlier.link, earlier.content) == (item.title, item.link,
                                                                   item.content):
                continue  # the same entry listed twice
            notes.append((logging.INFO, f"{request.name}: guid {item.guid!r} is used by two "
                          "different entries; telling the second apart by its link or title"))
            item = replace(item, guid=_fallback_identity(item))
        elif item.guid is not None:
            first_with_guid[item.guid] = item
        items.append(item)
    return items


def _item(entry: Any, request: ParseRequest, position: int) -> RawItem:
    title_detail = entry.get("title_detail") or {}
    # Titles as text, whatever the type: feeds mix escaped markup into them, and a title
    # is published as text everywhere.
    title = " ".join(html_to_text(title_detail.get("value") or entry.get("title") or "").split())
    content, is_html, base = _content(entry, request.url)
    guid = (entry.get("id") or "").strip() or None
    item = RawItem(
        source_id=request.source_id,
        origin=request.name,
        agency_label=request.agency,
        title=title,
        content=content,
        content_is_html=is_html,
        link=_safe_link(entry.get("link")),
        guid=guid,
        published=_date(entry),
        position=position,
        base_url=base,
    )
    return item if item.guid is not None else replace(item, guid=_fallback_identity(item))


def _fallback_identity(item: RawItem) -> str | None:
    """No usable guid: the link is identity enough (the store matches it); without a link,
    title and date are, when there is a date; otherwise the store matches by content."""
    if item.link is not None or item.published is None:
        return None
    basis = f"{title_key(item.title)}\x1f{item.published.isoformat()}"
    return "urn:newswire:title-date:" + hashlib.blake2b(basis.encode(), digest_size=12).hexdigest()


def _content(entry: Any, url: str) -> tuple[str, bool, str]:
    """The richest body an entry has, whether it is HTML, and the base for its links."""
    candidates = list(entry.get("content") or [])
    summary = entry.get("summary_detail")
    if summary:
        candidates.append(summary)
    if not candidates:
        return "", False, url
    chosen = next((c for c in candidates if c.get("type") in _HTML_TYPES), candidates[0])
    is_html = chosen.get("type") in _HTML_TYPES
    return chosen.get("value") or "", is_html, chosen.get("base") or url


def _safe_link(value: object) -> str | None:
    """An http(s) link, or None: a `javascript:` or `data:` link must never be published."""
    if not isinstance(value, str) or not value.strip():
        return None
    link = value.strip()
    return link if urlsplit(link).scheme.lower() in _LINK_SCHEMES else None


def _date(entry: Any) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        parsed = entry.get(key)
        if parsed is None:
            continue
        try:
            year, month, day, hour, minute, second = parsed[:6]
            return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        except (TypeError, ValueError):
            continue
    return None
