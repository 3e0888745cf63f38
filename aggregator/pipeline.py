"""One run: read the sources, normalize, store, deduplicate, publish.

`run_once` is what the CLI and the scheduler call. A source that fails is reported and the
others go on; items it published before stay published. Publishing is skipped when nothing
that shapes the output changed since the last publish (and the files are all there).
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aggregator import clock, workers
from aggregator.config import Config, is_reserved_slug
from aggregator.errors import PublishError, SourceError, StoreError
from aggregator.logs import facts
from aggregator.manifest import MANIFEST_NAME
from aggregator.model import RawItem, RunResult, SourceReport
from aggregator.prepare import Prepared, prepare
from aggregator.sources import ReadJob, ReadOutcome, SourceUnit, expand, read_all
from aggregator.store import Removal, SourceState, SqlStore, StoryPlan, open_store

if TYPE_CHECKING:
    from aggregator import dedup

log = logging.getLogger(__name__)

_FEATURE_BATCH = 1000
"""Items analysed for dedup at a time: bounds memory when stored items are analysed again."""
_WORKERS_FROM_BYTES = 1_000_000
"""A run expected to read less than this is prepared in the main process: starting worker
processes would cost more than it saves."""


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
    unchanged_states: list[SourceState] = field(default_factory=list)
    """States of units that had nothing new, to save together."""

    def in_config_order(self) -> list[SourceReport]:
        """The reports sorted as their sources appear in the config."""
        return sorted(self.reports, key=lambda report: self.order.get(report.name, 0))


def run_once(config: Config, *, now: datetime | None = None) -> RunResult:
    """Run every enabled source once, then deduplicate and publish; never raises for a source."""
    # Whole seconds: first-seen times are published, and sub-second noise helps nobody.
    started = (now or clock.now()).replace(microsecond=0)
    timer = time.perf_counter()
    store = open_store(config.store.url)
    try:
        progress = _Progress()
        read_digest = config.fingerprint("agencies")
        jobs = _due_jobs(store, config, read_digest, started, progress)
        _read(store, config, jobs, read_digest, started, progress)
        store.save_source_states(progress.unchanged_states)
        withdrawn = _withdraw_removed_sources(store, config)
        read_at = time.perf_counter()
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


def _due_jobs(
    store: SqlStore, config: Config, read_digest: str, now: datetime, progress: _Progress
) -> list[ReadJob]:
    """The units to read this run; units not due are reported as skipped (or still failing)."""
    units: list[SourceUnit] = []
    for source in config.enabled_sources:
        try:
            expanded = expand(source, config)
        except SourceError as exc:
            _fail(progress, source.label, str(exc))
            continue
        for unit in expanded:
            progress.order.setdefault(unit.name, len(progress.order))
        units.extend(expanded)
    states = store.source_states(unit.source_id for unit in units)
    jobs = []
    for unit in units:
        state = states.get(unit.source_id)
        if unit.due(state, now):
            force = state is None or state.read_digest != read_digest
            jobs.append(ReadJob(unit, state, force))
        elif state is not None and state.failures:
            # Backing off after failures: not retried yet, but still reported as failing.
            _fail(progress, unit.name, f"{state.last_error} ({_failing_note(state)})")
        else:
            progress.reports.append(SourceReport(name=unit.name, ok=True, skipped=True))
    return jobs


def _withdraw_removed_sources(store: SqlStore, config: Config) -> Removal:
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
    store: SqlStore, config: Config, jobs: Sequence[ReadJob], read_digest: str,
    now: datetime, progress: _Progress,
) -> None:
    """Read every job and store what it gave.

    Outcomes arrive as units finish (live feeds are fetched and parsed concurrently). Their
    items are prepared (normalized and analysed) in worker processes when the run is large,
    and stored here as each source's preparation completes, while the others go on.
    """
    expected = sum(_expected_work(job) for job in jobs)
    count = workers.processes()
    pool = (workers.start_pool(count, preload=("aggregator.prepare",))
            if count > 1 and expected >= _WORKERS_FROM_BYTES else None)
    preparation = _Preparation(pool, config, now, limit=2 * count)
    preparer = functools.partial(prepare, agencies=dict(config.agencies), now=now)
    try:
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
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _expected_work(job: ReadJob) -> int:
    """Bytes a job will likely bring to prepare (0 when its unit cannot tell)."""
    estimate = getattr(job.unit, "expected_work", None)
    return int(estimate(job.state, job.force)) if estimate is not None else 0


def _handle_outcome(
    store: SqlStore, outcome: ReadOutcome, read_digest: str, now: datetime,
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
        # Saved with the others at the end of reading: one write instead of one per feed.
        progress.unchanged_states.append(new_state)
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


def _store_prepared(store: SqlStore, done: _Done, now: datetime, progress: _Progress) -> None:
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
    store.save_source_state(done.new_state)
    for position, item_id in zip(reconciled.new_positions, reconciled.new, strict=True):
        progress.fresh[item_id] = _with_id(prepared.features[position], item_id)
    progress.new += len(reconciled.new)
    progress.changed.extend(reconciled.changed)
    log.info("source=%s items=%d new=%d updated=%d gone=%d", unit.name, len(prepared.items),
             len(reconciled.new), len(reconciled.changed), reconciled.gone)
    progress.reports.append(SourceReport(name=unit.name, ok=True, items=len(prepared.items)))


def _without_forgotten(store: SqlStore, prepared: Prepared, source: str) -> Prepared:
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
    store: SqlStore, config: Config, changed: Sequence[str], fresh: dict[str, dedup.Features]
) -> None:
    """Place new items in stories (their features `fresh` from this run, or from the store
    for items an interrupted run left unplaced); re-rank the stories of edited items."""
    pending = store.unassigned_items()
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
    members = dict(clustering.members)
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


def _analyse(store: SqlStore, item_ids: Sequence[str]) -> list[dedup.Features]:
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
    store: SqlStore, config: Config, new_features: Sequence[dedup.Features]
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


def _load_features(store: SqlStore, item_ids: Sequence[str]) -> dict[str, dedup.Features]:
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


def _publish(store: SqlStore, config: Config) -> tuple[tuple[str, ...], int]:
    """Publish unless the store and the output settings are as they were last time."""
    from aggregator import publish

    out_dir = config.output.dir
    stamp = publish.publish_stamp(store.generation(), config)
    recorded = store.get_meta("published")
    if recorded:
        last = json.loads(recorded)
        if (last.get("stamp") == stamp and (out_dir / MANIFEST_NAME).is_file()
                and all((out_dir / n).is_file() for n in last["files"])):
            log.info("publish skipped: nothing changed since the last run")
            return (), len(last["files"])
    from aggregator.catalog import plan_publication, record_digests, recorded_digests

    labels = store.agencies()
    # An agency whose items are all gone (its sources removed) keeps an empty feed.
    retired = sorted(_published_agencies(json.loads(recorded)) - set(labels)) if recorded else []
    site = publish.site_from_config(config, {**{slug: slug for slug in retired}, **labels})
    publication = plan_publication(store, config, site, sorted(labels), out_dir=out_dir,
                                   recorded=recorded_digests(out_dir),
                                   salt=stamp.partition(":")[2], retired=retired)
    result = publish.publish(publication.feeds, site, out_dir, publication.archives,
                             publication.unchanged)
    record_digests(out_dir, publication.digests)
    store.set_meta("published", json.dumps({"stamp": stamp, "files": list(result.files),
                                            "agencies": sorted({*labels, *retired})}))
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
