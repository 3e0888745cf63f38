"""Live feeds end to end: the real `aggregate` CLI fetching from a loopback HTTP server.

Each bad case must give a clear message naming the URL, cost nothing else (the other
sources publish, earlier output stays) and make the run exit 1.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXED_NOW, Workspace
from pytest_httpserver import HTTPServer
from unsafe_markup import unsafe_markup
from werkzeug import Request, Response

from aggregator.store import open_store

FETCH_TABLE = """
[fetch]
timeout = "1s"
max_bytes = 200000
per_host = 8
backoff = "1s"
"""


@dataclass(frozen=True)
class Entry:
    """One feed entry for a test feed."""

    title: str
    guid: str | None = None
    link: str | None = None
    html: str = "<p>Body.</p>"
    date: datetime | None = datetime(2024, 12, 2, 10, 0, tzinfo=UTC)


def rss(entries: Sequence[Entry], title: str = "Agency news") -> bytes:
    """An RSS 2.0 document of `entries`."""
    parts = [f'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
             f"<title>{escape(title)}</title><link>https://agency.test/</link>"
             "<description>News</description>"]
    for entry in entries:
        parts.append("<item>")
        parts.append(f"<title>{escape(entry.title)}</title>")
        if entry.guid:
            parts.append(f'<guid isPermaLink="false">{escape(entry.guid)}</guid>')
        if entry.link:
            parts.append(f"<link>{escape(entry.link)}</link>")
        if entry.date:
            parts.append(f"<pubDate>{format_datetime(entry.date)}</pubDate>")
        parts.append(f"<description>{escape(entry.html)}</description></item>")
    parts.append("</channel></rss>")
    return "".join(parts).encode()


STORIES = [
    ("Coast guard rescues fishermen off Crete", "A helicopter lifted four crew from a sinking "
     "trawler near Heraklion on Monday."),
    ("Judges in Lisbon convict vaccine fraud ring", "The court sentenced seven people for "
     "selling counterfeit doses through pharmacies in Porto."),
    ("Drone maker in Tampere wins innovation prize", "Engineers built a sensor that tracks "
     "wildfires across Lapland forests."),
    ("Customs officers seize ivory at Antwerp port", "Inspectors found tusks hidden in timber "
     "containers shipped from Mombasa."),
    ("Cyber range opens in Tallinn for allied students", "Cadets from Estonia and Poland "
     "practised defending a simulated power grid."),
    ("Archive of wartime letters returned to Ljubljana", "Historians catalogued diaries "
     "recovered by investigators in Trieste."),
    ("Border police dismantle visa forgery workshop in Sofia", "Officers confiscated printers, "
     "blank passports and holograms in Bulgaria."),
    ("Prosecutors freeze yacht linked to tax evasion in Malta", "Investigators traced payments "
     "through shell firms registered in Cyprus."),
    ("Mountain rescue drill tests radios in the Tatra range", "Slovak volunteers rehearsed an "
     "avalanche search with army medics."),
    ("Museum thieves caught after selling coins in Vienna", "Austrian detectives recovered "
     "Roman silver stolen from a Graz collection."),
    ("Icebreaker escorts grain convoy through the Gulf of Bothnia", "Finnish and Swedish crews "
     "cleared a lane for cargo ships bound for Oulu."),
    ("Wildlife traffickers sentenced for smuggling parrots via Madrid", "Spanish judges fined "
     "couriers who carried birds from Bolivia in suitcases."),
    ("Volunteers map flood damage along the Oder river", "Satellite images helped Polish "
     "firefighters reach villages near Wroclaw."),
    ("Police academy in Vilnius trains negotiators", "Lithuanian officers studied hostage "
     "talks with instructors from Ireland."),
]


def one_story_feed(name: str, number: int) -> bytes:
    title, text = STORIES[number % len(STORIES)]
    return rss([Entry(title, guid=f"{name}-1", link=f"https://agency.test/{name}/1",
                      html=f"<p>{text}</p>")])


def feed_sources(urls: Sequence[str], agency: str = "nato", extra: str = "") -> str:
    return "".join(f'\n[[sources]]\ntype = "feed"\nagency = "{agency}"\nurl = "{url}"\n{extra}'
                   for url in urls)


def combined(ws: Workspace) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(
        (ws.output / "combined.json").read_text(encoding="utf-8"))["items"]
    return items


def titles(ws: Workspace) -> set[str]:
    return {item["title"] for item in combined(ws)}


def requested(server: HTTPServer, path: str) -> int:
    return sum(1 for request, _ in server.log if request.path == path)


def mtimes(ws: Workspace) -> dict[str, int]:
    return {name: path.stat().st_mtime_ns for name, path in ws.output_files().items()}


def refused_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/feed"


def drip(_: Request) -> Response:
    def body() -> Iterator[bytes]:
        yield b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        for _ in range(50):
            time.sleep(0.1)
            yield b" "
    return Response(body(), content_type="application/rss+xml")


BAD_CASES: dict[str, tuple[dict[str, Any], str]] = {
    # path: (respond_with_data arguments, what the error message says)
    "/500": ({"response_data": "oops", "status": 500}, "HTTP 500 Internal Server Error"),
    "/big": ({"response_data": b"<rss>" + b" " * 300_000}, "response too large"),
    "/bomb": ({"response_data": gzip.compress(b" " * 20_000_000),
               "headers": {"Content-Encoding": "gzip"}}, "too large once decompressed"),
    "/html": ({"response_data": "<!DOCTYPE html><html><body><h1>Welcome</h1></body></html>",
               "content_type": "text/html"}, "got an HTML page, not a feed"),
    "/invalid": ({"response_data": '<?xml version="1.0"?><rss version="2.0"><channel>'
                  "<title>Broken &&& <<<"}, "not well-formed XML"),
    "/empty": ({"response_data": ""}, "empty response"),
    "/loop": ({"response_data": "", "status": 302, "headers": {"Location": "/loop2"}},
              "redirect loop"),
    "/loop2": ({"response_data": "", "status": 302, "headers": {"Location": "/loop"}}, ""),
    "/to-file": ({"response_data": "", "status": 301,
                  "headers": {"Location": "file:///etc/passwd"}}, "only http and https"),
    "/500b": ({"response_data": "", "status": 500}, "HTTP 500"),
}


def test_bad_feeds_fail_alone_and_keep_what_they_published(
    workspace: Workspace, loopback: HTTPServer
) -> None:
    bad_paths = [p for p in BAD_CASES if p != "/loop2"] + ["/slow"]
    urls = {path: loopback.url_for(path) for path in [*bad_paths, "/good"]}
    # Run 1: every feed works.
    for number, path in enumerate(urls):
        loopback.expect_request(path).respond_with_data(one_story_feed(path.strip("/"), number))
    workspace.write_config(FETCH_TABLE + feed_sources(list(urls.values())))
    first = workspace.run("--once")
    assert first.returncode == 0, first.stderr
    published = titles(workspace)
    assert len(published) == 19 + len(urls)

    # Run 2: they all break, but /good gains a story; a refused port joins the config.
    loopback.clear()
    for path, (response, _) in BAD_CASES.items():
        loopback.expect_request(path).respond_with_data(**response)
    loopback.expect_request("/slow").respond_with_handler(drip)
    good_title, good_text = STORIES[len(urls) - 1]
    loopback.expect_request("/good").respond_with_data(rss([
        Entry(good_title, guid="good-1", link="https://agency.test/good/1",
              html=f"<p>{good_text}</p>"),
        Entry("Second good story about a summit on maritime security", guid="good-2",
              link="https://agency.test/good/2", html="<p>Leaders met at the summit.</p>"),
    ]))
    refused = refused_url()
    workspace.write_config(FETCH_TABLE + feed_sources([*urls.values(), refused]))
    started = time.monotonic()
    second = workspace.run("--once")
    elapsed = time.monotonic() - started
    assert second.returncode == 1, second.stderr
    errors = [line for line in second.stderr.splitlines() if ": error: " in line]
    expected = {urls[p]: message for p, (_, message) in BAD_CASES.items() if p != "/loop2"}
    expected[urls["/slow"]] = "gave up after 1 s"
    expected[refused] = "cannot connect"
    for url, message in expected.items():
        mine = [line for line in errors if f"error: {url}: " in line]
        assert len(mine) == 1, (url, errors)
        assert message in mine[0], (url, mine[0])
    assert len(errors) == len(expected)
    assert "Traceback" not in second.stderr
    # Everything published before is still there, and the good feed's new story too.
    assert published <= titles(workspace)
    assert "Second good story about a summit on maritime security" in titles(workspace)
    assert "sources ok, 11 failed" in second.stderr
    assert elapsed < 15  # the slow feed costs its deadline, not the run


def test_retry_after_back_off_interval_and_enabled(
    workspace: Workspace, loopback: HTTPServer
) -> None:
    loopback.expect_request("/429").respond_with_data(
        "", status=429, headers={"Retry-After": "120"})
    # An HTTP date counts from the server's Date header (its real clock, not our pinned one).
    half_an_hour = format_datetime(datetime.now(UTC) + timedelta(minutes=30), usegmt=True)
    loopback.expect_request("/503").respond_with_data(
        "", status=503, headers={"Retry-After": half_an_hour})
    loopback.expect_request("/hourly").respond_with_data(one_story_feed("hourly", 0))
    loopback.expect_request("/off").respond_with_data(one_story_feed("off", 1))
    url = loopback.url_for
    workspace.write_config(
        FETCH_TABLE
        + feed_sources([url("/429"), url("/503")])
        + feed_sources([url("/hourly")], extra='interval = "1h"\n')
        + feed_sources([url("/off")], extra="enabled = false\n")
    )
    first = workspace.run("--once")
    assert first.returncode == 1
    assert (f"{url('/429')}: HTTP 429 Too Many Requests; the server asks us to wait 120 s "
            "(failed once; next attempt after 2026-11-23 09:02:00Z)") in first.stderr
    wait = re.search(rf"{re.escape(url('/503'))}: HTTP 503 Service Unavailable; the server "
                     r"asks us to wait until \S+ \S+Z \((\d+) min\) \(failed once; next "
                     r"attempt after 2026-11-23 09:(\d\d):\d\dZ\)", first.stderr)
    assert wait is not None, first.stderr
    assert int(wait.group(1)) == 30 and wait.group(2) in ("29", "30")

    # A minute later: nothing is due, the failing feeds are reported, not retried.
    second = workspace.run("--once", env={"AGGREGATOR_NOW": "2026-11-23T09:01:00Z"})
    assert second.returncode == 1
    assert f"{url('/429')}: HTTP 429" in second.stderr
    assert "failed once; next attempt after 2026-11-23 09:02:00Z" in second.stderr
    assert [requested(loopback, p) for p in ("/429", "/503", "/hourly", "/off")] == [1, 1, 1, 0]

    # An hour later the servers are fine again: everything due is fetched, and succeeds.
    loopback.clear()
    for number, path in enumerate(("/429", "/503", "/hourly", "/off")):
        loopback.expect_request(path).respond_with_data(one_story_feed(path.strip("/"), number))
    third = workspace.run("--once", env={"AGGREGATOR_NOW": "2026-11-23T10:00:00Z"})
    assert third.returncode == 0, third.stderr
    assert [requested(loopback, p) for p in ("/429", "/503", "/hourly", "/off")] == [1, 1, 1, 0]
    assert STORIES[0][0] in titles(workspace)
    with _store(workspace) as store:
        state = store.source_state("feed:" + url("/429"))
        assert state is not None and state.failures == 0 and state.last_error is None
        hourly = store.source_state("feed:" + url("/hourly"))
        assert hourly is not None
        assert hourly.next_attempt == datetime(2026, 11, 23, 11, 0, tzinfo=UTC)


def test_back_off_grows_while_a_feed_keeps_failing(tmp_path: Path, loopback: HTTPServer) -> None:
    """In-process: each failure doubles the wait (less up to 20 % jitter); no fetch before."""
    from aggregator.config import load_config
    from aggregator.pipeline import run_once

    loopback.expect_request("/down").respond_with_data("", status=500)
    ws = Workspace(tmp_path)
    ws.write_config(FETCH_TABLE.replace('backoff = "1s"', 'backoff = "60s"')
                    + feed_sources([loopback.url_for("/down")]), seeds=False)
    config = load_config(ws.config)
    now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    waits = []
    for attempt in range(1, 6):
        result = run_once(config, now=now)
        assert result.exit_code == 1
        with _store(ws) as store:
            state = store.source_state("feed:" + loopback.url_for("/down"))
        assert state is not None and state.failures == attempt and state.next_attempt
        waits.append((state.next_attempt - now).total_seconds())
        # A second before the wait is over: not fetched, still reported as failing.
        early = run_once(config, now=state.next_attempt - timedelta(seconds=1))
        assert early.exit_code == 1 and "HTTP 500" in (early.sources[0].error or "")
        assert requested(loopback, "/down") == attempt
        now = state.next_attempt
    assert requested(loopback, "/down") == 5
    assert "HTTP 500 Internal Server Error (5 failed attempts in a row; next attempt after" \
        in (result.sources[0].error or "")
    for attempt, wait in enumerate(waits):
        nominal = 60 * 2 ** attempt
        assert 0.8 * nominal - 1 <= wait <= nominal, waits


def test_conditional_get_redirects_edits_and_drops(
    workspace: Workspace, loopback: HTTPServer
) -> None:
    etag, modified = '"rev-1"', "Mon, 02 Dec 2024 10:00:00 GMT"
    stable = rss([Entry("Stable story about border security cooperation", guid="s-1",
                        link="https://agency.test/s/1")])

    def conditional(request: Request) -> Response:
        if (request.headers.get("If-None-Match") == etag
                and request.headers.get("If-Modified-Since") == modified):
            return Response(status=304)
        return Response(stable, headers={"ETag": etag, "Last-Modified": modified},
                        content_type="application/rss+xml")

    changing = [
        Entry("Old title of the cyber exercise report", guid="x-1", link="https://agency.test/x/1",
              html="<p>Allies trained cyber defence in Tallinn.</p>"),
        Entry("Dropped story about a maritime patrol", guid="y-1", link="https://agency.test/y/1",
              html="<p>Ships patrolled the Baltic Sea.</p>"),
        Entry("Undated statement on drug trafficking", guid="z-1", link="https://agency.test/z/1",
              html="<p>Police dismantled a network.</p>", date=None),
    ]
    loopback.expect_request("/conditional").respond_with_handler(conditional)
    loopback.expect_request("/changing").respond_with_data(rss(changing))
    loopback.expect_request("/old-home").respond_with_data(
        "", status=301, headers={"Location": "/new-home"})
    loopback.expect_request("/new-home").respond_with_data(one_story_feed("moved", 2))
    loopback.expect_request("/away").respond_with_data(
        "", status=302, headers={"Location": "/temporary"})
    loopback.expect_request("/temporary").respond_with_data(one_story_feed("visiting", 3))
    url = loopback.url_for
    workspace.write_config(FETCH_TABLE + feed_sources(
        [url("/conditional"), url("/changing"), url("/old-home"), url("/away")]))

    first = workspace.run("--once", env={"AGGREGATOR_NOW": "2026-11-23T09:00:00Z"})
    assert first.returncode == 0, first.stderr
    assert (f"{url('/old-home')}: moved permanently to {url('/new-home')}; fetching that "
            "from now on") in first.stderr
    before = {item["title"]: item for item in combined(workspace)}
    retitled_id = before["Old title of the cyber exercise report"]["id"]
    undated_date = before["Undated statement on drug trafficking"]["date_published"]
    assert undated_date == "2026-11-23T09:00:00+00:00"

    # A day later: the item is re-titled, one is dropped; the moved feed is fetched at its
    # new home directly, the temporarily redirected one at its configured URL.
    loopback.clear()
    loopback.expect_request("/conditional").respond_with_handler(conditional)
    loopback.expect_request("/changing").respond_with_data(rss([
        Entry("New title of the cyber exercise report", guid="x-1",
              link="https://agency.test/x/1", html=changing[0].html),
        changing[2],
    ]))
    loopback.expect_request("/new-home").respond_with_data(one_story_feed("moved", 2))
    loopback.expect_request("/away").respond_with_data(
        "", status=302, headers={"Location": "/temporary"})
    loopback.expect_request("/temporary").respond_with_data(one_story_feed("visiting", 3))
    second = workspace.run("--once", env={"AGGREGATOR_NOW": "2026-11-24T09:00:00Z"})
    assert second.returncode == 0, second.stderr
    conditional_request = next(r for r, _ in loopback.log if r.path == "/conditional")
    assert conditional_request.headers["If-None-Match"] == etag
    assert conditional_request.headers["If-Modified-Since"] == modified
    assert loopback.log[[r.path for r, _ in loopback.log].index("/conditional")][1].status_code \
        == 304
    assert requested(loopback, "/old-home") == 0 and requested(loopback, "/new-home") == 1
    assert requested(loopback, "/away") == 1
    after = {item["title"]: item for item in combined(workspace)}
    assert "Old title of the cyber exercise report" not in after
    assert after["New title of the cyber exercise report"]["id"] == retitled_id
    assert "Dropped story about a maritime patrol" in after
    assert after["Undated statement on drug trafficking"]["date_published"] == undated_date
    with _store(workspace) as store:
        moved = store.source_state("feed:" + url("/old-home"))
        away = store.source_state("feed:" + url("/away"))
        kept = store.source_state("feed:" + url("/conditional"))
    assert moved is not None and moved.current_url == url("/new-home")
    assert away is not None and away.current_url is None
    assert kept is not None and (kept.etag, kept.last_modified) == (etag, modified)

    # Nothing changed since: no file is rewritten.
    written = mtimes(workspace)
    third = workspace.run("--once", env={"AGGREGATOR_NOW": "2026-11-24T10:00:00Z"})
    assert third.returncode == 0, third.stderr
    assert "0 files written" in third.stderr
    assert mtimes(workspace) == written


PAYLOADS = {
    "/laughs": b"""<?xml version="1.0"?>
<!DOCTYPE rss [
<!ENTITY a "lollollollollollollollollollol">
<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
<!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
<!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
<!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;">
]>
<rss version="2.0"><channel><title>t</title><item><title>Laughing &g;</title>
<link>https://agency.test/laughs/1</link><description>&g;</description></item></channel></rss>""",
    "/xxe": b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<rss version="2.0"><channel><title>t</title><item><title>Leaking &xxe;</title>
<link>https://agency.test/xxe/1</link><description>Secret: &xxe;</description></item>
</channel></rss>""",
    "/script": rss([
        Entry("<script>alert('title')</script>Scripted title about police reform",
              guid="js-1", link="javascript:alert('link')",
              html="<p onmouseover=\"alert('hover')\">Police reform <script>alert('s')</script>"
                   "<a href=\"javascript:alert('a')\">read</a> <a href=\" jAvAsCrIpT:alert('b')\">"
                   "more</a> <img src=\"x.png\" onerror=\"alert('img')\">"
                   "<iframe src=\"https://evil.test/\"></iframe><object data=\"x\"></object>"
                   "<embed src=\"x.swf\"><svg><script>alert('svg')</script></svg>"
                   "<a href=\"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==\">d</a>"
                   "<form action=\"javascript:alert('f')\"><input></form>"
                   "<style>body{background:url(javascript:alert('css'))}</style></p>"),
    ]),
}


def test_hostile_feeds_leak_nothing_into_any_published_file(
    workspace: Workspace, loopback: HTTPServer
) -> None:
    for path, body in PAYLOADS.items():
        loopback.expect_request(path).respond_with_data(body, content_type="application/xml")
    workspace.write_config(FETCH_TABLE + feed_sources(
        [loopback.url_for(p) for p in PAYLOADS]))
    result = workspace.run("--once")
    assert "Traceback" not in result.stderr
    assert result.returncode in (0, 1), result.stderr
    published = {member["title"] for item in combined(workspace)
                 for member in item["_aggregator"]["members"]}
    for path, marker in (("/laughs", "Laughing"), ("/xxe", "Leaking"), ("/script", "Scripted")):
        # Each gave its item, or a clear error naming it.
        assert (f"error: {loopback.url_for(path)}: " in result.stderr
                or any(marker in title for title in published)), path
    assert unsafe_markup(workspace.output) == []
    passwd = Path("/etc/passwd").read_text(encoding="utf-8").splitlines()[0]
    for name, file in workspace.output_files().items():
        data = file.read_bytes()
        assert b"alert(" not in data, name
        assert passwd.encode() not in data and b"root:x:0:0" not in data, name
        assert b"lollollollollollollollollollollollollol" not in data, name
        assert len(data) < 2_000_000, name
    assert "Scripted title about police reform" in titles(workspace)


MONTENEGRO_TITLE = ("NATO Secretary General discusses security in the Western Balkans with the "
                    "President of Montenegro")
MONTENEGRO_HTML = (
    "<p>On Wednesday 4 December 2024, NATO Secretary General, Mark Rutte, met with the "
    "President of Montenegro, Jakov Milatović, at NATO Headquarters in Brussels.</p>"
    "<p>The Secretary General thanked Montenegro for promoting peace, stability and security "
    "in the Western Balkans and its contributions to NATO missions and operations. They "
    "discussed the importance of keeping NATO strong and stepping up support for Ukraine.</p>"
)
LIVE_LINK = "https://www.nato.int/cps/en/natohq/news_231256.htm"


def test_a_story_in_the_seeds_and_a_live_feed_is_one_story_with_the_live_link(
    workspace: Workspace, loopback: HTTPServer
) -> None:
    loopback.expect_request("/nato").respond_with_data(rss([
        Entry(MONTENEGRO_TITLE, guid="231256", link=LIVE_LINK, html=MONTENEGRO_HTML,
              date=datetime(2024, 12, 4, 14, 30, tzinfo=UTC)),
    ], title="NATO News"))
    workspace.write_config(FETCH_TABLE + feed_sources([loopback.url_for("/nato")]))
    result = workspace.run("--once")
    assert result.returncode == 0, result.stderr
    items = combined(workspace)
    assert len(items) == 19  # the live copy joined the seeds' Montenegro story
    montenegro = [i for i in items if "Montenegro" in i["title"]
                  or any("Montenegro" in m["title"] for m in i["_aggregator"]["members"])]
    assert len(montenegro) == 1
    story = montenegro[0]
    assert story["url"] == LIVE_LINK
    urls = [m["url"] for m in story["_aggregator"]["members"]]
    assert LIVE_LINK in urls and len(urls) == 3  # the live item, the seed report, its advisory


def test_fetch_state_survives_restarts(store_url: str, tmp_path: Path,
                                      loopback: HTTPServer) -> None:
    """In-process on SQLite and PostgreSQL: validators and a moved URL are in the store."""
    from aggregator.config import load_config
    from aggregator.pipeline import run_once

    etag = '"v7"'

    def handler(request: Request) -> Response:
        if request.headers.get("If-None-Match") == etag:
            return Response(status=304)
        return Response(one_story_feed("state", 4), headers={"ETag": etag})

    loopback.expect_request("/start").respond_with_data(
        "", status=308, headers={"Location": "/home"})
    loopback.expect_request("/home").respond_with_handler(handler)
    ws = Workspace(tmp_path)
    ws.write_config(FETCH_TABLE + feed_sources([loopback.url_for("/start")]), seeds=False,
                    header=f'[output]\ndir = "../output"\n[store]\nurl = "{store_url}"\n')
    config = load_config(ws.config)
    now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    first = run_once(config, now=now)
    assert first.exit_code == 0 and first.items_new == 1
    second = run_once(config, now=now)
    assert second.exit_code == 0 and second.items_new == 0
    assert second.sources[0].skipped  # a 304: nothing new
    assert [r.path for r, _ in loopback.log] == ["/start", "/home", "/home"]
    reopened = open_store(config.store.url)
    try:
        state = reopened.source_state("feed:" + loopback.url_for("/start"))
    finally:
        reopened.close()
    assert state is not None
    assert (state.etag, state.current_url, state.failures) == (etag, loopback.url_for("/home"), 0)
    assert state.last_success == now
    # When the new home fails, the error still names the feed as configured.
    loopback.clear()
    loopback.expect_request("/home").respond_with_data("", status=500)
    third = run_once(config, now=now)
    assert third.sources[0].error is not None
    assert third.sources[0].error.startswith(
        f"{loopback.url_for('/start')}: HTTP 500 Internal Server Error (fetched from "
        f"{loopback.url_for('/home')}, where it moved)")


class _store:
    """The workspace's store, opened for a look and closed again."""

    def __init__(self, ws: Workspace) -> None:
        self._store = open_store(f"sqlite:///{ws.state}")

    def __enter__(self) -> Any:
        return self._store

    def __exit__(self, *exc_info: object) -> None:
        self._store.close()


assert FIXED_NOW == "2026-11-23T09:00:00Z"  # the runs above count from this pinned time


def test_many_feeds_parse_in_worker_processes_beside_other_threads(
    tmp_path: Path, loopback: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    """In-process, with the test server's threads about (as in the daemon): enough feeds to
    parse in worker processes, which then come from a fork server; every feed is read."""
    import threading

    from aggregator.config import load_config
    from aggregator.pipeline import run_once
    from aggregator.sources.feed import PARALLEL_PARSE_MIN_FEEDS

    assert threading.active_count() > 1
    caplog.set_level(logging.DEBUG, logger="aggregator.workers")
    paths = [f"/many/{n}" for n in range(PARALLEL_PARSE_MIN_FEEDS + 2)]
    for number, path in enumerate(paths):
        loopback.expect_request(path).respond_with_data(one_story_feed(f"many{number}", number))
    ws = Workspace(tmp_path)
    ws.write_config(FETCH_TABLE + feed_sources([loopback.url_for(p) for p in paths]),
                    seeds=False)
    result = run_once(load_config(ws.config), now=datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
    assert result.exit_code == 0, [s.error for s in result.sources if s.error]
    assert [s.items for s in result.sources] == [1] * len(paths)
    assert titles(ws) == {title for title, _ in STORIES[: len(paths)]}
    assert " start=forkserver" in caplog.text or len(os.sched_getaffinity(0)) == 1


def _children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (from /proc: Linux)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_a_killed_run_leaves_no_parse_workers_behind(
    workspace: Workspace, loopback: HTTPServer
) -> None:
    import signal
    import subprocess

    from conftest import aggregate_command

    from aggregator.sources.feed import PARALLEL_PARSE_MIN_FEEDS

    paths = [f"/hang/{n}" for n in range(PARALLEL_PARSE_MIN_FEEDS + 2)]
    for path in paths:
        loopback.expect_request(path).respond_with_handler(drip)  # keeps the run busy
    workspace.write_config(FETCH_TABLE.replace('timeout = "1s"', 'timeout = "30s"')
                           + feed_sources([loopback.url_for(p) for p in paths]))
    run = subprocess.Popen(
        [*aggregate_command(), "--once", "--config", str(workspace.config)],
        cwd=workspace.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "AGGREGATOR_NOW": FIXED_NOW},
    )
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 20
        while len(workers) < 2 and time.monotonic() < deadline:  # the run is fetching
            time.sleep(0.1)
            workers = _children(run.pid)
        assert len(workers) >= 2, "the run never started its parse workers"
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in workers)
    finally:
        if run.poll() is None:
            run.kill()
        for pid in workers:  # whatever the outcome, leave no stray process behind
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
