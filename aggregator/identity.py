"""Identity, pure: which stored item a found item is, what id a new item gets, what id a
new story gets. No store, no clock: the same input gives the same answer on any node and
in a fresh store, which is what lets several nodes share one store and a lost store be
rebuilt under the same ids.

- An item's id is a hash of its identity (agency and guid, else link, else title and text)
  and of how many identical items came before it in its source's list (identical re-posts
  stay distinct items). So two nodes that store the same item compute the same id, and an
  insert that finds the id taken means "already stored".
- A story's id is derived from its *founding member*: the member with the earliest own
  date (undated members last), ties broken by the smaller item id. So it does not depend on
  which member a run happened to see first.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from aggregator.model import Item

STORY_NAMESPACE = uuid.UUID("6f1d3c52-4e0b-5a8e-9b7c-2d4f6a8b0c1e")
"""Namespace of story GUIDs: uuid5(namespace, founding item id), stable for a fresh store too."""


@dataclass(frozen=True, slots=True)
class StoredIdentity:
    """What matching needs of a stored item."""

    item_id: str
    agency: str
    guid: str | None
    link: str | None
    title_key: str
    content_hash: str
    digest: str
    present: bool


def content_key(item: Item | StoredIdentity) -> tuple[str, str, str]:
    """Agency, normalized title and text: a re-post has the same key."""
    return (item.agency, item.title_key, item.content_hash)


def match(
    found: Sequence[Item], stored: Sequence[StoredIdentity]
) -> tuple[dict[int, StoredIdentity], list[int]]:
    """Pair found items with stored ones, strongest identity first; return the leftovers.

    Passes: guid; link; agency+title+text; agency+text (title edited); agency+title (text
    edited). An item with a guid only ever matches by that guid, or a stored item without one.
    """
    matches: dict[int, StoredIdentity] = {}
    taken: set[str] = set()

    def run(key_of_found: Callable[[Item], Any], key_of_stored: Callable[[StoredIdentity], Any],
            allowed: Callable[[Item, StoredIdentity], bool]) -> None:
        pool: dict[Any, list[StoredIdentity]] = defaultdict(list)
        for row in stored:
            key = key_of_stored(row)
            if key is not None and row.item_id not in taken:
                pool[key].append(row)
        for index, item in enumerate(found):
            if index in matches:
                continue
            key = key_of_found(item)
            for row in pool.get(key, ()) if key is not None else ():
                if row.item_id not in taken and allowed(item, row):
                    matches[index] = row
                    taken.add(row.item_id)
                    break

    def compatible(item: Item, row: StoredIdentity) -> bool:
        return item.guid is None or row.guid is None or item.guid == row.guid

    run(lambda i: i.guid, lambda r: r.guid, lambda i, r: True)
    run(lambda i: i.link, lambda r: r.link, compatible)
    run(content_key, content_key, compatible)
    run(lambda i: (i.agency, i.content_hash), lambda r: (r.agency, r.content_hash), compatible)
    run(lambda i: (i.agency, i.title_key), lambda r: (r.agency, r.title_key), compatible)
    unmatched = [i for i in range(len(found)) if i not in matches]
    return matches, unmatched


def item_id(item: Item, occurrence: int = 0) -> str:
    """A 24-hex id from the item's identity; `occurrence` counts identical items before it
    in its source's list (0 for the first, which is every item but a re-post)."""
    basis = item.guid or item.link or f"{item.title_key}\x1f{item.content_hash}"
    text = (f"{item.agency}\x1f{basis}\x1f{occurrence}" if occurrence
            else f"{item.agency}\x1f{basis}")
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def item_ids(found: Sequence[Item], reserved: Iterable[str] = ()) -> list[str]:
    """The id of every item of a source's list, in order: identical items get successive
    occurrences. An id in `reserved` (kept by an edited item of the same source that once
    had this identity) is skipped to the next occurrence."""
    seen: dict[tuple[str, str], int] = defaultdict(int)
    blocked = set(reserved)
    ids: list[str] = []
    for item in found:
        key = (item.agency, item.guid or item.link or f"{item.title_key}\x1f{item.content_hash}")
        while True:
            occurrence = seen[key]
            seen[key] += 1
            candidate = item_id(item, occurrence)
            if candidate not in blocked:
                break
        blocked.add(candidate)
        ids.append(candidate)
    return ids


@dataclass(frozen=True, slots=True)
class MemberDate:
    """What the story id rule needs of a member: its id and its own stated date."""

    item_id: str
    published: datetime | None
    """The item's own date (source or text); None when it states none. Never the first-seen
    time: a fresh store sees everything at once, so first-seen times are not content."""


def founding_member(members: Iterable[MemberDate]) -> str:
    """The member a story's id derives from: the earliest own date, undated members after
    dated ones, ties broken by the smaller item id."""
    ranked = sorted(members, key=lambda m: (m.published is None, m.published or datetime.min,
                                            m.item_id))
    if not ranked:
        raise ValueError("a story needs at least one member")
    return ranked[0].item_id


def story_id_for(founding_item_id: str) -> str:
    """The GUID of a story founded by an item: stable, and unique because item ids are."""
    return str(uuid.uuid5(STORY_NAMESPACE, founding_item_id))


def story_id_of(members: Iterable[MemberDate]) -> str:
    """The id a story gets when a store first records it: from its founding member."""
    return story_id_for(founding_member(members))


# Not the position: a feed's items move down as new ones arrive, which is no edit of theirs.
_DIGESTED = ("agency", "agency_label", "title", "text", "html", "truncated", "link", "guid",
             "published", "date_source", "origin")


def digest(item: Item) -> str:
    """Fingerprint of everything published about an item: equal digests, nothing to update."""
    blob = json.dumps([str(getattr(item, name)) for name in _DIGESTED], ensure_ascii=False)
    return hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()


def settle_story_ids(
    members: Mapping[str, tuple[str, ...]], known: Iterable[str],
    own_dates: Mapping[str, datetime | None],
) -> dict[str, tuple[str, ...]]:
    """Dedup's memberships with every story the store does not hold yet (`known` are the
    ones it does, whose ids are published and never change) under the id its members give
    by `story_id_of`, so the id does not depend on which member a run placed first."""
    kept = set(known)
    return {
        (story_id if story_id in kept else
         story_id_of(MemberDate(i, own_dates.get(i)) for i in ids)): ids
        for story_id, ids in members.items()
    }


class Identified(Protocol):
    """What an item's identities are made of (a found `Item` or a `StoredItem`)."""

    @property
    def agency(self) -> str: ...
    @property
    def guid(self) -> str | None: ...
    @property
    def link(self) -> str | None: ...
    @property
    def title_key(self) -> str: ...
    @property
    def content_hash(self) -> str: ...


def identity_keys(item: Identified) -> list[str]:
    """Every identity of an item, hashed: its guid, its link, its agency, title and text.

    What a tombstone (`aggregate forget`) is keyed by: a source sending the item again under
    any one of them, even edited, is not heard. Stable across versions: stored tombstones
    hold these keys.
    """
    parts = [f"content\x1f{item.agency}\x1f{item.title_key}\x1f{item.content_hash}"]
    if item.guid:
        parts.append(f"guid\x1f{item.agency}\x1f{item.guid}")
    if item.link:
        parts.append(f"link\x1f{item.agency}\x1f{item.link}")
    return [hashlib.blake2b(part.encode(), digest_size=20).hexdigest() for part in parts]
