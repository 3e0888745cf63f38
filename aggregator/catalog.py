"""The feeds a publication consists of, planned from the store.

Combined, one per agency, one per configured topic, one per country with enough stories
about it; each split (aggregator.history) into its subscription document and its monthly
archives. Planning reads ids, dates and a version of each story from the store, and the
countries and topics recorded for it (worked out again only for stories that changed); then
the subscription documents are loaded, and the archives one month at a time, as publishing
asks for them, so a long history never sits in memory. A document whose digest (its
stories' versions, its links, the feeds and settings it shows) is the one recorded in the
output directory when its files were written is neither loaded nor rendered again.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from aggregator.config import Config, TopicConfig
from aggregator.countries import COUNTRY_NAMES, story_countries
from aggregator.fileio import write_many_if_changed
from aggregator.history import ArchivePage, Dated, History, month_name, split_history
from aggregator.model import Story
from aggregator.publish import (
    COMBINED,
    Agency,
    FeedKind,
    FeedPlan,
    HistoryLinks,
    KeptFiles,
    Site,
    archive_files,
)
from aggregator.query import StoryFacts, matcher
from aggregator.store import Store

_BATCH = 1000
"""Stories loaded from the store at a time."""
DIGESTS_FILE = ".digests"
"""In the output directory: the digest each document's files were written from. It lives
with the files it describes (hidden, so never served): nodes sharing one store each keep
their own output directory."""


def recorded_digests(out_dir: Path) -> dict[str, str]:
    """The digests recorded by the last publish into `out_dir` (none if unreadable)."""
    try:
        recorded = json.loads((out_dir / DIGESTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(recorded, dict):
        return {}
    return {str(k): str(v) for k, v in recorded.items()}


def record_digests(out_dir: Path, digests: Mapping[str, str]) -> None:
    """Record the digests of a finished publish (the file is left alone if they are equal)."""
    data = json.dumps(dict(sorted(digests.items())), indent=0).encode() + b"\n"
    write_many_if_changed({out_dir / DIGESTS_FILE: data})


@dataclass(slots=True)
class FeedTimeline:
    """One feed's stories, newest first, as ids and dates; and what it needs to render."""

    kind: FeedKind
    name: str
    title: str
    label: str | None = None
    description: str | None = None
    agency: Agency | None = None
    timeline: list[Dated] = field(default_factory=list)
    listed: bool = True
    """False for an agency with nothing left (its sources were removed): its feed is still
    published, empty and valid, but leaves the OPML and the page."""

    @property
    def restrict_to(self) -> str | None:
        """The agency whose members alone an agency feed shows."""
        return self.agency.slug if self.kind == "agency" and self.agency else None


def story_facts(story: Story, countries: Sequence[str]) -> StoryFacts:
    """What topic queries look at in a story: every report's title and text (pure)."""
    texts = [text for member in story.members for text in (member.title, member.text)]
    return StoryFacts.of(texts, story.agencies, countries)


def topics_of(story: Story, countries: Sequence[str],
              topics: Sequence[TopicConfig]) -> list[str]:
    """Slugs of the topics whose query a story matches (pure)."""
    return _matching(story, countries, [(topic.slug, matcher(topic.parsed)) for topic in topics])


def _matching(story: Story, countries: Sequence[str],
              topics: Sequence[tuple[str, Callable[[StoryFacts], bool]]]) -> list[str]:
    if not topics:
        return []
    facts = story_facts(story, countries)
    return [slug for slug, matches in topics if matches(facts)]


def topic_feed_name(slug: str) -> str:
    """The file stem of a topic's feed."""
    return f"topic-{slug}"


def country_feed_name(code: str) -> str:
    """The file stem of a country's feed (lowercase ISO code)."""
    return f"country-{code.lower()}"


@dataclass(frozen=True, slots=True)
class Publication:
    """The subscription documents to publish, and the archives, produced lazily."""

    feeds: list[FeedPlan]
    archives: Iterator[FeedPlan | KeptFiles]
    digests: dict[str, str]
    """Document stem -> digest of its inputs; complete once `archives` is exhausted."""
    unchanged: frozenset[str] = frozenset()
    """Subscription documents (names) whose files are up to date: planned without stories."""


def plan_publication(store: Store, config: Config, site: Site,
                     agency_slugs: Sequence[str], *, out_dir: Path,
                     recorded: Mapping[str, str], salt: str,
                     retired: Sequence[str] = ()) -> Publication:
    """Every feed of the publication: subscription documents now, archives as iterated.

    `recorded` holds the digests of the documents of the last publish; `salt` digests
    whatever else shapes the output (settings, the renderer's code). A subscription document
    whose digest is the recorded one (and whose files are there) comes without its stories,
    named in `Publication.unchanged`: it need not be rendered again."""
    versions: dict[str, str] = {}
    kept: dict[str, Story] = {}
    timelines = _timelines(store, config, site, agency_slugs, versions, retired, kept)
    histories = {t.name: split_history(t.name, t.timeline, config.output.max_entries)
                 for t in timelines}
    # Pages list every subscription document: a feed added or gone changes them.
    shown = [salt, *(f"{t.name}\x1f{t.title}\x1f{t.kind}" for t in timelines),
             *(f"{a.slug}\x1f{a.name}\x1f{a.homepage}" for a in site.agencies.values())]
    # A story gone from the front page is on its month's page: entries without a source
    # link link there.
    pages = {story_id: page.stem for page in histories[COMBINED].archives
             for story_id in page.story_ids}
    context = _Context(store, out_dir, recorded, "\x1e".join(shown), versions, pages)
    digests: dict[str, str] = {}
    unchanged: set[str] = set()
    for t in timelines:
        history = histories[t.name]
        digests[t.name] = digest = context.digest(
            t, t.name, history.newest_archive, None, history.current)
        links = HistoryLinks(prev_archive=history.newest_archive)
        # The combined feed's stories make the page too: it is always planned whole.
        if t.kind != "combined" and context.kept(_plan(t, t.name, (), links, pages).files,
                                                 t.name, digest):
            unchanged.add(t.name)
    current_ids = list(dict.fromkeys(i for t in timelines if t.name not in unchanged
                                     for i in histories[t.name].current))
    loaded = {i: kept[i] for i in current_ids if i in kept}
    loaded.update(_load(store, [i for i in current_ids if i not in kept]))
    kept.clear()
    feeds = [
        _plan(t, t.name, [] if t.name in unchanged else
              [loaded[i] for i in histories[t.name].current],
              HistoryLinks(prev_archive=histories[t.name].newest_archive), pages)
        for t in timelines
    ]
    # The subscription documents hold their stories throughout publishing anyway: archives
    # showing them again take them from there rather than from the store.
    return Publication(feeds=feeds,
                       archives=_archives(context, timelines, histories, digests, loaded),
                       digests=digests, unchanged=frozenset(unchanged))


@dataclass(frozen=True, slots=True)
class _Context:
    store: Store
    out_dir: Path
    recorded: Mapping[str, str]
    salt: str
    versions: Mapping[str, str]
    pages: Mapping[str, str]

    def digest(self, feed: FeedTimeline, stem: str, prev_archive: str | None,
               next_archive: str | None, story_ids: Sequence[str]) -> str:
        """A digest of everything a document shows."""
        parts = [self.salt, feed.name, feed.title, stem, prev_archive or "",
                 next_archive or "",
                 *(f"{i}:{self.versions[i]}:{self.pages.get(i, '')}" for i in story_ids)]
        return hashlib.blake2b("\x1e".join(parts).encode(), digest_size=16).hexdigest()

    def kept(self, files: Sequence[str], stem: str, digest: str) -> bool:
        """Whether a document's files are there, written from inputs with this digest."""
        return (self.recorded.get(stem) == digest
                and all((self.out_dir / name).is_file() for name in files))


def _timelines(store: Store, config: Config, site: Site, agency_slugs: Sequence[str],
               versions: dict[str, str], retired: Sequence[str] = (),
               kept: dict[str, Story] | None = None) -> list[FeedTimeline]:
    """Every feed's timeline; the stories loaded to classify that some subscription
    document shows go into `kept`, so they need not be loaded again."""
    title = config.output.title
    combined = FeedTimeline("combined", COMBINED, title)
    agencies: dict[str, FeedTimeline] = {}
    for slug in sorted(agency_slugs):
        agency = site.agency(slug)
        agencies[slug] = FeedTimeline("agency", slug, f"{agency.name} — {title}", agency=agency)
    for slug in sorted(retired):
        agency = site.agency(slug)
        agencies[slug] = FeedTimeline("agency", slug, f"{agency.name} — {title}", agency=agency,
                                      listed=False)
    topics = {
        topic.slug: FeedTimeline(
            "topic", topic_feed_name(topic.slug), f"{topic.title} — {title}", label=topic.title,
            description=f"{topic.title}: the stories that match {topic.query}, one entry "
                        "per story.")
        for topic in config.topics
    }
    # An agency's feed is ordered by its own reports' dates, as the store orders it.
    for slug, story_id, published in store.agency_timeline():
        if slug in agencies:
            agencies[slug].timeline.append(Dated(story_id, published))
    timeline = store.story_timeline()
    max_entries = config.output.max_entries
    shown = {d.story_id for feed in agencies.values() for d in feed.timeline[:max_entries]}
    classes = _classify(store, config, versions, [story_id for story_id, _ in timeline],
                        shown, {} if kept is None else kept)
    countries: dict[str, list[Dated]] = defaultdict(list)
    for story_id, published in timeline:
        dated = Dated(story_id, published)
        combined.timeline.append(dated)
        about, matched = classes.get(story_id, ((), ()))
        for code in about:
            countries[code].append(dated)
        for slug in matched:
            if slug in topics:
                topics[slug].timeline.append(dated)
    country_feeds = []
    for code in sorted(countries):
        if len(countries[code]) < config.countries.min_stories:
            continue
        name = COUNTRY_NAMES.get(code, code)
        country_feeds.append(FeedTimeline(
            "country", country_feed_name(code), f"{name} — {title}", label=name,
            description=f"The stories about {name}, one entry per story.",
            timeline=countries[code]))
    return [combined, *agencies.values(), *topics.values(), *country_feeds]


@cache
def classifier_fingerprint() -> str:
    """A digest of the code that finds a story's countries and topics: an upgrade that
    changes it works every story out again."""
    from aggregator import countries, entities, gazetteer, query

    digest = hashlib.blake2b(digest_size=8)
    for module in (countries, entities, gazetteer, query):
        digest.update(Path(module.__file__ or "").read_bytes())
    return digest.hexdigest()


def _classify(store: Store, config: Config, versions: dict[str, str], order: Sequence[str],
              shown: Set[str], kept: dict[str, Story],
              ) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """Each story's (countries, topics): recorded ones while the story, the topics and the
    classifier are unchanged; the others are loaded and worked out, and recorded.

    `order` is the combined feed's (newest first): stories are worked out in it, so a loaded
    story is known to be among the newest of its countries and topics when it comes, and
    kept (in `kept`) if a subscription document shows it: among those, or in `shown`."""
    versions.update(store.story_versions())
    topics_key = hashlib.blake2b(
        "\x1e".join([classifier_fingerprint(), *(f"{t.slug}\x1f{t.query}"
                                                 for t in config.topics)]).encode(),
        digest_size=8).hexdigest()
    recorded = store.story_feeds()
    result: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    stale: dict[str, int] = {}
    for story_id in dict.fromkeys([*order, *versions]):
        version = versions.get(story_id)
        if version is None:
            continue
        found = recorded.get(story_id)
        if found is not None and found[0] == f"{version}:{topics_key}":
            result[story_id] = (found[1], found[2])
        else:
            stale[story_id] = len(stale)
    stale_ids = list(stale)
    fresh: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {}
    topics = [(topic.slug, matcher(topic.parsed)) for topic in config.topics]
    pending: dict[str, Story] = {}
    loaded_to = 0

    def load_batch() -> None:
        nonlocal loaded_to
        batch = stale_ids[loaded_to : loaded_to + _BATCH]
        loaded_to += len(batch)
        for story_id, story in store.stories(batch, notes=False).items():
            codes = story_countries(story)
            matched = tuple(_matching(story, codes, topics))
            result[story_id] = (codes, matched)
            fresh[story_id] = (f"{versions[story_id]}:{topics_key}", codes, matched)
            pending[story_id] = story

    newer: Counter[str] = Counter()
    max_entries = config.output.max_entries
    for story_id in order:
        position = stale.get(story_id)
        if position is not None and position >= loaded_to:
            load_batch()
        story = pending.pop(story_id, None)
        about, matched = result.get(story_id, ((), ()))
        # Counted as the feeds will hold them: the combined feed, then each country's and
        # topic's, newest first.
        feeds = [COMBINED, *(f"c:{code}" for code in about), *(f"t:{slug}" for slug in matched)]
        current = [feed for feed in feeds if newer[feed] < max_entries]
        newer.update(feeds)
        if story is not None and (current or story_id in shown):
            kept[story_id] = story
    while loaded_to < len(stale_ids):
        load_batch()
    store.save_story_feeds(fresh)
    return result


def _load(store: Store, story_ids: Sequence[str]) -> dict[str, Story]:
    loaded: dict[str, Story] = {}
    for start in range(0, len(story_ids), _BATCH):
        loaded.update(store.stories(story_ids[start : start + _BATCH], notes=False))
    return loaded


def _plan(feed: FeedTimeline, name: str, stories: Sequence[Story], history: HistoryLinks,
          pages: Mapping[str, str], title_suffix: str = "") -> FeedPlan:
    if feed.restrict_to is not None:
        restricted = (s.for_agency(feed.restrict_to) for s in stories)
        stories = [s for s in restricted if s is not None]
    return FeedPlan(
        name=name,
        title=feed.title + title_suffix, stories=stories, agency=feed.agency,
        kind=feed.kind, history=history, label=feed.label, description=feed.description,
        pages=pages, listed=feed.listed,
    )


def _archives(context: _Context, timelines: Sequence[FeedTimeline],
              histories: Mapping[str, History], digests: dict[str, str],
              current: Mapping[str, Story]) -> Iterator[FeedPlan | KeptFiles]:
    """Every archive document, newest month first, loading one month's stories at a time
    (only those of archives that changed)."""
    by_month: dict[str, list[tuple[FeedTimeline, ArchivePage]]] = defaultdict(list)
    for feed in timelines:
        for page in histories[feed.name].archives:
            by_month[page.month].append((feed, page))
    for month in sorted(by_month, reverse=True):
        pages = []
        for feed, page in by_month[month]:
            digests[page.stem] = digest = context.digest(
                feed, page.stem, page.prev_archive, page.next_archive, page.story_ids)
            files = archive_files(page.stem, feed.kind)
            if context.kept(files, page.stem, digest):
                yield KeptFiles(files)
            else:
                pages.append((feed, page))
        wanted = list(dict.fromkeys(i for _, p in pages for i in p.story_ids
                                    if i not in current))
        loaded = _load(context.store, wanted)
        loaded.update((i, current[i]) for _, p in pages for i in p.story_ids if i in current)
        for feed, page in pages:
            links = HistoryLinks(archive=True, current=feed.name, prev_archive=page.prev_archive,
                                 next_archive=page.next_archive, month=month)
            yield _plan(feed, page.stem, [loaded[i] for i in page.story_ids], links,
                        context.pages, f" (archive of {month_name(month)})")
