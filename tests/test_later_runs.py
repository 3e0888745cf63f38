"""A later run places items as a cold run does, through the real store and the real CLI.

`test_dedup_quality` checks this on the evaluation harness, which stands in for the store's
candidate queries. Here the blind sets' own feeds are served on loopback: one workspace reads
them in one cold run, another in two (first the items dated up to a day, then everything),
and both must publish the same stories. (An item that arrives after items dated later than
it is placed after them, not where a cold run would have placed it.)
"""

from __future__ import annotations

import json
import sqlite3
import textwrap
from pathlib import Path

import feedparser
import pytest
from conftest import Workspace
from dedup_eval import BLIND_DIR
from lxml import etree
from pytest_httpserver import HTTPServer

SETS = tuple(sorted(d.name for d in BLIND_DIR.iterdir() if (d / "labels.toml").is_file()))
"""Every blind set (the test takes a few seconds a set)."""


def _entry_ids(document: bytes) -> list[str]:
    return [e.id for e in feedparser.parse(document).entries]


def _only(document: bytes, kept: set[str]) -> bytes:
    """The feed with only the entries whose ids are in `kept`."""
    root = etree.fromstring(document)
    for element in list(root.iter("item", "{http://www.w3.org/2005/Atom}entry")):
        ident = element.findtext("guid") or element.findtext("{http://www.w3.org/2005/Atom}id")
        if ident not in kept:
            element.getparent().remove(element)
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def _dates(ws: Workspace) -> dict[str, str | None]:
    """Each stored item's date as the aggregator read it (feed, or the text), by the guid
    its feed gives (an Atom id is stored resolved against the feed's address)."""
    with sqlite3.connect(ws.state) as db:
        return {guid.rsplit("/", 1)[-1]: published
                for guid, published in db.execute("SELECT guid, published FROM items")}


def _workspace(root: Path, server: HTTPServer, files: list[Path]) -> Workspace:
    ws = Workspace(root)
    sources = "".join(
        f'\n[[sources]]\ntype = "feed"\nagency = "{path.name.split(".")[0].split("-")[0]}"\n'
        f'url = "{server.url_for("/" + path.name)}"\n' for path in files)
    ws.write_config(sources, seeds=False, header=textwrap.dedent("""
        [output]
        dir = "../output"
        base_url = "http://feeds.example.test/"
        title = "Test Newswire"
        max_entries = 1000

        [store]
        path = "../state/aggregator.db"

        [fetch]
        timeout = "5s"
        per_host = 8
    """))
    return ws


def _serve(server: HTTPServer, files: list[Path], kept: set[str] | None) -> None:
    server.clear()
    for path in files:
        body = path.read_bytes()
        server.expect_request("/" + path.name).respond_with_data(
            body if kept is None else _only(body, kept), content_type="application/xml")


def _stories(ws: Workspace) -> set[frozenset[str]]:
    """Each published story as the set of its members' ids (the same for one entry of one
    feed in any workspace)."""
    items = json.loads((ws.output / "combined.json").read_text(encoding="utf-8"))["items"]
    return {frozenset(m["guid"] for m in i["_aggregator"]["members"]) for i in items}


@pytest.mark.parametrize("name", SETS)
def test_two_runs_publish_the_stories_one_cold_run_publishes(
    name: str, tmp_path: Path, loopback: HTTPServer
) -> None:
    files = sorted((BLIND_DIR / name / "feeds").glob("*.xml"))
    cold = _workspace(tmp_path / "cold", loopback, files)
    _serve(loopback, files, None)
    whole = cold.run("--once")
    assert whole.returncode == 0, whole.stderr
    stories = _stories(cold)
    dates = _dates(cold)
    # Every stored item is published (entries that are one item, such as one guid in two
    # files, are stored once).
    assert sum(len(s) for s in stories) == len(dates) >= 0.95 * sum(
        len(_entry_ids(p.read_bytes())) for p in files)
    assert any(len(s) > 1 for s in stories)

    # The earlier half by date (as the aggregator dates items, from the feed or the text)
    # first; then the rest, undated items among them, as a cold run places them last.
    dated = sorted(d for d in dates.values() if d is not None)
    middle = dated[len(dated) // 2]
    earlier = {guid for guid, day in dates.items() if day is not None and day <= middle}
    later = _workspace(tmp_path / "later", loopback, files)
    _serve(loopback, files, earlier)
    first = later.run("--once")
    assert first.returncode == 0, first.stderr
    _serve(loopback, files, None)
    second = later.run("--once")
    assert second.returncode == 0, second.stderr
    assert _stories(later) == stories
