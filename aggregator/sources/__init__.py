"""Source adapters and their registry.

A configured source expands into units (a seedfile glob into one unit per file; a feed is
one unit). A unit reads its items given what the store remembers of it, and says when
nothing changed so the run can skip it. Adapters raise `SourceError` for a unit that cannot
be read; the pipeline reports it and goes on with the others.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from aggregator.config import Config, SourceConfig
from aggregator.model import RawItem
from aggregator.store import SourceState


@dataclass(frozen=True, slots=True)
class Fetched:
    """What reading a unit gave: its items, or None when nothing changed since last time."""

    items: Sequence[RawItem] | None
    state: SourceState


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
