"""One run: read the sources, normalize, store, deduplicate, publish.

`run_once` is what the CLI and the scheduler call. A source that fails is reported and the
others go on; items it published before stay published. Publishing is skipped when nothing
that shapes the output changed since the last publish (and the files are all there).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

from aggregator import clock
from aggregator.config import Config
from aggregator.errors import SourceError, StoreError
from aggregator.model import RunResult, SourceReport
from aggregator.normalize import AgencyDirectory, normalize, unknown_agency_warning
from aggregator.sources import ReadJob, ReadOutcome, SourceUnit, expand, read_all
from aggregator.store import SourceState, SqlStore, StoryPlan, open_store

if TYPE_CHECKING:
    from aggregator import dedup

log = logging.getLogger(__name__)

_FEATURE_BATCH = 1000
"""Items analysed for dedup at a time: bounds memory on a cold run over a large corpus."""
_PARALLEL_FROM = 4000
"""Below this many items, starting worker processes costs more than it saves."""
_MAX_WORKERS = 4


@dataclass(slots=True)
class _Progress:
    reports: list[SourceReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    new: int = 0
    changed: list[str] = field(default_factory=list)
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
        directory = AgencyDirectory.from_config(config.agencies)
        read_digest = config.fingerprint("agencies")
        jobs = _due_jobs(store, config, read_digest, started, progress)
        # Outcomes arrive as units finish (live feeds are fetched and parsed concurrently);
        # each is stored as it comes, while the others are still under way.
        for outcome in read_all(jobs, started):
            _store_outcome(store, outcome, directory, read_digest, started, progress)
        store.save_source_states(progress.unchanged_states)
        read_at = time.perf_counter()
        _deduplicate(store, config, progress.changed)
        dedup_at = time.perf_counter()
        written, unchanged = _publish(store, config)
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


def _store_outcome(
    store: SqlStore,
    outcome: ReadOutcome,
    directory: AgencyDirectory,
    read_digest: str,
    now: datetime,
    progress: _Progress,
) -> None:
    """Store what reading one unit gave; a failure is recorded in its state and reported."""
    unit, state = outcome.job.unit, outcome.job.state
    if outcome.error is not None:
        failed = unit.failed(state, now, outcome.error)
        store.save_source_state(failed)
        message = str(outcome.error)
        if failed.failures > 1 or failed.next_attempt is not None:
            message += f" ({_failing_note(failed)})"
        _fail(progress, unit.name, message)
        return
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
        return
    items = []
    warnings: list[str] = []
    unknown: dict[str, tuple[str, str, int]] = {}
    for raw in fetched.items:
        try:
            result = normalize(raw, directory, now)
        except Exception as exc:  # one odd item must not cost the source its other items
            log.debug("cannot normalize %s", raw.origin, exc_info=True)
            warnings.append(f"{raw.origin}: item skipped: {exc!r}")
            continue
        warnings.extend(result.warnings)
        if result.item is None:
            continue
        items.append(result.item)
        if result.unknown_agency is not None:
            origin, slug, count = unknown.get(result.unknown_agency, (raw.origin,
                                                                      result.item.agency, 0))
            unknown[result.unknown_agency] = (origin, slug, count + 1)
    # One warning per unknown agency and source, not one per item.
    warnings.extend(unknown_agency_warning(origin, label, slug, count)
                    for label, (origin, slug, count) in unknown.items())
    for warning in warnings:
        log.warning("%s", warning)
    progress.warnings.extend(warnings)
    try:
        reconciled = store.reconcile(unit.source_id, items, now)
    except StoreError:
        raise  # the store itself is unusable: no other source would fare better
    except Exception as exc:  # a bug storing one source's items must not stop the others
        log.debug("cannot store the items of %s", unit.name, exc_info=True)
        first_line = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        error = SourceError(unit.name, "internal error while storing its items: "
                            f"{type(exc).__name__}: {first_line}")
        store.save_source_state(unit.failed(state, now, error))
        _fail(progress, unit.name, str(error))
        return
    store.save_source_state(new_state)
    progress.new += len(reconciled.new)
    progress.changed.extend(reconciled.changed)
    log.info("source=%s items=%d new=%d updated=%d gone=%d", unit.name, len(items),
             len(reconciled.new), len(reconciled.changed), reconciled.gone)
    progress.reports.append(SourceReport(name=unit.name, ok=True, items=len(items)))


def _deduplicate(store: SqlStore, config: Config, changed: Sequence[str]) -> None:
    """Place new items in stories; re-rank the stories of edited items."""
    pending = store.unassigned_items()
    if not pending and not changed:
        return  # nothing to place: a run of 304s never even loads dedup (and numpy)
    from aggregator import dedup

    new_features = _analyse(store, pending)
    neighbourhood = _known_neighbourhood(store, config, new_features)
    clustering = dedup.cluster(
        new_features, neighbourhood.features, neighbourhood.stories, config.dedup,
        common_keys=neighbourhood.common_keys, stored_counts=neighbourhood.key_counts,
    )
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
        keys=dedup.keys_with_days(analysed),
        features={f.item_id: f.to_json() for f in analysed},
    ))


def _analyse(store: SqlStore, item_ids: Sequence[str]) -> list[dedup.Features]:
    """Dedup features of stored items, read from the store in batches; a large run spreads
    the analysis over every core (it is pure, so worker processes share nothing)."""
    from aggregator import dedup

    batches = [item_ids[i : i + _FEATURE_BATCH] for i in range(0, len(item_ids), _FEATURE_BATCH)]
    workers = min(len(batches), os.cpu_count() or 1, _MAX_WORKERS)
    if len(item_ids) < _PARALLEL_FROM or workers < 2:
        return [f for batch in batches for f in dedup.extract_many(store.items(batch))]
    context = multiprocessing.get_context("fork" if "fork" in
                                          multiprocessing.get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pending = [pool.submit(dedup.extract_many, store.items(batch)) for batch in batches]
        return [f for future in pending for f in future.result()]


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

    if not new_features:
        return _Neighbourhood()
    keys = {key for f in new_features for key in dedup.blocking_keys(f)}
    days = [f.day for f in new_features]
    window = int(config.dedup.window_days) + 1
    dated = [d for d in days if d is not None]
    span = None if len(dated) < len(days) else (min(dated) - window, max(dated) + window)
    hits = store.candidates(keys, span, config.dedup.key_cap)
    new_ids = {f.item_id for f in new_features}
    candidate_ids = {i for ids in hits.items.values() for i in ids} - new_ids
    counts = {key: len(ids - new_ids) for key, ids in hits.items.items()}
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
    result = {i: dedup.Features.from_json(text) for i, text in stored.items()}
    missing = [i for i in item_ids if i not in result]
    result.update({f.item_id: f for f in _analyse(store, missing)})
    return result


def _publish(store: SqlStore, config: Config) -> tuple[tuple[str, ...], int]:
    """Publish unless the store and the output settings are as they were last time."""
    from aggregator import publish

    out_dir = config.output.dir
    stamp = (f"{store.generation()}:{config.fingerprint('output', 'agencies')}:"
             f"{publish.renderer_fingerprint()}")
    recorded = store.get_meta("published")
    if recorded:
        last = json.loads(recorded)
        if last.get("stamp") == stamp and all((out_dir / n).is_file() for n in last["files"]):
            log.info("publish skipped: nothing changed since the last run")
            return (), len(last["files"])
    labels = store.agencies()
    site = publish.site_from_config(config, labels)
    limit = config.output.max_entries
    feeds = [publish.FeedPlan(publish.COMBINED, config.output.title, store.top_stories(limit))]
    for slug in sorted(labels):
        agency = site.agency(slug)
        feeds.append(publish.FeedPlan(
            slug, f"{agency.name} — {config.output.title}",
            store.top_stories(limit, agency=slug), agency,
        ))
    result = publish.publish(feeds, site, out_dir)
    store.set_meta("published", json.dumps({"stamp": stamp, "files": list(result.files)}))
    return result.written, result.unchanged
