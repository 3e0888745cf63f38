"""The fast path of feed parsing: plain, well-formed UTF-8 RSS 2.0 and Atom 1.0 documents
through `feedparser-rs` (a Rust parser with feedparser's data model), about 15 times
cheaper than feedparser.

feedparser stays the reference: this path only takes a document when nothing in it is
where the two parsers are known to part ways (`benchmarks/fast_parse.py` compares them on
feedparser's own corpus of 2,106 documents, and the opt-in corpus test checks that every
document taken here gives the same items as feedparser). Anything else — another
encoding, a DTD or entity declaration, `xml:base`, base64 content, extension elements,
inline XHTML, a document that is not well-formed, another feed format — is declined
(None), and the caller parses it with feedparser.

Safety holds on both paths: the document is given as bytes (never a URL or a file name,
so nothing is fetched), a document that declares entities never reaches this parser, and
everything published still passes the nh3 allow-list in normalize.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urljoin

ACCEPTED_VERSIONS = frozenset({"rss20", "atom10"})
"""Formats where the two parsers agree on the whole corpus; the rest go to feedparser."""
_ACCEPTED_MEDIA_TYPES = frozenset({
    "", "application/rss+xml", "application/atom+xml", "application/xml", "text/xml",
})
_UTF8_NAMES = frozenset({"utf-8", "utf8"})
_XML_DECLARATION = re.compile(rb"<\?xml\b([^>]*)\?>")
_ENCODING = re.compile(rb"""encoding\s*=\s*["']([^"']*)["']""")
_DECLINED_MARKS = (
    b"<!doctype", b"<!entity",  # DTDs and entities: feedparser's careful handling only
    b"xml:base",                # relative links: feedparser resolves bases its own way
    b"base64",                  # Atom's base64 mode: decoded by feedparser only
)
_ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_C1_CONTROLS = re.compile(
    rb"\xc2[\x80-\x9f]|&#(?:0*1(?:2[89]|[3-5][0-9])|[xX]0*[89][0-9a-fA-F]);")
"""C1 controls, raw or as character references: feedparser reads them as windows-1252."""
_EXTRA_SLASHES = re.compile(r"^([A-Za-z][A-Za-z0-9+-.]*://)(/*)(.*?)")
_CDATA = re.compile(rb"<!\[CDATA\[.*?\]\]>", re.DOTALL)
_COMMENT = re.compile(rb"<!--.*?-->", re.DOTALL)
_TAG = re.compile(rb"<([A-Za-z_][\w.:-]*)([^>]*)>")
_NAMESPACE = re.compile(rb"""xmlns(?::([\w.-]+))?\s*=\s*["']([^"']*)["']""")
_TYPE = re.compile(rb"""\btype\s*=\s*["']([^"']*)["']""")
_HREF = re.compile(rb"\bhref\s*=")
_NAMESPACES = {
    b"content": b"http://purl.org/rss/1.0/modules/content/",
    b"dc": b"http://purl.org/dc/elements/1.1/",
    b"atom": b"http://www.w3.org/2005/Atom",
}
_RSS_CHANNEL = frozenset(
    b"rss channel title link description language copyright managingEditor webMaster pubDate "
    b"lastBuildDate category generator docs ttl image url width height atom:link".split())
_RSS_ITEM = frozenset(
    b"item title link description pubDate guid author category comments content:encoded "
    b"dc:creator enclosure source".split())
_ATOM_FEED = frozenset(
    b"feed title subtitle id updated link author name email uri rights generator icon logo "
    b"category".split())
_ATOM_ENTRY = frozenset(
    b"entry title id updated published link author name email uri summary content "
    b"category rights".split())
_ATOM_TEXT_TYPES = frozenset({b"text", b"html"})


def parse_entries(
    body: bytes, headers: Mapping[str, str], url: str
) -> Sequence[Mapping[str, Any]] | None:
    """The entries of `body` (fetched from `url`) as feedparser would give them, or None
    when the fast path declines the document (the caller then parses it with feedparser)."""
    if not _plain_utf8(body, headers):
        return None
    lowered = body.lower()
    if any(mark in lowered for mark in _DECLINED_MARKS) or not _plain_structure(body):
        return None
    try:
        import feedparser_rs
    except ImportError:  # an install without the fast parser still reads every feed
        return None
    try:
        document = feedparser_rs.parse(body, sanitize_html=False, resolve_relative_uris=False)
    except Exception:  # whatever it cannot take, feedparser will
        return None
    if document.get("bozo") or document.get("version") not in ACCEPTED_VERSIONS:
        return None
    atom = document.get("version") == "atom10"
    entries = [_entry(raw, url, atom=atom) for raw in document.entries]
    if any(entry is None for entry in entries):
        return None
    return [entry for entry in entries if entry is not None]


def _plain_utf8(body: bytes, headers: Mapping[str, str]) -> bool:
    """UTF-8 by every account: the bytes, the XML declaration and the Content-Type.
    feedparser weighs these against each other (text/xml without a charset means ASCII);
    the fast path takes only documents where they cannot disagree."""
    content_type = headers.get("content-type", "")
    media_type, _, parameters = content_type.partition(";")
    if media_type.strip().lower() not in _ACCEPTED_MEDIA_TYPES:
        return False
    charset = _parameter(parameters, "charset")
    if charset is not None and charset not in _UTF8_NAMES:
        return False
    if media_type.strip().lower() == "text/xml" and charset is None:
        return False
    start = body.removeprefix(b"\xef\xbb\xbf").lstrip()
    if not start.startswith(b"<"):
        return False
    declaration = _XML_DECLARATION.match(start)
    if declaration is not None:
        encoding = _ENCODING.search(declaration.group(1))
        if encoding is not None and encoding.group(1).strip().lower() not in (
                b"utf-8", b"utf8"):
            return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    # The cheap tests first: most documents hold neither byte sequence.
    return not ((b"\xc2" in body or b"&#" in body) and _C1_CONTROLS.search(body))


def _plain_structure(body: bytes) -> bool:
    """Only the elements of a plain RSS 2.0 or Atom 1.0 feed, each where it belongs, with
    the namespaces they are known by: where the two parsers were seen to differ (inline
    XHTML or SVG, extension elements, Atom text without a type, links without an href),
    the document goes to feedparser."""
    markup = _COMMENT.sub(b"", _CDATA.sub(b"", body))
    tags = _TAG.findall(markup)
    if not tags:
        return False
    root = tags[0][0]
    if root == b"rss":
        head, entry, entry_tags = _RSS_CHANNEL, b"item", _RSS_ITEM
    elif root == b"feed":
        head, entry, entry_tags = _ATOM_FEED, b"entry", _ATOM_ENTRY
    else:
        return False
    allowed = head
    declared: set[bytes] = set()
    for name, attributes in tags:
        if name == entry:
            allowed = entry_tags
        if name not in allowed:
            return False
        for prefix, uri in _NAMESPACE.findall(attributes) if b"xmlns" in attributes else ():
            expected = _NAMESPACES.get(prefix) if prefix else (
                b"http://www.w3.org/2005/Atom" if root == b"feed" else None)
            if uri != expected:
                return False
            declared.add(prefix)
        prefix, colon, _ = name.partition(b":")
        if colon and prefix not in declared:
            return False
        if root == b"feed":
            if name in (b"summary", b"content"):
                kind = _TYPE.search(attributes)
                if kind is None or kind.group(1) not in _ATOM_TEXT_TYPES:
                    return False
            elif name == b"link" and not _HREF.search(attributes):
                return False
    return True


def _parameter(parameters: str, name: str) -> str | None:
    for parameter in parameters.split(";"):
        key, _, value = parameter.partition("=")
        if key.strip().lower() == name:
            return value.strip().strip("\"'").lower()
    return None


def _entry(raw: Any, url: str, *, atom: bool) -> dict[str, Any] | None:
    """feedparser-rs's entry as the plain mapping feed.py reads, with links (and Atom ids)
    resolved as feedparser resolves them; None when an RSS guid looks like a relative link
    (feedparser's handling of those was not matched)."""
    link = raw.get("link")
    guid = raw.get("id")
    if link:
        link = _resolved(url, link)
    if guid and atom:
        guid = _resolved(url, guid)
    elif guid and not _ABSOLUTE.match(guid) and "/" in guid:
        return None
    title = raw.get("title_detail")
    summary = raw.get("summary_detail")
    return {
        "title": raw.get("title"),
        "title_detail": _detail(title),
        "content": [_detail(part) for part in raw.get("content") or []],
        "summary_detail": _detail(summary),
        "id": guid,
        "link": link,
        "published_parsed": raw.get("published_parsed"),
        "updated_parsed": raw.get("updated_parsed"),
        "created_parsed": raw.get("created_parsed"),
    }


def _resolved(base: str, reference: str) -> str:
    """`reference` resolved against `base` the way feedparser does it: extra slashes after
    the scheme's `//` dropped, then urljoin; a reference urljoin cannot take becomes ''."""
    try:
        return urljoin(base, _EXTRA_SLASHES.sub(r"\1\3", reference))
    except ValueError:
        return ""


def _detail(construct: Any) -> dict[str, Any] | None:
    # No base: documents with xml:base are declined, and without one feedparser's base is
    # the document's own URL, which feed.py falls back to.
    if construct is None:
        return None
    return {"type": construct.get("type"), "value": construct.get("value"), "base": None}
