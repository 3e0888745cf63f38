"""The data that flows through a run, as small frozen dataclasses.

RawItem (what a source gives) -> Item (normalized) -> StoredItem (with its stable id and
first-seen time) -> Story (a cluster of stored items, canonical first) -> RunResult.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

DateSource = Literal["source", "text", "first_seen"]
"""Where an item's date came from: the feed's metadata, the item's own text, or the run
that first saw it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RawItem:
    """One item as a source gives it, before any cleaning."""

    source_id: str
    """The source unit that yielded it: a seed file's path or a feed's configured URL."""
    origin: str
    """Where to point a user at it: `seeds/a.txt:28` or a feed URL."""
    agency_label: str
    """The agency as the source names it (`Interpol (news and events)`), or a configured slug."""
    title: str
    content: str
    content_is_html: bool = False
    link: str | None = None
    guid: str | None = None
    published: datetime | None = None
    """The date the source's metadata gives (feeds); None for seed files."""
    position: int = 0
    """Order within the source, first item 0."""
    base_url: str | None = None
    """What relative links in `content` resolve against (a feed item's xml:base or the
    feed's URL); None means the item's link."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Item:
    """A normalized item: resolved agency, clean text, stated date and fingerprints."""

    source_id: str
    origin: str
    position: int
    agency: str
    """The agency's slug (a configured one, or one derived from an unknown name)."""
    agency_label: str
    title: str
    title_key: str
    """Casefolded, punctuation-free title: compares titles across edits of punctuation."""
    text: str
    """Plain text, paragraphs separated by one blank line."""
    html: str | None
    """Sanitized HTML when the source gave HTML; None for plain-text sources."""
    truncated: bool
    """The source cut the text short with an ellipsis (a summary of a longer item)."""
    content_hash: str
    """Fingerprint of the normalized text: equal texts, equal hashes."""
    link: str | None
    guid: str | None
    published: datetime | None
    """The item's own date (from the source or its text), timezone-aware UTC; None if unstated."""
    date_source: DateSource | None


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredItem(Item):
    """An item as the store keeps it: a stable id and the time it was first seen."""

    item_id: str
    first_seen: datetime
    story_id: str | None = None

    @property
    def date(self) -> datetime:
        """The date to publish: the stated one, else the first-seen time (recorded once)."""
        return self.published if self.published is not None else self.first_seen

    @property
    def date_origin(self) -> DateSource:
        """Where `date` came from."""
        return self.date_source if self.date_source is not None else "first_seen"


class Dated(Protocol):
    """Anything with an item's two dates (a StoredItem, or a row of them)."""

    @property
    def published(self) -> datetime | None: ...
    @property
    def first_seen(self) -> datetime: ...


def date_span(members: Iterable[Dated]) -> tuple[datetime, datetime]:
    """A story's (published, updated): the earliest stated date (the earliest first-seen
    time if none is stated) and the latest member date, never earlier than published."""
    rows = list(members)
    stated = [m.published for m in rows if m.published is not None]
    published = min(stated) if stated else min(m.first_seen for m in rows)
    latest = max(m.published if m.published is not None else m.first_seen for m in rows)
    return published, max(published, latest)


@dataclass(frozen=True, slots=True)
class MatchNote:
    """Why two items were merged, or why a close pair was kept apart."""

    item_id: str
    other_item_id: str
    score: float
    merged: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Story:
    """A cluster of items that report one event; `members[0]` is the canonical entry."""

    story_id: str
    members: tuple[StoredItem, ...]
    notes: tuple[MatchNote, ...] = ()

    @property
    def canonical(self) -> StoredItem:
        """The richest member, whose title and text the story publishes."""
        return self.members[0]

    @property
    def agencies(self) -> tuple[str, ...]:
        """Slugs of every agency that reported the story, the canonical one's first."""
        return tuple(dict.fromkeys(member.agency for member in self.members))

    @property
    def published(self) -> datetime:
        """The earliest stated member date; the earliest first-seen time if none is stated."""
        return date_span(self.members)[0]

    @property
    def updated(self) -> datetime:
        """The latest member date, never earlier than `published`."""
        return date_span(self.members)[1]

    def for_agency(self, agency: str) -> Story | None:
        """The story as one agency's feed shows it: only that agency's members, or None."""
        members = tuple(m for m in self.members if m.agency == agency)
        if not members:
            return None
        if len(members) == len(self.members):
            return self
        kept = {m.item_id for m in members}
        notes = tuple(n for n in self.notes if n.item_id in kept and n.other_item_id in kept)
        return Story(self.story_id, members, notes)


@dataclass(frozen=True, slots=True)
class SourceReport:
    """What one source unit did in a run."""

    name: str
    """The seed file's path or the feed's URL, as a user would recognise it."""
    ok: bool
    items: int = 0
    skipped: bool = False
    """Nothing to read: the file is unchanged since the last run, or the feed is not due."""
    error: str | None = None


@dataclass(frozen=True, slots=True)
class RunResult:
    """The outcome of one run, returned as a value for the CLI and the scheduler."""

    started: datetime
    duration: float
    """Wall seconds the run took."""
    sources: tuple[SourceReport, ...]
    items_new: int
    items_updated: int
    items_total: int
    stories: int
    files_written: tuple[str, ...]
    files_unchanged: int
    warnings: tuple[str, ...] = field(default=())
    publish_error: str | None = None
    """Why the output could not be written (a full disk, a read-only directory), if so: the
    sources were read and stored, and the earlier files stay whole."""

    @property
    def failed_sources(self) -> tuple[SourceReport, ...]:
        """The sources that could not be read this run."""
        return tuple(s for s in self.sources if not s.ok)

    @property
    def exit_code(self) -> int:
        """0 when every source was read, 1 when some failed and the rest was published,
        5 when the output could not be written."""
        if self.publish_error is not None:
            return 5
        return 1 if self.failed_sources else 0

    def summary(self) -> str:
        """One line for a person: sources, items, stories, files, time."""
        ok = sum(1 for s in self.sources if s.ok)
        failed = len(self.sources) - ok
        return (
            f"{ok} sources ok, {failed} failed; "
            f"{self.items_total} items ({self.items_new} new, {self.items_updated} updated); "
            f"{self.stories} stories; "
            f"{len(self.files_written)} files written, {self.files_unchanged} unchanged"
            + ("" if self.publish_error is None else " (publishing failed)")
            + f"; {self.duration:.2f}s"
        )
