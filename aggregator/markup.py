"""HTML in and out: the allow-list sanitizer, HTML to text, and text to safe HTML.

Everything a source sends passes `sanitize_html` (nh3, an allow-list: no script, style,
event handler, `javascript:` URL, iframe, object or embed survives) before it is stored or
published; text the aggregator writes itself is escaped by `text_to_html`.
"""

from __future__ import annotations

import html
import re
from urllib.parse import urljoin, urlsplit

import nh3

from aggregator.urls import encode_url

ALLOWED_TAGS = frozenset({
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "dd", "del", "dl", "dt",
    "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins",
    "kbd", "li", "ol", "p", "pre", "q", "s", "small", "strong", "sub", "sup", "table", "tbody",
    "td", "tfoot", "th", "thead", "time", "tr", "u", "ul",
})
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "abbr": {"title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "time": {"datetime"},
    "ol": {"start"},
}
ALLOWED_URL_SCHEMES = frozenset({"http", "https", "mailto"})

# Characters XML 1.0 forbids, and the two non-characters feedgen's lxml rejects.
_XML_ILLEGAL = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]"
)
_BLOCK_END = re.compile(
    r"<\s*(?:br\s*/?|/\s*(?:p|div|li|h[1-6]|blockquote|pre|tr|table|ul|ol|dl|dd|dt|figure|"
    r"section|article|header|footer))\s*>",
    re.IGNORECASE,
)
_URL_ATTRIBUTES = re.compile(r'(\s(?:href|src)=")([^"]*)(")')


def xml_safe(text: str) -> str:
    """`text` without the control characters and non-characters XML 1.0 cannot hold."""
    return _XML_ILLEGAL.sub("", text)


def sanitize_html(fragment: str, base_url: str | None = None) -> str:
    """An allow-listed copy of `fragment`; relative links resolved against `base_url`."""
    cleaned: str = nh3.clean(
        xml_safe(fragment),
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(attrs) for tag, attrs in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(ALLOWED_URL_SCHEMES),
        link_rel="noopener noreferrer",
    )
    if base_url:
        cleaned = _URL_ATTRIBUTES.sub(
            lambda m: m.group(1) + html.escape(_absolute(base_url, m.group(2)), quote=True)
            + m.group(3),
            cleaned,
        )
    return encode_html_urls(cleaned)


def encode_html_urls(fragment: str) -> str:
    """`fragment` with every href and src a valid URI (`urls.encode_url`)."""
    if "href=" not in fragment and "src=" not in fragment:
        return fragment  # nothing to encode (most texts): skip the pattern's scan
    return _URL_ATTRIBUTES.sub(
        lambda m: m.group(1) + html.escape(encode_url(html.unescape(m.group(2))), quote=True)
        + m.group(3),
        fragment,
    )


def _absolute(base_url: str, escaped_url: str) -> str:
    url = urljoin(base_url, html.unescape(escaped_url))
    # urljoin can produce a scheme the sanitizer never saw (e.g. from a relative "javascript:"
    # reference resolved oddly); anything outside the allow-list becomes an inert fragment.
    if urlsplit(url).scheme not in ALLOWED_URL_SCHEMES:
        return "#"
    return url


def html_to_text(fragment: str) -> str:
    """Readable plain text of an HTML fragment: block ends become paragraph breaks."""
    marked = _BLOCK_END.sub("\n\n", fragment)
    stripped: str = nh3.clean(marked, tags=set(), attributes={})
    return html.unescape(stripped)


def text_to_html(text: str) -> str:
    """Escaped HTML of normalized text: paragraphs as `<p>`, line breaks inside as `<br>`."""
    return "".join(paragraphs_html(text))


def paragraphs_html(text: str) -> list[str]:
    """`text_to_html` of each paragraph of a text (blank ones left out)."""
    # Escaping touches no whitespace, so the text is escaped whole, then split and broken.
    return ["<p>" + p.replace("\n", "<br>") + "</p>"
            for p in html.escape(text).split("\n\n") if p.strip()]
