"""Where a run's CPU-bound work runs: the one worker pool of a run, and the preparation of
units' items in it (or in this process when the work is too small to repay a pool).

`workers` holds the process mechanics (forking, watching the run's pid); this module owns
the policy: when a run starts its pool, what goes to it, and how results come back.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Collection, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from aggregator import workers
from aggregator.config import AgencyConfig
from aggregator.model import RawItem
from aggregator.prepare import Prepared, Preparer
from aggregator.sources import ReadJob

log = logging.getLogger(__name__)

WORKERS_FROM_BYTES = 1_000_000
"""A run expected to read less than this is prepared in the main process: starting worker
processes (and shipping every item back) costs more than it saves. What made a pool a loss
for 1,000 seed items (1.5 MB) was each worker importing dedup on its first item: workers
now start with it loaded, and cost about what one process does there (2 busy cores: 4.05-4.27
CPU-s with the pool, 3.97-4.15 without)."""
WORKERS_FROM_UNITS = 8
"""...unless this many units bring a document: the feed reader would start workers of its
own for them (`sources.feed.PARALLEL_PARSE_MIN_FEEDS`), later, with threads about."""


class Workers:
    """The run's worker processes, started by the first batch big enough to need them and
    kept for the batches after it."""

    def __init__(self) -> None:
        self._count = workers.processes()
        self._pool: Executor | None = None

    def __enter__(self) -> Workers:
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
        work = [expected_work(job) for job in jobs]
        busy = sum(1 for w in work if w)
        # A unit is prepared whole by one worker: with one unit to prepare, a pool only
        # adds its start and the shipping of every item back (1,000 seed items in one
        # file: 3.1-3.5 s with the pool, 2.9-3.1 s without).
        worth = busy >= 2 and (sum(work) >= WORKERS_FROM_BYTES or busy >= WORKERS_FROM_UNITS)
        if self._pool is None and self._count > 1 and worth:
            # Loaded before forking, so that workers start with it (analysing items needs
            # it, and this process clusters them later anyway).
            import aggregator.dedup  # noqa: F401

            self._pool = workers.start_pool(self._count, preload=("aggregator.prepare",
                                                                  "aggregator.dedup"))
        return self._pool


def expected_work(job: ReadJob) -> int:
    """Bytes a job will likely bring to prepare (0 when its unit cannot tell)."""
    estimate = getattr(job.unit, "expected_work", None)
    return int(estimate(job.state, job.force)) if estimate is not None else 0


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Done(Generic[T]):
    """A unit's preparation, finished: its result, or the error that stopped it."""

    tag: T
    """What the caller gave with the unit's entries (to know which unit it was)."""
    prepared: Prepared | None
    error: Exception | None = None


class Preparation(Generic[T]):
    """Prepares units' entries in the worker pool (or here, without one), keeping at most
    `limit` units under way so a fast reader does not pile up a slow preparer's input."""

    def __init__(self, pool: Executor | None, agencies: Mapping[str, AgencyConfig],
                 now: datetime, limit: int) -> None:
        self._pool = pool
        self.preparer = Preparer(dict(agencies), now)
        self._limit = max(1, limit)
        self._underway: deque[tuple[T, Future[Prepared]]] = deque()

    @property
    def pool(self) -> Executor | None:
        """The worker pool (None: preparing here), for readers whose workers prepare too."""
        return self._pool

    def submit(self, tag: T, raws: Sequence[RawItem], known: Collection[str]) -> Iterator[Done[T]]:
        """Start preparing a unit's entries (but the `known` ones); yields the units that
        finished meanwhile."""
        if self._pool is None:
            yield self._here(tag, raws, known)
            return
        try:
            future = self._pool.submit(self.preparer, raws, known)
        except Exception:  # a broken pool (a worker was killed): go on without it
            log.debug("cannot submit to the worker pool", exc_info=True)
            self._pool = None
            yield self._here(tag, raws, known)
            return
        self._underway.append((tag, future))
        while self._underway and (len(self._underway) > self._limit
                                  or self._underway[0][1].done()):
            yield self._collect()

    def drain(self) -> Iterator[Done[T]]:
        """Every unit still under way, as it finishes."""
        while self._underway:
            yield self._collect()

    def _collect(self) -> Done[T]:
        tag, future = self._underway.popleft()
        try:
            return Done(tag, future.result())
        except Exception as exc:  # a crashed worker or a bug costs this unit only
            return Done(tag, None, exc)

    def _here(self, tag: T, raws: Sequence[RawItem], known: Collection[str]) -> Done[T]:
        try:
            return Done(tag, self.preparer(raws, known))
        except Exception as exc:
            return Done(tag, None, exc)
