#!/usr/bin/env python3
"""Compare feed parsing paths: feedparser (the reference) against the fast path, on
feedparser's corpus and on realistic news feeds.

For every document of ../shared/corpora/feedparser-tests (read in place; served headers
from each file's `Header:` lines) it prints:

- the shipped path (`aggregator.sources.fastparse`, feedparser-rs behind its guards): how
  many documents it takes, how many of those give exactly feedparser's items (every field
  feed.py reads: title, content and its type, base, link, guid, date), and every difference;
- each candidate library without the guards (feedparser-rs, and fastfeedparser when it is
  installed), and fastfeedparser behind the same guards: agreements and differences, to show
  why the guards are there and why feedparser-rs was chosen;
- the CPU seconds of each path over the corpus, and over `--feeds` synthetic news feeds of
  50 entries (the documents of benchmarks/live_feeds.py).

    python benchmarks/fast_parse.py [--feeds 100] [--show 10]

fastfeedparser is not a dependency: `pip install fastfeedparser` to include it.
"""

from __future__ import annotations

import argparse
import calendar
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aggregator.model import RawItem
from aggregator.sources import fastparse
from aggregator.sources.feed import ParseRequest, _items, parse_feed_with_feedparser

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpora" / "feedparser-tests"
_HEADER_LINE = re.compile(r"^\s*Header:\s*([^:\s]+)\s*:\s*(.*?)\s*$", re.MULTILINE)

Entries = Sequence[Mapping[str, Any]] | None
"""A parser's entries in the shape feed.py reads, or None when it declines or fails."""


@dataclass(frozen=True)
class Document:
    name: str
    body: bytes
    headers: dict[str, str]

    def request(self) -> ParseRequest:
        url = "http://127.0.0.1:1/corpus/" + self.name
        return ParseRequest(body=self.body, headers=self.headers, url=url, name=url,
                            source_id="feed:" + url, agency="nato")


@dataclass
class Tally:
    taken: int = 0
    declined: int = 0
    agree: int = 0
    differ: list[str] = field(default_factory=list)
    cpu: float = 0.0


def corpus() -> list[Document]:
    documents = []
    for path in sorted(CORPUS.rglob("*.xml")):
        body = path.read_bytes()
        documents.append(Document(path.relative_to(CORPUS).as_posix(), body,
                                  declared_headers(body)))
    return documents


def declared_headers(body: bytes) -> dict[str, str]:
    for encoding in ("utf-8", "utf-16", "utf-32"):
        try:
            head = body[:4096].decode(encoding)
        except UnicodeDecodeError:
            continue
        end = head.find("-->")
        found = _HEADER_LINE.findall(head[: end if end >= 0 else len(head)])
        if found:
            return {name.lower(): value for name, value in found}
    return {}


# -- the candidates, each giving entries in feed.py's shape --------------------------------


def shipped(document: Document) -> Entries:
    return fastparse.parse_entries(document.body, document.headers,
                                   document.request().url)


def feedparser_rs_bare(document: Document) -> Entries:
    import feedparser_rs

    try:
        parsed = feedparser_rs.parse(document.body, sanitize_html=False,
                                     resolve_relative_uris=False)
    except Exception:
        return None
    return list(parsed.entries)


def fastfeedparser_bare(document: Document) -> Entries:
    import fastfeedparser

    try:
        parsed = fastfeedparser.parse(document.body)
    except Exception:
        return None
    return [_from_fastfeedparser(entry) for entry in parsed.entries]


def fastfeedparser_guarded(document: Document) -> Entries:
    if shipped(document) is None:
        return None  # the same guards as the shipped path
    return fastfeedparser_bare(document)


_FFP_TYPES = {"text": "text/plain", "html": "text/html", "xhtml": "application/xhtml+xml"}


def _from_fastfeedparser(entry: Mapping[str, Any]) -> dict[str, Any]:
    """fastfeedparser's entry in feedparser's shape, as far as its data model allows."""
    content = [{"type": _FFP_TYPES.get(c.get("type") or "", c.get("type")),
                "value": c.get("value"), "base": c.get("base")}
               for c in entry.get("content") or []]
    summary = entry.get("description")
    return {
        "title": entry.get("title"),
        "title_detail": {"value": entry.get("title")},
        "content": content,
        "summary_detail": {"type": "text/html", "value": summary} if summary else None,
        "id": entry.get("id"),
        "link": entry.get("link"),
        "published_parsed": _struct(entry.get("published")),
        "updated_parsed": _struct(entry.get("updated")),
    }


def _struct(value: object) -> time.struct_time | None:
    if not isinstance(value, str):
        return None
    try:
        return time.gmtime(calendar.timegm(datetime.fromisoformat(value).utctimetuple()))
    except ValueError:
        return None


# -- comparing ------------------------------------------------------------------------------


def reference(documents: Sequence[Document]) -> tuple[dict[str, tuple[RawItem, ...] | None],
                                                      float]:
    """feedparser's items of each document (None for a document it rejects), and its CPU."""
    started = time.process_time()
    items = {}
    for document in documents:
        parsed = parse_feed_with_feedparser(document.request())
        items[document.name] = None if parsed.error else parsed.items
    return items, time.process_time() - started


def compare(documents: Sequence[Document], expected: Mapping[str, tuple[RawItem, ...] | None],
            candidate: Callable[[Document], Entries]) -> Tally:
    tally = Tally()
    for document in documents:
        started = time.process_time()
        entries = candidate(document)
        try:
            items = None if entries is None else tuple(_items(entries, document.request(), []))
        except Exception as exc:  # feed.py cannot take what this parser gave
            tally.cpu += time.process_time() - started
            tally.taken += 1
            tally.differ.append(f"{document.name}: error: {exc!r}")
            continue
        tally.cpu += time.process_time() - started
        if items is None:
            tally.declined += 1
            continue
        tally.taken += 1
        if items == expected[document.name]:
            tally.agree += 1
        else:
            tally.differ.append(f"{document.name}: {_difference(expected[document.name], items)}")
    return tally


def _difference(expected: tuple[RawItem, ...] | None, got: tuple[RawItem, ...]) -> str:
    if expected is None:
        return f"feedparser rejects it; this gave {len(got)} items"
    if len(expected) != len(got):
        return f"{len(expected)} items from feedparser, {len(got)} from this"
    for ours, theirs in zip(expected, got, strict=True):
        for name in RawItem.__slots__:
            if getattr(ours, name) != getattr(theirs, name):
                return (f"{name}: feedparser {str(getattr(ours, name))[:60]!r}, "
                        f"this {str(getattr(theirs, name))[:60]!r}")
    return "?"


def news_documents(feeds: int) -> list[Document]:
    """`feeds` synthetic news feeds of 50 entries (RSS 2.0, every fifth Atom)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import live_feeds

    with tempfile.TemporaryDirectory(prefix="newswire-fastparse-") as workdir:
        budget = live_feeds.Budget(600)
        items = live_feeds.news_items(feeds * 50, Path(workdir), budget)
    bodies = live_feeds.render_feeds(items, feeds, 50)
    return [Document(f"news-{n}.xml", body, {"content-type": (
        "application/atom+xml" if b"<feed" in body[:200] else "application/rss+xml")
        + "; charset=utf-8"}) for n, body in enumerate(bodies)]


def report(title: str, documents: Sequence[Document], show: int,
           candidates: Mapping[str, Callable[[Document], Entries]]) -> None:
    expected, reference_cpu = reference(documents)
    size = sum(len(d.body) for d in documents) / 1e6
    print(f"\n{title}: {len(documents)} documents, {size:.1f} MB")
    print(f"  {'feedparser (reference)':38s} CPU {reference_cpu:6.2f} s")
    for name, candidate in candidates.items():
        tally = compare(documents, expected, candidate)
        print(f"  {name:38s} CPU {tally.cpu:6.2f} s; takes {tally.taken}, declines "
              f"{tally.declined}; of those taken: {tally.agree} same items, "
              f"{len(tally.differ)} different")
        kinds = Counter(line.split(": ", 1)[1].split(":")[0] for line in tally.differ)
        if kinds:
            print("      differences by field: " + ", ".join(
                f"{kind} {count}" for kind, count in kinds.most_common(8)))
        for line in tally.differ[:show]:
            print(f"      {line}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=100,
                        help="synthetic news feeds of 50 entries (0: none)")
    parser.add_argument("--show", type=int, default=8, help="differences listed per path")
    args = parser.parse_args()
    candidates: dict[str, Callable[[Document], Entries]] = {
        "shipped fast path (feedparser-rs, guarded)": shipped,
        "feedparser-rs, no guards": feedparser_rs_bare,
    }
    try:
        import fastfeedparser  # noqa: F401
    except ImportError:
        print("fastfeedparser is not installed: pip install fastfeedparser to compare it")
    else:
        candidates["fastfeedparser, no guards"] = fastfeedparser_bare
        candidates["fastfeedparser, same guards"] = fastfeedparser_guarded
    documents = corpus()
    if len(documents) < 2000:
        sys.exit(f"corpus not found or incomplete at {CORPUS}")
    report("feedparser-tests corpus", documents, args.show, candidates)
    if args.feeds:
        report("synthetic news feeds", news_documents(args.feeds), args.show, candidates)
    print("\nCPU seconds of this process (time.process_time); the machine is shared.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
