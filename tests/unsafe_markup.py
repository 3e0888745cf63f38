"""Find unsafe markup in published files, reading each file as what it is.

Atom and RSS are parsed as XML and the HTML they carry (escaped content) as HTML; JSON Feed's
`content_html` as HTML and its URLs as URLs; index.html as HTML. Unsafe: a script, iframe,
object or embed element, an event-handler attribute, or a URL attribute whose scheme is
not http, https or mailto (javascript:, data:, vbscript:, ...), and any link of an entry
that is not http(s).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

UNSAFE_TAGS = frozenset({"script", "iframe", "object", "embed", "frame", "frameset", "applet",
                         "base", "form", "meta", "link", "style"})
PAGE_TAGS = frozenset({"meta", "link", "style"})  # index.html's own head uses these
URL_ATTRIBUTES = frozenset({"href", "src", "action", "formaction", "xlink:href", "poster",
                            "background", "data", "srcset"})
SAFE_SCHEMES = frozenset({"", "http", "https", "mailto"})
ATOM = "{http://www.w3.org/2005/Atom}"


class _Scanner(HTMLParser):
    def __init__(self, where: str, page: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.where = where
        self.page = page
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in UNSAFE_TAGS and not (self.page and tag in PAGE_TAGS):
            self.problems.append(f"{self.where}: <{tag}> element")
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"{self.where}: event handler {name}= on <{tag}>")
            if name in URL_ATTRIBUTES and value is not None and not _safe_url(value):
                self.problems.append(f"{self.where}: {name}={value!r} on <{tag}>")


def _safe_url(value: str) -> bool:
    # What a browser does: strip whitespace and control characters before the scheme.
    cleaned = "".join(ch for ch in value if ch > " " and ch != "\x7f")
    try:
        scheme = urlsplit(cleaned).scheme.lower()
    except ValueError:
        return False
    return scheme in SAFE_SCHEMES


def html_problems(fragment: str, where: str, *, page: bool = False) -> list[str]:
    """Unsafe elements, attributes and URLs in an HTML document or fragment."""
    scanner = _Scanner(where, page)
    scanner.feed(fragment)
    scanner.close()
    return scanner.problems


def _link_problem(url: Any, where: str) -> list[str]:
    if url is None:
        return []
    if not isinstance(url, str) or urlsplit(url.strip()).scheme.lower() not in ("http", "https"):
        return [f"{where}: link {url!r} is not http(s)"]
    return []


def _feed_xml_problems(path: Path) -> list[str]:
    root = ET.parse(path).getroot()
    problems: list[str] = []
    for element in root.iter():
        tag = element.tag
        carries_html = tag == "description" or (tag in (f"{ATOM}content", f"{ATOM}summary")
                                                and element.get("type") in ("html", "xhtml"))
        if carries_html and element.text:
            problems += html_problems(element.text, f"{path.name} <{tag}>")
        if tag == f"{ATOM}link":
            problems += _link_problem(element.get("href"), f"{path.name} <link>")
        if tag in ("link", "comments") and element.text:
            problems += _link_problem(element.text.strip(), f"{path.name} <{tag}>")
    return problems


def _json_problems(path: Path) -> list[str]:
    document = json.loads(path.read_text(encoding="utf-8"))
    problems: list[str] = []
    for item in document.get("items", []):
        where = f"{path.name} item {item.get('id')}"
        problems += html_problems(item.get("content_html", ""), where)
        problems += _link_problem(item.get("url"), where)
        problems += _link_problem(item.get("external_url"), where)
        for member in item.get("_aggregator", {}).get("members", []):
            problems += _link_problem(member.get("url"), where + " member")
    return problems


def unsafe_markup(output_dir: Path) -> list[str]:
    """Every unsafe thing in the published files of `output_dir` (empty when all is well)."""
    problems: list[str] = []
    for path in sorted(output_dir.rglob("*")):  # archives in archive/ too
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix in (".atom", ".rss"):
            problems += _feed_xml_problems(path)
        elif path.suffix == ".json":
            problems += _json_problems(path)
        elif path.suffix == ".html":
            problems += html_problems(path.read_text(encoding="utf-8"), path.name, page=True)
    return problems
