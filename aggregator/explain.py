"""`aggregate explain`: why items were, or were not, merged into a story, in words."""

from __future__ import annotations

import re

from aggregator.config import Config
from aggregator.dedup import Features, richness
from aggregator.model import MatchNote, StoredItem, Story
from aggregator.normalize import title_key
from aggregator.store import Store, open_store

_ID_LIKE = re.compile(r"^[0-9a-f-]{4,36}$")
_MAX_STORIES = 5
_CONTRIBUTIONS = "score from: "


def explain(config: Config, query: str) -> tuple[str, bool]:
    """The explanation for a story id (or prefix) or title words; False if nothing matched."""
    store: Store = open_store(config.store.url)
    try:
        stories = _find(store, query.strip())
        if not stories:
            return f"No story matches {query!r}. Give a story id or words of a title.", False
        blocks = [_explain_story(store, story) for story in stories]
    finally:
        store.close()
    more = "" if len(stories) < _MAX_STORIES else f"\n(showing the first {_MAX_STORIES} matches)"
    return "\n\n".join(blocks) + more, True


def _find(store: Store, query: str) -> list[Story]:
    bare = query.removeprefix("urn:uuid:").lower()
    if _ID_LIKE.match(bare):
        story = store.story(bare)
        if story is not None:
            return [story]
    return store.find_stories(title_key(query), _MAX_STORIES)


def _explain_story(store: Store, story: Story) -> str:
    members = {m.item_id: m for m in story.members}
    lines = [
        f"Story {story.story_id}",
        f"  {story.canonical.title}",
        f"  {len(story.members)} item{'s' if len(story.members) != 1 else ''}, "
        f"agencies: {', '.join(story.agencies)}, published {_day(story)}",
        "",
        "Items:",
    ]
    for index, member in enumerate(story.members):
        role = "leads" if index == 0 else "member"
        lines.append(f"  [{role}] {member.agency}: {member.title}")
        lines.append(f"          {_when(member)}; from {member.origin}"
                     + (f"; {member.link}" if member.link else ""))
    if len(story.members) > 1:
        lines += ["", "Why it leads:", f"  {_why_leads(store, story)}"]
    notes = store.notes_for(members)
    merged = [n for n in notes if n.merged and n.item_id in members]
    apart = [n for n in notes if not n.merged]
    if merged:
        lines += ["", "Why these items were merged:"]
        for note in sorted(merged, key=lambda n: -n.score):
            lines.append(_note_line(note, members, store))
    if apart:
        lines += ["", "Close items kept apart:"]
        for note in sorted(apart, key=lambda n: -n.score)[:8]:
            lines.append(_note_line(note, members, store))
    if len(story.members) == 1 and not apart:
        lines += ["", "No other item came close enough to be compared in detail."]
    return "\n".join(lines)


def _note_line(note: MatchNote, members: dict[str, StoredItem], store: Store) -> str:
    ours, theirs = (note.item_id, note.other_item_id) if note.item_id in members else (
        note.other_item_id, note.item_id)
    names = {i.item_id: i for i in store.items([ours, theirs])}
    mine = names.get(ours)
    other = names.get(theirs)
    other_label = f"{other.agency}: {other.title}" if other else theirs
    if other is not None and other.story_id not in (None, mine.story_id if mine else None):
        other_label += f" (story {str(other.story_id)[:8]})"
    head = f"  - {mine.title if mine else ours}  <->  {other_label}"
    words = [r for r in note.reasons if not r.startswith(_CONTRIBUTIONS)]
    parts = [r.removeprefix(_CONTRIBUTIONS) for r in note.reasons if r.startswith(_CONTRIBUTIONS)]
    reasons = "; ".join(words) or "no shared evidence"
    line = f"{head}\n      score {note.score:.2f}: {reasons}"
    if parts:
        line += f"\n      what made the score (log-odds): {parts[0]}"
    return line


def _why_leads(store: Store, story: Story) -> str:
    stored = store.features([m.item_id for m in story.members])
    if len(stored) != len(story.members):
        return "it was ranked first when the story was formed"
    read = {i: Features.from_json(text, i) for i, text in stored.items()}
    features = {i: f for i, f in read.items() if f is not None}
    if len(features) != len(story.members):
        return "it was ranked first when the story was formed"
    lead = features[story.canonical.item_id]
    others = [features[m.item_id] for m in story.members[1:]]
    if any(o.truncated for o in others) and not lead.truncated:
        return 'it is the full text; another item is a summary cut with "…"'
    if any(o.advisory for o in others) and not lead.advisory:
        return "it reports the event; another item is an advisory announcing it"
    if all(richness(lead) <= richness(o) and lead.length >= o.length for o in others):
            return "it has the most text"
    return "it ranks first by completeness, link and date"


def _day(story: Story) -> str:
    moment = story.published
    return f"{moment.day} {moment:%B %Y}"


def _when(item: StoredItem) -> str:
    origin = {
        "source": "date from the feed",
        "text": "date stated in the text",
        "first_seen": "no date given; first seen",
    }[item.date_origin]
    return f"{item.date:%Y-%m-%d} ({origin})"
