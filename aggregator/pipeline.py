"""One run: read the sources, normalize, store, deduplicate, publish.

`run_once` is what the CLI and the scheduler call. A source that fails is reported and the
others go on; items it published before stay published. Publishing is skipped when nothing
that shapes the output changed since the last publish (and the files are all there).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aggregator import clock, identity, workers
from aggregator.config import Config, is_reserved_slug
from aggregator.errors import PublishError, SourceError, StoreError
from aggregator.fileio import write_atomic
from aggregator.logs import facts
from aggregator.manifest import MANIFEST_NAME, PUBLISHED_RECORD
from aggregator.model import RawItem, RunResult, SourceReport
from aggregator.prepare import Prepared, prepare
from aggregator.sources import ReadJob, ReadOutcome, SourceUnit, expand, read_all
from aggregator.store import Removal, SourceState, Store, StoryPlan, open_store

if TYPE_CHECKING:
    from aggregator import dedup

log = logging.getLogger(__name__)

_FEATURE_BATCH = 1000
"""Items analysed for dedup at a time: bounds memory when stored items are analysed again."""
_WORKERS_FROM_BYTES = 1_000_000
"""A run expected to read less than this is prepared in the main process: starting worker
processes would cost more than it saves."""
_WORKERS_FROM_UNITS = 8
"""...unless this many units bring a document: the feed reader would start workers of its
own for them (`sources.feed.PARALLEL_PARSE_MIN_FEEDS`), later, with threads about."""


@dataclass(slots=True)
class _Progress:
    reports: list[SourceReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    new: int = 0
    changed: list[str] = field(default_factory=list)
    fresh: dict[str, dedup.Features] = field(default_factory=dict)
    """Dedup features of this run's new items, analysed as they were prepared."""
    order: dict[str, int] = field(default_factory=dict)
    """Each source's place in the config: reports come in as units finish."""
    states_to_save: list[SourceState] = field(default_factory=list)
    """States of the units read in this batch, saved together before their leases go."""

    def in_config_order(self) -> list[SourceReport]:
        """The reports sorted as their sources appear in the config."""
        return sorted(self.reports, key=lambda report: self.order.get(report.name, 0))


def run_once(config: Config, *, now: datetime | None = None) -> RunResult:
    """Run every enabled source once, then deduplicate and publish; never raises for a source."""
    # Whole seconds: first-seen times are published, and sub-second noise helps nobody.
    started = (now or clock.now()).replace(microsecond=0)
    timer = time.perf_counter()
    store: Store = open_store(config.store.url)
    try:
        progress = _Progress()
        read_digest = config.fingerprint("agencies")
        # A long run claims its last batches well after it started: each batch is read at
        # the time it is claimed, so the feeds' next due times count from their real fetch.
        batch_clock = ((lambda: started) if now is not None
                       else (lambda: max(started, clock.now().replace(microsecond=0))))
        _read_due_sources(store, config, read_digest, batch_clock, progress)
        read_at = time.perf_counter()
        # One node at a time changes stories (the store's placement lock): withdrawing the
        # items of removed sources, then placing new items into stories.
        with store.placement_lock():
            withdrawn = _withdraw_removed_sources(store, config)
            # Stories that lost members to a removed source choose their lead entry again.
            _deduplicate(store, config, [*progress.changed, *withdrawn.members_left],
                         progress.fresh)
        dedup_at = time.perf_counter()
        publish_error = None
        try:
            written, unchanged = _publish(store, config)
        except PublishError as exc:
            # Sources were read and stored; the next run publishes them.
            log.error("%s", exc)
            publish_error, written, unchanged = str(exc), (), 0
        progress.warnings.extend(_ping_hubs(config, written))
        items_total, stories_total = store.counts()
        log.info("timing read=%.2fs dedup=%.2fs publish=%.2fs", read_at - timer,
                 dedup_at - read_at, time.perf_counter() - dedup_at)
    finally:
        store.close()
    return RunResult(
        started=started,
        duration=time.perf_counter() - timer,
        sources=tuple(progress.in_config_order()),
        items_new=progress.new,
        items_updated=len(progress.changed),
        items_total=items_total,
        stories=stories_total,
        files_written=written,
        files_unchanged=unchanged,
        warnings=tuple(progress.warnings),
        publish_error=publish_error,
    )


def _read_due_sources(
    store: Store, config: Config, read_digest: str, batch_clock: Callable[[], datetime],
    progress: _Progress,
) -> None:
    """Read the due units, claimed from the store a batch at a time.

    Several nodes may share the store: each claims due units nobody holds (a lease that
    expires, so a dead node's units are taken over), reads and stores them, saves their
    fetch state and only then releases them. Units this node did not read were not due, or
    were read by another node; they are reported as skipped (or still failing).
    """
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

    with _Workers() as run_workers:
        while True:
            now = batch_clock()
            batch = store.claim_sources(
                [s for s in units if s not in claimed], is_due, holder=holder,
                at=clock.wall_now(), lease=config.store.lease, limit=config.store.batch)
            if not batch:
                break
            claimed.update(batch)
            jobs = [ReadJob(units[s], state, state is None or state.read_digest != read_digest)
                    for s, state in batch.items()]
            try:
                # The worker processes start before the lease keeper's thread exists: a
                # process with one thread forks its workers, which then die with it.
                pool = run_workers.for_jobs(jobs)
                with _LeaseKeeper(store, batch, holder, config.store.lease):
                    _read(store, config, jobs, read_digest, now, progress, pool,
                          run_workers.count)
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


class _Workers:
    """The run's worker processes, started by the first batch big enough to need them and
    kept for the batches after it."""

    def __init__(self) -> None:
        self._count = workers.processes()
        self._pool: Executor | None = None

    def __enter__(self) -> _Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    @property
    def count(self) -> int:
        """How many worker processes a run may use."""
        return self._count

    def for_jobs(self, jobs: Sequence[ReadJob]) -> Executor | None:
        """The pool, started if the jobs' work is worth it (None: prepare here): enough
        bytes, or enough units with a document to parse."""
        work = [_expected_work(job) for job in jobs]
        worth = sum(work) >= _WORKERS_FROM_BYTES or sum(1 for w in work if w) >= _WORKERS_FROM_UNITS
        if self._pool is None and self._count > 1 and worth:
            self._pool = workers.start_pool(self._count, preload=("aggregator.prepare",))
        return self._pool


def _withdraw_removed_sources(store: Store, config: Config) -> Removal:
    """Remove the items of sources the config no longer lists (a source switched off with
    `enabled = false` is still listed, and keeps its items)."""
    configured: set[str] = set()
    for source in config.sources:
        try:
            configured.update(unit.source_id for unit in expand(source, config))
        except SourceError:
            return Removal()  # its units cannot be known this run: withdraw nothing
    removed = sorted(store.item_source_ids() - configured)
    if not removed:
        return Removal()
    removal = store.withdraw_sources(removed)
    log.warning("unpublished the items of sources no longer in the config", extra=facts(
        sources=removed, items=len(removal.items),
        stories_removed=len(removal.stories_removed), stories_kept=len(removal.stories_kept)))
    return removal


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


def _read(
    store: Store, config: Config, jobs: Sequence[ReadJob], read_digest: str,
    now: datetime, progress: _Progress, pool: Executor | None, processes: int,
) -> None:
    """Read every job and store what it gave.

    Outcomes arrive as units finish (live feeds are fetched and parsed concurrently). Their
    items are prepared (normalized and analysed) in worker processes when the run is large,
    and stored here as each source's preparation completes, while the others go on.
    """
    preparation = _Preparation(pool, config, now, limit=2 * processes)
    preparer = functools.partial(prepare, agencies=dict(config.agencies), now=now)
    for outcome in read_all(jobs, now, pool, preparer):
        new_state = _handle_outcome(store, outcome, read_digest, now, progress)
        if new_state is None:
            continue
        fetched = outcome.fetched
        assert fetched is not None and fetched.items is not None
        if fetched.prepared is not None:  # the worker that read it prepared it too
            _store_prepared(store, _Done(outcome, new_state, fetched.prepared), now, progress)
            continue
        for done in preparation.submit(outcome, new_state, fetched.items):
            _store_prepared(store, done, now, progress)
    for done in preparation.drain():
        _store_prepared(store, done, now, progress)


def _expected_work(job: ReadJob) -> int:
    """Bytes a job will likely bring to prepare (0 when its unit cannot tell)."""
    estimate = getattr(job.unit, "expected_work", None)
    return int(estimate(job.state, job.force)) if estimate is not None else 0


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
class _Done:
    """A unit whose items were prepared (or whose preparation failed)."""

    outcome: ReadOutcome
    new_state: SourceState
    prepared: Prepared | None
    error: Exception | None = None


class _Preparation:
    """Prepares units' items in the worker pool (or here, without one), keeping at most
    `limit` units under way so a fast reader does not pile up a slow preparer's input."""

    def __init__(self, pool: Executor | None, config: Config, now: datetime, limit: int) -> None:
        self._pool = pool
        self._agencies = dict(config.agencies)
        self._now = now
        self._limit = max(1, limit)
        self._underway: deque[tuple[ReadOutcome, SourceState, Future[Prepared]]] = deque()

    def submit(self, outcome: ReadOutcome, new_state: SourceState,
               raws: Sequence[RawItem]) -> Iterator[_Done]:
        """Start preparing a unit's items; yields the units that finished meanwhile."""
        if self._pool is None:
            yield self._here(outcome, new_state, raws)
            return
        try:
            future = self._pool.submit(prepare, raws, self._agencies, self._now)
        except Exception:  # a broken pool (a worker was killed): go on without it
            log.debug("cannot submit to the worker pool", exc_info=True)
            self._pool = None
            yield self._here(outcome, new_state, raws)
            return
        self._underway.append((outcome, new_state, future))
        while self._underway and (len(self._underway) > self._limit
                                  or self._underway[0][2].done()):
            yield self._collect()

    def drain(self) -> Iterator[_Done]:
        """Every unit still under way, as it finishes."""
        while self._underway:
            yield self._collect()

    def _collect(self) -> _Done:
        outcome, new_state, future = self._underway.popleft()
        try:
            return _Done(outcome, new_state, future.result())
        except Exception as exc:  # a crashed worker or a bug costs this unit only
            return _Done(outcome, new_state, None, exc)

    def _here(self, outcome: ReadOutcome, new_state: SourceState,
              raws: Sequence[RawItem]) -> _Done:
        try:
            return _Done(outcome, new_state, prepare(raws, self._agencies, self._now))
        except Exception as exc:
            return _Done(outcome, new_state, None, exc)


def _store_prepared(store: Store, done: _Done, now: datetime, progress: _Progress) -> None:
    """Store a unit's prepared items; a failure is recorded in its state and reported."""
    unit, state = done.outcome.job.unit, done.outcome.job.state
    prepared = done.prepared
    try:
        if prepared is None:
            raise done.error or RuntimeError("no items prepared")
        prepared = _without_forgotten(store, prepared, unit.name)
        for warning in prepared.warnings:
            log.warning("%s", warning)
        progress.warnings.extend(prepared.warnings)
        reconciled = store.reconcile(unit.source_id, prepared.items, now, prepared.serialized)
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
    progress.states_to_save.append(done.new_state)  # saved with its batch, before release
    for position, item_id in zip(reconciled.new_positions, reconciled.new, strict=True):
        progress.fresh[item_id] = _with_id(prepared.features[position], item_id)
    progress.new += len(reconciled.new)
    progress.changed.extend(reconciled.changed)
    log.info("source=%s items=%d new=%d updated=%d gone=%d", unit.name, len(prepared.items),
             len(reconciled.new), len(reconciled.changed), reconciled.gone)
    progress.reports.append(SourceReport(name=unit.name, ok=True, items=len(prepared.items)))


def _without_forgotten(store: Store, prepared: Prepared, source: str) -> Prepared:
    """The items minus those `aggregate forget` took down for good."""
    forgotten = store.forgotten(prepared.items)
    if not any(forgotten):
        return prepared
    keep = [index for index, dead in enumerate(forgotten) if not dead]
    log.info("source=%s forgotten=%d (taken down with `aggregate forget`; not published)",
             source, len(forgotten) - len(keep))
    return replace(
        prepared,
        items=tuple(prepared.items[i] for i in keep),
        features=tuple(prepared.features[i] for i in keep),
        serialized=tuple(prepared.serialized[i] for i in keep),
    )


def _with_id(features: Any, item_id: str) -> dedup.Features:
    from aggregator import dedup

    return dedup.settled(features, item_id)


def _deduplicate(
    store: Store, config: Config, changed: Sequence[str], fresh: dict[str, dedup.Features]
) -> None:
    """Place new items in stories (their features `fresh` from this run, or from the store
    for items an interrupted run left unplaced); re-rank the stories of edited items."""
    pending = store.unassigned_items()
    if pending:
        # Under the placement lock, which `aggregate forget` holds too: an item another
        # node stored while it was being forgotten (read just before its tombstones were
        # written) is dropped here, before it reaches a story.
        late = store.drop_forgotten(pending)
        if late.items:
            dropped = {item.item_id for item in late.items}
            pending = [i for i in pending if i not in dropped]
            log.info("forgotten=%d (stored while `aggregate forget` took them down; dropped)",
                     len(dropped))
    if not pending and not changed:
        return  # nothing to place: a run of 304s never even loads dedup (and numpy)
    from aggregator import dedup

    timer = time.perf_counter()
    new_features = [fresh[i] for i in pending if i in fresh]
    new_features += _load_features(store, [i for i in pending if i not in fresh]).values()
    neighbourhood = _known_neighbourhood(store, config, new_features)
    loaded = time.perf_counter()
    clustering = dedup.cluster(
        new_features, neighbourhood.features, neighbourhood.stories, config.dedup,
        common_keys=neighbourhood.common_keys, stored_counts=neighbourhood.key_counts,
    )
    clustered = time.perf_counter()
    # A new story's id follows from its members by a rule on content and dates
    # (identity.settle_story_ids); stories the store holds keep the ids they have.
    new_members = [i for ids in clustering.members.values() for i in ids]
    members = identity.settle_story_ids(clustering.members, neighbourhood.stories,
                                        store.own_dates(new_members))
    analysed = list(new_features)
    pending_ids = set(pending)
    edited = [i for i in changed if i not in pending_ids]
    if edited:
        edited_features = _analyse(store, edited)
        analysed.extend(edited_features)
        stories = {s: ids for s, ids in store.stories_of(edited).items() if s not in members}
        by_id = {f.item_id: f for f in edited_features}
        others = [i for ids in stories.values() for i in ids if i not in by_id]
        by_id.update(_load_features(store, others))
        members.update(dedup.rerank(stories, by_id).members)
    if not analysed:
        return
    store.apply_stories(StoryPlan(
        members=members,
        notes=clustering.notes,
        index_rows=lambda: dedup.index_rows(analysed, clustering.keys),
        keyed_items=tuple(f.item_id for f in analysed if f.item_id not in fresh),
        # This run's new items were stored with their features; the others were analysed now.
        features={f.item_id: f.to_json() for f in analysed if f.item_id not in fresh},
    ))
    log.debug("dedup new=%d known=%d neighbourhood=%.2fs cluster=%.2fs write=%.2fs",
              len(new_features), len(neighbourhood.features), loaded - timer,
              clustered - loaded, time.perf_counter() - clustered)


def _analyse(store: Store, item_ids: Sequence[str]) -> list[dedup.Features]:
    """Dedup features of stored items (edited ones, or an older run's), read in batches."""
    from aggregator import dedup

    return [f for start in range(0, len(item_ids), _FEATURE_BATCH)
            for f in dedup.extract_many(store.items(item_ids[start : start + _FEATURE_BATCH]))]


@dataclass(frozen=True, slots=True)
class _Neighbourhood:
    """The stored items new items may join, and what the store knows of their keys."""

    features: list[dedup.Features] = field(default_factory=list)
    stories: dict[str, tuple[str, ...]] = field(default_factory=dict)
    key_counts: dict[str, int] = field(default_factory=dict)
    common_keys: frozenset[str] = frozenset()


def _known_neighbourhood(
    store: Store, config: Config, new_features: Sequence[dedup.Features]
) -> _Neighbourhood:
    """Stored items that may report the same story as a new item, with their stories."""
    from aggregator import dedup

    if not new_features or not store.has_index():
        return _Neighbourhood()  # a first run: every item is new, none stored to compare
    keys = {key for f in new_features for key in dedup.blocking_keys(f)}
    days = [f.day for f in new_features]
    window = int(config.dedup.window_days) + 1
    dated = [d for d in days if d is not None]
    span = None if len(dated) < len(days) else (min(dated) - window, max(dated) + window)
    hits = store.candidates(keys, span, config.dedup.key_cap)
    new_ids = {f.item_id for f in new_features}
    holders = {key: ids - new_ids for key, ids in hits.items.items()}
    candidate_ids = dedup.stored_candidates(new_features, holders, config.dedup)
    counts = {key: len(ids) for key, ids in holders.items()}
    if not candidate_ids:
        return _Neighbourhood(key_counts=counts, common_keys=hits.common)
    memberships = store.stories_of(candidate_ids)
    member_ids = [i for ids in memberships.values() for i in ids]
    return _Neighbourhood(
        features=list(_load_features(store, member_ids).values()),
        stories=memberships,
        key_counts=counts,
        common_keys=hits.common,
    )


def _load_features(store: Store, item_ids: Sequence[str]) -> dict[str, dedup.Features]:
    """Stored features of items, analysing again any that have none (an older run's items)."""
    from aggregator import dedup

    stored = store.features(item_ids)
    result: dict[str, dedup.Features] = {}
    for item_id, text in stored.items():
        # Features of an older version are analysed again from the stored item.
        read = dedup.Features.from_json(text, item_id)
        if read is not None:
            result[item_id] = read
    missing = [i for i in item_ids if i not in result]
    result.update({f.item_id: f for f in _analyse(store, missing)})
    return result


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
