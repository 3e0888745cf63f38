"""One run: read the sources, place their new items into stories, publish.

`run_once` is what the CLI and the scheduler call; it composes three steps, each giving
its result to the next: `read_sources` (fetch, parse, prepare and store every due unit),
`placement.place` (deduplicate) and `_publish`. A source that fails is reported and the
others go on; items it published before stay published. Publishing is skipped when nothing
that shapes the output changed since the last publish (and the files are all there).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aggregator import clock, placement
from aggregator.config import Config, is_reserved_slug
from aggregator.errors import PublishError, SourceError, StoreError
from aggregator.execution import Done, Preparation, Workers
from aggregator.fileio import write_atomic
from aggregator.manifest import MANIFEST_NAME, PUBLISHED_RECORD
from aggregator.model import Item, RunResult, SourceReport, StoredItem
from aggregator.prepare import Kept, Prepared
from aggregator.sources import ReadJob, ReadOutcome, SourceUnit, expand, read_all
from aggregator.store import SourceState, Store, open_store

if TYPE_CHECKING:
    from aggregator import dedup

log = logging.getLogger(__name__)


def run_once(config: Config, *, now: datetime | None = None) -> RunResult:
    """Run every enabled source once, then deduplicate and publish; never raises for a source."""
    # Whole seconds: first-seen times are published, and sub-second noise helps nobody.
    started = (now or clock.now()).replace(microsecond=0)
    timer = time.perf_counter()
    store: Store = open_store(config.store.url)
    try:
        read = read_sources(store, config, started, fixed=now is not None)
        read_at = time.perf_counter()
        placement.place(store, config, read.changed, read.fresh, read.fresh_keys)
        placed_at = time.perf_counter()
        published = _publish_step(store, config)
        warnings = [*read.warnings, *_ping_hubs(config, published.written)]
        items_total, stories_total = store.counts()
        log.info("timing read=%.2fs dedup=%.2fs publish=%.2fs", read_at - timer,
                 placed_at - read_at, time.perf_counter() - placed_at)
    finally:
        store.close()
    return RunResult(
        started=started,
        duration=time.perf_counter() - timer,
        sources=read.reports,
        items_new=read.new,
        items_updated=len(read.changed),
        items_total=items_total,
        stories=stories_total,
        files_written=published.written,
        files_unchanged=published.unchanged,
        warnings=tuple(warnings),
        publish_error=published.error,
    )


# -- read: every due unit fetched, parsed, prepared and stored ------------------------------


@dataclass(frozen=True, slots=True)
class ReadResult:
    """What reading the due sources gave the rest of the run."""

    reports: tuple[SourceReport, ...]
    """One per unit (and per source that could not be expanded), in config order."""
    warnings: tuple[str, ...]
    new: int
    changed: tuple[str, ...]
    """Ids of stored items whose source edited them."""
    fresh: Mapping[str, dedup.Features]
    """Dedup features of this run's new items, analysed as they were prepared."""
    fresh_keys: Mapping[str, tuple[str, ...]]
    """Their blocking keys, worked out as each unit's items were stored."""


@dataclass(slots=True)
class _Progress:
    reports: list[SourceReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    new: int = 0
    changed: list[str] = field(default_factory=list)
    fresh: dict[str, dedup.Features] = field(default_factory=dict)
    fresh_keys: dict[str, tuple[str, ...]] = field(default_factory=dict)
    order: dict[str, int] = field(default_factory=dict)
    """Each source's place in the config: reports come in as units finish."""
    states_to_save: list[SourceState] = field(default_factory=list)
    """States of the units read in this batch, saved together before their leases go."""

    def result(self) -> ReadResult:
        """The reports sorted as their sources appear in the config, and the rest."""
        return ReadResult(
            reports=tuple(sorted(self.reports, key=lambda report: self.order.get(report.name, 0))),
            warnings=tuple(self.warnings), new=self.new, changed=tuple(self.changed),
            fresh=self.fresh, fresh_keys=self.fresh_keys)


def read_sources(store: Store, config: Config, started: datetime, *, fixed: bool) -> ReadResult:
    """Read the due units, claimed from the store a batch at a time.

    Several nodes may share the store: each claims due units nobody holds (a lease that
    expires, so a dead node's units are taken over), reads and stores them, saves their
    fetch state and only then releases them. Units this node did not read were not due, or
    were read by another node; they are reported as skipped (or still failing). `fixed`: the
    run's time is given (tests), and every batch reads at `started`.
    """
    progress = _Progress()
    read_digest = config.fingerprint("agencies")
    # A long run claims its last batches well after it started: each batch is read at
    # the time it is claimed, so the feeds' next due times count from their real fetch.
    batch_clock: Callable[[], datetime] = (
        (lambda: started) if fixed
        else (lambda: max(started, clock.now().replace(microsecond=0))))
    units: dict[str, SourceUnit] = {}
    for source in config.enabled_sources:
        try:
            expanded = expand(source, config)
        except SourceError as exc:
            _fail(progress, source.label, str(exc))
            continue
        for unit in expanded:
            progress.order.setdefault(unit.name, len(progress.order))
            units.setdefault(unit.source_id, unit)
    store.add_sources(units)
    holder = node_name(config)
    claimed: set[str] = set()

    now = batch_clock()

    def is_due(source_id: str, state: SourceState | None) -> bool:
        return units[source_id].due(state, now)

    with Workers() as run_workers:
        while True:
            now = batch_clock()
            batch = store.claim_sources(
                [s for s in units if s not in claimed], is_due, holder=holder,
                at=clock.wall_now(), lease=config.store.lease, limit=config.store.batch)
            if not batch:
                break
            claimed.update(batch)
            jobs = _jobs(store, units, batch, read_digest)
            try:
                # The worker processes start before the lease keeper's thread exists: a
                # process with one thread forks its workers, which then die with it.
                pool = run_workers.for_jobs(jobs)
                with _LeaseKeeper(store, batch, holder, config.store.lease):
                    _read(store, config, jobs, read_digest, now, progress,
                          Preparation(pool, config.agencies, now, limit=2 * run_workers.count))
                    # Saved before the release: whoever claims a unit next sees it was read.
                    store.save_source_states(progress.states_to_save)
                    progress.states_to_save.clear()
            finally:
                _release(store, batch, holder)
    unread = [s for s in units if s not in claimed]
    states = store.source_states(unread)
    for source_id in unread:
        unit, state = units[source_id], states.get(source_id)
        if not unit.due(state, now) and state is not None and state.failures:
            # Backing off after failures: not retried yet, but still reported as failing.
            _fail(progress, unit.name, f"{state.last_error} ({_failing_note(state)})")
        else:
            progress.reports.append(SourceReport(name=unit.name, ok=True, skipped=True))
    return progress.result()


def _jobs(store: Store, units: Mapping[str, SourceUnit],
          batch: Mapping[str, SourceState | None], read_digest: str) -> list[ReadJob]:
    """The batch's jobs, each with the entry keys of its unit's stored items (none when
    the config that shapes items changed: everything is prepared again then; nor for a unit
    that will surely be found unchanged)."""
    forced = {s: state is None or state.read_digest != read_digest for s, state in batch.items()}
    known = store.entry_keys([s for s, force in forced.items()
                              if not force and not _surely_unchanged(units[s], batch[s])])
    return [ReadJob(units[s], state, forced[s], known.get(s, {})) for s, state in batch.items()]


def node_name(config: Config) -> str:
    """This node's name in leases: `[store] node`, else `<hostname>:<pid>`."""
    return config.store.node or f"{socket.gethostname()[:80]}:{os.getpid()}"


def _release(store: Store, source_ids: Iterable[str], holder: str) -> None:
    try:
        store.release_sources(source_ids, holder)
    except StoreError as exc:  # the leases expire on their own; the run's error matters more
        log.warning("cannot release leases: %s", exc)


class _LeaseKeeper:
    """Renews this node's leases on the batch it reads, every third of a lease, so a slow
    batch keeps them for as long as the node lives; a node that dies stops renewing."""

    def __init__(self, store: Store, source_ids: Iterable[str], holder: str,
                 lease: float) -> None:
        self._store = store
        self._ids = list(source_ids)
        self._holder = holder
        self._lease = lease
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="newswire-leases",
                                        daemon=True)

    def __enter__(self) -> _LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _renew(self) -> None:
        while not self._stop.wait(self._lease / 3):
            try:
                self._store.renew_sources(self._ids, self._holder, at=clock.wall_now(),
                                          lease=self._lease)
            except StoreError as exc:  # the run itself will meet the store's trouble
                log.warning("cannot renew leases: %s", exc)


def _fail(progress: _Progress, name: str, message: str) -> None:
    log.error("%s", message)
    progress.order.setdefault(name, len(progress.order))
    progress.reports.append(SourceReport(name=name, ok=False, error=message))


def _failing_note(state: SourceState) -> str:
    """How long a source has been failing and when it is tried again."""
    parts = [f"{state.failures} failed attempts in a row" if state.failures > 1
             else "failed once"]
    if state.next_attempt is not None:
        parts.append(f"next attempt after {state.next_attempt:%Y-%m-%d %H:%M:%S}Z")
    return "; ".join(parts)


def _surely_unchanged(unit: SourceUnit, state: SourceState | None) -> bool:
    """Whether the unit says reading it will find nothing new (seed files can tell)."""
    check = getattr(unit, "surely_unchanged", None)
    return bool(check(state, False)) if check is not None else False


@dataclass(frozen=True, slots=True)
class _Unit:
    """A unit read with items, waiting for them to be prepared and stored."""

    outcome: ReadOutcome
    new_state: SourceState


def _read(
    store: Store, config: Config, jobs: Sequence[ReadJob], read_digest: str,
    now: datetime, progress: _Progress, preparation: Preparation[_Unit],
) -> None:
    """Read every job and store what it gave.

    Outcomes arrive as units finish (live feeds are fetched and parsed concurrently). Their
    entries are prepared (normalized and analysed, but for those stored unchanged) in worker
    processes when the run is large, and stored here as each unit's preparation completes,
    while the others go on.
    """
    for outcome in read_all(jobs, now, preparation.pool, preparation.preparer):
        new_state = _handle_outcome(store, outcome, read_digest, now, progress)
        if new_state is None:
            continue
        fetched = outcome.fetched
        assert fetched is not None and fetched.items is not None
        unit = _Unit(outcome, new_state)
        if fetched.prepared is not None:  # the worker that read it prepared it too
            _store_prepared(store, Done(unit, fetched.prepared), now, progress)
            continue
        for done in preparation.submit(unit, fetched.items, outcome.job.known):
            _store_prepared(store, done, now, progress)
    for done in preparation.drain():
        _store_prepared(store, done, now, progress)


def _handle_outcome(
    store: Store, outcome: ReadOutcome, read_digest: str, now: datetime,
    progress: _Progress,
) -> SourceState | None:
    """Record a failure or an unchanged unit; for a unit with items, the state to save once
    they are stored."""
    unit, state = outcome.job.unit, outcome.job.state
    if outcome.error is not None:
        failed = unit.failed(state, now, outcome.error)
        store.save_source_state(failed)
        message = str(outcome.error)
        if failed.failures > 1 or failed.next_attempt is not None:
            message += f" ({_failing_note(failed)})"
        _fail(progress, unit.name, message)
        return None
    fetched = outcome.fetched
    assert fetched is not None
    new_state = replace(
        fetched.state, read_digest=read_digest, last_attempt=now, last_success=now,
        last_error=None, failures=0,
    )
    if fetched.items is None:
        # Saved with the batch, before its leases go: one write instead of one per feed.
        progress.states_to_save.append(new_state)
        progress.reports.append(SourceReport(name=unit.name, ok=True, skipped=True))
        return None
    return new_state


@dataclass(frozen=True, slots=True)
class _Found:
    """A unit's items as it lists them now, ready for the store: the ones prepared in this
    run (with features) and the ones kept as stored (without)."""

    items: tuple[Item, ...]
    features: tuple[object | None, ...]
    serialized: tuple[str | None, ...]
    keys: tuple[str, ...]


def _store_prepared(store: Store, done: Done[_Unit], now: datetime, progress: _Progress) -> None:
    """Store a unit's prepared items; a failure is recorded in its state and reported."""
    job = done.tag.outcome.job
    unit, state = job.unit, job.state
    prepared = done.prepared
    try:
        if prepared is None:
            raise done.error or RuntimeError("no items prepared")
        found = _without_forgotten(store, _found(store, prepared, job.known), unit.name)
        for warning in prepared.warnings:
            log.warning("%s", warning)
        progress.warnings.extend(prepared.warnings)
        reconciled = store.reconcile(unit.source_id, found.items, now, found.serialized,
                                     found.keys)
    except StoreError:
        raise  # the store itself is unusable: no other source would fare better
    except Exception as exc:  # a bug with one source's items must not stop the others
        log.debug("cannot store the items of %s", unit.name, exc_info=True)
        first_line = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        error = SourceError(unit.name, "internal error while storing its items: "
                            f"{type(exc).__name__}: {first_line}")
        store.save_source_state(unit.failed(state, now, error))
        _fail(progress, unit.name, str(error))
        return
    progress.states_to_save.append(done.tag.new_state)  # saved with its batch, before release
    for position, item_id in zip(reconciled.new_positions, reconciled.new, strict=True):
        features = found.features[position]
        # An item kept as stored is never new here; were it, placement analyses it.
        if features is not None:
            settled = progress.fresh[item_id] = placement.with_id(features, item_id)
            # Here rather than in the dedup step: with workers, this process would otherwise
            # wait for them idle.
            progress.fresh_keys[item_id] = placement.keys_of(settled)
    progress.new += len(reconciled.new)
    progress.changed.extend(reconciled.changed)
    log.info("source=%s items=%d new=%d updated=%d gone=%d prepared=%d", unit.name,
             len(found.items), len(reconciled.new), len(reconciled.changed), reconciled.gone,
             len(prepared.items))
    progress.reports.append(SourceReport(name=unit.name, ok=True, items=len(found.items)))


def _found(store: Store, prepared: Prepared, known: Mapping[str, str]) -> _Found:
    """The unit's items in the order it lists them: those prepared now (their features
    serialized for the store), and the stored items of the entries kept (where the unit
    lists them now)."""
    serialized = tuple(placement.serialized(f) for f in prepared.features)
    if not prepared.kept:
        return _Found(prepared.items, prepared.features, serialized, prepared.keys)
    stored = {s.item_id: s for s in store.items(known[k.key] for k in prepared.kept)}
    rows: list[tuple[int, Item, object | None, str | None, str]] = list(zip(
        prepared.places, prepared.items, prepared.features, serialized, prepared.keys,
        strict=True))
    for kept in prepared.kept:
        item = stored.get(known[kept.key])
        if item is not None:  # else forgotten meanwhile: not listed again
            rows.append((kept.index, _as_listed(item, kept), None, None, kept.key))
    rows.sort(key=lambda row: row[0])
    return _Found(tuple(r[1] for r in rows), tuple(r[2] for r in rows),
                  tuple(r[3] for r in rows), tuple(r[4] for r in rows))


_ITEM_FIELDS = tuple(f.name for f in fields(Item))


def _as_listed(stored: StoredItem, kept: Kept) -> Item:
    """A stored item as the unit lists it now: only its place may have moved."""
    values = {name: getattr(stored, name) for name in _ITEM_FIELDS}
    return Item(**{**values, "origin": kept.origin, "position": kept.position})


def _without_forgotten(store: Store, found: _Found, source: str) -> _Found:
    """The items minus those `aggregate forget` took down for good."""
    forgotten = store.forgotten(found.items)
    if not any(forgotten):
        return found
    keep = [index for index, dead in enumerate(forgotten) if not dead]
    log.info("source=%s forgotten=%d (taken down with `aggregate forget`; not published)",
             source, len(forgotten) - len(keep))
    return _Found(
        items=tuple(found.items[i] for i in keep),
        features=tuple(found.features[i] for i in keep),
        serialized=tuple(found.serialized[i] for i in keep),
        keys=tuple(found.keys[i] for i in keep),
    )


# -- publish --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Published:
    written: tuple[str, ...] = ()
    unchanged: int = 0
    error: str | None = None


def _publish_step(store: Store, config: Config) -> _Published:
    """Publish; a failure is logged and returned (sources were read and stored: the next
    run publishes them)."""
    try:
        written, unchanged = _publish(store, config)
    except PublishError as exc:
        log.error("%s", exc)
        return _Published(error=str(exc))
    return _Published(tuple(written), unchanged)


def publish_now(config: Config) -> tuple[tuple[str, ...], int]:
    """Publish what the store holds, reading no source (after `aggregate forget`); the files
    written and how many were left unchanged. Call it holding the run lock."""
    store = open_store(config.store.url)
    try:
        return _publish(store, config)
    finally:
        store.close()


def _published_agencies(record: dict[str, Any]) -> set[str]:
    """The agencies a publish had feeds for (read from its files when it predates the list)."""
    if "agencies" in record:
        return set(record["agencies"])
    names = (name.removesuffix(".atom") for name in record.get("files", ())
             if name.endswith(".atom") and "/" not in name)
    return {name for name in names if not is_reserved_slug(name)}


def _publish(store: Store, config: Config) -> tuple[tuple[str, ...], int]:
    """Publish unless the store and the output settings are as they were last time."""
    from aggregator import publish

    out_dir = config.output.dir
    stamp = publish.publish_stamp(store.generation(), config)
    # What this output directory holds is recorded in it, not in the store: several nodes
    # share one store, each publishing its own directory.
    record = out_dir / PUBLISHED_RECORD
    try:
        last = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        last = None
    if not isinstance(last, dict):
        last = None
    if (last is not None and last.get("stamp") == stamp
            and (out_dir / MANIFEST_NAME).is_file()
            and all((out_dir / n).is_file() for n in last["files"])):
        log.info("publish skipped: nothing changed since the last run")
        return (), len(last["files"])
    from aggregator.catalog import plan_publication, record_digests, recorded_digests

    labels = store.agencies()
    # An agency whose items are all gone (its sources removed) keeps an empty feed.
    retired = sorted(_published_agencies(last) - set(labels)) if last is not None else []
    site = publish.site_from_config(config, {**{slug: slug for slug in retired}, **labels})
    publication = plan_publication(store, config, site, sorted(labels), out_dir=out_dir,
                                   recorded=recorded_digests(out_dir),
                                   salt=stamp.partition(":")[2], retired=retired)
    result = publish.publish(publication.feeds, site, out_dir, publication.archives,
                             publication.unchanged)
    record_digests(out_dir, publication.digests)
    write_atomic(record, json.dumps({"stamp": stamp, "files": list(result.files),
                                     "agencies": sorted({*labels, *retired})}).encode())
    return result.written, result.unchanged


def _ping_hubs(config: Config, written: Sequence[str]) -> list[str]:
    """Tell the configured WebSub hubs which feeds this run changed; a hub that fails or
    hangs costs at most `[websub] timeout` and a warning (returned), never the run."""
    if not config.websub.hubs or not written:
        return []
    from aggregator import websub

    urls = [config.output.base_url + name for name in websub.feed_names(written)]
    if not urls:
        return []
    started = time.perf_counter()
    failures = websub.ping_hubs(config.websub.hubs, urls, config.websub.timeout)
    for failure in failures:
        log.warning("%s", failure)
    log.info("websub pinged hubs=%d failed=%d feeds=%d in %.2fs", len(config.websub.hubs),
             len(failures), len(urls), time.perf_counter() - started)
    return failures
