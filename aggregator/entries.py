"""Feed entries as text: an Atom entry, an RSS item and a JSON Feed item per story.

Each is exactly what feedgen writes for the same entry (lxml, pretty-printed, UTF-8) at its
depth in the document, so `publish` renders a story's entry once per format and splices it
into every document that shows the story: the combined feed or its archive, a topic's, a
country's. feedgen still writes each document's feed-level part. The escaping is libxml2's:
`&`, `<` and `>` in text (and a carriage return as `&#13;`); in attributes also `"` and the
whitespace characters a parser would otherwise fold.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

_json_string = json.encoder.encode_basestring
"""The standard encoder's own string writer (`ensure_ascii=False`)."""

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def xml_text(value: str) -> str:
    """`value` escaped as libxml2 writes element text."""
    if "&" in value:
        value = value.replace("&", "&amp;")
    if "<" in value:
        value = value.replace("<", "&lt;")
    if ">" in value:
        value = value.replace(">", "&gt;")
    if "\r" in value:
        value = value.replace("\r", "&#13;")
    return value


def xml_attribute(value: str) -> str:
    """`value` escaped as libxml2 writes an attribute value (in double quotes)."""
    value = xml_text(value)
    if '"' in value:
        value = value.replace('"', "&quot;")
    if "\n" in value:
        value = value.replace("\n", "&#10;")
    if "\t" in value:
        value = value.replace("\t", "&#9;")
    return value


def rfc822(moment: datetime) -> str:
    """An RSS date, as feedgen writes it (English names whatever the locale)."""
    return (f"{_DAYS[moment.weekday()]}, {moment:%d} {_MONTHS[moment.month - 1]} "
            f"{moment:%Y %H:%M:%S %z}")


@dataclass(frozen=True, slots=True)
class Entry:
    """What a feed entry shows, format aside (text as it is, escaped when written)."""

    guid: str
    title: str
    link: str
    published: datetime
    updated: datetime
    content_html: str
    authors: Sequence[tuple[str, str | None]]
    """(name, home page) of each agency that reported the story."""
    categories: Sequence[tuple[str, str]]
    """(term, label): each agency's slug and name."""
    creator: str
    """dc:creator of the RSS item: every agency's name."""


def atom_entry(entry: Entry) -> str:
    """The Atom `<entry>` inside `<feed>`, with its line break."""
    parts = [
        "  <entry>\n    <id>", xml_text(entry.guid), "</id>\n    <title>", xml_text(entry.title),
        "</title>\n    <updated>", entry.updated.isoformat(), "</updated>\n",
    ]
    for name, uri in entry.authors:
        if not name:
            continue  # feedgen leaves out an author without a name
        parts += ("    <author>\n      <name>", xml_text(name), "</name>\n")
        if uri:
            parts += ("      <uri>", xml_text(uri), "</uri>\n")
        parts.append("    </author>\n")
    if entry.content_html:
        parts += ('    <content type="html">', xml_text(entry.content_html), "</content>\n")
    else:
        parts.append('    <content type="html"/>\n')
    # feedgen writes an entry link's href alone (its rel and type are lost on the way).
    parts += ('    <link href="', xml_attribute(entry.link), '"/>\n')
    for term, label in entry.categories:
        parts += ('    <category term="', xml_attribute(term), '"')
        if label:
            parts += (' label="', xml_attribute(label), '"')
        parts.append("/>\n")
    parts += ("    <published>", entry.published.isoformat(), "</published>\n  </entry>\n")
    return "".join(parts)


def rss_item(entry: Entry) -> str:
    """The RSS `<item>` inside `<channel>`, with its line break."""
    parts = ["    <item>\n"]
    if entry.title:
        parts += ("      <title>", xml_text(entry.title), "</title>\n")
    if entry.link:
        parts += ("      <link>", xml_text(entry.link), "</link>\n")
    parts += (
        "      <description>", xml_text(entry.content_html), "</description>\n",
        '      <guid isPermaLink="false">', xml_text(entry.guid), "</guid>\n",
    )
    for _, label in entry.categories:
        parts += ("      <category>", xml_text(label), "</category>\n")
    parts += (
        "      <pubDate>", rfc822(entry.published), "</pubDate>\n",
        "      <dc:creator>", xml_text(entry.creator), "</dc:creator>\n    </item>\n",
    )
    return "".join(parts)


EntryParts = tuple[bytes, bytes, bytes]
"""An entry's text, encoded, in three parts: before its id, the id (escaped as written),
after it. A document joins the parts of its entries; an agency's feed shows a story's entry
with another id, and swaps only the middle part."""


def atom_parts(text: str, guid: str) -> EntryParts:
    """An `atom_entry` text with the id `guid`, in parts."""
    return _parts(text, "<id>", xml_text(guid), "</id>")


def rss_parts(text: str, guid: str) -> EntryParts:
    """An `rss_item` text with the guid `guid`, in parts."""
    return _parts(text, '<guid isPermaLink="false">', xml_text(guid), "</guid>")


def json_parts(text: str, guid: str) -> EntryParts:
    """A `json_item` text with the id `guid`, in parts."""
    return _parts(text, '"id": ', _json_string(guid), ",")


def with_id(parts: EntryParts, written_id: str) -> EntryParts:
    """The entry in `parts` with another id, written as its format writes it (escaped for
    XML by `xml_text`, quoted for JSON by `json_id`)."""
    return parts[0], written_id.encode(), parts[2]


def json_id(guid: str) -> str:
    """An id as a JSON Feed item writes it."""
    return _json_string(guid)


def _parts(text: str, opening: str, written_id: str, closing: str) -> EntryParts:
    # The element is the first place its markup occurs: every text before it is escaped.
    element = opening + written_id + closing
    at = text.find(element)
    if at < 0:
        raise ValueError(f"no {element!r} in the entry")
    start = at + len(opening)
    end = start + len(written_id)
    return text[:start].encode(), text[start:end].encode(), text[end:].encode()


def splice(document: bytes, closing: bytes, entries: Iterable[EntryParts]) -> bytes:
    """`document` (a feed written without entries) with `entries` before its last `closing`
    tag, where feedgen appends them."""
    head, found, tail = document.rpartition(closing)
    if not found:
        raise ValueError(f"no {closing!r} in the document")
    return b"".join([head, *(part for parts in entries for part in parts), found, tail])


@dataclass(frozen=True, slots=True)
class JsonMember:
    """One report of a story, as the `_aggregator` extension lists it."""

    agency: str
    title: str
    guid: str
    url: str | None
    date: str
    date_source: str


def json_item(entry: Entry, authors: Sequence[tuple[str, str | None]], tags: Sequence[str],
              agencies: Sequence[str], date_source: str,
              members: Sequence[JsonMember]) -> str:
    """One JSON Feed item exactly as `json.dumps(document, ensure_ascii=False, indent=2)`
    writes it inside the document's `items` (depth 2), written out directly: the standard
    encoder is slow with `indent`. `authors` are (name, URL or None)."""
    q = _json_string
    author_texts = [
        '{\n          "name": ' + q(name)
        + (',\n          "url": ' + q(url) if url is not None else "") + "\n        }"
        for name, url in authors
    ]
    member_texts = [
        '{\n            "agency": ' + q(m.agency) + ',\n            "title": ' + q(m.title)
        + ',\n            "guid": ' + q(m.guid) + ',\n            "url": '
        + (q(m.url) if m.url is not None else "null") + ',\n            "date": ' + q(m.date)
        + ',\n            "date_source": ' + q(m.date_source) + "\n          }"
        for m in members
    ]
    return "".join((
        '    {\n      "id": ', q(entry.guid),
        ',\n      "url": ', q(entry.link),
        ',\n      "title": ', q(entry.title),
        ',\n      "content_html": ', q(entry.content_html),
        ',\n      "date_published": ', q(entry.published.isoformat()),
        ',\n      "date_modified": ', q(entry.updated.isoformat()),
        ',\n      "authors": ', _json_list(author_texts, "      "),
        ',\n      "tags": ', _json_list([q(tag) for tag in tags], "      "),
        ',\n      "_aggregator": {\n        "agencies": ',
        _json_list([q(agency) for agency in agencies], "        "),
        ',\n        "date_source": ', q(date_source),
        ',\n        "members": ', _json_list(member_texts, "        "),
        "\n      }\n    }",
    ))


def _json_list(elements: Sequence[str], indent: str) -> str:
    """A list of written elements, its brackets at `indent`."""
    if not elements:
        return "[]"
    inner = "\n" + indent + "  "
    return "[" + inner + ("," + inner).join(elements) + "\n" + indent + "]"


_ITEMS_MARK = "\x00items\x00"


def json_document(document: dict[str, Any], items: Sequence[EntryParts]) -> bytes:
    """`document` (with `items` left out) as `json.dumps(..., indent=2)` writes it with its
    items, which `json_item` wrote."""
    marked = {**document, "items": _ITEMS_MARK}
    text = json.dumps(marked, ensure_ascii=False, indent=2)
    head, found, tail = text.partition(json.dumps(_ITEMS_MARK))
    if not found:
        raise ValueError("no items in the document")
    if not items:
        return (head + "[]" + tail + "\n").encode()
    pieces = [head.encode(), b"[\n"]
    for index, parts in enumerate(items):
        if index:
            pieces.append(b",\n")
        pieces += parts
    pieces += (b"\n  ]", tail.encode(), b"\n")
    return b"".join(pieces)
