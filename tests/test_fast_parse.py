"""The fast parsing path (sources/fastparse.py): it takes plain, well-formed UTF-8 RSS 2.0
and Atom 1.0, gives exactly feedparser's items for them, declines everything else (which
then goes to feedparser), and never expands entities or fetches anything."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from aggregator.sources import fastparse
from aggregator.sources.feed import (
    ParsedFeed,
    ParseRequest,
    parse_feed,
    parse_feed_with_feedparser,
)

FEEDS = Path(__file__).parent / "data" / "dedup" / "feeds"
URL = "http://127.0.0.1:9/agency/news/feed.xml"


def request(body: bytes, content_type: str | None = "application/rss+xml") -> ParseRequest:
    headers = {"content-type": content_type} if content_type else {}
    return ParseRequest(body=body, headers=headers, url=URL, name=URL,
                        source_id="feed:" + URL, agency="nato")


def same_as_feedparser(req: ParseRequest) -> ParsedFeed:
    ours, reference = parse_feed(req), parse_feed_with_feedparser(req)
    assert ours.error == reference.error
    assert ours.items == reference.items
    return ours


RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"
     xmlns:content="http://purl.org/rss/1.0/modules/content/"
     xmlns:atom="http://www.w3.org/2005/Atom">
<channel><title>NATO</title><link>https://www.nato.int/</link><description>d</description>
<atom:link href="https://www.nato.int/feed.xml" rel="self" type="application/rss+xml"/>
<item><title>Ministers meet &amp; agree</title><link>https://www.nato.int/news/1</link>
<guid isPermaLink="false">nato-1</guid><pubDate>Wed, 04 Dec 2024 10:00:00 +0100</pubDate>
<dc:creator>Press office</dc:creator><category>Defence</category>
<description>&lt;p&gt;Ministers met in &lt;a href="/brussels"&gt;Brussels&lt;/a&gt;.&lt;/p&gt;
</description><content:encoded><![CDATA[<p>Ministers met in <b>Brussels</b> —
“for two days”.</p>]]></content:encoded>
</item>
<item><title>Undated note</title><link>https://www.nato.int/news/2</link>
<description>Plain text, no markup.</description></item>
</channel></rss>"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Europol</title><id>urn:europol</id>
<updated>2024-12-05T09:00:00Z</updated><link href="https://www.europol.europa.eu/"/>
<entry><title type="html">Operation &lt;i&gt;Pangea&lt;/i&gt;</title><id>urn:europol:1</id>
<link rel="alternate" href="https://www.europol.europa.eu/news/1"/>
<updated>2024-12-05T09:00:00Z</updated><published>2024-12-04T08:00:00Z</published>
<summary type="text">Short text</summary>
<content type="html">&lt;p&gt;Full report.&lt;/p&gt;</content></entry>
</feed>"""


@pytest.mark.parametrize("body", [
    RSS, ATOM,
    RSS.replace("https://www.nato.int/news/2", "/news/2"),
    ATOM.replace("urn:europol:1", "news/1").replace("https://www.europol.europa.eu/news/1",
                                                     "../news/1"),
], ids=["rss20", "atom10", "rss20-relative-link", "atom10-relative-id-and-link"])
def test_plain_feeds_take_the_fast_path_and_give_feedparsers_items(body: str) -> None:
    data = body.encode()
    assert fastparse.parse_entries(data, {"content-type": "application/xml"}, URL) is not None
    parsed = same_as_feedparser(request(data, "application/xml"))
    assert parsed.items and all(item.title for item in parsed.items)


@pytest.mark.parametrize("path", sorted(FEEDS.iterdir()), ids=lambda p: p.name)
def test_agency_feeds_take_the_fast_path_and_give_feedparsers_items(path: Path) -> None:
    body = path.read_bytes()
    assert fastparse.parse_entries(body, {}, URL) is not None, "a plain agency feed is declined"
    assert same_as_feedparser(request(body, None)).items


DECLINED = {
    "doctype": RSS.replace("<rss version", '<!DOCTYPE rss [<!ENTITY a "b">]><rss version'),
    "other-encoding": RSS.replace("UTF-8", "ISO-8859-1"),
    "windows-1252-points": RSS.replace("Plain text", "don&#146;t"),
    "xml-base": RSS.replace("<item><title>Undated", '<item xml:base="https://x.test/">'
                            "<title>Undated"),
    "relative-guid": RSS.replace("nato-1", "/news/1"),
    "not-well-formed": RSS.replace("</description></item>", "</item>"),
    "extension-element": RSS.replace("<category>", "<media:title xmlns:media="
                                     '"http://search.yahoo.com/mrss/">m</media:title>'
                                     "<category>"),
    "undeclared-prefix": RSS.replace(' xmlns:dc="http://purl.org/dc/elements/1.1/"', ""),
    "prefix-for-another-namespace": RSS.replace("http://purl.org/dc/elements/1.1/",
                                                "http://example.com/dc/"),
    "rss10": """<?xml version="1.0"?><rdf:RDF
        xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/">
        <channel rdf:about="https://x.test/"><title>t</title></channel>
        <item rdf:about="https://x.test/1"><title>a</title><link>https://x.test/1</link></item>
        </rdf:RDF>""",
    "atom-xhtml": ATOM.replace('<content type="html">&lt;p&gt;Full report.&lt;/p&gt;',
                               '<content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">'
                               "<p>Full report.</p></div>"),
    "atom-untyped-summary": ATOM.replace('<summary type="text">', "<summary>"),
    "atom-link-without-href": ATOM.replace(
        '<link rel="alternate" href="https://www.europol.europa.eu/news/1"/>',
        "<link>https://www.europol.europa.eu/news/1</link>"),
}


@pytest.mark.parametrize("name", sorted(DECLINED))
def test_anything_else_goes_to_feedparser(name: str) -> None:
    body = DECLINED[name].encode("utf-8")
    assert fastparse.parse_entries(body, {"content-type": "application/xml"}, URL) is None
    # Declined means parsed by the reference, not lost.
    same_as_feedparser(request(body, "application/xml"))


@pytest.mark.parametrize("content_type", [
    "text/html", "text/xml", "application/rss+xml; charset=iso-8859-1", "text/plain",
])
def test_a_content_type_that_could_change_decoding_goes_to_feedparser(
    content_type: str
) -> None:
    assert fastparse.parse_entries(RSS.encode(), {"content-type": content_type}, URL) is None
    same_as_feedparser(request(RSS.encode(), content_type))


def test_bytes_that_are_not_utf8_go_to_feedparser() -> None:
    body = RSS.replace('encoding="UTF-8"', "").replace("“", "é").encode("latin-1",
                                                                           errors="replace")
    assert fastparse.parse_entries(body, {}, URL) is None


def test_entity_tricks_never_reach_the_fast_parser_nor_expand() -> None:
    levels = "".join(f'<!ENTITY {name} "{("&" + below + ";") * 10}">'
                     for below, name in zip("abcdefgh", "bcdefghi", strict=True))
    bomb = (f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa">{levels}]>'
            '<rss version="2.0"><channel><title>t</title><item><title>x &i;</title>'
            "<link>https://x.test/1</link><description>&i;</description></item>"
            "</channel></rss>").encode()
    xxe = (b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
           b'<rss version="2.0"><channel><title>t</title><item><title>a &xxe;</title>'
           b"<link>https://x.test/1</link></item></channel></rss>")
    for body in (bomb, xxe):
        assert fastparse.parse_entries(body, {}, URL) is None
        started = time.monotonic()
        parsed = parse_feed(request(body))
        assert time.monotonic() - started < 5
        for item in parsed.items:
            assert len(item.title) + len(item.content) < 1000
            assert "root:" not in item.title + item.content


def test_a_document_that_is_a_url_is_never_fetched(loopback: HTTPServer) -> None:
    loopback.expect_request("/feed.xml").respond_with_data(RSS, content_type="application/xml")
    body = loopback.url_for("/feed.xml").encode()
    assert fastparse.parse_entries(body, {}, URL) is None
    parsed = parse_feed(request(body))
    assert parsed.error is not None and not parsed.items
    assert loopback.log == []


def test_without_the_fast_parser_installed_every_feed_still_parses(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    # The one place a stand-in is needed: uninstalling a package inside a test run.
    import sys

    monkeypatch.setitem(sys.modules, "feedparser_rs", None)
    assert fastparse.parse_entries(RSS.encode(), {}, URL) is None
    assert same_as_feedparser(request(RSS.encode())).items


def test_a_feed_past_the_fast_parsers_limits_goes_to_feedparser() -> None:
    # feedparser-rs stops at 10,000 entries (and says so); feedparser reads them all, and
    # declined documents are parsed by feedparser (test_anything_else_goes_to_feedparser).
    entries = "".join(f"<item><title>Item {n}</title><link>https://x.test/{n}</link></item>"
                      for n in range(10_005))
    body = (f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>{entries}'
            "</channel></rss>").encode()
    assert fastparse.parse_entries(body, {}, URL) is None
