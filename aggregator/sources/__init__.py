"""Source adapters and their registry.

A configured source expands into units (a seedfile glob into one unit per file; a feed is
one unit). A unit reads its items given what the store remembers of it, and says when
nothing changed so the run can skip it. Adapters raise `SourceError` for a unit that cannot
be read; the pipeline reports it and goes on with the others.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import Executor
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from aggregator.config import Config, SourceConfig
from aggregator.errors import SourceError
from aggregator.model import RawItem

if TYPE_CHECKING:
    # Names for annotations only: an unchanged rerun checks its seed files with the
    # adapters without loading the store's SQLAlchemy or the preparation of items.
    from aggregator.prepare import Prepared
    from aggregator.store import SourceState

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Fetched:
    """What reading a unit gave: its items, or None when nothing changed since last time."""

    items: Sequence[RawItem] | None
    state: SourceState
    prepared: Prepared | None = None
    """The items already prepared (normalized and analysed) by the worker that read them."""


Preparer = Callable[[Sequence[RawItem], Collection[str]], "Prepared"]
"""Prepares a unit's entries but those whose keys are given (`ReadJob.known`: stored
already); picklable, so a worker that reads a unit can prepare it too."""


class SourceUnit(Protocol):
    """One readable thing: a seed file or a feed URL."""

    @property
    def source_id(self) -> str:
        """The key of the unit's state and items in the store; stable across runs."""
        ...

    @property
    def name(self) -> str:
        """How messages name it: a path or a URL."""
        ...

    def due(self, state: SourceState | None, now: datetime) -> bool:
        """Whether to read it in a run at `now` (feeds have intervals and back-off)."""
        ...

    def read(self, state: SourceState | None, now: datetime, *, force: bool) -> Fetched:
        """Read the unit; `force` ignores what the state says is unchanged."""
        ...

    def failed(self, state: SourceState | None, now: datetime, error: SourceError) -> SourceState:
        """The state to remember after a failed read: the failure counted, and for feeds
        when to try again."""
        ...


@dataclass(frozen=True, slots=True)
class ReadJob:
    """A unit due in this run, with what the store remembers of it."""

    unit: SourceUnit
    state: SourceState | None
    force: bool
    """Read even if the state says nothing changed (the config that shapes items did)."""
    known: Mapping[str, str] = field(default_factory=dict)
    """Entry key -> id of the unit's stored items (`normalize.entry_key`): entries the
    store holds unchanged are not prepared again (empty when forced)."""


@dataclass(frozen=True, slots=True)
class ReadOutcome:
    """How reading one job went: what it fetched, or the error that stopped it."""

    job: ReadJob
    fetched: Fetched | None = None
    error: SourceError | None = None


BatchReader = Callable[
    [Sequence[ReadJob], datetime, Executor | None, Preparer | None],
    AbstractContextManager[Iterator[ReadOutcome]],
]
"""A unit class's optional `read_many`: starts reading all its jobs on entering (live feeds
fetch and parse concurrently; with the run's worker processes, the worker that reads a unit
also prepares its items) and gives their outcomes as they finish."""


def read_all(
    jobs: Sequence[ReadJob], now: datetime, pool: Executor | None = None,
    preparer: Preparer | None = None,
) -> Iterator[ReadOutcome]:
    """Read every job, yielding each outcome as it is ready.

    Jobs of a unit class with a `read_many` go to it together and proceed in the
    background, while the others are read here one by one.
    """
    batches: dict[BatchReader, list[ReadJob]] = {}
    singles: list[ReadJob] = []
    for job in jobs:
        read_many: BatchReader | None = getattr(type(job.unit), "read_many", None)
        if read_many is None:
            singles.append(job)
        else:
            batches.setdefault(read_many, []).append(job)
    with ExitStack() as stack:
        underway: list[Iterator[ReadOutcome]] = []
        for read_many, batch in batches.items():
            try:
                underway.append(stack.enter_context(read_many(batch, now, pool, preparer)))
            except Exception as exc:  # an adapter that cannot start costs only its units
                log.debug("cannot start reading %d units", len(batch), exc_info=True)
                underway.append(iter([ReadOutcome(job, error=SourceError(
                    job.unit.name, f"internal error while reading: {exc!r}")) for job in batch]))
        for job in singles:
            yield read_one(job, now)
        for outcomes in underway:
            yield from outcomes


def read_one(job: ReadJob, now: datetime) -> ReadOutcome:
    """Read one job here and now; errors become the outcome, never an exception."""
    try:
        return ReadOutcome(job, job.unit.read(job.state, now, force=job.force))
    except SourceError as exc:
        return ReadOutcome(job, error=exc)
    except Exception as exc:  # a bug in one adapter must not stop the other sources
        log.debug("unexpected error reading %s", job.unit.name, exc_info=True)
        return ReadOutcome(job, error=SourceError(
            job.unit.name, f"internal error while reading: {exc!r}"))


Expander = Callable[[SourceConfig, Config], Sequence[SourceUnit]]
"""Turns one configured source into its units; may raise SourceError (e.g. a bad glob)."""

_EXPANDERS: dict[str, Expander] = {}
_BUILTIN_MODULES = {
    "seedfile": "aggregator.sources.seedfile",
    "feed": "aggregator.sources.feed",
}
"""Adapters imported on first use, so a run without live feeds never loads the HTTP stack."""


def register(kind: str, expander: Expander) -> None:
    """Make a source type available under the `type` name the config uses."""
    _EXPANDERS[kind] = expander


def expand(source: SourceConfig, config: Config) -> Sequence[SourceUnit]:
    """The units of one configured source."""
    if source.type not in _EXPANDERS:
        module = importlib.import_module(_BUILTIN_MODULES[source.type])
        register(source.type, module.expand_source)
    return _EXPANDERS[source.type](source, config)
