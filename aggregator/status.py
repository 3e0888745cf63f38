"""What the daemon knows of its runs: health for `/healthz` and counters for `/metrics`.

The scheduler's worker thread records each run; the HTTP server reads from its own thread.
One lock guards the few numbers kept here: a run is recorded once per tick and a read
copies what it needs, so neither side waits on the other for long.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from aggregator.manifest import read_manifest
from aggregator.model import RunResult

Outcome = Literal["ok", "source_failed", "error"]
"""ok: every source read and published; source_failed: some source failed, the rest was
published; error: the run itself failed (store, publish, or a bug) and published nothing new."""

DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
"""Upper bounds (seconds) of the run-duration histogram: from a no-op seed run to a cold
run over hundreds of feeds."""


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One finished run, in wall-clock time."""

    started_at: float
    """Seconds since the epoch."""
    finished_at: float
    result: RunResult | None
    """None when the run raised."""
    error: str | None = None

    @property
    def duration(self) -> float:
        """Wall seconds the run took."""
        return self.finished_at - self.started_at

    @property
    def outcome(self) -> Outcome:
        """How the run ended."""
        if self.result is None or self.result.publish_error is not None:
            return "error"
        return "source_failed" if self.result.failed_sources else "ok"


@dataclass(frozen=True, slots=True)
class Health:
    """The answer of `/healthz`: healthy or not, why not, and the facts behind it."""

    healthy: bool
    reason: str | None
    body: Mapping[str, Any]


@dataclass(slots=True)
class _Counters:
    runs: dict[str, int] = field(default_factory=lambda: {"ok": 0, "source_failed": 0,
                                                          "error": 0})
    duration_buckets: list[int] = field(default_factory=lambda: [0] * len(DURATION_BUCKETS))
    duration_sum: float = 0.0
    items_new: int = 0
    items_updated: int = 0
    files_written: int = 0
    source_errors: dict[str, int] = field(default_factory=dict)
    source_up: dict[str, int] = field(default_factory=dict)
    reloads: dict[str, int] = field(default_factory=lambda: {"ok": 0, "failed": 0})


class DaemonStatus:
    """Thread-safe record of the daemon's runs, read by `/healthz` and `/metrics`."""

    def __init__(self, *, stale_after: float) -> None:
        self._lock = threading.Lock()
        self._stale_after = stale_after
        self._started_at = _wall()
        self._running_since: float | None = None
        self._last: RunRecord | None = None
        self._last_success: RunRecord | None = None
        self._published: dict[str, int] = {}
        self._counters = _Counters()

    def set_stale_after(self, seconds: float) -> None:
        """How old the last good run may be before `/healthz` fails (changes on reload)."""
        with self._lock:
            self._stale_after = seconds

    def run_started(self, at: float) -> None:
        """A run began at wall time `at`."""
        with self._lock:
            self._running_since = at

    def run_finished(self, record: RunRecord, published: Mapping[str, int]) -> None:
        """Record a finished run and the published files' sizes after it."""
        with self._lock:
            self._running_since = None
            self._last = record
            counters = self._counters
            counters.runs[record.outcome] += 1
            counters.duration_sum += record.duration
            for index, bound in enumerate(DURATION_BUCKETS):
                if record.duration <= bound:
                    counters.duration_buckets[index] += 1
            result = record.result
            if result is None:
                return
            self._published = dict(published)
            counters.items_new += result.items_new
            counters.items_updated += result.items_updated
            counters.files_written += len(result.files_written)
            for report in result.sources:
                counters.source_up[report.name] = int(report.ok)
                if not report.ok:
                    counters.source_errors[report.name] = (
                        counters.source_errors.get(report.name, 0) + 1
                    )
            if record.outcome == "ok":
                self._last_success = record

    def reloaded(self, ok: bool) -> None:
        """Count a config reload (SIGHUP) and whether the new config was taken."""
        with self._lock:
            self._counters.reloads["ok" if ok else "failed"] += 1

    def health(self, now: float | None = None) -> Health:
        """Healthy while the last run succeeded and the last good run is recent."""
        now = _wall() if now is None else now
        with self._lock:
            last, success = self._last, self._last_success
            running_since, stale_after = self._running_since, self._stale_after
            runs = sum(self._counters.runs.values())
        reason: str | None = None
        if last is None:
            reason = ("first run in progress" if running_since is not None
                      else "no run has finished yet")
        elif last.result is None:
            reason = f"last run failed: {last.error}"
        elif last.result.publish_error is not None:
            reason = f"last run could not publish: {last.result.publish_error}"
        elif last.result.failed_sources:
            failed = last.result.failed_sources
            reason = "source failed: " + "; ".join(s.error or s.name for s in failed)
        elif success is not None and now - success.finished_at > stale_after:
            reason = (f"stale: the last good run finished {now - success.finished_at:.0f}s ago "
                      f"(allowed: {stale_after:.0f}s)")
        body: dict[str, Any] = {
            "status": "ok" if reason is None else "failing",
            "reason": reason,
            "runs": runs,
            "run_in_progress": running_since is not None,
            "last_run": _run_json(last),
            "last_success": _iso(success.finished_at) if success else None,
        }
        result = last.result if last is not None else None
        if result is None and success is not None:
            result = success.result
        if result is not None:
            body["sources"] = {
                "ok": sum(1 for s in result.sources if s.ok),
                "failed": len(result.failed_sources),
                "failed_sources": [{"name": s.name, "error": s.error}
                                   for s in result.failed_sources],
            }
            body["items"] = result.items_total
            body["stories"] = result.stories
        else:
            body["sources"] = {"ok": 0, "failed": 0, "failed_sources": []}
            body["items"] = None
            body["stories"] = None
        return Health(healthy=reason is None, reason=reason, body=body)

    def prometheus(self) -> str:
        """Every metric in the Prometheus text exposition format (version 0.0.4)."""
        from prometheus_client import CollectorRegistry, generate_latest

        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self._snapshot()))
        return generate_latest(registry).decode()

    def _snapshot(self) -> _Snapshot:
        with self._lock:
            last, success = self._last, self._last_success
            c = self._counters
            return _Snapshot(
                last=last, success=success, published=dict(self._published),
                running=self._running_since is not None, runs=dict(c.runs),
                buckets=list(c.duration_buckets), duration_sum=c.duration_sum,
                source_errors=dict(c.source_errors), source_up=dict(c.source_up),
                reloads=dict(c.reloads), items_new=c.items_new, items_updated=c.items_updated,
                files_written=c.files_written,
            )


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """The numbers of one scrape, copied under the lock."""

    last: RunRecord | None
    success: RunRecord | None
    published: dict[str, int]
    running: bool
    runs: dict[str, int]
    buckets: list[int]
    duration_sum: float
    source_errors: dict[str, int]
    source_up: dict[str, int]
    reloads: dict[str, int]
    items_new: int
    items_updated: int
    files_written: int


class _Collector:
    """Hands prometheus-client the metric families of one snapshot."""

    def __init__(self, snapshot: _Snapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        s = self._snapshot
        last, success = s.last, s.success
        result = last.result if last is not None and last.result is not None else (
            success.result if success is not None else None
        )

        def labelled(family: Any, values: Mapping[str, int]) -> Any:
            for key, value in sorted(values.items()):
                family.add_metric([key], value)
            return family

        yield labelled(CounterMetricFamily("newswire_runs", "Runs finished, by outcome.",
                                           labels=["outcome"]), s.runs)
        # The buckets count cumulatively already (a run counts in every bound it is under);
        # +Inf is every run.
        bounds = [(_bound(b), float(n)) for b, n in zip(DURATION_BUCKETS, s.buckets,
                                                         strict=True)]
        yield HistogramMetricFamily(
            "newswire_run_duration_seconds", "Wall time of each run.",
            buckets=[*bounds, ("+Inf", float(sum(s.runs.values())))], sum_value=s.duration_sum,
        )
        yield GaugeMetricFamily("newswire_run_in_progress", "1 while a run is in progress.",
                                value=int(s.running))
        yield GaugeMetricFamily("newswire_last_run_timestamp_seconds",
                                "When the last run finished (Unix time).",
                                value=last.finished_at if last else 0)
        yield GaugeMetricFamily(
            "newswire_last_success_timestamp_seconds",
            "When the last run that read every source finished (Unix time).",
            value=success.finished_at if success else 0)
        yield GaugeMetricFamily("newswire_items", "Items in the store after the last run.",
                                value=result.items_total if result else 0)
        yield GaugeMetricFamily("newswire_stories", "Stories in the store after the last run.",
                                value=result.stories if result else 0)
        yield CounterMetricFamily("newswire_items_new", "Items seen for the first time.",
                                  value=s.items_new)
        yield CounterMetricFamily("newswire_items_updated", "Stored items whose content changed.",
                                  value=s.items_updated)
        yield labelled(CounterMetricFamily(
            "newswire_source_errors",
            "Runs in which a source (seed file or feed URL) could not be read.",
            labels=["source"]), s.source_errors)
        yield labelled(GaugeMetricFamily(
            "newswire_source_up", "1 if the source was read in its last run, 0 if it failed.",
            labels=["source"]), s.source_up)
        yield labelled(GaugeMetricFamily("newswire_published_bytes",
                                         "Size of each published file.", labels=["file"]),
                       s.published)
        yield CounterMetricFamily("newswire_files_written",
                                  "Published files rewritten because their content changed.",
                                  value=s.files_written)
        yield labelled(CounterMetricFamily(
            "newswire_config_reloads",
            "Config reloads (SIGHUP), by whether the new config was taken.",
            labels=["result"]), s.reloads)


def _bound(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds))


def published_sizes(out_dir: Path) -> dict[str, int]:
    """Sizes of the published files: those the last publish listed in its manifest."""
    sizes: dict[str, int] = {}
    for name in read_manifest(out_dir):
        try:
            info = os.lstat(out_dir / name)
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode):
            sizes[name] = info.st_size
    return sizes


def _wall() -> float:
    # Health ages are measured on the real clock: AGGREGATOR_NOW pins only what runs publish.
    return datetime.now(UTC).timestamp()


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def _run_json(record: RunRecord | None) -> dict[str, Any] | None:
    if record is None:
        return None
    return {
        "started": _iso(record.started_at),
        "finished": _iso(record.finished_at),
        "duration_seconds": round(record.duration, 3),
        "outcome": record.outcome,
        "error": record.error,
    }
