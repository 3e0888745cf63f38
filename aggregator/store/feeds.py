"""Feed history (issue 13): every story in feed order, each story's version, and the
countries and topics it was last found to belong to, for topic, country and archive feeds."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime

import sqlalchemy as sa

from aggregator.model import Story
from aggregator.store.api import FeedRecord
from aggregator.store.engine import chunks, dialect_insert
from aggregator.store.schema import items, stories, story_agencies, story_feeds
from aggregator.store.stories import StoryTables


class FeedHistory(StoryTables):
    """The `story_feeds` table, and whole-history reads of stories."""

    def story_timeline(self) -> list[tuple[str, datetime]]:
        """Every story's id and date in the combined feed's order: newest first, ties by id."""
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(stories.c.story_id, stories.c.published).order_by(
                    stories.c.published.desc(), stories.c.story_id))
            return [(row.story_id, row.published) for row in rows]

    def agency_timeline(self) -> list[tuple[str, str, datetime]]:
        """(agency, story id, date of the agency's reports) in each agency feed's order."""
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(story_agencies).order_by(
                    story_agencies.c.agency, story_agencies.c.published.desc(),
                    story_agencies.c.story_id))
            return [(row.agency, row.story_id, row.published) for row in rows]

    def story_versions(self) -> dict[str, str]:
        """Every story's version: a digest of its canonical item and its members' digests,
        which changes whenever anything published of the story does."""
        members: dict[str, list[str]] = defaultdict(list)
        with self._tx() as conn:
            canonical = {row.story_id: row.canonical_item_id for row in conn.execute(
                sa.select(stories.c.story_id, stories.c.canonical_item_id))}
            for row in conn.execute(
                sa.select(items.c.story_id, items.c.item_id, items.c.digest)
                .where(items.c.story_id.is_not(None))
            ):
                members[row.story_id].append(f"{row.item_id}={row.digest}")
        versions = {}
        for story_id, head in canonical.items():
            blob = "|".join([head, *sorted(members.get(story_id, ()))]).encode()
            versions[story_id] = hashlib.blake2b(blob, digest_size=12).hexdigest()
        return versions

    def stories(self, story_ids: Sequence[str], notes: bool = True) -> dict[str, Story]:
        """Stories by id, whole (ids of no story are left out); without their merge notes
        if `notes` is False (publishing shows none)."""
        with self._tx() as conn:
            return self._load_stories(conn, story_ids, notes)

    def story_feeds(self) -> dict[str, FeedRecord]:
        """Each story's recorded (key, countries, topics)."""
        with self._tx() as conn:
            return {
                row.story_id: (row.key, tuple(row.countries.split()), tuple(row.topics.split()))
                for row in conn.execute(sa.select(story_feeds))
            }

    def save_story_feeds(self, rows: Mapping[str, FeedRecord]) -> None:
        """Record stories' (key, countries, topics), replacing what was recorded: an upsert,
        so nodes publishing at once each write the same rows without colliding."""
        if not rows:
            return
        with self._tx() as conn:
            for chunk in chunks(sorted(rows)):
                statement = dialect_insert(conn, story_feeds)
                conn.execute(statement.on_conflict_do_update(
                    index_elements=[story_feeds.c.story_id],
                    set_={name: statement.excluded[name]
                          for name in ("key", "countries", "topics")},
                ), [
                    {"story_id": story_id, "key": rows[story_id][0],
                     "countries": " ".join(rows[story_id][1]),
                     "topics": " ".join(rows[story_id][2])}
                    for story_id in chunk
                ])
