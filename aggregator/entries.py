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
from collections.abc import Sequence
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


def splice(document: bytes, closing: bytes, entries: Sequence[str]) -> bytes:
    """`document` (a feed written without entries) with `entries` before its last `closing`
    tag, where feedgen appends them."""
    head, found, tail = document.rpartition(closing)
    if not found:
        raise ValueError(f"no {closing!r} in the document")
    return b"".join((head, "".join(entries).encode(), found, tail))


def json_item(item: dict[str, Any]) -> str:
    """One JSON Feed item as `json.dumps(document, ensure_ascii=False, indent=2)` writes it
    inside the document's `items` (depth 2)."""
    parts: list[str] = ["    "]
    _json_value(item, "\n    ", parts)
    return "".join(parts)


JsonValue = dict[str, Any] | list[Any] | str | None


def _json_value(value: JsonValue, newline: str, parts: list[str]) -> None:
    """Append `value` as the standard encoder writes it with `indent=2` (strings, None,
    lists and dicts: all a feed item holds); `newline` is the line break at its depth."""
    if isinstance(value, str):
        parts.append(_json_string(value))
    elif value is None:
        parts.append("null")
    elif isinstance(value, dict):
        if not value:
            parts.append("{}")
            return
        inner = newline + "  "
        opening = "{" + inner
        for key, member in value.items():
            parts += (opening, _json_string(key), ": ")
            _json_value(member, inner, parts)
            opening = "," + inner
        parts += (newline, "}")
    elif isinstance(value, list):
        if not value:
            parts.append("[]")
            return
        inner = newline + "  "
        opening = "[" + inner
        for member in value:
            parts.append(opening)
            _json_value(member, inner, parts)
            opening = "," + inner
        parts += (newline, "]")
    else:
        raise TypeError(f"not a feed item's JSON: {type(value).__name__}")


_ITEMS_MARK = "\x00items\x00"


def json_document(document: dict[str, Any], items: Sequence[str]) -> bytes:
    """`document` (with `items` left out) as `json.dumps(..., indent=2)` writes it with its
    items, which `json_item` wrote."""
    marked = {**document, "items": _ITEMS_MARK}
    text = json.dumps(marked, ensure_ascii=False, indent=2)
    listed = "[\n" + ",\n".join(items) + "\n  ]" if items else "[]"
    return (text.replace(json.dumps(_ITEMS_MARK), listed, 1) + "\n").encode()
