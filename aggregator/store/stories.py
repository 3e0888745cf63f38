"""Stories: which items report one story, their canonical order, dates and agencies, and
the notes that explain each merge."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from aggregator.model import MatchNote, StoredItem, Story, date_span
from aggregator.store.api import StoryPlan
from aggregator.store.engine import (
    SqlBase,
    bulk_insert,
    bulk_update,
    bump_generation,
    chunks,
)
from aggregator.store.index import write_index
from aggregator.store.items import ITEM_COLUMNS
from aggregator.store.schema import items, match_notes, stories, story_agencies


class StoryTables(SqlBase):
    """Stories: the `stories`, `story_agencies` and `match_notes` tables."""

    def stories_of(self, item_ids: Iterable[str]) -> dict[str, tuple[str, ...]]:
        """The stories these items belong to, each with its whole membership."""
        story_ids: set[str] = set()
        with self._tx() as conn:
            for chunk in chunks(sorted(set(item_ids))):
                story_ids.update(
                    s for s in conn.execute(
                        sa.select(items.c.story_id).where(items.c.item_id.in_(chunk))
                    ).scalars() if s is not None
                )
            return self._memberships(conn, story_ids)

    @staticmethod
    def _memberships(conn: Connection, story_ids: Iterable[str]) -> dict[str, tuple[str, ...]]:
        members: dict[str, list[str]] = defaultdict(list)
        canonical: dict[str, str] = {}
        for chunk in chunks(sorted(set(story_ids))):
            for row in conn.execute(
                sa.select(stories.c.story_id, stories.c.canonical_item_id).where(
                    stories.c.story_id.in_(chunk)
                )
            ):
                canonical[row.story_id] = row.canonical_item_id
            for row in conn.execute(
                sa.select(items.c.story_id, items.c.item_id)
                .where(items.c.story_id.in_(chunk))
                .order_by(items.c.item_id)
            ):
                members[row.story_id].append(row.item_id)
        result: dict[str, tuple[str, ...]] = {}
        for story_id, ids in members.items():
            head = canonical.get(story_id)
            ordered = sorted(ids, key=lambda i: (i != head, i))
            result[story_id] = tuple(ordered)
        return result

    def apply_stories(self, plan: StoryPlan) -> None:
        """Write dedup's decisions: memberships, story rows, notes, keys and features."""
        with self._tx() as conn:
            bulk_update(conn, items, ("story_id",), "item_id",
                        [(story_id, i) for story_id, ids in plan.members.items() for i in ids])
            bulk_update(conn, items, ("features",), "item_id",
                        [(v, k) for k, v in plan.features.items()])
            changed_stories = self._write_stories(conn, plan.members)
            if plan.notes:
                noted = sorted({n.item_id for n in plan.notes})
                for chunk in chunks(noted):
                    conn.execute(match_notes.delete().where(match_notes.c.item_id.in_(chunk)))
                bulk_insert(conn, match_notes,
                             ("item_id", "other_item_id", "score", "merged", "reasons"), [
                    (n.item_id, n.other_item_id, n.score, n.merged,
                     json.dumps(list(n.reasons), ensure_ascii=False))
                    for n in _unique_notes(plan.notes)
                ])
            write_index(conn, plan)
            if changed_stories:
                bump_generation(conn)

    @staticmethod
    def _write_stories(conn: Connection, members: Mapping[str, tuple[str, ...]]) -> int:
        """Rewrite the rows of these stories (dates, canonical, agencies); returns how many."""
        member_ids = [i for ids in members.values() for i in ids]
        dates = _member_dates(conn, member_ids)
        touched = sorted(members)
        for chunk in chunks(touched):
            conn.execute(stories.delete().where(stories.c.story_id.in_(chunk)))
            conn.execute(story_agencies.delete().where(story_agencies.c.story_id.in_(chunk)))
        story_rows: list[tuple[str, str, datetime, datetime, int]] = []
        agency_rows: list[tuple[str, str, datetime]] = []
        for story_id in touched:
            ids = members[story_id]
            if not ids:
                continue
            rows = [dates[i] for i in ids]
            published, updated = date_span(rows)
            story_rows.append((story_id, ids[0], published, updated, len(ids)))
            for agency in dict.fromkeys(r.agency for r in rows):
                mine = [r for r in rows if r.agency == agency]
                agency_rows.append((story_id, agency, date_span(mine)[0]))
        bulk_insert(conn, stories, ("story_id", "canonical_item_id", "published", "updated",
                                    "size"), story_rows)
        bulk_insert(conn, story_agencies, ("story_id", "agency", "published"), agency_rows)
        return len(story_rows)

    def top_stories(self, limit: int, agency: str | None = None) -> list[Story]:
        """The newest `limit` stories (of one agency, restricted to its members), newest first."""
        with self._tx() as conn:
            if agency is None:
                query = sa.select(stories.c.story_id).order_by(
                    stories.c.published.desc(), stories.c.story_id
                )
            else:
                query = (
                    sa.select(story_agencies.c.story_id)
                    .where(story_agencies.c.agency == agency)
                    .order_by(story_agencies.c.published.desc(), story_agencies.c.story_id)
                )
            story_ids = list(conn.execute(query.limit(limit)).scalars())
            loaded = self._load_stories(conn, story_ids)
        result = [loaded[s] for s in story_ids if s in loaded]
        if agency is None:
            return result
        restricted = [s.for_agency(agency) for s in result]
        return [s for s in restricted if s is not None]

    def story(self, story_id: str) -> Story | None:
        """One story by id (a unique prefix of the id is enough)."""
        with self._tx() as conn:
            ids = list(
                conn.execute(
                    sa.select(stories.c.story_id)
                    .where(stories.c.story_id.startswith(story_id, autoescape=True))
                    .limit(2)
                ).scalars()
            )
            if len(ids) != 1:
                return None
            return self._load_stories(conn, ids).get(ids[0])

    def find_stories(self, words: str, limit: int) -> list[Story]:
        """Stories with a member whose title holds every one of `words` (case-insensitive)."""
        terms = [w for w in words.casefold().split() if w]
        if not terms:
            return []
        with self._tx() as conn:
            query = sa.select(items.c.story_id).where(items.c.story_id.is_not(None))
            for term in terms:
                query = query.where(items.c.title_key.contains(term, autoescape=True))
            story_ids = list(dict.fromkeys(conn.execute(query.limit(limit * 4)).scalars()))
            loaded = self._load_stories(conn, story_ids[:limit])
        return [loaded[s] for s in story_ids[:limit] if s in loaded]

    def notes_for(self, item_ids: Iterable[str]) -> list[MatchNote]:
        """Every recorded merge and near miss involving these items."""
        wanted = sorted(set(item_ids))
        result: list[MatchNote] = []
        with self._tx() as conn:
            for chunk in chunks(wanted):
                rows = conn.execute(
                    sa.select(match_notes).where(
                        sa.or_(match_notes.c.item_id.in_(chunk),
                               match_notes.c.other_item_id.in_(chunk))
                    )
                )
                result.extend(
                    MatchNote(r.item_id, r.other_item_id, r.score, r.merged,
                              tuple(json.loads(r.reasons)))
                    for r in rows
                )
        return list({(n.item_id, n.other_item_id): n for n in result}.values())

    def _load_stories(self, conn: Connection, story_ids: Sequence[str],
                      notes: bool = True) -> dict[str, Story]:
        """Stories by id, with their merge notes unless `notes` is False (publishing shows
        none): per chunk, the canonical ids and every member whole, one query each."""
        canonical: dict[str, str] = {}
        members: dict[str, list[StoredItem]] = defaultdict(list)
        found_notes: dict[str, list[MatchNote]] = defaultdict(list)
        for chunk in chunks(sorted(set(story_ids))):
            for row in conn.execute(
                sa.select(stories.c.story_id, stories.c.canonical_item_id).where(
                    stories.c.story_id.in_(chunk))
            ):
                canonical[row.story_id] = row.canonical_item_id
            for values in conn.execute(
                sa.select(*ITEM_COLUMNS).where(items.c.story_id.in_(chunk))
            ).tuples():
                member = _stored_item(values)
                members[member.story_id or ""].append(member)
            if not notes:
                continue
            for r in conn.execute(
                sa.select(match_notes)
                .join(items, items.c.item_id == match_notes.c.item_id)
                .where(items.c.story_id.in_(chunk), match_notes.c.merged.is_(True))
            ):
                found_notes[r.item_id].append(
                    MatchNote(r.item_id, r.other_item_id, r.score, True,
                              tuple(json.loads(r.reasons)))
                )
        result: dict[str, Story] = {}
        for story_id, found in members.items():
            # The canonical item first (the lowest id if the row names none of them), then
            # the others by date.
            head_id = canonical.get(story_id)
            head = next((m for m in found if m.item_id == head_id), None)
            if head is None:
                head = min(found, key=lambda m: m.item_id)
            rest = sorted((m for m in found if m is not head), key=lambda m: (m.date, m.item_id))
            ordered = (head, *rest)
            story_notes = tuple(n for m in ordered for n in found_notes.get(m.item_id, ()))
            result[story_id] = Story(story_id, ordered, story_notes)
        return result


_ITEM_ORDER = ("item_id", "source_id", "origin", "position", "agency", "agency_label", "title",
               "title_key", "text", "html", "truncated", "content_hash", "link", "guid",
               "published", "date_source", "first_seen", "story_id")
if tuple(column.name for column in ITEM_COLUMNS) != _ITEM_ORDER:
    raise ImportError("ITEM_COLUMNS changed: update _stored_item")


def _stored_item(values: Sequence[Any]) -> StoredItem:
    """`items.stored_item` of a row's values in `ITEM_COLUMNS` order: a story load reads
    every member, and taking a row apart by position costs a third of reading it by name."""
    (item_id, source_id, origin, position, agency, agency_label, title, title_key, text, html,
     truncated, content_hash, link, guid, published, date_source, first_seen, story_id) = values
    return StoredItem(
        item_id=item_id, source_id=source_id, origin=origin, position=position, agency=agency,
        agency_label=agency_label, title=title, title_key=title_key, text=text, html=html,
        truncated=bool(truncated), content_hash=content_hash, link=link, guid=guid,
        published=published, date_source=date_source, first_seen=first_seen,
        story_id=story_id)


@dataclass(frozen=True, slots=True)
class _DateRow:
    agency: str
    published: datetime | None
    first_seen: datetime


def _member_dates(conn: Connection, item_ids: Sequence[str]) -> dict[str, _DateRow]:
    result: dict[str, _DateRow] = {}
    for chunk in chunks(sorted(set(item_ids))):
        for row in conn.execute(
            sa.select(items.c.item_id, items.c.agency, items.c.published, items.c.first_seen)
            .where(items.c.item_id.in_(chunk))
        ):
            result[row.item_id] = _DateRow(row.agency, row.published, row.first_seen)
    return result


def _unique_notes(notes: Iterable[MatchNote]) -> list[MatchNote]:
    return list({(n.item_id, n.other_item_id): n for n in notes}.values())
