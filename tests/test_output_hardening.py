"""Output contract holes from issue 12: reserved agency names (problem 9), URLs that are no
valid URIs (10), and items whose only text is "…" or a symbol (11). Real runs of the CLI."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest
from conftest import Workspace, seed_text
from pytest_httpserver import HTTPServer

from aggregator.urls import encode_url

ATOM = "{http://www.w3.org/2005/Atom}"
# What RFC 3986 allows in a URI, `%XX` escapes included.
URI = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")


@pytest.mark.parametrize("slug", ["combined", "feeds", "index", "archive", "topic-fraud",
                                  "country-fr", "healthz"])
def test_a_reserved_agency_name_is_a_config_error(workspace: Workspace, slug: str) -> None:
    workspace.write_config(f'[agencies.{slug}]\nname = "Someone"\n')
    result = workspace.run("--once")
    assert result.returncode == 2, result.stderr
    assert f"agencies.{slug}: '{slug}' is reserved" in result.stderr
    assert not (workspace.output / "combined.atom").exists()


def test_a_source_named_like_a_reserved_file_gets_its_own_feed(workspace: Workspace) -> None:
    (workspace.seeds / "combined.txt").write_text(seed_text([
        ("A notice from the combined office", "Combined", "Text of the combined office.")]))
    result = workspace.run("--once")
    assert result.returncode == 0, result.stderr
    assert (workspace.output / "agency-combined.atom").exists()
    combined = ET.parse(workspace.output / "combined.atom").getroot()
    assert len(combined.findall(f"{ATOM}entry")) == 20  # still the combined feed


def feed_with(items: str) -> str:
    return ('<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
            f"<link>https://agency.example.test/</link><description>d</description>{items}"
            "</channel></rss>")


def feed_config(url: str) -> str:
    return f'[[sources]]\ntype = "feed"\nagency = "nato"\nurl = "{url}"\n'


def test_every_published_url_is_a_valid_uri(workspace: Workspace, loopback: HTTPServer) -> None:
    loopback.expect_request("/feed").respond_with_data(feed_with(
        "<item><title>Incorrect value published</title><guid>g1</guid>"
        "<link>https://agency.example.test/news/Incorrect Value</link>"
        "<description>&lt;p&gt;See &lt;a href=\"https://agency.example.test/a b/ü\"&gt;the "
        "annex&lt;/a&gt;.&lt;/p&gt;</description></item>"), content_type="application/rss+xml")
    workspace.write_config(feed_config(loopback.url_for("/feed")), seeds=False)
    result = workspace.run("--once")
    assert result.returncode == 0, result.stderr
    atom = (workspace.output / "nato.atom").read_text(encoding="utf-8")
    assert 'href="https://agency.example.test/news/Incorrect%20Value"' in atom
    assert "https://agency.example.test/a%20b/%C3%BC" in atom
    for name in ("combined.atom", "combined.rss", "nato.atom", "nato.rss", "index.html",
                 "feeds.opml"):
        text = (workspace.output / name).read_text(encoding="utf-8")
        for url in re.findall(r'(?:href|src|uri|xmlUrl|htmlUrl)="([^"]*)"', text):
            assert URI.fullmatch(url.replace("&amp;", "&")), (name, url)
        assert "Incorrect Value" not in text.replace("Incorrect value published", "")
    feed = json.loads((workspace.output / "combined.json").read_text(encoding="utf-8"))
    (item,) = feed["items"]
    assert item["url"] == "https://agency.example.test/news/Incorrect%20Value"
    assert item["_aggregator"]["members"][0]["url"] == item["url"]


def test_items_of_an_ellipsis_or_a_symbol_are_published(
    workspace: Workspace, loopback: HTTPServer
) -> None:
    loopback.expect_request("/feed").respond_with_data(feed_with(
        "<item><title>…</title><guid>g1</guid></item>"
        "<item><description>…</description><guid>g2</guid></item>"
        "<item><title>★</title><guid>g3</guid></item>"
        "<item><title>-</title><link>https://agency.example.test/dash</link></item>"
        "<item><title>A real title</title><description>Real text.</description>"
        "<guid>g5</guid></item>"), content_type="application/rss+xml")
    workspace.write_config(feed_config(loopback.url_for("/feed")), seeds=False)
    result = workspace.run("--once")
    assert result.returncode == 0, result.stderr
    feed = json.loads((workspace.output / "combined.json").read_text(encoding="utf-8"))
    assert sorted(item["title"] for item in feed["items"]) == sorted(
        ["…", "…", "★", "-", "A real title"])
    assert all(len(item["_aggregator"]["members"]) == 1 for item in feed["items"])


def test_the_manifest_lists_the_published_files_and_is_restored(workspace: Workspace) -> None:
    assert workspace.run("--once").returncode == 0
    manifest = workspace.output / ".published"
    listed = json.loads(manifest.read_text(encoding="utf-8"))["files"]
    assert sorted(listed) == sorted(workspace.output_files())
    manifest.unlink()
    assert workspace.run("--once").returncode == 0  # nothing changed, but the list is gone
    assert json.loads(manifest.read_text(encoding="utf-8"))["files"] == listed


@pytest.mark.parametrize(("given", "published"), [
    ("https://x.test/news/Incorrect Value", "https://x.test/news/Incorrect%20Value"),
    ("https://x.test/a%20b?q=1&r=2#top", "https://x.test/a%20b?q=1&r=2#top"),
    ("https://x.test/100%", "https://x.test/100%25"),
    ("https://bücher.example/straße?q=ü", "https://xn--bcher-kva.example/stra%C3%9Fe?q=%C3%BC"),
    ("https://x.test/p?a=[1]", "https://x.test/p?a=%5B1%5D"),
    ("http://[::1]:8080/x y", "http://[::1]:8080/x%20y"),
    ("https://x.test/#a#b", "https://x.test/#a%23b"),
])
def test_urls_are_encoded_once(given: str, published: str) -> None:
    assert encode_url(given) == published
    assert encode_url(published) == published
