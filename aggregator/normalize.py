"""Turn a RawItem into a clean Item (pure: data in, data out, `now` passed in).

Resolves the agency (configured name, alias, or one derived from an unknown name), cleans
whitespace and web-page residue while keeping paragraphs, notices summaries cut with "…",
takes the date the source or the text states, and computes the fingerprints that identity
and dedup compare.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from aggregator.config import AgencyConfig, is_reserved_slug
from aggregator.dates import publication_date
from aggregator.markup import html_to_text, sanitize_html, xml_safe
from aggregator.model import DateSource, Item, RawItem

_SOCIAL = (
    r"facebook|twitter|x|instagram|youtube|linkedin|flickr|tiktok|telegram|whatsapp|"
    r"mastodon|threads|bluesky|rss|email|e-mail|print|vimeo|pinterest|reddit"
)
# A line made only of social-network names (a share bar flattened to text), possibly with
# separators and a leading "Share"/"Follow us on": "FacebookTwitterInstagramYouTube,".
_SHARE_BAR = re.compile(
    rf"^(?:share(?: this)?(?: on)?:?|follow us(?: on)?:?)?[\s,;:|/·•&-]*"
    rf"(?:(?:{_SOCIAL})(?:[\s,;:|/·•&.-]|and)*){{2,}}$",
    re.IGNORECASE,
)
_RESIDUE_LINES = re.compile(
    r"^(?:share (?:this )?(?:article|page|story|post)|print(?: this page)?|back to top|"
    r"skip to (?:main )?content|read more|cookie settings|"
    r"(?:connect|follow|find) (?:with )?.{0,60}on social media:?)\.?$",
    re.IGNORECASE,
)
_SPACE_LIKE = re.compile(r"[\t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]")
_INVISIBLE = re.compile(r"[\u00ad\u200b-\u200d\u2060\ufeff]")
_MULTI_SPACE = re.compile(r" {2,}")
# "information.A central hub": a sentence glued to the next when a page was flattened.
_GLUED_SENTENCE = re.compile(r"([.!?])(?<=[a-z]{2}[.!?])(?=[A-Z])")
"""Matches the full stop, so that a scan skips to punctuation (a pattern that opens with a
character class is searched for that class first): the space goes after it."""
_LEADING_PUNCTUATION = re.compile(r"^[,;:]\s+")
# Anything but letters, digits and combining marks (punctuation, symbols, "_").
_NOT_WORD = re.compile(r"[^\w\u0300-\u036f\u0900-\u0dff]|_")
_ELLIPSIS_ENDINGS = ("…", "...", "[…]", "[...]", "(…)", "(...)")
_TITLE_LIMIT = 90


@dataclass(frozen=True, slots=True)
class AgencyDirectory:
    """Resolves the agency names sources use to configured agencies."""

    agencies: Mapping[str, AgencyConfig]
    lookup: Mapping[str, str]

    @classmethod
    def from_config(cls, agencies: Mapping[str, AgencyConfig]) -> AgencyDirectory:
        """Index every agency by slug, name and aliases (case and spacing ignored)."""
        lookup: dict[str, str] = {}
        for agency in agencies.values():
            for spelling in (agency.slug, agency.name, *agency.aliases):
                lookup.setdefault(_name_key(spelling), agency.slug)
        return cls(agencies=agencies, lookup=lookup)

    def resolve(self, label: str) -> tuple[str, bool]:
        """The slug for an agency name and whether it is configured (else derived)."""
        key = _name_key(label)
        if key in self.lookup:
            return self.lookup[key], True
        # "Interpol (news and events)": the name before a parenthesised qualifier.
        bare = _name_key(re.sub(r"\([^)]*\)", " ", label))
        if bare and bare in self.lookup:
            return self.lookup[bare], True
        return derive_slug(label), False

    def name_of(self, slug: str, label: str) -> str:
        """The display name: the configured one, else the label the source used."""
        agency = self.agencies.get(slug)
        return agency.name if agency else (label.strip() or slug)


@dataclass(frozen=True, slots=True)
class NormalizedBatch:
    """A source's items, normalized, with the warnings about them (one per unknown agency)."""

    items: tuple[Item, ...]
    warnings: tuple[str, ...]
    places: tuple[int, ...] = ()
    """Each item's index among the entries given (entries without a title, link or text,
    and kept ones, have no item)."""


def normalize_all(raws: Sequence[RawItem], agencies: AgencyDirectory, now: datetime,
                  kept: Collection[int] = ()) -> NormalizedBatch:
    """Normalize a source's items; an item that cannot be read costs only itself.

    Entries at the indexes `kept` are not normalized (their items are stored already), but
    still count in the warnings about unknown agencies, which name every such entry."""
    items: list[Item] = []
    places: list[int] = []
    warnings: list[str] = []
    unknown: dict[str, tuple[str, str, int]] = {}
    for index, raw in enumerate(raws):
        if index in kept:
            slug, known = agency_of(raw, agencies)
            unknown_label = None if known else raw.agency_label
        else:
            try:
                result = normalize(raw, agencies, now)
            except Exception as exc:  # one odd item must not cost the source its other items
                warnings.append(f"{raw.origin}: item skipped: {exc!r}")
                continue
            warnings.extend(result.warnings)
            if result.item is None:
                continue
            items.append(result.item)
            places.append(index)
            slug, unknown_label = result.item.agency, result.unknown_agency
        if unknown_label is not None:
            origin, first_slug, count = unknown.get(unknown_label, (raw.origin, slug, 0))
            unknown[unknown_label] = (origin, first_slug, count + 1)
    # One warning per unknown agency and source, not one per item.
    warnings.extend(unknown_agency_warning(origin, label, slug, count)
                    for label, (origin, slug, count) in unknown.items())
    return NormalizedBatch(tuple(items), tuple(warnings), tuple(places))


def unknown_agency_warning(origin: str, label: str, slug: str, count: int) -> str:
    """The warning for items naming an agency the config does not know."""
    more = f" (and {count - 1} more items in this source)" if count > 1 else ""
    return (f"{origin}: unknown agency {label!r}{more}; publishing it as {slug!r} "
            "(add it, or an alias, under [agencies] in the config)")


def _name_key(name: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def derive_slug(name: str) -> str:
    """A file-safe slug for an agency nobody configured, stable for the same name."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:48].strip("-")
    if not slug:
        digest = hashlib.blake2b(_name_key(name).encode(), digest_size=4).hexdigest()
        slug = f"agency-{digest}"
    if is_reserved_slug(slug):
        slug = f"agency-{slug}"
    return slug


@dataclass(frozen=True, slots=True)
class Normalized:
    """An Item, or None when the raw item held nothing to publish, plus warnings about it."""

    item: Item | None
    warnings: tuple[str, ...] = ()
    unknown_agency: str | None = None
    """The source's agency name when no configured agency or alias matched it."""


def normalize(raw: RawItem, agencies: AgencyDirectory, now: datetime) -> Normalized:
    """Clean one raw item; warnings name its origin (file:line or URL)."""
    warnings: list[str] = []
    slug, known = agency_of(raw, agencies)
    html: str | None = None
    if raw.content_is_html:
        html = sanitize_html(raw.content, base_url=raw.base_url or raw.link or None)
        text = clean_text(html_to_text(html))
    else:
        text = clean_text(_without_tags(raw.content))
    title = clean_title(_without_tags(raw.title))
    link = raw.link.strip() if raw.link and raw.link.strip() else None
    if not title:
        title = title_from_text(text) or (link or "")
        if not title:
            return Normalized(None, (f"{raw.origin}: item has no title, link or text; skipped",))
        warnings.append(f"{raw.origin}: item has no title; using {title!r}")
    published, date_source = _date(raw, text, now)
    return Normalized(
        Item(
            source_id=raw.source_id,
            origin=raw.origin,
            position=raw.position,
            agency=slug,
            agency_label=raw.agency_label.strip() or "unknown",
            title=title,
            title_key=title_key(title),
            text=text,
            html=html or None,
            truncated=is_truncated(text),
            content_hash=content_hash(text),
            link=link,
            guid=raw.guid.strip() if raw.guid and raw.guid.strip() else None,
            published=published,
            date_source=date_source,
        ),
        tuple(warnings),
        unknown_agency=None if known else raw.agency_label,
    )


def agency_of(raw: RawItem, agencies: AgencyDirectory) -> tuple[str, bool]:
    """The slug of an entry's agency, and whether the config knows it."""
    if not raw.agency_label.strip():
        return derive_slug("unknown"), False
    return agencies.resolve(raw.agency_label)


_TAG = re.compile(r"<\s*/?\s*[a-zA-Z][\w:-]*(?:\s[^<>]*)?/?\s*>|<!--")


def _without_tags(text: str) -> str:
    """Plain text that carries HTML tags is page residue: keep its text, drop the markup
    (and any script or style content), so no tag reaches a feed even as escaped text."""
    return html_to_text(text) if _TAG.search(text) else text


def _date(raw: RawItem, text: str, now: datetime) -> tuple[datetime | None, DateSource | None]:
    if raw.published is not None:
        return raw.published, "source"
    stated = publication_date(text, now)
    if stated is not None:
        return stated, "text"
    return None, None


def clean_text(text: str) -> str:
    """Normalized plain text: residue lines dropped, spaces tidied, paragraphs kept."""
    text = _INVISIBLE.sub("", xml_safe(unicodedata.normalize("NFC", text)))
    text = _SPACE_LIKE.sub(" ", text.replace("\r\n", "\n").replace("\r", "\n"))
    paragraphs: list[list[str]] = [[]]
    for raw_line in text.split("\n"):
        line = (_MULTI_SPACE.sub(" ", raw_line) if "  " in raw_line else raw_line).strip()
        if not line:
            if paragraphs[-1]:
                paragraphs.append([])
            continue
        if _is_residue(line):
            continue
        if line[0] in ",;:":
            line = _LEADING_PUNCTUATION.sub("", line)
        paragraphs[-1].append(_GLUED_SENTENCE.sub(r"\1 ", line))
    return "\n\n".join("\n".join(lines) for lines in paragraphs if lines)


def _is_residue(line: str) -> bool:
    if len(line) > 160:
        return False
    return bool(_SHARE_BAR.match(line) or _RESIDUE_LINES.match(line))


def clean_title(title: str) -> str:
    """A title on one line with tidy spaces and no invisible or control characters."""
    title = _INVISIBLE.sub("", xml_safe(unicodedata.normalize("NFC", title)))
    return " ".join(_SPACE_LIKE.sub(" ", title).split())


def title_from_text(text: str) -> str:
    """A title made from the first sentence of `text`, cut at a word near 90 characters."""
    first = " ".join(text.split("\n\n", 1)[0].split())
    if not first:
        return ""
    sentence = re.split(r"(?<=[.!?])\s", first, maxsplit=1)[0]
    if len(sentence) <= _TITLE_LIMIT:
        return sentence.rstrip(".")
    cut = sentence[:_TITLE_LIMIT].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "…"


def title_key(title: str) -> str:
    """Casefolded words of a title, punctuation and symbols dropped; a title of symbols
    alone ("…", "★") is its own key, so two such items are not one by an empty key."""
    folded = unicodedata.normalize("NFKC", title).casefold()
    return " ".join(_NOT_WORD.sub(" ", folded).split()) or "".join(folded.split())


def is_truncated(text: str) -> bool:
    """True when the text ends with an ellipsis: a summary of a longer item."""
    # Trailing white space as regex "\s" has it (str.isspace): no scan of the whole text.
    return text.rstrip().endswith(_ELLIPSIS_ENDINGS)


ENTRY_KEY_VERSION = "1"
"""Part of every entry key: raise it when normalizing the same entry would give another item,
so stored items are normalized again instead of kept."""


def entry_key(raw: RawItem) -> str:
    """Fingerprint of everything normalizing an entry reads, but where the source lists it
    (origin, position): an entry whose key is stored needs no normalizing or analysing again.
    The agencies of the config are not in it: a change of them makes the run read every
    source again in full (`SourceState.read_digest`)."""
    published = raw.published.isoformat() if raw.published is not None else None
    blob = json.dumps([ENTRY_KEY_VERSION, raw.agency_label, raw.title, raw.content,
                       raw.content_is_html, raw.link, raw.guid, published, raw.base_url],
                      ensure_ascii=False)
    return hashlib.blake2b(blob.encode("utf-8", "surrogatepass"),
                           digest_size=16).hexdigest()


def content_hash(text: str) -> str:
    """Fingerprint of the text's words, blind to case, spacing and line breaks."""
    folded = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    return hashlib.blake2b(folded.encode(), digest_size=16).hexdigest()
