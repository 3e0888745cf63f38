"""Read the TOML configuration into frozen dataclasses.

Relative paths resolve against the config file's directory. Every problem raises
`ConfigError` naming the file, the key (`sources[2].url`) and the reason; unknown keys are
errors too, so a typo never silently does nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from aggregator.errors import ConfigError
from aggregator.query import QueryError, Term, parse_query

DEFAULT_CONFIG_PATH = Path("config/aggregator.toml")
CONFIG_ENV_VAR = "AGGREGATOR_CONFIG"

_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)", re.IGNORECASE)
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


DEFAULT_BASE_URL = "http://localhost:8080/"
RESERVED_SLUGS = frozenset({"combined", "feeds", "index", "archive", "healthz", "metrics"})
"""Names the output and the server use (combined.atom, feeds.opml, index.html, archive/,
/healthz, /metrics): an agency named so would replace or hide them."""
RESERVED_PREFIXES = ("topic-", "country-")
"""Saved-query and country feeds are published as topic-<slug>.* and country-<iso2>.*."""


def is_reserved_slug(slug: str) -> bool:
    """Whether an agency slug would collide with a name the output uses."""
    return slug in RESERVED_SLUGS or slug.startswith(RESERVED_PREFIXES)


@dataclass(frozen=True, slots=True)
class AgencyConfig:
    """An agency: its slug (the TOML table name), display name and other spellings."""

    slug: str
    name: str
    aliases: tuple[str, ...] = ()
    homepage: str | None = None


@dataclass(frozen=True, slots=True)
class OutputConfig:
    """Where and how the feeds are published."""

    dir: Path
    base_url: str
    title: str
    max_entries: int
    base_url_given: bool = True
    """False when the config leaves base_url out (the default): `--serve` may then derive
    it from the address it serves on."""


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """Where state lives: a SQLAlchemy URL (SQLite file by default)."""

    url: str
    lease: float = 300.0
    """Seconds a node holds the sources it claimed (several nodes on one PostgreSQL): a node
    that dies loses them after this long and another node takes them over."""
    node: str | None = None
    """This node's name in leases and logs; None: `<hostname>:<pid>`."""
    batch: int = 100
    """Sources a node claims at a time: nodes share a round's work batch by batch."""

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file, when the store is one."""
        prefix = "sqlite:///"
        return Path(self.url[len(prefix) :]) if self.url.startswith(prefix) else None


@dataclass(frozen=True, slots=True)
class ScheduleConfig:
    """The daemon's cadence, in seconds."""

    interval: float = 900.0
    jitter: float | None = None
    """Random delay added to each run, up to this; None: a tenth of the tick, at most 30 s."""
    misfire_grace: float | None = None
    """How late a run may still start (after a suspend or an overrun); None: one tick."""


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """HTTP serving of the output directory (`aggregate --serve`)."""

    host: str = "127.0.0.1"
    port: int = 8080
    """0 picks a free port (the daemon logs the one it got)."""
    max_age: float | None = None
    """Cache-Control max-age of published files; None: the schedule's tick."""
    stale_after: float | None = None
    """/healthz fails when the last good run is older; None: three ticks, at least 60 s."""
    access_log: bool = False
    read_timeout: float = 10.0
    """Seconds a client has to send a whole request head; a slower one is disconnected."""
    idle_timeout: float = 5.0
    """Seconds an idle keep-alive connection stays open."""


def _fitted_thresholds() -> tuple[float, float]:
    """The merge and agree thresholds fitted with dedup's scorer (its data file, read
    without importing dedup)."""
    data = json.loads((Path(__file__).parent / "dedup" / "scorer.json").read_text("utf-8"))
    return float(data["merge_threshold"]), float(data["agree_threshold"])


_FITTED_MERGE, _FITTED_AGREE = _fitted_thresholds()


@dataclass(frozen=True, slots=True)
class DedupConfig:
    """Thresholds of story matching; the defaults are fitted with the scorer on the dev split
    of the labelled sets (benchmarks/fit_dedup.py)."""

    window_days: float = 14.0
    """Items whose dates are further apart than this are never compared."""
    merge_threshold: float = _FITTED_MERGE
    """Probability at or above which two items report one story."""
    agree_threshold: float = _FITTED_AGREE
    """Probability every member of a story must reach with a joining item: related to all,
    conflicting with none (no chaining through weak links)."""
    near_miss_threshold: float = min(0.2, _FITTED_MERGE)
    """Score at or above which a pair kept apart is still recorded for `explain`."""
    key_cap: int = 100
    """A blocking key shared by more items than this (within the window) is ignored."""
    candidate_limit: int = 20
    """At most this many candidate items are compared with each new item."""


@dataclass(frozen=True, slots=True)
class FetchConfig:
    """How live feeds are fetched: limits that keep a run polite and bounded."""

    timeout: float = 30.0
    """Seconds one fetch may take in all (connect, redirects, the whole body)."""
    max_bytes: int = 10_000_000
    """Largest response body accepted, as sent and once decompressed."""
    concurrency: int = 16
    """Fetches in flight at once, over all hosts."""
    per_host: int = 4
    """Fetches in flight at once to one host: fewer than the 6 connections a browser opens
    to a site, each kept alive for the host's next feed (README, "Politeness")."""
    max_redirects: int = 5
    """Redirects followed before a fetch fails."""
    backoff: float = 300.0
    """Seconds to wait after a feed's first failure; each further failure doubles it."""
    max_backoff: float = 43_200.0
    """Longest wait after failures; also caps a server's Retry-After."""


@dataclass(frozen=True, slots=True)
class WebSubConfig:
    """WebSub (W3C): external hubs to ping, and the hub `aggregate --serve` runs itself."""

    hubs: tuple[str, ...] = ()
    """External hubs: advertised in every feed and pinged after a run that changed feeds."""
    timeout: float = 5.0
    """Seconds the pings of one run may take in all; also each request to a subscriber."""
    lease: float = 864_000.0
    """Lease of a subscription that asks for none (10 days)."""
    min_lease: float = 300.0
    """Shortest lease granted; a shorter `hub.lease_seconds` is raised to it."""
    max_lease: float = 2_592_000.0
    """Longest lease granted (30 days); a longer `hub.lease_seconds` is cut to it."""
    attempts: int = 6
    """Deliveries of one update to one subscriber before it is given up."""
    retry_backoff: float = 10.0
    """Wait before the second attempt; each further wait doubles."""
    queue: int = 10_000
    """Deliveries waiting at most; past that, new ones are dropped (and logged)."""
    served_hub: str | None = None
    """The hub's URL when `aggregate --serve` runs it (not a config key)."""

    @property
    def advertised(self) -> tuple[str, ...]:
        """The hubs every feed names: the served hub first, then the configured ones."""
        return ((self.served_hub,) if self.served_hub else ()) + self.hubs


@dataclass(frozen=True, slots=True)
class SeedFileSource:
    """Bundled or user-written seed files, matched by a glob."""

    path: str
    """An absolute glob pattern."""
    enabled: bool = True
    name: str | None = None
    type: Literal["seedfile"] = "seedfile"

    @property
    def label(self) -> str:
        """How messages name this source."""
        return self.name or self.path


@dataclass(frozen=True, slots=True)
class FeedSource:
    """A live RSS/Atom feed of one agency."""

    agency: str
    url: str
    enabled: bool = True
    interval: float | None = None
    """Seconds between fetches; None means the schedule's interval."""
    name: str | None = None
    type: Literal["feed"] = "feed"

    @property
    def label(self) -> str:
        """How messages name this source."""
        return self.name or self.url


SourceConfig = SeedFileSource | FeedSource


@dataclass(frozen=True, slots=True)
class TopicConfig:
    """A saved query published as its own feed (`topic-<slug>.atom`)."""

    slug: str
    title: str
    query: str
    """The query as written; `parsed` is its AST (aggregator.query)."""
    parsed: Term


@dataclass(frozen=True, slots=True)
class CountriesConfig:
    """Country feeds: one per country with at least `min_stories` stories about it."""

    min_stories: int = 3


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration of one aggregator instance."""

    path: Path
    output: OutputConfig
    store: StoreConfig
    schedule: ScheduleConfig
    dedup: DedupConfig
    agencies: Mapping[str, AgencyConfig] = field(default_factory=dict)
    sources: tuple[SourceConfig, ...] = ()
    serve: ServeConfig = field(default_factory=ServeConfig)
    fetch: FetchConfig = field(default_factory=FetchConfig)
    websub: WebSubConfig = field(default_factory=WebSubConfig)
    topics: tuple[TopicConfig, ...] = ()
    countries: CountriesConfig = field(default_factory=CountriesConfig)

    @property
    def enabled_sources(self) -> tuple[SourceConfig, ...]:
        """The sources a run reads."""
        return tuple(s for s in self.sources if s.enabled)

    def fingerprint(self, *sections: str) -> str:
        """A digest of some sections (`agencies`, `output`, ...): equal digests, equal effect."""
        picked = {name: _plain(getattr(self, name)) for name in sections}
        blob = json.dumps(picked, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    return value


def find_config_path(explicit: str | None) -> Path:
    """The config to use: `--config`, else $AGGREGATOR_CONFIG, else config/aggregator.toml."""
    if explicit:
        return Path(explicit)
    from_env = os.environ.get(CONFIG_ENV_VAR)
    if from_env:
        return Path(from_env)
    return DEFAULT_CONFIG_PATH


def load_config(path: Path | str) -> Config:
    """Read and validate the config file at `path`; raise ConfigError on any problem."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(path, None, "config file not found") from None
    except OSError as exc:
        raise ConfigError(path, None, f"cannot read config file: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ConfigError(path, None, f"not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, None, f"invalid TOML: {exc}") from None
    return parse_config(data, path)


def parse_config(data: Mapping[str, Any], path: Path) -> Config:
    """Validate an already-parsed TOML document read from `path`."""
    base = path.resolve().parent
    root = _Table(data, path, "")
    output = _parse_output(root.table("output"), base)
    store = _parse_store(root.table("store"), base)
    schedule = _parse_schedule(root.table("schedule"))
    dedup = _parse_dedup(root.table("dedup"))
    fetch = _parse_fetch(root.table("fetch"))
    agencies = _parse_agencies(root.table("agencies"))
    sources = _parse_sources(root.table_list("sources"), base, agencies)
    serve = _parse_serve(root.table("serve"))
    websub = _parse_websub(root.table("websub"))
    topics = _parse_topics(root.table_list("topics"))
    countries = _parse_countries(root.table("countries"))
    root.finish()
    return Config(
        path=path,
        output=output,
        store=store,
        schedule=schedule,
        dedup=dedup,
        agencies=agencies,
        sources=sources,
        serve=serve,
        fetch=fetch,
        websub=websub,
        topics=topics,
        countries=countries,
    )


def _parse_output(t: _Table, base: Path) -> OutputConfig:
    out_dir = _resolve(base, t.string("dir", "../output"))
    base_url_given = t.optional_string("base_url") is not None
    base_url = t.string("base_url", DEFAULT_BASE_URL)
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise t.error("base_url", f"must be an http(s) URL, got {base_url!r}")
    if not base_url.endswith("/"):
        base_url += "/"
    title = t.string("title", "Security & Justice Newswire")
    if not title.strip():
        raise t.error("title", "must not be empty")
    max_entries = t.integer("max_entries", 200, minimum=1)
    t.finish()
    return OutputConfig(dir=out_dir, base_url=base_url, title=title, max_entries=max_entries,
                        base_url_given=base_url_given)


def _parse_store(t: _Table, base: Path) -> StoreConfig:
    path = t.optional_string("path")
    url = t.optional_string("url")
    lease = t.duration("lease", 300.0)
    node = t.optional_string("node")
    batch = t.integer("batch", 100, minimum=1)
    t.finish()
    if node is not None and not _NODE_NAME.fullmatch(node):
        raise t.error("node", f"not a node name (1-100 letters, digits, '.', '_', ':', '-'): "
                              f"{node!r}")
    if path is not None and url is not None:
        raise t.error("url", "give either path or url, not both")
    if url is not None:
        if "://" not in url:
            raise t.error("url", f"not a database URL: {url!r}")
        scheme = url.split("://", 1)[0].split("+", 1)[0].lower()
        if scheme not in ("sqlite", "postgresql", "postgres"):
            raise t.error("url", f"unsupported database {scheme!r}: give a PostgreSQL URL "
                          "(postgresql://...) or a SQLite file as `path`")
        return StoreConfig(url=_with_driver(url), lease=lease, node=node, batch=batch)
    return StoreConfig(url=f"sqlite:///{_resolve(base, path or '../state/aggregator.db')}",
                       lease=lease, node=node, batch=batch)


_NODE_NAME = re.compile(r"[A-Za-z0-9._:-]{1,100}")


def _with_driver(url: str) -> str:
    """Pick psycopg 3 for plain postgresql:// URLs (SQLAlchemy would default to psycopg2)."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain) :]
    return url


def _parse_schedule(t: _Table) -> ScheduleConfig:
    interval = t.duration("interval", 900.0)
    jitter = t.duration("jitter", None, allow_zero=True)
    misfire_grace = t.duration("misfire_grace", None)
    t.finish()
    return ScheduleConfig(interval=interval, jitter=jitter, misfire_grace=misfire_grace)


def _parse_serve(t: _Table) -> ServeConfig:
    host = t.string("host", "127.0.0.1")
    if not host.strip():
        raise t.error("host", "must not be empty")
    port = t.integer("port", 8080, minimum=0)
    if port > 65535:
        raise t.error("port", f"must be at most 65535, got {port}")
    max_age = t.duration("max_age", None, allow_zero=True)
    stale_after = t.duration("stale_after", None)
    access_log = t.boolean("access_log", False)
    read_timeout = t.duration("read_timeout", 10.0)
    idle_timeout = t.duration("idle_timeout", 5.0)
    t.finish()
    return ServeConfig(host=host, port=port, max_age=max_age, stale_after=stale_after,
                       access_log=access_log, read_timeout=read_timeout,
                       idle_timeout=idle_timeout)


def _parse_dedup(t: _Table) -> DedupConfig:
    default = DedupConfig()
    window = t.number("window_days", default.window_days, minimum=0.0)
    merge = t.number("merge_threshold", default.merge_threshold, minimum=0.0, maximum=1.0)
    agree = t.number("agree_threshold", default.agree_threshold, minimum=0.0, maximum=1.0)
    near = t.number("near_miss_threshold", default.near_miss_threshold, minimum=0.0, maximum=1.0)
    key_cap = t.integer("key_cap", default.key_cap, minimum=1)
    candidate_limit = t.integer("candidate_limit", default.candidate_limit, minimum=1)
    t.finish()
    for name, value in (("near_miss_threshold", near), ("agree_threshold", agree)):
        if value > merge:
            raise t.error(name, f"must not exceed merge_threshold ({merge})")
    return DedupConfig(
        window_days=window, merge_threshold=merge, agree_threshold=agree,
        near_miss_threshold=near, key_cap=key_cap, candidate_limit=candidate_limit,
    )


def _parse_fetch(t: _Table) -> FetchConfig:
    default = FetchConfig()
    fetch = FetchConfig(
        timeout=t.duration("timeout", default.timeout),
        max_bytes=t.integer("max_bytes", default.max_bytes, minimum=1024),
        concurrency=t.integer("concurrency", default.concurrency, minimum=1),
        per_host=t.integer("per_host", default.per_host, minimum=1),
        max_redirects=t.integer("max_redirects", default.max_redirects, minimum=0),
        backoff=t.duration("backoff", default.backoff),
        max_backoff=t.duration("max_backoff", default.max_backoff),
    )
    t.finish()
    if fetch.backoff > fetch.max_backoff:
        raise t.error("backoff", f"must not exceed max_backoff ({fetch.max_backoff:g}s)")
    return fetch


def _parse_websub(t: _Table) -> WebSubConfig:
    default = WebSubConfig()
    hubs = t.string_list("hubs", ())
    for index, hub in enumerate(hubs):
        parts = urlsplit(hub)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise t.error(f"hubs[{index}]", f"must be an http(s) URL, got {hub!r}")
    websub = WebSubConfig(
        hubs=hubs,
        timeout=t.duration("timeout", default.timeout),
        lease=t.duration("lease", default.lease),
        min_lease=t.duration("min_lease", default.min_lease),
        max_lease=t.duration("max_lease", default.max_lease),
        attempts=t.integer("attempts", default.attempts, minimum=1),
        retry_backoff=t.duration("retry_backoff", default.retry_backoff),
        queue=t.integer("queue", default.queue, minimum=1),
    )
    t.finish()
    if websub.min_lease > websub.max_lease:
        raise t.error("min_lease", f"must not exceed max_lease ({websub.max_lease:g}s)")
    if not websub.min_lease <= websub.lease <= websub.max_lease:
        raise t.error("lease", f"must lie between min_lease ({websub.min_lease:g}s) "
                               f"and max_lease ({websub.max_lease:g}s)")
    return websub


def _parse_agencies(t: _Table) -> dict[str, AgencyConfig]:
    agencies: dict[str, AgencyConfig] = {}
    for slug in t.keys():  # noqa: SIM118 (a _Table, not a dict)
        if not _SLUG_RE.match(slug):
            raise t.error(slug, "agency names must be lowercase letters, digits and dashes")
        if is_reserved_slug(slug):
            raise t.error(slug, f"{slug!r} is reserved: the output uses it for its own files "
                          f"({', '.join(sorted(RESERVED_SLUGS))}, topic-*, country-*); "
                          "choose another name for this agency")
        at = t.table(slug)
        name = at.string("name", slug)
        if not name.strip():
            raise at.error("name", "must not be empty")
        aliases = at.string_list("aliases", ())
        homepage = at.optional_string("homepage")
        at.finish()
        agencies[slug] = AgencyConfig(slug=slug, name=name, aliases=aliases, homepage=homepage)
    t.finish()
    return agencies


def _parse_sources(
    tables: list[_Table],
    base: Path,
    agencies: Mapping[str, AgencyConfig],
) -> tuple[SourceConfig, ...]:
    sources: list[SourceConfig] = []
    for t in tables:
        kind = t.string("type")
        enabled = t.boolean("enabled", True)
        name = t.optional_string("name")
        source: SourceConfig
        if kind == "seedfile":
            pattern = t.string("path")
            source = SeedFileSource(path=str(_resolve(base, pattern)), enabled=enabled, name=name)
        elif kind == "feed":
            agency = t.string("agency")
            if agency not in agencies:
                known = ", ".join(sorted(agencies)) or "none configured"
                raise t.error("agency", f"unknown agency {agency!r} (known: {known})")
            url = t.string("url")
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise t.error("url", f"must be an http(s) URL, got {url!r}")
            interval = t.duration("interval", None)
            source = FeedSource(
                agency=agency, url=url, enabled=enabled, interval=interval, name=name
            )
        else:
            raise t.error("type", f"unknown source type {kind!r} (known: seedfile, feed)")
        t.finish()
        sources.append(source)
    return tuple(sources)


def _parse_topics(tables: list[_Table]) -> tuple[TopicConfig, ...]:
    topics: list[TopicConfig] = []
    seen: set[str] = set()
    for t in tables:
        slug = t.string("slug")
        if not _SLUG_RE.match(slug):
            raise t.error("slug", "must be lowercase letters, digits and dashes")
        if slug in seen:
            raise t.error("slug", f"another topic already has the slug {slug!r}")
        seen.add(slug)
        title = t.string("title")
        if not title.strip():
            raise t.error("title", "must not be empty")
        query = t.string("query")
        try:
            parsed = parse_query(query)
        except QueryError as exc:
            raise t.error("query", f"invalid query {query!r}: {exc}") from None
        t.finish()
        topics.append(TopicConfig(slug=slug, title=title, query=query, parsed=parsed))
    return tuple(topics)


def _parse_countries(t: _Table) -> CountriesConfig:
    min_stories = t.integer("min_stories", CountriesConfig().min_stories, minimum=1)
    t.finish()
    return CountriesConfig(min_stories=min_stories)


def _resolve(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def parse_duration(value: object, *, allow_zero: bool = False) -> float:
    """Seconds from a number or a string like `15m`, `1h30m`, `90s`, `2d`; ValueError if bad."""
    if isinstance(value, bool):
        raise ValueError("expected a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        pos, seconds = 0, 0.0
        for match in _DURATION_RE.finditer(text):
            if text[pos : match.start()].strip():
                break
            seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]
            pos = match.end()
        if pos == 0 or text[pos:].strip():
            raise ValueError(f"not a duration: {value!r} (try '15m', '1h', '90s')")
    else:
        raise ValueError("expected a duration such as '15m'")
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError("must be longer than zero")
    return seconds


_TYPE_NAMES = {
    str: "string",
    int: "integer",
    float: "float",
    bool: "boolean",
    dict: "table",
    list: "array",
}


def _type_name(value: object) -> str:
    for kind, name in _TYPE_NAMES.items():
        if type(value) is kind:
            return name
    return type(value).__name__


class _Table:
    """One TOML table being read: typed getters that remember which keys were used."""

    def __init__(self, data: Mapping[str, Any], file: Path, where: str) -> None:
        self._data = data
        self._file = file
        self._where = where
        self._used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self._where}.{name}" if self._where else name

    def error(self, name: str, reason: str) -> ConfigError:
        return ConfigError(self._file, self.key(name), reason)

    def keys(self) -> list[str]:
        return list(self._data)

    def _get(self, name: str) -> Any:
        self._used.add(name)
        return self._data.get(name)

    def _require(self, name: str, value: Any, kinds: tuple[type, ...], expected: str) -> Any:
        if value is None:
            raise self.error(name, f"missing required key (expected {expected})")
        if isinstance(value, bool) and bool not in kinds:
            raise self.error(name, f"expected {expected}, got boolean")
        if not isinstance(value, kinds):
            raise self.error(name, f"expected {expected}, got {_type_name(value)}")
        return value

    def string(self, name: str, default: str | None = None) -> str:
        value = self._get(name)
        if value is None and default is not None:
            return default
        return str(self._require(name, value, (str,), "a string"))

    def optional_string(self, name: str) -> str | None:
        value = self._get(name)
        return None if value is None else str(self._require(name, value, (str,), "a string"))

    def boolean(self, name: str, default: bool) -> bool:
        value = self._get(name)
        return default if value is None else bool(self._require(name, value, (bool,), "true/false"))

    def integer(self, name: str, default: int, *, minimum: int | None = None) -> int:
        value = self._get(name)
        if value is None:
            return default
        number = int(self._require(name, value, (int,), "an integer"))
        if minimum is not None and number < minimum:
            raise self.error(name, f"must be at least {minimum}, got {number}")
        return number

    def number(
        self, name: str, default: float, *, minimum: float | None = None,
        maximum: float | None = None,
    ) -> float:
        value = self._get(name)
        if value is None:
            return default
        number = float(self._require(name, value, (int, float), "a number"))
        if minimum is not None and number < minimum:
            raise self.error(name, f"must be at least {minimum}, got {number}")
        if maximum is not None and number > maximum:
            raise self.error(name, f"must be at most {maximum}, got {number}")
        return number

    def duration(self, name: str, default: float | None, *, allow_zero: bool = False) -> Any:
        value = self._get(name)
        if value is None:
            return default
        try:
            return parse_duration(value, allow_zero=allow_zero)
        except ValueError as exc:
            raise self.error(name, str(exc)) from None

    def string_list(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self._get(name)
        if value is None:
            return default
        self._require(name, value, (list,), "an array of strings")
        for index, element in enumerate(value):
            if not isinstance(element, str):
                raise self.error(f"{name}[{index}]",
                                 f"expected a string, got {_type_name(element)}")
        return tuple(value)

    def table(self, name: str) -> _Table:
        value = self._get(name)
        if value is None:
            value = {}
        self._require(name, value, (dict,), "a table")
        return _Table(value, self._file, self.key(name))

    def table_list(self, name: str) -> list[_Table]:
        value = self._get(name)
        if value is None:
            return []
        self._require(name, value, (list,), f"an array of tables ([[{name}]])")
        tables = []
        for index, element in enumerate(value, start=1):
            # Numbered from 1, as a person counts the [[sources]] tables in the file.
            where = f"{self.key(name)}[{index}]"
            if not isinstance(element, dict):
                raise ConfigError(self._file, where, f"expected a table, got {_type_name(element)}")
            tables.append(_Table(element, self._file, where))
        return tables

    def finish(self) -> None:
        """Fail on the first key nobody asked for: a typo or a key this version lacks."""
        for name in self._data:
            if name not in self._used:
                raise self.error(name, "unknown key")
