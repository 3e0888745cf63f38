"""Sources: what the store remembers of each source unit between runs (fetch state), and
which node holds each one (leases), so several nodes share the sources of one store."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from aggregator.store.api import SourceState
from aggregator.store.engine import (
    SqlBase,
    chunks,
    dialect_insert,
    insert_ignoring_conflicts,
)
from aggregator.store.schema import source_leases, sources


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
        with self._tx() as conn:
            return _states(conn, source_ids)

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

    # -- leases (several nodes) -----------------------------------------------------------

    def add_sources(self, source_ids: Iterable[str]) -> None:
        """Make these sources leasable (a lease row each; known ones are left alone)."""
        rows = [{"source_id": s, "holder": None, "expires": None} for s in sorted(set(source_ids))]
        with self._tx() as conn:
            for start in range(0, len(rows), 1000):
                insert_ignoring_conflicts(conn, source_leases, rows[start : start + 1000],
                                          "source_id")

    def claim_sources(
        self, source_ids: Iterable[str], is_due: Callable[[str, SourceState | None], bool],
        *, holder: str, at: datetime, lease: float, limit: int,
    ) -> dict[str, SourceState | None]:
        """Lease up to `limit` of these sources that are due and that no node holds (or whose
        lease expired), until `at + lease`; return their states as of the claim.

        Rows are locked with SKIP LOCKED (PostgreSQL), so nodes claiming at once never wait
        for, or claim the same source as, each other. Due-ness is checked again under the
        lock: a node that read a source a moment ago saved its state before releasing it.
        """
        wanted = sorted(set(source_ids))
        before = self.source_states(wanted)
        due = [s for s in wanted if is_due(s, before.get(s))]
        with self._tx() as conn:
            free = sa.or_(source_leases.c.expires.is_(None), source_leases.c.expires <= at)
            locked: list[str] = []
            for chunk in chunks(due):
                if len(locked) >= limit:
                    break
                locked.extend(conn.execute(
                    sa.select(source_leases.c.source_id)
                    .where(source_leases.c.source_id.in_(chunk), free)
                    .order_by(source_leases.c.source_id)
                    .limit(limit - len(locked))
                    .with_for_update(skip_locked=True)
                ).scalars())
            now_states = _states(conn, locked)
            chosen = [s for s in locked if is_due(s, now_states.get(s))]
            for chunk in chunks(chosen):
                conn.execute(source_leases.update().where(source_leases.c.source_id.in_(chunk))
                             .values(holder=holder, expires=at + timedelta(seconds=lease)))
        return {s: now_states.get(s) for s in chosen}

    def renew_sources(
        self, source_ids: Iterable[str], holder: str, *, at: datetime, lease: float
    ) -> None:
        """Extend this node's leases on these sources to `at + lease` (a slow batch keeps
        them while its node lives)."""
        with self._tx() as conn:
            for chunk in chunks(sorted(set(source_ids))):
                conn.execute(source_leases.update().where(
                    source_leases.c.source_id.in_(chunk), source_leases.c.holder == holder,
                ).values(expires=at + timedelta(seconds=lease)))

    def release_sources(self, source_ids: Iterable[str], holder: str) -> None:
        """Give up this node's leases on these sources (their states are saved by now)."""
        with self._tx() as conn:
            for chunk in chunks(sorted(set(source_ids))):
                conn.execute(source_leases.update().where(
                    source_leases.c.source_id.in_(chunk), source_leases.c.holder == holder,
                ).values(holder=None, expires=None))

    def leases(self) -> dict[str, tuple[str, datetime]]:
        """Sources leased now: source id -> (holder, expiry). Expired leases included."""
        with self._tx() as conn:
            rows = conn.execute(sa.select(source_leases).where(
                source_leases.c.holder.is_not(None)))
            return {row.source_id: (row.holder, row.expires) for row in rows}


def _states(conn: Connection, source_ids: Iterable[str]) -> dict[str, SourceState]:
    result: dict[str, SourceState] = {}
    for chunk in chunks(sorted(set(source_ids))):
        for row in conn.execute(sa.select(sources).where(sources.c.source_id.in_(chunk))):
            result[row.source_id] = SourceState(
                **{f.name: getattr(row, f.name) for f in fields(SourceState)})
    return result
