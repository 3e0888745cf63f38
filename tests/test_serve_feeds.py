"""`aggregate --serve` serves topic, country, per-agency JSON and archive files like the rest."""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import httpx
import pytest
from conftest import Workspace
from daemon_process import serving_seeds
from test_feed_history import HISTORY_HEADER
from test_serve import raw_get


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, str]]:
    """A daemon serving the seeds published with topics, countries and archives."""
    with serving_seeds(tmp_path_factory.mktemp("serve-feeds"), header=HISTORY_HEADER) as served:
        yield served


@pytest.mark.parametrize(("name", "media_type"), [
    ("topic-nato-diplomacy.atom", "application/atom+xml"),
    ("topic-nato-diplomacy.json", "application/feed+json"),
    ("country-ua.rss", "application/rss+xml"),
    ("nato.json", "application/feed+json"),
    ("archive/combined-2024-11.atom", "application/atom+xml"),
    ("archive/nato-2024-11.rss", "application/rss+xml"),
    ("archive/combined-2024-12.html", "text/html"),
])
def test_new_files_are_served_with_validators_304s_and_gzip(
    served: tuple[Workspace, str], name: str, media_type: str,
) -> None:
    workspace, base = served
    with httpx.Client(base_url=base, timeout=10) as client:
        plain = client.get(f"/{name}", headers={"accept-encoding": "identity"})
        assert plain.status_code == 200
        assert plain.headers["content-type"].split(";")[0] == media_type
        assert plain.content == (workspace.output / name).read_bytes()
        etag = plain.headers["etag"]
        again = client.get(f"/{name}", headers={"accept-encoding": "identity",
                                                 "if-none-match": etag})
        assert again.status_code == 304 and again.content == b""
        since = client.get(f"/{name}", headers={
            "accept-encoding": "identity", "if-modified-since": plain.headers["last-modified"]})
        assert since.status_code == 304
    with httpx.stream("GET", f"{base}/{name}", headers={"accept-encoding": "gzip"},
                      timeout=10) as response:
        raw = b"".join(response.iter_raw())
        assert response.headers["content-encoding"] == "gzip"
        assert response.headers["etag"] != etag
    assert gzip.decompress(raw) == plain.content


@pytest.mark.parametrize("path", [
    "/archive/",
    "/archive",
    "/archive/.hidden.atom",
    "/archive/notes.txt",
    "/archive/../combined.atom",
    "/archive/%2e%2e/state/aggregator.db",
    "/archive/sub/combined.atom",
    "/state/aggregator.db",
])
def test_nothing_else_below_the_output_directory_is_reachable(
    served: tuple[Workspace, str], path: str,
) -> None:
    workspace, base = served
    (workspace.output / "archive" / "notes.txt").write_text("private\n")
    (workspace.output / "archive" / ".hidden.atom").write_text("private\n")
    (workspace.output / "archive" / "sub").mkdir(exist_ok=True)
    (workspace.output / "archive" / "sub" / "combined.atom").write_text("private\n")
    status, body = raw_get(base, path)
    assert status == 404, (path, body[:200])
    assert b"private" not in body and b"SQLite" not in body
