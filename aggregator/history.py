"""Full feed history (RFC 5005, section 4): which stories go in which document (pure).

A feed's subscription document holds its newest `max_entries` stories; every older story goes
into the archive document of the month it was published in (`archive/<feed>-YYYY-MM.atom`).
Archives link to each other (`prev-archive` older, `next-archive` newer) and to the
subscription document (`current`), which links to the newest archive. A month with no older
story has no archive, and the links step over it. So a reader that follows `prev-archive`
from the subscription document meets every story exactly once.

An archive changes only when a story in it changes, when stories fall out of the
subscription document into it (the newest archived month, while the boundary moves through
it), or when a newer archive appears (it gains its `next-archive` link, once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

ARCHIVE_DIR = "archive"


@dataclass(frozen=True, slots=True)
class Dated:
    """A story as history needs it: its id and the date it is placed by."""

    story_id: str
    published: datetime


@dataclass(frozen=True, slots=True)
class ArchivePage:
    """One month's archive document of a feed, and its neighbours (file stems)."""

    stem: str
    """`archive/<feed>-YYYY-MM`: the file name without its extension."""
    month: str
    """`YYYY-MM`."""
    story_ids: tuple[str, ...]
    """Newest first."""
    prev_archive: str | None
    """The next older archive's stem; None for the oldest."""
    next_archive: str | None
    """The next newer archive's stem; None for the newest."""


@dataclass(frozen=True, slots=True)
class History:
    """A feed split into its subscription document and its monthly archives."""

    current: tuple[str, ...]
    """Story ids of the subscription document, newest first."""
    archives: tuple[ArchivePage, ...]
    """Newest month first."""

    @property
    def newest_archive(self) -> str | None:
        """The stem the subscription document's `prev-archive` link points to."""
        return self.archives[0].stem if self.archives else None


def month_of(moment: datetime) -> str:
    """`YYYY-MM` of a UTC date."""
    return f"{moment.year:04d}-{moment.month:02d}"


def month_name(month: str) -> str:
    """`November 2024` for `2024-11`."""
    return f"{datetime(int(month[:4]), int(month[5:7]), 1):%B %Y}"


def archive_stem(feed: str, month: str) -> str:
    """The file stem of a feed's archive for a month."""
    return f"{ARCHIVE_DIR}/{feed}-{month}"


def split_history(feed: str, stories: Sequence[Dated], max_entries: int) -> History:
    """The subscription document and the archives of a feed whose stories are newest first."""
    current = tuple(s.story_id for s in stories[:max_entries])
    months: dict[str, list[str]] = {}
    for story in stories[max_entries:]:
        months.setdefault(month_of(story.published), []).append(story.story_id)
    # Newest first, whatever order the stories came in (dates can tie across ids).
    ordered = sorted(months, reverse=True)
    stems = [archive_stem(feed, month) for month in ordered]
    pages = tuple(
        ArchivePage(
            stem=stems[i],
            month=month,
            story_ids=tuple(months[month]),
            prev_archive=stems[i + 1] if i + 1 < len(stems) else None,
            next_archive=stems[i - 1] if i > 0 else None,
        )
        for i, month in enumerate(ordered)
    )
    return History(current=current, archives=pages)
