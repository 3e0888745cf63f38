"""Entries written as text (aggregator.entries) are byte for byte what feedgen writes for
them, and JSON Feed items what json.dumps writes: the reference is built here with feedgen's
own per-entry API and the standard encoder, on stories made to stress escaping."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from aggregator.markup import xml_safe
from aggregator.model import StoredItem, Story
from aggregator.publish import (
    Agency,
    FeedPlan,
    HistoryLinks,
    Site,
    entry_id,
    render_archive,
    render_atom_and_rss,
    render_json,
    story_html,
    story_link,
)
from aggregator.urls import encode_url

TRICKY = ["&", "<", ">", '"', "'", "\r", "\t", "\n", "]]>", "&amp;", "é", "€", "\U0001f600",
          "<b>bold</b>", "a & b", "x\u2028y", "  ", ""]
SITE = Site("Tricky <Wire> & Co", "http://feeds.example.test/", {
    "nato": Agency("nato", "NATO", "https://www.nato.int/"),
    "odd": Agency("odd", 'Odd "Agency" <&>', None),
    "blank": Agency("blank", "", "http://example.test/ä ö"),
})


def text(rng: random.Random, words: int) -> str:
    return "".join(rng.choice([*TRICKY, "word ", "Word. ", "\n\n"]) for _ in range(words))


def member(rng: random.Random, story: int, n: int, agency: str) -> StoredItem:
    when = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=rng.randrange(20_000))
    if rng.random() < 0.2:
        when = when.astimezone(timezone(timedelta(hours=2))).replace(microsecond=1234)
    html = None
    if rng.random() < 0.3:
        html = f'<p>{xml_safe(text(rng, 5))} <a href="http://x.test/a b?q=1&amp;r=2">l</a></p>'
    return StoredItem(
        source_id="s", origin="o", position=n, agency=agency, agency_label=agency,
        title=text(rng, 4) or "t", title_key="t", text=text(rng, rng.randrange(0, 30)),
        html=html, truncated=rng.random() < 0.3, content_hash="h",
        link=rng.choice([None, "http://x.test/päth?a=1&b=2", " http://x.test/%zz "]),
        guid=rng.choice([None, f"guid-{story}-{n} <&>"]),
        published=rng.choice([None, when]), date_source=rng.choice(["source", "text", None]),
        item_id=f"{story:04d}{n:02d}", first_seen=when - timedelta(days=1),
    )


def stories(seed: int, count: int = 60) -> list[Story]:
    rng = random.Random(seed)
    result = []
    for i in range(count):
        agencies = rng.choices(["nato", "odd", "blank", "unknown"], k=rng.randrange(1, 4))
        members = tuple(member(rng, i, n, a) for n, a in enumerate(agencies))
        result.append(Story(str(uuid.UUID(int=rng.getrandbits(128))), members))
    return result


def reference_atom_and_rss(feed: FeedPlan, site: Site) -> tuple[bytes, bytes]:
    """What the renderer wrote when feedgen made every entry (the contract)."""
    from aggregator.publish import _feed_updated, _generator, _links

    fg = _generator(feed, site, _feed_updated(feed.stories))
    for story in feed.stories:
        canonical = story.canonical
        guid = entry_id(story, feed)
        entry = fg.add_entry(order="append")
        entry.id(guid)
        entry.guid(guid, permalink=False)
        entry.title(xml_safe(canonical.title))
        entry.link(href=story_link(story, site, feed.pages.get(story.story_id, "index")),
                   rel="alternate", type="text/html")
        entry.published(story.published)
        entry.updated(story.updated)
        entry.content(story_html(story, site), type="html")
        names = [site.agency(slug).name for slug in story.agencies]
        for slug in story.agencies:
            agency = site.agency(slug)
            if agency.homepage:
                entry.author(name=xml_safe(agency.name), uri=encode_url(agency.homepage))
            else:
                entry.author(name=xml_safe(agency.name))
            entry.category(term=slug, label=xml_safe(agency.name))
        entry.dc.dc_creator(xml_safe(", ".join(names)))
    atom: bytes = fg.atom_str(pretty=True)
    _links(fg, feed, site, "rss")
    rss: bytes = fg.rss_str(pretty=True)
    return atom, rss


def reference_json(feed: FeedPlan, site: Site) -> bytes:
    from aggregator.publish import _subtitle

    def item(story: Story) -> dict[str, Any]:
        agencies = [site.agency(slug) for slug in story.agencies]
        return {
            "id": entry_id(story, feed),
            "url": story_link(story, site, feed.pages.get(story.story_id, "index")),
            "title": xml_safe(story.canonical.title),
            "content_html": story_html(story, site),
            "date_published": story.published.isoformat(),
            "date_modified": story.updated.isoformat(),
            "authors": [{"name": a.name, **({"url": encode_url(a.homepage)}
                                            if a.homepage else {})} for a in agencies],
            "tags": [a.name for a in agencies],
            "_aggregator": {
                "agencies": list(story.agencies),
                "date_source": story.canonical.date_origin,
                "members": [{
                    "agency": m.agency, "title": xml_safe(m.title),
                    "guid": m.guid or f"urn:newswire:item:{m.item_id}",
                    "url": encode_url(m.link) if m.link else None,
                    "date": m.date.isoformat(), "date_source": m.date_origin,
                } for m in story.members],
            },
        }

    document = {
        "version": "https://jsonfeed.org/version/1.1", "title": feed.title,
        "home_page_url": site.url("index.html"), "feed_url": site.url(f"{feed.name}.json"),
        "description": _subtitle(feed, site),
        "language": "en", "authors": [{"name": site.title}],
        "items": [item(story) for story in feed.stories],
    }
    if site.hubs:
        document["hubs"] = [{"type": "WebSub", "url": hub} for hub in site.hubs]
    return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode()


def feeds(seed: int, site: Site) -> list[FeedPlan]:
    all_stories = stories(seed)
    pages = {s.story_id: "archive/combined-2024-05" for s in all_stories[::3]}
    odd = [r for r in (s.for_agency("odd") for s in all_stories) if r is not None]
    return [
        FeedPlan("combined", "All <of> it & more", all_stories, pages=pages),
        FeedPlan("odd", "Odd & co", odd, agency=site.agency("odd"), kind="agency", pages=pages),
        FeedPlan("topic-x", "X", all_stories[::2], kind="topic", description="<Topic> & x",
                 history=HistoryLinks(prev_archive="archive/topic-x-2024-04")),
        FeedPlan("combined", "Empty", ()),
    ]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("hubs", [(), ("http://hub.test/?a=1&b=2",)])
def test_feeds_are_what_feedgen_and_json_dumps_write(seed: int, hubs: tuple[str, ...]) -> None:
    site = Site(SITE.title, SITE.base_url, SITE.agencies, hubs=hubs)
    for feed in feeds(seed, site):
        assert render_atom_and_rss(feed, site) == reference_atom_and_rss(feed, site), feed.name
        assert render_json(feed, site) == reference_json(feed, site), feed.name


def test_archives_are_what_feedgen_writes() -> None:
    all_stories = stories(99)
    archive = FeedPlan("archive/combined-2024-05", "All (archive of May 2024)", all_stories,
                       history=HistoryLinks(archive=True, current="combined",
                                            prev_archive="archive/combined-2024-04",
                                            next_archive="archive/combined-2024-06",
                                            month="2024-05"))
    files = render_archive(archive, [archive], SITE)
    atom, rss = reference_atom_and_rss(archive, SITE)
    assert files["archive/combined-2024-05.atom"] == atom
    assert files["archive/combined-2024-05.rss"] == rss
