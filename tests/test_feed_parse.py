"""Parsing fetched documents into raw items (sources/feed.py), and what normalize makes of
them: formats, identity, dates, links, and hostile input."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import pytest

from aggregator.config import AgencyConfig
from aggregator.model import RawItem
from aggregator.normalize import AgencyDirectory, normalize
from aggregator.sources.feed import ParsedFeed, ParseRequest, parse_feed

URL = "http://127.0.0.1:9/agency/news/feed.xml"
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
DIRECTORY = AgencyDirectory.from_config({"nato": AgencyConfig("nato", "NATO")})


def parse(body: str | bytes, content_type: str = "application/xml") -> ParsedFeed:
    data = body.encode() if isinstance(body, str) else body
    return parse_feed(ParseRequest(
        body=data, headers={"content-type": content_type}, url=URL, name=URL,
        source_id="feed:" + URL, agency="nato",
    ))


def items_of(body: str | bytes) -> tuple[RawItem, ...]:
    parsed = parse(body)
    assert parsed.error is None, parsed.error
    return parsed.items


RSS20 = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>NATO</title><link>https://www.nato.int/</link>
<item><title>Ministers meet</title><link>https://www.nato.int/news/1</link>
<guid isPermaLink="false">nato-1</guid><pubDate>Wed, 04 Dec 2024 10:00:00 +0100</pubDate>
<description>&lt;p&gt;Ministers met in &lt;a href="/brussels"&gt;Brussels&lt;/a&gt;.&lt;/p&gt;
</description>
</item></channel></rss>"""

RSS091 = """<?xml version="1.0"?>
<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN"
 "http://my.netscape.com/publish/formats/rss-0.91.dtd">
<rss version="0.91"><channel><title>NATO</title><link>https://www.nato.int/</link>
<description>d</description><language>en</language>
<item><title>Ministers meet</title><link>https://www.nato.int/news/1</link>
<description>Ministers met in Brussels.</description></item></channel></rss>"""

RSS10 = """<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
 xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel rdf:about="https://www.nato.int/"><title>NATO</title><link>https://www.nato.int/</link>
<description>d</description></channel>
<item rdf:about="https://www.nato.int/news/1"><title>Ministers meet</title>
<link>https://www.nato.int/news/1</link><description>Ministers met in Brussels.</description>
<dc:date>2024-12-04T09:00:00Z</dc:date></item></rdf:RDF>"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>NATO</title><id>urn:nato</id>
<updated>2024-12-04T09:00:00Z</updated>
<entry><id>urn:nato:1</id><title>Ministers meet</title>
<link rel="alternate" href="https://www.nato.int/news/1"/>
<updated>2024-12-04T09:00:00Z</updated>
<content type="html">&lt;p&gt;Ministers met in Brussels.&lt;/p&gt;</content></entry></feed>"""


@pytest.mark.parametrize("body", [RSS091, RSS10, RSS20, ATOM], ids=["rss091", "rss10",
                                                                 "rss20", "atom"])
def test_every_format_gives_its_item(body: str) -> None:
    (item,) = items_of(body)
    assert item.title == "Ministers meet"
    assert item.link == "https://www.nato.int/news/1"
    assert item.agency_label == "nato" and item.source_id == "feed:" + URL
    assert item.origin == URL
    assert "Ministers met in" in item.content


def test_dates_are_aware_utc() -> None:
    (rss,) = items_of(RSS20)
    assert rss.published == datetime(2024, 12, 4, 9, 0, tzinfo=UTC)
    (atom,) = items_of(ATOM)
    assert atom.published == datetime(2024, 12, 4, 9, 0, tzinfo=UTC)


def test_undated_items_stay_undated_so_the_store_records_first_seen() -> None:
    (item,) = items_of(RSS091)
    assert item.published is None
    normalized = normalize(item, DIRECTORY, NOW).item
    assert normalized is not None and normalized.published is None


def test_identity_is_the_guid_then_the_link_then_title_and_date() -> None:
    body = """<rss version="2.0"><channel><title>t</title>
    <item><guid isPermaLink="false">g-1</guid><title>One</title><link>https://x.test/1</link></item>
    <item><title>Two</title><link>https://x.test/2</link></item>
    <item><title>Three</title><pubDate>Wed, 04 Dec 2024 10:00:00 GMT</pubDate></item>
    <item><title>Four</title><description>No date, no link.</description></item>
    </channel></rss>"""
    one, two, three, four = items_of(body)
    assert one.guid == "g-1"
    assert two.guid is None and two.link == "https://x.test/2"  # the store matches the link
    assert three.guid is not None and three.guid.startswith("urn:newswire:title-date:")
    assert four.guid is None  # the store matches it by its content
    # The same title and date is the same identity, however the title's spacing changes.
    again = items_of(body.replace("<title>Three</title>", "<title>  Three </title>"))[2]
    assert again.guid == three.guid


def test_duplicate_guids_within_one_feed() -> None:
    entry = ('<item><guid isPermaLink="false">dup</guid><title>{title}</title>'
             '<link>https://x.test/{n}</link></item>')
    body = ('<rss version="2.0"><channel><title>t</title>'
            + entry.format(title="Same", n=1) + entry.format(title="Same", n=1)
            + entry.format(title="Other", n=2) + "</channel></rss>")
    parsed = parse(body)
    assert [i.title for i in parsed.items] == ["Same", "Other"]  # the exact repeat dropped
    assert parsed.items[0].guid == "dup"
    assert parsed.items[1].guid is None and parsed.items[1].link == "https://x.test/2"
    assert any("used by two different entries" in note for _, note in parsed.notes)


def test_relative_links_resolve_against_the_feed_url_and_xml_base() -> None:
    body = """<?xml version="1.0"?>
    <feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><id>urn:t</id>
    <updated>2024-12-04T09:00:00Z</updated>
    <entry><id>urn:1</id><title>Plain base</title><link href="/news/1"/>
    <updated>2024-12-04T09:00:00Z</updated>
    <content type="html">&lt;a href="more.html"&gt;more&lt;/a&gt; &lt;img src="/i.png"&gt;</content>
    </entry>
    <entry xml:base="https://cdn.example.org/base/"><id>urn:2</id><title>Own base</title>
    <link href="page"/><updated>2024-12-04T09:00:00Z</updated>
    <content type="html">&lt;a href="more.html"&gt;more&lt;/a&gt;</content></entry></feed>"""
    first, second = items_of(body)
    assert first.link == "http://127.0.0.1:9/news/1"
    assert second.link == "https://cdn.example.org/base/page"
    html_1 = normalize(first, DIRECTORY, NOW).item
    html_2 = normalize(second, DIRECTORY, NOW).item
    assert html_1 is not None and html_1.html is not None
    assert 'href="http://127.0.0.1:9/agency/news/more.html"' in html_1.html
    assert 'src="http://127.0.0.1:9/i.png"' in html_1.html
    assert html_2 is not None and html_2.html is not None
    assert 'href="https://cdn.example.org/base/more.html"' in html_2.html


def test_malformed_but_readable_feed_gives_its_items_and_a_warning() -> None:
    body = """<rss version="2.0"><channel><title>Fish & Chips</title>
    <item><title>Unescaped & ampersand</title><link>https://x.test/1</link>
    <description>Body <b>unclosed</description></item></channel></rss>"""
    parsed = parse(body)
    assert parsed.error is None
    assert [i.title for i in parsed.items] == ["Unescaped & ampersand"]
    assert [level for level, _ in parsed.notes] == [logging.WARNING]
    assert "not well-formed XML" in parsed.notes[0][1] and URL in parsed.notes[0][1]


@pytest.mark.parametrize(("body", "content_type", "message"), [
    ("", "application/rss+xml", "empty response"),
    ("  \n ", "application/rss+xml", "empty response"),
    ("<!DOCTYPE html><html><head><title>News</title></head><body><p>Hi</p></body></html>",
     "text/html; charset=utf-8", "got an HTML page, not a feed (Content-Type: text/html)"),
    ("<html><body>Moved to our new site</body></html>", "application/xml", "HTML page"),
    ('{"version": "https://jsonfeed.org/version/1.1"}', "application/json",
     "not an RSS or Atom feed"),
    ('<?xml version="1.0"?><note><to>x</to></note>', "application/xml",
     "not an RSS or Atom feed"),
    ('<?xml version="1.0"?><rss version="2.0"><channel><title>Broken &&& <<<',
     "application/xml", "not well-formed XML"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "image/png", "not an RSS or Atom feed"),
])
def test_documents_that_are_not_feeds_are_errors(
    body: str | bytes, content_type: str, message: str
) -> None:
    parsed = parse(body, content_type)
    assert parsed.items == ()
    assert parsed.error is not None and message in parsed.error


def test_an_empty_but_valid_feed_is_no_error() -> None:
    parsed = parse('<rss version="2.0"><channel><title>t</title></channel></rss>')
    assert parsed.error is None and parsed.items == ()


def test_titles_are_text_and_links_only_http() -> None:
    body = """<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom">
    <title>t</title><id>urn:t</id><updated>2024-12-04T09:00:00Z</updated>
    <entry><id>urn:1</id><updated>2024-12-04T09:00:00Z</updated>
    <title type="html">A &lt;b&gt;bold&lt;/b&gt; &amp;amp;
    &lt;script&gt;alert(1)&lt;/script&gt;move</title>
    <link href="javascript:alert(1)"/></entry>
    <entry><id>urn:2</id><updated>2024-12-04T09:00:00Z</updated><title>Data</title>
    <link href="data:text/html,&lt;script&gt;alert(1)&lt;/script&gt;"/></entry></feed>"""
    first, second = items_of(body)
    assert first.title == "A bold & move"
    assert first.link is None and second.link is None


def test_billion_laughs_does_not_expand() -> None:
    lols = "\n".join(
        f'<!ENTITY lol{n} "{("&lol" + str(n - 1) + ";") * 10}">' for n in range(1, 10))
    body = f"""<?xml version="1.0"?>
<!DOCTYPE rss [
<!ENTITY lol0 "lol">
{lols}
]>
<rss version="2.0"><channel><title>t</title>
<item><title>Laugh &lol9;</title><link>https://x.test/1</link>
<description>&lol9;</description></item></channel></rss>"""
    started = time.monotonic()
    parsed = parse(body)
    assert time.monotonic() - started < 5
    for item in parsed.items:
        assert len(item.title) + len(item.content) < 1000
        assert "lollol" not in item.title + item.content


def test_one_line_billion_laughs_does_not_expand() -> None:
    levels = "".join(f'<!ENTITY {name} "{("&" + below + ";") * 10}">'
                     for below, name in zip("abcdef", "bcdefg", strict=True))
    body = (f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">{levels}]>'
            '<rss version="2.0"><channel><title>t</title><item><title>x &g;</title>'
            '<description>&g;</description></item></channel></rss>')
    parsed = parse(body)
    for item in parsed.items:
        assert len(item.title) + len(item.content) < 1000


@pytest.mark.parametrize("declaration", [
    '<!ENTITY xxe SYSTEM "file:///etc/passwd">',
    '<!ENTITY % remote SYSTEM "file:///etc/passwd"> %remote;',
    '<!ENTITY xxe PUBLIC "-//x//EN" "file:///etc/passwd">',
])
def test_external_entities_are_never_read(declaration: str) -> None:
    body = f"""<?xml version="1.0"?>
<!DOCTYPE rss [ {declaration} ]>
<rss version="2.0"><channel><title>t</title>
<item><title>Leak &xxe;</title><link>https://x.test/1</link>
<description>Secret: &xxe;</description></item></channel></rss>"""
    parsed = parse(body)
    for item in parsed.items:
        assert "root:" not in item.title + item.content


def test_script_and_handlers_never_survive_normalize() -> None:
    body = """<rss version="2.0"><channel><title>t</title><item><title>x</title>
    <link>https://x.test/1</link><description><![CDATA[<p onclick="steal()">Hi
    <script>alert(1)</script><a href="javascript:alert(2)">click</a>
    <img src="x" onerror="alert(3)"><iframe src="https://evil.test/"></iframe>
    <a href="jav&#x09;ascript:alert(4)">tab</a><object data="x"></object>
    <embed src="x.swf"></p>]]></description></item></channel></rss>"""
    (raw,) = items_of(body)
    item = normalize(raw, DIRECTORY, NOW).item
    assert item is not None and item.html is not None
    lowered = item.html.lower()
    for bad in ("<script", "onclick", "onerror", "javascript:", "<iframe", "<object",
                "<embed", "alert("):
        assert bad not in lowered, bad
    assert "Hi" in item.html and "click" in item.html
