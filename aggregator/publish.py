"""Render stories as feeds and a page, and write the files that changed.

Combined, per agency, per topic and per country: Atom 1.0 and RSS 2.0 (feedgen), JSON Feed
1.1 (all but the country feeds), their RFC 5005 monthly archives (Atom and RSS, and a page
per month of the combined stories), OPML of every feed, grouped, and index.html. Rendering
is pure (stories in, bytes out) and reads no clock: feed-level dates come from the newest
entry, so an unchanged run produces byte-identical files, which `fileio.write_many_if_changed`
then leaves untouched.
"""

from __future__ import annotations

import hashlib
import uuid
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from html import escape
from pathlib import Path
from typing import Any, Literal

from aggregator import entries
from aggregator.config import Config
from aggregator.errors import PublishError
from aggregator.fileio import write_many_if_changed
from aggregator.history import ARCHIVE_DIR, month_name
from aggregator.manifest import write_manifest
from aggregator.markup import encode_html_urls, paragraphs_html, xml_safe
from aggregator.model import StoredItem, Story, date_span
from aggregator.urls import encode_url

GENERATOR = ("newswire", "0.1.0", "https://github.com/newswire-aggregator/newswire")
COMBINED = "combined"
NO_STORIES_DATE = datetime(2024, 1, 1, tzinfo=UTC)
"""Feed date of a feed with no entries: fixed, so an empty feed is stable too."""

_ATOM_NS = "http://www.w3.org/2005/Atom"
MEDIA_TYPES = {
    "atom": "application/atom+xml",
    "rss": "application/rss+xml",
    "json": "application/feed+json",
}
FEED_HISTORY_NS = "http://purl.org/syndication/history/1.0"
ATOM_NS = "http://www.w3.org/2005/Atom"

FeedKind = Literal["combined", "agency", "topic", "country"]
FORMATS: dict[FeedKind, tuple[str, ...]] = {
    "combined": ("atom", "rss", "json"),
    "agency": ("atom", "rss", "json"),
    "topic": ("atom", "rss", "json"),
    "country": ("atom", "rss"),
}
"""The formats each kind of subscription document is published in; archives: Atom, RSS."""


@dataclass(frozen=True, slots=True)
class Agency:
    """What publishing needs to know of an agency."""

    slug: str
    name: str
    homepage: str | None = None


@dataclass(frozen=True, slots=True)
class Site:
    """Site-wide settings of one publication."""

    title: str
    base_url: str
    agencies: Mapping[str, Agency]
    hubs: tuple[str, ...] = ()
    """WebSub hubs every feed advertises (`rel="hub"`), with its own URL as `rel="self"`."""

    def url(self, name: str) -> str:
        """Absolute URL of a published file."""
        return encode_url(self.base_url + name)

    def agency(self, slug: str) -> Agency:
        """The agency for a slug (a bare one for slugs the config does not know)."""
        return self.agencies.get(slug) or Agency(slug, slug)


@dataclass(frozen=True, slots=True)
class HistoryLinks:
    """RFC 5005 links of a document, as file stems (`archive/combined-2024-11`)."""

    archive: bool = False
    """The document is an archive (`fh:archive`), not a subscription document."""
    current: str | None = None
    prev_archive: str | None = None
    next_archive: str | None = None
    month: str | None = None
    """An archive's month, `YYYY-MM`."""

    def links(self) -> list[tuple[str, str]]:
        """(rel, stem) of every link to write."""
        pairs = (("current", self.current), ("prev-archive", self.prev_archive),
                 ("next-archive", self.next_archive))
        return [(rel, stem) for rel, stem in pairs if stem is not None]


@dataclass(frozen=True, slots=True)
class FeedPlan:
    """One document to publish: a subscription document (combined, an agency's, a topic's,
    a country's) or one month's archive of one."""

    name: str
    """The file stem: `combined`, `nato`, `topic-cybercrime`, `archive/combined-2024-11`."""
    title: str
    stories: Sequence[Story]
    agency: Agency | None = None
    listed: bool = True
    """False for the feed of an agency with nothing left (its sources were removed): still
    published, empty and valid, for its subscribers, but no longer in the OPML or the page."""
    kind: FeedKind = "combined"
    history: HistoryLinks = field(default_factory=HistoryLinks)
    label: str | None = None
    """A short name for lists (the page, OPML): `Cybercrime`, `Ukraine`."""
    description: str | None = None
    """The feed's subtitle, for topics and countries."""
    pages: Mapping[str, str] = field(default_factory=dict)
    """Story id -> the stem of the page showing the story, for stories no longer on
    index.html (`archive/combined-2024-11`): where an entry without a source link links."""

    @property
    def formats(self) -> tuple[str, ...]:
        """The formats this document is published in."""
        return ("atom", "rss") if self.history.archive else FORMATS[self.kind]

    @property
    def files(self) -> tuple[str, ...]:
        """The feed files of this document, one per format."""
        return tuple(f"{self.name}.{fmt}" for fmt in self.formats)


_WRITE_BATCH = 64
_WRITE_BATCH_BYTES = 32_000_000
"""Archive files are rendered up to this many (or bytes) before they are written together:
syncing them together is much cheaper, and the bound keeps memory flat."""


@dataclass(frozen=True, slots=True)
class KeptFiles:
    """Files whose inputs did not change since they were written: neither rendered nor
    written again, but still part of the publication."""

    files: tuple[str, ...]


def archive_files(name: str, kind: FeedKind) -> tuple[str, ...]:
    """The files of one archive: Atom, RSS, and for the combined feed the month's page."""
    extensions = ("atom", "rss", "html") if kind == "combined" else ("atom", "rss")
    return tuple(f"{name}.{ext}" for ext in extensions)


@dataclass(frozen=True, slots=True)
class PublishResult:
    """Files written and left alone by one publish."""

    files: tuple[str, ...]
    """Every file the publish consists of."""
    written: tuple[str, ...]
    unchanged: int


def publish(feeds: Sequence[FeedPlan], site: Site, out_dir: Path,
            archives: Iterable[FeedPlan | KeptFiles] = (),
            unchanged: frozenset[str] = frozenset()) -> PublishResult:
    """Render every file and write those whose bytes changed.

    `archives` may be a lazy iterable: each archive is rendered and written before the next
    is asked for, so a long history never sits in memory whole; `KeptFiles` among them are
    archives known to be unchanged, as are the feeds named in `unchanged`. The result names
    every file of the publication, written or left as it was (paths relative to `out_dir`).
    """
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PublishError(f"{out_dir}: cannot create the output directory: "
                           f"{exc.strerror}") from None
    names: list[str] = []
    written: list[str] = []
    batch: dict[str, bytes] = {}

    def write(files: Mapping[str, bytes], *, flush: bool = False) -> None:
        # Documents are written together, a batch at a time: syncing them together is
        # much cheaper, and the bound keeps memory flat however many there are.
        batch.update(files)
        if not flush and len(batch) < _WRITE_BATCH and sum(map(len, batch.values())) < \
                _WRITE_BATCH_BYTES:
            return
        names.extend(batch)
        changed = write_many_if_changed({out_dir / name: data for name, data in batch.items()})
        written.extend(path.relative_to(out_dir).as_posix() for path in changed)
        batch.clear()

    cache = EntryCache(site)
    for feed in feeds:
        if feed.name not in unchanged:
            write(render_document(feed, site, cache))
    write(render_pages(feeds, site, cache), flush=True)
    cache.subscriptions_done()
    names.extend(name for feed in feeds if feed.name in unchanged for name in feed.files)
    month = None
    for archive in archives:
        if isinstance(archive, KeptFiles):
            names.extend(archive.files)
            continue
        # Archives come a month at a time: a story's entries are reused within its month.
        if archive.history.month != month:
            month = archive.history.month
            cache.next_month()
        try:
            (out_dir / ARCHIVE_DIR).mkdir(exist_ok=True)
        except OSError as exc:
            raise PublishError(f"{out_dir / ARCHIVE_DIR}: cannot create: "
                               f"{exc.strerror}") from None
        write(render_archive(archive, feeds, site, cache))
    write({}, flush=True)
    # The manifest lists what the server may serve: every file of this publication.
    write_manifest(out_dir, names)
    return PublishResult(
        files=tuple(names), written=tuple(written), unchanged=len(names) - len(written)
    )


def render_all(feeds: Sequence[FeedPlan], site: Site,
               unchanged: frozenset[str] = frozenset(),
               cache: EntryCache | None = None) -> dict[str, bytes]:
    """Every subscription document's (but the `unchanged` ones'), the OPML's and the page's
    name and bytes (pure)."""
    cache = cache or EntryCache(site)
    files: dict[str, bytes] = {}
    for feed in feeds:
        if feed.name not in unchanged:
            files.update(render_document(feed, site, cache))
    files.update(render_pages(feeds, site, cache))
    return files


def render_document(feed: FeedPlan, site: Site,
                    cache: EntryCache | None = None) -> dict[str, bytes]:
    """A subscription document's files, by name: Atom, RSS and (but for countries) JSON."""
    rendered = (cache or EntryCache(site)).entries(feed)
    files: dict[str, bytes] = {}
    files[f"{feed.name}.atom"], files[f"{feed.name}.rss"] = _atom_and_rss(feed, site, rendered)
    if "json" in feed.formats:
        files[f"{feed.name}.json"] = _json_document(feed, site, rendered)
    return files


def render_pages(feeds: Sequence[FeedPlan], site: Site,
                 cache: EntryCache | None = None) -> dict[str, bytes]:
    """The OPML's and the page's name and bytes."""
    combined = next((f for f in feeds if f.kind == "combined"), None)
    return {
        "feeds.opml": render_opml(feeds, site),
        "index.html": render_index(
            combined.stories if combined else (), feeds, site,
            older=combined.history.prev_archive if combined else None, cache=cache,
        ),
    }


def render_archive(archive: FeedPlan, feeds: Sequence[FeedPlan], site: Site,
                   cache: EntryCache | None = None) -> dict[str, bytes]:
    """One month's archive documents (pure): Atom, RSS and, for the combined feed, a page."""
    atom, rss, *page = archive_files(archive.name, archive.kind)
    files: dict[str, bytes] = {}
    files[atom], files[rss] = render_atom_and_rss(archive, site, cache)
    if page:
        files[page[0]] = render_index(
            archive.stories, feeds, site, older=archive.history.prev_archive,
            newer=archive.history.next_archive or "index", month=archive.history.month,
            pages=archive.pages, cache=cache,
        )
    return files


def publish_stamp(generation: int, config: Config) -> str:
    """What a publish depends on: the store's generation, the settings that shape the output
    and the rendering code. A run whose stamp is the last publish's skips publishing (the
    pipeline and the unchanged-rerun check both ask this one function)."""
    from aggregator.manifest import PUBLISH_SETTINGS

    settings = config.fingerprint(*PUBLISH_SETTINGS)
    return f"{generation}:{settings}:{renderer_fingerprint()}"


_RENDERING_MODULES = ("publish.py", "entries.py", "catalog.py", "history.py", "markup.py",
                      "urls.py")
"""The modules whose code decides how published files look."""


@cache
def renderer_fingerprint() -> str:
    """A digest of the code and templates that render the output: an upgrade that changes
    how files look republishes them even when no story changed."""
    from importlib import resources

    digest = hashlib.blake2b(digest_size=8)
    package = Path(__file__).parent
    for module in _RENDERING_MODULES:
        digest.update(module.encode() + (package / module).read_bytes())
    templates = resources.files("aggregator") / "templates"
    for entry in sorted(templates.iterdir(), key=lambda e: e.name):
        if entry.is_file():
            digest.update(entry.name.encode() + entry.read_bytes())
    return digest.hexdigest()


def site_from_config(config: Config, labels: Mapping[str, str]) -> Site:
    """The Site for a config, naming unconfigured agencies by the label their sources used."""
    agencies = {slug: Agency(slug, label or slug) for slug, label in labels.items()}
    for slug, agency in config.agencies.items():
        agencies[slug] = Agency(slug, agency.name, agency.homepage)
    return Site(title=config.output.title, base_url=config.output.base_url, agencies=agencies,
                hubs=config.websub.advertised)


# -- entries ------------------------------------------------------------------------------


def entry_id(story: Story, feed: FeedPlan) -> str:
    """The entry's GUID: the story's in the combined feed, a derived one per agency."""
    if feed.agency is None:
        return f"urn:uuid:{story.story_id}"
    return agency_entry_id(story, feed.agency.slug)


def agency_entry_id(story: Story, agency: str) -> str:
    """The GUID of the story's entry in an agency's feed: the UUID version 5 of the agency's
    slug in the story's id (RFC 4122, 4.3; made here as `uuid.uuid5` does, without its two
    intermediate objects: agency feeds hold thousands of entries)."""
    digest = bytearray(hashlib.sha1(uuid.UUID(story.story_id).bytes + agency.encode(),
                                    usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC 4122 variant
    h = digest.hex()
    return f"urn:uuid:{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def story_anchor(story: Story) -> str:
    """The story's anchor in index.html."""
    return f"story-{story.story_id}"


def story_link(story: Story, site: Site, page: str = "index") -> str:
    """The source's link (the canonical item's, else another member's), else the story on
    the page (`page`: the stem of the page that shows it)."""
    for member in story.members:
        if member.link and member.agency == story.canonical.agency:
            return encode_url(member.link)
    for member in story.members:
        if member.link:
            return encode_url(member.link)
    return site.url(f"{page}.html#{story_anchor(story)}")


def story_html(story: Story, site: Site) -> str:
    """The entry's content: the canonical text, then every other report of the story."""
    return _story_html(story, site, _paragraphs_html(story))


def _story_html(story: Story, site: Site, paragraphs: Sequence[str]) -> str:
    canonical = story.canonical
    if canonical.html:
        parts = list(paragraphs)  # the stored HTML, its URLs encoded (`_paragraphs_html`)
    else:
        parts = [xml_safe(encode_html_urls("".join(paragraphs)))]
    source_link = (next((encode_url(m.link) for m in story.members if m.link), None)
                   if canonical.truncated else None)
    if source_link:
        parts.append(f'<p><a href="{_attr(source_link)}">Read the full text at the source.</a></p>')
    others = story.members[1:]
    if others:
        items = "".join(_member_li(m, site) for m in others)
        parts.append(f"<p>Also reported:</p><ul>{items}</ul>")
    return "".join(parts)


def _member_li(member: StoredItem, site: Site) -> str:
    name = _text(site.agency(member.agency).name)
    title = _text(member.title)
    when = _human_date(member.date)
    if member.link:
        return f'<li>{name}: <a href="{_attr(encode_url(member.link))}">{title}</a> ({when})</li>'
    return f"<li>{name}: {title} ({when})</li>"


def _text(value: str) -> str:
    return escape(xml_safe(value), quote=False)


def _attr(value: str) -> str:
    return escape(xml_safe(value), quote=True)


def _human_date(moment: datetime) -> str:
    return f"{moment.day} {_month_and_year(moment.year, moment.month)}"


@cache
def _month_and_year(year: int, month: int) -> str:
    return f"{datetime(year, month, 1):%B %Y}"


def _feed_updated(stories: Sequence[Story]) -> datetime:
    return max((s.updated for s in stories), default=NO_STORIES_DATE)


# -- Atom and RSS -------------------------------------------------------------------------


@cache
def _feedgen() -> Any:
    # feedgen (and lxml under it) is imported only when something is rendered.
    from feedgen.feed import FeedGenerator

    return FeedGenerator


def _generator(feed: FeedPlan, site: Site, updated: datetime) -> Any:
    """feedgen's generator of the document's feed-level part (its entries are spliced in)."""
    fg = _feedgen()()
    fg.load_extension("dc", atom=False, rss=True)
    if _hubs(feed, site):
        fg.register_extension("websub", _websub_extension(), atom=False, rss=True)
        fg.websub.hubs = _hubs(feed, site)
    if feed.history.archive or extra_links(feed, site, "atom"):
        fg.register_extension("fh", _feed_history_extension(), None, atom=True, rss=True)
        fg.fh.set_feed(feed, site)
    fg.id(site.url(f"{feed.name}.atom"))
    fg.title(xml_safe(feed.title))
    fg.subtitle(_subtitle(feed, site))
    fg.language("en")
    fg.generator(*GENERATOR)
    _links(fg, feed, site, "atom")
    fg.author(name=xml_safe(feed.agency.name if feed.agency else site.title))
    fg.updated(updated)
    fg.lastBuildDate(updated)
    fg.pubDate(updated)
    return fg


def _hubs(feed: FeedPlan, site: Site) -> tuple[str, ...]:
    """The WebSub hubs a document advertises: an archive is no subscription topic."""
    return () if feed.history.archive else tuple(site.hubs)


def _links(fg: Any, feed: FeedPlan, site: Site, fmt: str) -> None:
    """The feed's self link (to this format's file), its alternate (the page) and its
    WebSub hubs (Atom; RSS gets them from the `websub` extension)."""
    fg.link(href=site.url(f"{feed.name}.{fmt}"), rel="self", type=MEDIA_TYPES[fmt],
            replace=True)
    for hub in _hubs(feed, site):
        fg.link(href=hub, rel="hub")
    # Last: feedgen takes the last link as the RSS channel's <link>.
    fg.link(href=site.url("index.html"), rel="alternate", type="text/html")


def extra_links(feed: FeedPlan, site: Site, fmt: str) -> list[tuple[str, str, str | None]]:
    """Feed-level links beyond self and alternate, as (rel, href, media type): RFC 5005's
    `current`, `prev-archive` and `next-archive`. Written into Atom and, as atom:link, into
    RSS (where feedgen itself writes only the self link): the place for any other rel."""
    return [(rel, site.url(f"{stem}.{fmt}"), MEDIA_TYPES[fmt])
            for rel, stem in feed.history.links()]


@cache
def _websub_extension() -> type:
    """A feedgen extension that puts `<atom:link rel="hub">` after an RSS channel's self
    link: feedgen itself writes only the self link of the Atom links into RSS."""
    from feedgen.ext.base import BaseExtension

    class WebSubExtension(BaseExtension):  # type: ignore[misc]
        hubs: tuple[str, ...] = ()

        def extend_rss(self, rss_feed: Any) -> Any:
            channel = rss_feed.find("channel")
            anchor = channel.find(f"{{{_ATOM_NS}}}link[@rel='self']")
            for hub in reversed(self.hubs):
                link = channel.makeelement(f"{{{_ATOM_NS}}}link", href=hub, rel="hub")
                if anchor is not None:
                    anchor.addnext(link)
                else:
                    channel.insert(0, link)
            return rss_feed

    return WebSubExtension


def _feed_history_extension() -> type:
    """A feedgen extension writing RFC 5005 markup, `fh:archive`, and `extra_links`."""
    from lxml import etree  # type: ignore[import-untyped]

    class FeedHistoryExtension:
        def __init__(self) -> None:
            self._feed: FeedPlan | None = None
            self._site: Site | None = None

        def set_feed(self, feed: FeedPlan, site: Site) -> None:
            self._feed, self._site = feed, site

        def extend_ns(self) -> dict[str, str]:
            return {"fh": FEED_HISTORY_NS}

        def _add(self, parent: Any, fmt: str) -> None:
            assert self._feed is not None and self._site is not None
            if self._feed.history.archive:
                etree.SubElement(parent, f"{{{FEED_HISTORY_NS}}}archive")
            # feedgen writes Atom's own elements unqualified (under a plain xmlns attribute).
            tag = "link" if fmt == "atom" else f"{{{ATOM_NS}}}link"
            for rel, href, media_type in extra_links(self._feed, self._site, fmt):
                link = etree.SubElement(parent, tag, rel=rel, href=href)
                if media_type:
                    link.set("type", media_type)

        def extend_atom(self, feed: Any) -> Any:
            self._add(feed, "atom")
            return feed

        def extend_rss(self, feed: Any) -> Any:
            self._add(feed[0], "rss")
            return feed

    return FeedHistoryExtension


def _subtitle(feed: FeedPlan, site: Site) -> str:
    if feed.description is not None:
        return xml_safe(feed.description)
    if feed.agency is None:
        return "The news of every agency, one entry per story, duplicates merged."
    return xml_safe(f"The news of {feed.agency.name}, one entry per story.")


class EntryCache:
    """Each story's rendered entry, made once and reused by every document that shows the
    story: the combined feed or its archive, an agency's (which differs in its id alone),
    topics, countries, the page. An entry is keyed by its story and by the page its link
    falls back to. Entries of the subscription documents are kept throughout (as many as
    those documents hold); an archive month's are dropped when the next month starts, so
    memory stays bounded however long the history."""

    def __init__(self, site: Site) -> None:
        self._site = site
        self._kept: dict[tuple[str, str], _Rendered] = {}
        self._month: dict[tuple[str, str], _Rendered] = {}
        self._filling = self._kept
        self._agencies: dict[str, _AgencyParts] = {}
        self._badges: dict[str, str] = {}

    def subscriptions_done(self) -> None:
        """Drop what only the subscription documents show (JSON Feed items: no archive is
        written in JSON Feed): the entries kept for archives stay lighter."""
        for rendered in self._kept.values():
            rendered.drop_json()

    def next_month(self) -> None:
        """Drop the last month's entries; entries made from now on are dropped next time."""
        self._month.clear()
        self._filling = self._month

    def entries(self, feed: FeedPlan) -> list[_Rendered]:
        """The entries of the feed's stories, in order."""
        agency = feed.agency.slug if feed.agency is not None else None
        return [self.entry(story, feed.pages.get(story.story_id, "index"), agency)
                for story in feed.stories]

    def entry(self, story: Story, page: str, agency: str | None = None) -> _Rendered:
        """The story's entry, linking to `page` when it has no link of its own; with
        `agency`, as that agency's feed shows it."""
        key = (story.story_id, page)
        found = self._kept.get(key) or self._month.get(key)
        if found is None or (found.story is not story and found.story != story):
            fresh = _Rendered.of(story, self._site, page, self._agencies)
            # An agency's restricted view of a story others reported too stays out: the
            # whole story is what the other documents show.
            if found is None or agency is None:
                self._filling[key] = fresh
            found = fresh
        if agency is None:
            return found
        return _Rendered(story, found.entry, found.paragraphs, found.agencies, found,
                         agency_entry_id(story, agency))

    def badge(self, slug: str) -> str:
        """An agency's badge on a page."""
        found = self._badges.get(slug)
        if found is None:
            found = self._badges[slug] = (
                f'<span class="agency" style="--hue: {_hue(slug)}">'
                f"{_html(self._site.agency(slug).name)}</span>")
        return found


@dataclass(frozen=True, slots=True)
class _AgencyParts:
    """What an entry shows of an agency, as written."""

    name: str
    author: tuple[str, str | None]
    category: tuple[str, str]

    @classmethod
    def of(cls, agency: Agency) -> _AgencyParts:
        return cls(agency.name,
                   (xml_safe(agency.name), encode_url(agency.homepage) if agency.homepage
                    else None),
                   (agency.slug, xml_safe(agency.name)))


class _Rendered:
    """An entry, the page's paragraphs of its text, and its Atom, RSS and JSON Feed text
    once written (encoded, in `entries.EntryParts`). An agency's entry is the story's with
    another id: its text is the story's entry's with the id swapped (the content, escaped,
    cannot hold the id's markup)."""

    __slots__ = ("_atom", "_json", "_rss", "agencies", "base", "entry", "guid", "paragraphs",
                 "story")

    def __init__(self, story: Story, entry: entries.Entry, paragraphs: list[str],
                 agencies: tuple[str, ...], base: _Rendered | None = None,
                 guid: str | None = None) -> None:
        self.story = story
        self.entry = entry
        self.paragraphs = paragraphs
        self.agencies = agencies
        """The story's agencies (`Story.agencies`), worked out once."""
        self.base = base
        self.guid = entry.guid if guid is None else guid
        """The entry's id: the story's, or for `base`'s entry in an agency's feed, that
        feed's."""
        self._atom: entries.EntryParts | None = None
        self._rss: entries.EntryParts | None = None
        self._json: entries.EntryParts | None = None

    @classmethod
    def of(cls, story: Story, site: Site, page: str,
           agencies: dict[str, _AgencyParts]) -> _Rendered:
        """Render the story's entry; `agencies` memoizes each agency's parts."""
        parts = []
        # Most stories are one report: their one agency needs no `Story.agencies`.
        members = story.members
        slugs = (members[0].agency,) if len(members) == 1 else story.agencies
        for slug in slugs:
            found = agencies.get(slug)
            if found is None:
                found = agencies[slug] = _AgencyParts.of(site.agency(slug))
            parts.append(found)
        published, updated = date_span(story.members)
        paragraphs = _paragraphs_html(story)
        return cls(story, entries.Entry(
            guid=f"urn:uuid:{story.story_id}",
            title=xml_safe(story.canonical.title),
            link=story_link(story, site, page),
            published=published,
            updated=updated,
            content_html=_story_html(story, site, paragraphs),
            authors=[p.author for p in parts],
            categories=[p.category for p in parts],
            creator=xml_safe(", ".join(p.name for p in parts)),
        ), paragraphs, slugs)

    def atom(self) -> entries.EntryParts:
        if self._atom is None:
            if self.base is None:
                self._atom = entries.atom_parts(entries.atom_entry(self.entry), self.entry.guid)
            else:
                self._atom = entries.with_id(self.base.atom(), entries.xml_text(self.guid))
        return self._atom

    def rss(self) -> entries.EntryParts:
        if self._rss is None:
            if self.base is None:
                self._rss = entries.rss_parts(entries.rss_item(self.entry), self.entry.guid)
            else:
                self._rss = entries.with_id(self.base.rss(), entries.xml_text(self.guid))
        return self._rss

    def drop_json(self) -> None:
        self._json = None

    def json(self, site: Site) -> entries.EntryParts:
        if self._json is None:
            if self.base is None:
                self._json = entries.json_parts(
                    _json_item(self.story, self.entry, site, self.agencies), self.entry.guid)
            else:
                self._json = entries.with_id(self.base.json(site), entries.json_id(self.guid))
        return self._json


def render_atom_and_rss(feed: FeedPlan, site: Site,
                        cache: EntryCache | None = None) -> tuple[bytes, bytes]:
    """The feed's stories as an Atom 1.0 and an RSS 2.0 document."""
    return _atom_and_rss(feed, site, (cache or EntryCache(site)).entries(feed))


def _atom_and_rss(feed: FeedPlan, site: Site,
                  rendered: Sequence[_Rendered]) -> tuple[bytes, bytes]:
    # feedgen writes the feed-level part; each entry is spliced in as `entries` wrote it.
    updated = max((r.entry.updated for r in rendered), default=NO_STORIES_DATE)
    fg = _generator(feed, site, updated)
    head: bytes = fg.atom_str(pretty=True)
    atom = entries.splice(head, b"</feed>", (r.atom() for r in rendered))
    _links(fg, feed, site, "rss")
    head = fg.rss_str(pretty=True)
    rss = entries.splice(head, b"  </channel>", (r.rss() for r in rendered))
    return atom, rss


# -- JSON Feed ----------------------------------------------------------------------------


def render_json(feed: FeedPlan, site: Site, cache: EntryCache | None = None) -> bytes:
    """A JSON Feed 1.1 document; each item carries the `_aggregator` extension."""
    return _json_document(feed, site, (cache or EntryCache(site)).entries(feed))


def _json_document(feed: FeedPlan, site: Site, rendered: Sequence[_Rendered]) -> bytes:
    document: dict[str, Any] = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": feed.title,
        "home_page_url": site.url("index.html"),
        "feed_url": site.url(f"{feed.name}.json"),
        "description": _subtitle(feed, site),
        "language": "en",
        "authors": [{"name": site.title}],
        "items": [],
    }
    if site.hubs:
        document["hubs"] = [{"type": "WebSub", "url": hub} for hub in site.hubs]
    return entries.json_document(document, [r.json(site) for r in rendered])


def _json_item(story: Story, entry: entries.Entry, site: Site, slugs: Sequence[str]) -> str:
    """The story's JSON Feed item, with the `_aggregator` extension (`slugs`: its
    agencies)."""
    agencies = [site.agency(slug) for slug in slugs]
    return entries.json_item(
        entry,
        authors=[(a.name, encode_url(a.homepage) if a.homepage else None) for a in agencies],
        tags=[a.name for a in agencies],
        agencies=slugs,
        date_source=story.canonical.date_origin,
        members=[
            entries.JsonMember(
                agency=member.agency,
                title=xml_safe(member.title),
                guid=member.guid or f"urn:newswire:item:{member.item_id}",
                url=encode_url(member.link) if member.link else None,
                date=member.date.isoformat(),
                date_source=member.date_origin,
            )
            for member in story.members
        ],
    )


# -- OPML ---------------------------------------------------------------------------------


_GROUPS: tuple[tuple[FeedKind, str], ...] = (
    ("agency", "Agencies"), ("topic", "Topics"), ("country", "Countries"),
)
"""OPML outline groups, in order; the combined feed stands first, outside them."""


def render_opml(feeds: Sequence[FeedPlan], site: Site) -> bytes:
    """OPML 2.0 listing every published Atom feed, grouped: agencies, topics, countries."""
    opml = ET.Element("opml", version="2.0")
    head = ET.SubElement(opml, "head")
    ET.SubElement(head, "title").text = xml_safe(site.title)
    body = ET.SubElement(opml, "body")
    for feed in feeds:
        if feed.kind == "combined" and feed.listed:
            _opml_outline(body, feed, site)
    for kind, heading in _GROUPS:
        members = [feed for feed in feeds if feed.kind == kind and feed.listed]
        if not members:
            continue
        group = ET.SubElement(body, "outline", text=heading, title=heading)
        for feed in members:
            _opml_outline(group, feed, site)
    ET.indent(opml)
    document: bytes = ET.tostring(opml, encoding="UTF-8", xml_declaration=True)
    return document + b"\n"


def _opml_outline(parent: ET.Element, feed: FeedPlan, site: Site) -> None:
    ET.SubElement(
        parent,
        "outline",
        type="rss",
        text=xml_safe(feed.title),
        title=xml_safe(feed.title),
        xmlUrl=site.url(f"{feed.name}.atom"),
        htmlUrl=(encode_url(feed.agency.homepage) if feed.agency and feed.agency.homepage
                 else site.url("index.html")),
    )


# -- index.html ---------------------------------------------------------------------------


@cache
def _template() -> Any:
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("aggregator", "templates"),
        autoescape=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    return environment.get_template("index.html.j2")


_LEAD_CHARS = 200
"""The lead shown before "Full text" runs to the paragraph that reaches this many characters:
enough to judge a story, short enough to skim, and never a dateline alone."""
_FORMAT_NAMES = {"atom": "Atom", "rss": "RSS", "json": "JSON Feed"}


_PAGE_GROUPS: tuple[tuple[tuple[FeedKind, ...], str], ...] = (
    (("combined", "agency"), "Agencies"), (("topic",), "Topics"), (("country",), "Countries"),
)


def render_index(
    stories: Sequence[Story], feeds: Sequence[FeedPlan], site: Site, *,
    older: str | None = None, newer: str | None = None, month: str | None = None,
    pages: Mapping[str, str] | None = None, cache: EntryCache | None = None,
) -> bytes:
    """The readable page of the combined stories, with feed autodiscovery links; with
    `month`, that month's archive page. `older` and `newer` are the stems of the pages
    before and after it (`index` for the front page)."""
    pages = pages or {}
    groups = []
    for kinds, heading in _PAGE_GROUPS:
        # The combined feed first, then each group by the name a reader looks for.
        members = sorted((f for f in feeds if f.kind in kinds and f.listed),
                         key=lambda f: (f.kind != "combined", _feed_label(f).casefold()))
        if members:
            groups.append({"heading": heading, "feeds": [_subscription(f, site)
                                                         for f in members]})
    from markupsafe import Markup

    cache = cache or EntryCache(site)
    articles = [_article(cache.entry(story, pages.get(story.story_id, "index")), site, cache)
                for story in stories]
    updated = _feed_updated(stories)
    title_month = month_name(month) if month else None
    page = _template().render(
        title=site.title,
        description="News of security and justice agencies, one entry per story.",
        home=site.url("index.html"),
        opml=site.url("feeds.opml"),
        groups=groups,
        subscriptions=[feed for group in groups for feed in group["feeds"]],
        month=title_month,
        older=site.url(f"{older}.html") if older else None,
        older_name=month_name(older[-7:]) if older else None,
        newer=site.url(f"{newer}.html") if newer else None,
        newer_name=(month_name(newer[-7:]) if newer and newer != "index"
                    else "the newest stories"),
        stories=articles,
        # Joined here: a page holds thousands, and the template's loop costs many times more.
        articles=Markup("\n".join(articles)),
        updated=_human_date(updated),
        updated_datetime=updated.isoformat(),
    )
    return str(page).encode()


def _feed_label(feed: FeedPlan) -> str:
    if feed.label:
        return feed.label
    if feed.agency:
        return feed.agency.name
    return "All agencies"


def _subscription(feed: FeedPlan, site: Site) -> dict[str, Any]:
    return {
        "label": _feed_label(feed),
        "links": [
            {
                "name": _FORMAT_NAMES[fmt],
                "media_type": MEDIA_TYPES[fmt],
                "title": f"{feed.title} ({_FORMAT_NAMES[fmt]})",
                "url": site.url(f"{feed.name}.{fmt}"),
            }
            for fmt in feed.formats
        ],
    }


def _lead_size(paragraphs: Sequence[str]) -> int:
    total = 0
    for count, paragraph in enumerate(paragraphs, start=1):
        total += len(paragraph)
        if total >= _LEAD_CHARS:
            return count
    return len(paragraphs)


_UNDATED = (' <span class="undated" title="The source gives no date: this is when newswire '
            'first saw the story.">(first seen)</span>')


def _article(rendered: _Rendered, site: Site, cache: EntryCache) -> str:
    """A story's `<article>` on a page (written here rather than in the template: a page
    holds thousands, and the template's loop costs many times more)."""
    story = rendered.story
    canonical = story.canonical
    paragraphs = rendered.paragraphs
    lead = _lead_size(paragraphs)
    published = rendered.entry.published
    badges = "".join(cache.badge(slug) for slug in rendered.agencies)
    undated = _UNDATED if canonical.date_origin == "first_seen" else ""
    parts = [
        f'<article id="{_html(story_anchor(story))}">\n<p class="meta">{badges}\n<span><time '
        f'datetime="{_html(published.isoformat())}">{_html(_human_date(published))}</time>'
        f'{undated}</span></p>\n<h2 class="story"><a href="'
        f'{_html(rendered.entry.link)}">{_html(canonical.title)}</a></h2>\n'
        f'<div class="text">{"".join(paragraphs[:lead])}</div>\n',
    ]
    rest = "".join(paragraphs[lead:])
    if rest:
        parts.append(f'<details><summary>Full text</summary><div class="text">{rest}</div>'
                     "</details>\n")
    if len(story.members) > 1:
        parts.append('<div class="members">\n<p>Also reported</p>\n<ul>\n')
        for member in story.members[1:]:
            url = encode_url(member.link) if member.link else None
            title = _html(member.title)
            shown = f'<a href="{_html(url)}">{title}</a>' if url else title
            parts.append(f"<li>{_html(site.agency(member.agency).name)}: {shown} "
                         f"({_html(_human_date(member.date))})</li>\n")
        parts.append("</ul>\n</div>\n")
    parts.append("</article>")
    return "".join(parts)


def _html(text: str) -> str:
    """`text` escaped as `markupsafe.escape` escapes it, for the page (without its wrapper's
    cost: a page escapes a dozen texts per story)."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    if "'" in text:
        text = text.replace("'", "&#39;")
    if '"' in text:
        text = text.replace('"', "&#34;")
    return text


def _hue(slug: str) -> int:
    # A hue per agency, the same on every page and run, so a reader learns to spot them.
    return zlib.crc32(slug.encode()) % 360


def _paragraphs_html(story: Story) -> list[str]:
    """The canonical text's paragraphs as HTML; stored HTML whole, sanitized when read
    (perhaps by an older version: its URLs are encoded now)."""
    canonical = story.canonical
    if canonical.html:
        return [xml_safe(encode_html_urls(canonical.html))]
    return paragraphs_html(canonical.text)
