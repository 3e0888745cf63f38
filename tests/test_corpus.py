"""feedparser's corpus of real-world feed documents, served as live feeds (opt-in).

Every one of the 2,106 documents in ../shared/corpora/feedparser-tests (relative to the
repository; read in place, never copied) is served on 127.0.0.1 with the HTTP headers its
leading comment names, and the real `aggregate` CLI reads them all in one run. Each must give
its items or a clear error naming its URL: never a crash, never unsafe markup in anything
published or stored. The fast parsing path must give exactly feedparser's items for every
document it takes (and take enough of them to matter). Run with:

    NEWSWIRE_CORPUS=1 pytest -m corpus -s
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections import Counter
from pathlib import Path

import pytest
from conftest import REPO, Workspace
from pytest_httpserver import HTTPServer
from unsafe_markup import html_problems, unsafe_markup
from werkzeug import Request, Response

from aggregator.sources import fastparse
from aggregator.sources.feed import ParseRequest, parse_feed, parse_feed_with_feedparser

CORPUS = REPO.parent / "shared" / "corpora" / "feedparser-tests"
SERVED_UNDER = "/corpus/"

pytestmark = [
    pytest.mark.corpus,
    pytest.mark.skipif(os.environ.get("NEWSWIRE_CORPUS") != "1",
                       reason="opt-in: set NEWSWIRE_CORPUS=1"),
]

_HEADER_LINE = re.compile(r"^\s*Header:\s*([^:\s]+)\s*:\s*(.*?)\s*$", re.MULTILINE)


def corpus_documents() -> dict[str, Path]:
    """Every corpus document by the path it is served at."""
    files = sorted(p for p in CORPUS.rglob("*.xml") if p.is_file())
    return {SERVED_UNDER + p.relative_to(CORPUS).as_posix(): p for p in files}


def declared_headers(data: bytes) -> list[tuple[str, str]]:
    """The `Header: Name: value` lines of a document's leading comment."""
    for encoding in ("utf-8", "utf-16", "utf-32"):
        try:
            head = data[:4096].decode(encoding)
        except UnicodeDecodeError:
            continue
        end = head.find("-->")
        found = _HEADER_LINE.findall(head[: end if end >= 0 else len(head)])
        if found:
            return found
    return []


def test_every_corpus_document_gives_items_or_a_clear_error(
    tmp_path: Path, loopback: HTTPServer
) -> None:
    documents = corpus_documents()
    assert len(documents) > 2000, f"corpus not found or incomplete at {CORPUS}"
    bodies = {path: file.read_bytes() for path, file in documents.items()}

    def serve(request: Request) -> Response:
        body = bodies.get(request.path)
        if body is None:
            return Response("not in the corpus", status=404)
        response = Response(body)
        response.headers.remove("Content-Type")  # only what the document asks for
        for name, value in declared_headers(body):
            response.headers.add(name, value)
        return response

    loopback.expect_request(re.compile("^" + re.escape(SERVED_UNDER))).respond_with_handler(
        serve)
    urls = {loopback.url_for(path): path for path in documents}
    ws = Workspace(tmp_path)
    ws.write_config(
        '\n[fetch]\ntimeout = "20s"\nconcurrency = 16\nper_host = 16\n'
        + "".join(f'\n[[sources]]\ntype = "feed"\nagency = "nato"\nurl = "{url}"\n'
                  for url in urls),
        seeds=False,
        header='[output]\ndir = "../output"\nmax_entries = 100000\n'
               '[store]\npath = "../state/aggregator.db"\n',
    )
    result = ws.run("--once", timeout=1800)
    assert result.returncode in (0, 1), result.stderr[-5000:]
    assert "Traceback" not in result.stderr

    errors: dict[str, str] = {}
    for line in result.stderr.splitlines():
        match = re.match(r"aggregate: error: (http://\S+?): (.*)$", line)
        if match and match.group(1) in urls:
            errors[match.group(1)] = match.group(2)
    crashed = {url: reason for url, reason in errors.items() if "internal error" in reason}
    skipped_items = [line for line in result.stderr.splitlines() if "item skipped" in line]

    unsafe = unsafe_markup(ws.output)
    with sqlite3.connect(ws.state) as db:
        stored = db.execute("select source_id, html, link from items").fetchall()
        succeeded = {row[0] for row in db.execute(
            "select source_id from sources where last_success is not null")}
    unsafe_sources = set()
    for source_id, html, link in stored:
        problems = html_problems(html or "", source_id)
        if link and not link.startswith(("http://", "https://")):
            problems.append(f"{source_id}: link {link!r}")
        if problems:
            unsafe_sources.add(source_id.removeprefix("feed:"))
            unsafe.extend(problems)

    ok = [url for url in urls if url not in errors]
    clear = [url for url in errors if url not in crashed]
    kinds = Counter(re.sub(r"\(.*|:.*|\d+", "", reason).strip() for reason in errors.values())
    print(f"\ncorpus: {len(urls)} documents: {len(ok)} ok ({len(stored)} items stored), "
          f"{len(clear)} clear errors, {len(crashed)} crashes, {len(unsafe_sources)} unsafe; "
          f"{len(skipped_items)} items skipped by an internal error")
    for kind, count in kinds.most_common():
        print(f"  {count:5d}  {kind}")
    assert crashed == {}, list(crashed.items())[:20]
    assert skipped_items == [], skipped_items[:20]
    assert unsafe == [], unsafe[:20]
    assert {"feed:" + url for url in ok} <= succeeded  # "ok" means read, not just unmentioned
    assert ok and stored


def test_fast_path_gives_feedparsers_items_for_every_document_it_takes() -> None:
    documents = corpus_documents()
    assert len(documents) > 2000, f"corpus not found or incomplete at {CORPUS}"
    taken = 0
    differences = []
    for path, file in documents.items():
        body = file.read_bytes()
        headers = {name.lower(): value for name, value in declared_headers(body)}
        url = "http://127.0.0.1:9" + path
        request = ParseRequest(body=body, headers=headers, url=url, name=url,
                               source_id="feed:" + url, agency="nato")
        taken += fastparse.parse_entries(body, headers, url) is not None
        ours, reference = parse_feed(request), parse_feed_with_feedparser(request)
        if (ours.items, ours.error) != (reference.items, reference.error):
            differences.append(path)
    print(f"\nfast path: takes {taken} of {len(documents)} corpus documents; "
          f"{len(differences)} differ from feedparser")
    assert differences == []
    # The plain RSS 2.0 and Atom 1.0 documents: without them the test would prove nothing.
    assert taken >= 500
