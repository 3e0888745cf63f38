"""`aggregate forget`: take one published item, or a whole story, down for good.

The item leaves the store with its notes and index rows, and a tombstone keyed by each of
its identities (guid, link, agency+title+text) keeps any source from bringing it back. A
story loses the item and keeps its id while another member remains; a story forgotten as a
whole takes all its items with it. The caller republishes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aggregator.config import Config
from aggregator.model import StoredItem
from aggregator.store import Removal, Store, open_store


@dataclass(frozen=True, slots=True)
class ForgetOutcome:
    """What `forget` did, in words, and whether it removed anything."""

    text: str
    removed: bool


def forget(config: Config, reference: str, now: datetime) -> ForgetOutcome:
    """Forget the story or item `reference` names: a published id (`urn:uuid:…`,
    `urn:newswire:item:…`), its first characters, or an item's guid or link."""
    store = open_store(config.store.url)
    try:
        # Forgetting rewrites stories: one node at a time, as placement does.
        with store.placement_lock():
            return _forget(store, reference.strip(), now)
    finally:
        store.close()


def _forget(store: Store, reference: str, now: datetime) -> ForgetOutcome:
    story_ids = [] if reference.startswith("urn:newswire:item:") else (
        store.find_story_ids(reference))
    if len(story_ids) > 1:
        return ForgetOutcome(_ambiguous(reference, story_ids), False)
    if story_ids:
        story = store.story(story_ids[0])
        if story is None:  # removed meanwhile
            return ForgetOutcome(f"No story or item matches {reference!r}.", False)
        removal = store.forget_items([m.item_id for m in story.members], now)
        return ForgetOutcome(
            f"Forgot story urn:uuid:{story.story_id} for good: "
            f"{len(removal.items)} item{_s(removal.items)} taken down.\n" + _listing(removal),
            True,
        )
    found = store.find_items(reference)
    if not found:
        return ForgetOutcome(
            f"No story or item matches {reference!r}. Give a published id (urn:uuid:… or "
            "urn:newswire:item:…), its first characters, or an item's guid or link.", False)
    if len(found) > 1:
        return ForgetOutcome(_ambiguous(reference, [f"urn:newswire:item:{i.item_id}"
                                                    for i in found]), False)
    removal = store.forget_items([found[0].item_id], now)
    if removal.stories_kept:
        fate = (f"Its story urn:uuid:{removal.stories_kept[0]} keeps its id with the "
                f"{len(removal.members_left)} other item{_s(removal.members_left)}.")
    elif removal.stories_removed:
        fate = f"Its story urn:uuid:{removal.stories_removed[0]} had no other item: it is gone."
    else:
        fate = "It was in no story yet."
    return ForgetOutcome(f"Forgot 1 item for good.\n{_listing(removal)}\n{fate}", True)


def _listing(removal: Removal) -> str:
    return "\n".join(_line(item) for item in removal.items)


def _line(item: StoredItem) -> str:
    return f"  {item.agency}: {item.title} (urn:newswire:item:{item.item_id}; from {item.origin})"


def _ambiguous(reference: str, candidates: list[str]) -> str:
    shown = "\n".join(f"  {c}" for c in candidates[:10])
    return f"{reference!r} matches more than one; give more of the id:\n{shown}"


def _s(values: tuple[object, ...]) -> str:
    return "" if len(values) == 1 else "s"
