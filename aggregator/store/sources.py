"""Sources: what the store remembers of each source unit between runs (fetch state)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import fields

import sqlalchemy as sa

from aggregator.store.api import SourceState
from aggregator.store.engine import SqlBase, chunks, dialect_insert
from aggregator.store.schema import sources


class SourceTables(SqlBase):
    """Source state: the `sources` table."""

    def source_state(self, source_id: str) -> SourceState | None:
        """What the store remembers of a source, or None if it never ran."""
        with self._tx() as conn:
            row = conn.execute(sa.select(sources).where(sources.c.source_id == source_id)).first()
        if row is None:
            return None
        return SourceState(**{f.name: getattr(row, f.name) for f in fields(SourceState)})

    def source_states(self, source_ids: Iterable[str]) -> dict[str, SourceState]:
        """What the store remembers of many sources at once (those that never ran are left
        out): one query per chunk instead of one per source."""
        result: dict[str, SourceState] = {}
        with self._tx() as conn:
            for chunk in chunks(sorted(set(source_ids))):
                for row in conn.execute(sa.select(sources).where(sources.c.source_id.in_(chunk))):
                    result[row.source_id] = SourceState(
                        **{f.name: getattr(row, f.name) for f in fields(SourceState)})
        return result

    def save_source_state(self, state: SourceState) -> None:
        """Insert or replace a source's state."""
        self.save_source_states([state])

    def save_source_states(self, states: Sequence[SourceState]) -> None:
        """Insert or replace many sources' states in one transaction."""
        if not states:
            return
        # One row per source, the last state given winning (as one save after another would).
        by_id = {state.source_id: state for state in states}
        rows = [{f.name: getattr(state, f.name) for f in fields(SourceState)}
                for state in by_id.values()]
        with self._tx() as conn:
            # An upsert: two nodes saving one source's state at once never collide.
            statement = dialect_insert(conn, sources)
            conn.execute(statement.on_conflict_do_update(
                index_elements=[sources.c.source_id],
                set_={f.name: statement.excluded[f.name] for f in fields(SourceState)
                      if f.name != "source_id"},
            ), rows)
