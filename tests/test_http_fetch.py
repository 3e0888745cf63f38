"""The fetch policy (sources/_http.py) against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import gzip
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from aggregator.config import FetchConfig
from aggregator.errors import FetchError
from aggregator.sources._http import Fetcher, Validators, retry_after_seconds, user_agent

FEED = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'
POLICY = FetchConfig(timeout=2.0, max_bytes=64 * 1024, concurrency=8, per_host=2,
                     max_redirects=3)


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    with Fetcher(POLICY) as client:
        yield client


def test_user_agent_names_newswire_and_its_project_url(
    loopback: HTTPServer, fetcher: Fetcher
) -> None:
    loopback.expect_request("/feed").respond_with_data(FEED)
    fetcher.fetch(loopback.url_for("/feed"))
    request, _ = loopback.log[0]
    assert request.headers["User-Agent"] == user_agent()
    assert user_agent().startswith("newswire/")
    assert "https://github.com/newswire-aggregator/newswire" in user_agent()


def test_conditional_get_sends_both_validators_and_takes_304_as_not_modified(
    loopback: HTTPServer, fetcher: Fetcher
) -> None:
    etag, modified = '"v1"', "Mon, 23 Nov 2026 08:00:00 GMT"

    def handler(request: Request) -> Response:
        if (request.headers.get("If-None-Match") == etag
                and request.headers.get("If-Modified-Since") == modified):
            return Response(status=304, headers={"ETag": etag})
        return Response(FEED, headers={"ETag": etag, "Last-Modified": modified})

    loopback.expect_request("/feed").respond_with_handler(handler)
    first = fetcher.fetch(loopback.url_for("/feed"))
    assert first.status == 200 and first.body == FEED
    assert first.validators == Validators(etag, modified)
    second = fetcher.fetch(loopback.url_for("/feed"), first.validators)
    assert second.not_modified and second.body == b""
    assert "If-None-Match" not in loopback.log[0][0].headers


@pytest.mark.parametrize(("first", "second", "moved"), [
    (301, None, True), (308, None, True), (302, None, False), (307, None, False),
    (301, 302, False), (302, 301, False), (301, 308, True),
])
def test_only_permanent_redirects_on_every_hop_move_the_feed(
    loopback: HTTPServer, fetcher: Fetcher, first: int, second: int | None, moved: bool
) -> None:
    final = loopback.url_for("/final")
    if second is None:
        loopback.expect_request("/start").respond_with_data(
            "", status=first, headers={"Location": "/final"})
    else:
        loopback.expect_request("/start").respond_with_data(
            "", status=first, headers={"Location": "/middle"})
        loopback.expect_request("/middle").respond_with_data(
            "", status=second, headers={"Location": final})
    loopback.expect_request("/final").respond_with_data(FEED)
    response = fetcher.fetch(loopback.url_for("/start"))
    assert response.body == FEED and response.url == final
    assert response.moved_to == (final if moved else None)


def test_redirect_loop_is_an_error_naming_the_url(loopback: HTTPServer, fetcher: Fetcher) -> None:
    loopback.expect_request("/a").respond_with_data("", status=302, headers={"Location": "/b"})
    loopback.expect_request("/b").respond_with_data("", status=302, headers={"Location": "/a"})
    url = loopback.url_for("/a")
    with pytest.raises(FetchError, match="redirect loop") as caught:
        fetcher.fetch(url)
    assert str(caught.value).startswith(url)
    assert len(loopback.log) == 2


def test_hop_limit(loopback: HTTPServer, fetcher: Fetcher) -> None:
    for hop in range(5):
        loopback.expect_request(f"/{hop}").respond_with_data(
            "", status=301, headers={"Location": f"/{hop + 1}"})
    with pytest.raises(FetchError, match=r"too many redirects \(more than 3"):
        fetcher.fetch(loopback.url_for("/0"))
    assert len(loopback.log) == 4


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1/feed"])
def test_redirect_to_another_scheme_is_refused(
    loopback: HTTPServer, fetcher: Fetcher, target: str
) -> None:
    loopback.expect_request("/feed").respond_with_data(
        "", status=301, headers={"Location": target})
    with pytest.raises(FetchError, match="only http and https"):
        fetcher.fetch(loopback.url_for("/feed"))


def test_429_with_delay_seconds(loopback: HTTPServer, fetcher: Fetcher) -> None:
    loopback.expect_request("/feed").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "120"})
    with pytest.raises(FetchError, match="HTTP 429 Too Many Requests") as caught:
        fetcher.fetch(loopback.url_for("/feed"))
    assert caught.value.status == 429
    assert caught.value.retry_after == 120


def test_503_with_an_http_date(loopback: HTTPServer, fetcher: Fetcher) -> None:
    until = datetime.now(UTC) + timedelta(minutes=30)
    loopback.expect_request("/feed").respond_with_data("", status=503, headers={
        "Retry-After": format_datetime(until, usegmt=True),
    })
    with pytest.raises(FetchError, match="HTTP 503 Service Unavailable") as caught:
        fetcher.fetch(loopback.url_for("/feed"))
    assert caught.value.retry_after is not None
    assert 1790 <= caught.value.retry_after <= 1800


def test_retry_after_forms() -> None:
    assert retry_after_seconds("0") == 0
    assert retry_after_seconds(" 45 ") == 45
    # An HTTP date counts from the server's own Date: its clock may differ from ours.
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT",
                               "Wed, 21 Oct 2015 07:27:00 GMT") == 60
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT",
                               "Wed, 21 Oct 2015 08:00:00 GMT") == 0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("-5") is None
    assert retry_after_seconds(None) is None


def test_server_error(loopback: HTTPServer, fetcher: Fetcher) -> None:
    loopback.expect_request("/feed").respond_with_data("oops", status=500)
    with pytest.raises(FetchError, match="HTTP 500 Internal Server Error") as caught:
        fetcher.fetch(loopback.url_for("/feed"))
    assert caught.value.status == 500 and caught.value.retry_after is None


def test_connection_refused_names_the_url(fetcher: Fetcher) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/feed"
    with pytest.raises(FetchError, match="cannot connect") as caught:
        fetcher.fetch(url)
    assert str(caught.value).startswith(url)


def test_slow_drip_body_is_cut_at_the_deadline(loopback: HTTPServer) -> None:
    def drip() -> Iterator[bytes]:
        yield b'<?xml version="1.0"?><rss version="2.0"><channel>'
        for _ in range(100):
            time.sleep(0.1)  # well inside any per-read timeout, forever in total
            yield b" "

    loopback.expect_request("/feed").respond_with_handler(lambda _: Response(drip()))
    with Fetcher(FetchConfig(timeout=0.8)) as client:
        started = time.monotonic()
        with pytest.raises(FetchError, match=r"gave up after 0\.8 s"):
            client.fetch(loopback.url_for("/feed"))
        elapsed = time.monotonic() - started
    assert 0.7 < elapsed < 1.5


def test_slow_drip_headers_are_cut_at_the_deadline() -> None:
    """The status line arrives, then a header byte every 0.1 s: cut before they ever end."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                try:
                    conn.sendall(b"HTTP/1.1 200 OK\r\n")
                    for _ in range(100):
                        conn.sendall(b"X")
                        time.sleep(0.1)
                except OSError:
                    pass

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        with Fetcher(FetchConfig(timeout=0.8)) as client:
            started = time.monotonic()
            with pytest.raises(FetchError, match="gave up after"):
                client.fetch(f"http://127.0.0.1:{port}/feed")
            elapsed = time.monotonic() - started
        thread.join(timeout=15)
    assert elapsed < 1.5


def test_declared_oversize_body_is_refused(loopback: HTTPServer, fetcher: Fetcher) -> None:
    loopback.expect_request("/feed").respond_with_data(b"x" * (POLICY.max_bytes + 1))
    with pytest.raises(FetchError, match="response too large"):
        fetcher.fetch(loopback.url_for("/feed"))


def test_undeclared_oversize_body_stops_at_the_cap(loopback: HTTPServer, fetcher: Fetcher) -> None:
    def endless() -> Iterator[bytes]:
        for _ in range(10_000):
            yield b"x" * 4096

    loopback.expect_request("/feed").respond_with_handler(lambda _: Response(endless()))
    with pytest.raises(FetchError, match="more than 65,536 bytes"):
        fetcher.fetch(loopback.url_for("/feed"))


def test_gzip_bomb_stops_at_the_cap(loopback: HTTPServer, fetcher: Fetcher) -> None:
    bomb = gzip.compress(b"\0" * 50_000_000, compresslevel=9)
    assert len(bomb) < POLICY.max_bytes  # small as sent: only decompressing reveals it
    loopback.expect_request("/feed").respond_with_data(
        bomb, headers={"Content-Encoding": "gzip"})
    with pytest.raises(FetchError, match="too large once decompressed"):
        fetcher.fetch(loopback.url_for("/feed"))


@pytest.mark.parametrize(("encoding", "encode"), [
    ("gzip", gzip.compress),
    ("deflate", zlib.compress),
    ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some servers send
])
def test_compressed_bodies_are_decoded(
    loopback: HTTPServer, fetcher: Fetcher, encoding: str, encode: object
) -> None:
    assert callable(encode)
    loopback.expect_request("/feed").respond_with_data(
        encode(FEED), headers={"Content-Encoding": encoding})
    response = fetcher.fetch(loopback.url_for("/feed"))
    request_encoding = loopback.log[0][0].headers["Accept-Encoding"]
    assert response.body == FEED
    assert request_encoding == "gzip, deflate"


def test_unrequested_encoding_is_an_error(loopback: HTTPServer, fetcher: Fetcher) -> None:
    loopback.expect_request("/feed").respond_with_data(FEED, headers={"Content-Encoding": "br"})
    with pytest.raises(FetchError, match="unsupported Content-Encoding 'br'"):
        fetcher.fetch(loopback.url_for("/feed"))


def test_corrupt_gzip_is_an_error(loopback: HTTPServer, fetcher: Fetcher) -> None:
    loopback.expect_request("/feed").respond_with_data(
        b"\x1f\x8b\x08\x00garbage-not-gzip", headers={"Content-Encoding": "gzip"})
    with pytest.raises(FetchError, match="corrupt gzip body"):
        fetcher.fetch(loopback.url_for("/feed"))


def test_per_host_limit_holds_across_threads(loopback: HTTPServer) -> None:
    in_flight = 0
    peak = 0
    lock = threading.Lock()

    def handler(request: Request) -> Response:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.15)
        with lock:
            in_flight -= 1
        return Response(FEED)

    loopback.expect_request("/feed").respond_with_handler(handler)
    with Fetcher(FetchConfig(concurrency=8, per_host=2)) as client:
        threads = [threading.Thread(target=client.fetch, args=(loopback.url_for("/feed"),))
                   for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(loopback.log) == 6
    assert peak == 2
