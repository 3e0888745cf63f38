"""HTTP serving by the real daemon over 127.0.0.1: types, validators, 304s, gzip, health."""

from __future__ import annotations

import gzip
import http.client
import os
from collections.abc import Iterator
from email.utils import formatdate
from urllib.parse import urlsplit

import httpx
import pytest
from conftest import Workspace
from daemon_process import DaemonProcess, poll, serving_seeds
from prometheus_client.parser import text_string_to_metric_families

from aggregator.manifest import read_manifest, write_manifest


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, str]]:
    """One daemon serving the seeds' output; an hourly schedule keeps the files still."""
    with serving_seeds(tmp_path_factory.mktemp("serve")) as served:
        yield served


@pytest.fixture
def client(served: tuple[Workspace, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served[1], timeout=10) as session:
        yield session


def raw_get(base: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """GET a path exactly as written (no client-side normalisation of `..` or `%2f`)."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize(("name", "media_type"), [
    ("combined.atom", "application/atom+xml"),
    ("nato.atom", "application/atom+xml"),
    ("combined.rss", "application/rss+xml"),
    ("europol.rss", "application/rss+xml"),
    ("combined.json", "application/feed+json"),
    ("feeds.opml", "text/x-opml"),
    ("index.html", "text/html"),
])
def test_published_files_are_served_with_their_content_type(
    served: tuple[Workspace, str], client: httpx.Client, name: str, media_type: str
) -> None:
    response = client.get(f"/{name}", headers={"accept-encoding": "identity"})
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == media_type
    assert response.content == (served[0].output / name).read_bytes()
    assert "content-encoding" not in response.headers


def test_the_root_is_the_page(served: tuple[Workspace, str], client: httpx.Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.content == (served[0].output / "index.html").read_bytes()


def test_validators_are_strong_and_cache_control_follows_the_schedule(
    served: tuple[Workspace, str], client: httpx.Client
) -> None:
    response = client.get("/combined.atom", headers={"accept-encoding": "identity"})
    etag = response.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    mtime = int(os.stat(served[0].output / "combined.atom").st_mtime)
    assert response.headers["last-modified"] == formatdate(mtime, usegmt=True)
    assert response.headers["cache-control"] == "public, max-age=3600"  # interval = "1h"
    assert "accept-encoding" in response.headers["vary"].lower()
    again = client.get("/combined.atom", headers={"accept-encoding": "identity"})
    assert again.headers["etag"] == etag


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
def test_if_none_match_gives_304(client: httpx.Client, encoding: str) -> None:
    first = client.get("/combined.atom", headers={"accept-encoding": encoding})
    etag = first.headers["etag"]
    for tag in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        response = client.get("/combined.atom",
                              headers={"accept-encoding": encoding, "if-none-match": tag})
        assert response.status_code == 304, tag
        assert response.content == b""
        assert response.headers["etag"] == etag
        assert response.headers["cache-control"] == first.headers["cache-control"]
    stale = client.get("/combined.atom",
                       headers={"accept-encoding": encoding, "if-none-match": '"other"'})
    assert stale.status_code == 200 and stale.content == first.content


def test_if_modified_since_gives_304(client: httpx.Client) -> None:
    first = client.get("/nato.rss")
    last_modified = first.headers["last-modified"]
    same = client.get("/nato.rss", headers={"if-modified-since": last_modified})
    assert same.status_code == 304 and same.content == b""
    earlier = client.get("/nato.rss",
                         headers={"if-modified-since": "Mon, 01 Jan 2024 00:00:00 GMT"})
    assert earlier.status_code == 200 and earlier.content == first.content
    # If-None-Match wins over If-Modified-Since (RFC 9110).
    both = client.get("/nato.rss", headers={"if-modified-since": last_modified,
                                            "if-none-match": '"other"'})
    assert both.status_code == 200


def test_gzip_when_the_client_accepts_it(
    served: tuple[Workspace, str], client: httpx.Client
) -> None:
    plain = client.get("/combined.json", headers={"accept-encoding": "identity"})
    with httpx.stream("GET", f"{served[1]}/combined.json",
                      headers={"accept-encoding": "gzip"}) as response:
        raw = b"".join(response.iter_raw())
        headers = response.headers
    assert headers["content-encoding"] == "gzip"
    assert int(headers["content-length"]) == len(raw) < len(plain.content)
    assert gzip.decompress(raw) == (served[0].output / "combined.json").read_bytes()
    # Another representation, another strong validator.
    assert headers["etag"] != plain.headers["etag"]
    refused = client.get("/combined.json", headers={"accept-encoding": "gzip;q=0, br"})
    assert "content-encoding" not in refused.headers


def test_head_sends_headers_only(served: tuple[Workspace, str], client: httpx.Client) -> None:
    response = client.head("/combined.rss", headers={"accept-encoding": "identity"})
    assert response.status_code == 200
    assert response.content == b""
    size = (served[0].output / "combined.rss").stat().st_size
    assert int(response.headers["content-length"]) == size


@pytest.mark.parametrize("path", [
    "/.aggregate.lock",
    "/.gitkeep",
    "/../config/aggregator.toml",
    "/..%2fconfig%2faggregator.toml",
    "/%2e%2e/state/aggregator.db",
    "/output/",
    "/output/combined.atom",
    "/combined.atom/",
    "/notes.txt",
    "/missing.atom",
])
def test_only_published_files_are_reachable(
    served: tuple[Workspace, str], path: str
) -> None:
    (served[0].output / "notes.txt").write_text("not published\n")
    (served[0].output / ".gitkeep").write_text("")
    status, body = raw_get(served[1], path)
    assert status == 404, (path, body[:200])
    assert b"[output]" not in body and b"SQLite" not in body


def test_other_methods_are_refused(client: httpx.Client) -> None:
    assert client.post("/combined.atom", content=b"x").status_code == 405
    assert client.delete("/combined.atom").status_code == 405


def test_a_replaced_file_is_served_anew(
    served: tuple[Workspace, str], client: httpx.Client
) -> None:
    output = served[0].output
    path = output / "feeds.opml"
    original = path.read_bytes()
    first = client.get("/feeds.opml")
    assert first.content == original
    replacement = path.with_name(".feeds.opml.tmp")
    replacement.write_bytes(original + b"<!-- v2 -->\n")
    os.replace(replacement, path)  # as publishing does: a rename, a new inode
    try:
        second = client.get("/feeds.opml", headers={"if-none-match": first.headers["etag"]})
        assert second.status_code == 200
        assert second.content == original + b"<!-- v2 -->\n"
        assert second.headers["etag"] != first.headers["etag"]
    finally:
        restored = path.with_name(".feeds.opml.tmp")
        restored.write_bytes(original)
        os.replace(restored, path)


def test_stray_files_and_hard_links_are_not_served(
    served: tuple[Workspace, str], client: httpx.Client
) -> None:
    """Issue 12, problem 3: only what the last publish listed is reachable."""
    output = served[0].output
    (output / "notpublished.json").write_text('{"secret": 1}\n')
    os.link(output / "combined.atom", output / "copy.atom")
    try:
        assert client.get("/notpublished.json").status_code == 404
        assert client.get("/copy.atom").status_code == 404
        assert client.get("/combined.atom").status_code == 200
    finally:
        (output / "notpublished.json").unlink()
        (output / "copy.atom").unlink()


def test_listed_files_in_subdirectories_are_served(
    served: tuple[Workspace, str], client: httpx.Client
) -> None:
    """The manifest is generic: whatever publish lists, subdirectories included."""
    output = served[0].output
    listed = read_manifest(output)
    assert "combined.atom" in listed and "feeds.opml" in listed
    (output / "archive").mkdir(exist_ok=True)
    (output / "archive" / "combined-2024-11.atom").write_bytes(b"<feed/>\n")
    (output / "archive" / "unlisted.atom").write_bytes(b"<feed/>\n")
    write_manifest(output, [*listed, "archive/combined-2024-11.atom"])
    try:
        response = client.get("/archive/combined-2024-11.atom")
        assert response.status_code == 200 and response.content == b"<feed/>\n"
        assert response.headers["content-type"].startswith("application/atom+xml")
        assert client.get("/archive/unlisted.atom").status_code == 404
        assert client.get("/archive/").status_code == 404
    finally:
        write_manifest(output, listed)
    assert client.get("/archive/combined-2024-11.atom").status_code == 404


def test_healthz_reports_the_last_run(client: httpx.Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["status"] == "ok" and body["reason"] is None
    assert body["stories"] == 19 and body["items"] == 20
    assert body["sources"] == {"ok": 2, "failed": 0, "failed_sources": []}
    assert body["last_run"]["outcome"] == "ok"
    assert body["last_run"]["finished"].endswith("+00:00")
    assert body["last_success"] == body["last_run"]["finished"]


def test_metrics_parse_as_prometheus_text(
    served: tuple[Workspace, str], client: httpx.Client
) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}

    def value(family: str, sample: str | None = None, **labels: str) -> float:
        for s in families[family].samples:
            if s.name == (sample or family) and s.labels == labels:
                return float(s.value)
        raise AssertionError(f"no sample {sample or family}{labels} in {families[family]}")

    assert value("newswire_runs", "newswire_runs_total", outcome="ok") >= 1
    assert value("newswire_runs", "newswire_runs_total", outcome="error") == 0
    assert families["newswire_run_duration_seconds"].type == "histogram"
    assert value("newswire_run_duration_seconds", "newswire_run_duration_seconds_count") >= 1
    assert value("newswire_stories") == 19
    assert value("newswire_items") == 20
    assert value("newswire_items_new", "newswire_items_new_total") == 20
    size = (served[0].output / "combined.atom").stat().st_size
    assert value("newswire_published_bytes", file="combined.atom") == size
    assert "newswire_source_errors" in families
    assert value("newswire_last_success_timestamp_seconds") > 1.7e9


def test_healthz_fails_when_the_last_good_run_is_stale(workspace: Workspace) -> None:
    workspace.write_config('[schedule]\ninterval = "1h"\n\n[serve]\nstale_after = "1s"\n')
    daemon = DaemonProcess(workspace, "--serve", "127.0.0.1:0")
    try:
        base = daemon.base_url
        daemon.wait_for_runs(1)

        def stale() -> dict[str, object] | None:
            response = httpx.get(f"{base}/healthz")
            return response.json() if response.status_code == 503 else None

        body = poll(stale, what="/healthz to call the run stale")
        assert str(body["reason"]).startswith("stale:")
        assert body["stories"] == 19
        assert daemon.stop() == 0
    finally:
        daemon.close()
