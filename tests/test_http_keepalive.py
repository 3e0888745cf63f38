"""Keep-alive under the deadline rules (sources/_transport.py): feeds on one host share
connections, a server that drips on a kept-alive connection is still cut at the deadline,
and no thread is started per fetch. Real servers on 127.0.0.1."""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from aggregator.config import FetchConfig
from aggregator.errors import FetchError
from aggregator.sources._http import Fetcher

FEED = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'


class _Recorder(ThreadingHTTPServer):
    daemon_threads = True
    peers: list[tuple[str, int]]
    threads_seen: list[list[threading.Thread]]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Recorder

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.peers.append(self.client_address)
        self.server.threads_seen.append(threading.enumerate())
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Content-Length", str(len(FEED)))
        self.end_headers()
        self.wfile.write(FEED)


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    server = _Recorder(("127.0.0.1", 0), _Handler)
    server.peers, server.threads_seen = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_fetches_to_one_host_reuse_a_kept_alive_connection(recorder: _Recorder) -> None:
    port = recorder.server_address[1]
    with Fetcher(FetchConfig(timeout=5)) as client:
        for number in range(5):
            assert client.fetch(f"http://127.0.0.1:{port}/feed/{number}").body == FEED
    assert len(recorder.peers) == 5
    assert len(set(recorder.peers)) == 1  # one connection served all five


def test_no_thread_is_started_per_fetch(recorder: _Recorder) -> None:
    port = recorder.server_address[1]
    before = threading.active_count()
    with Fetcher(FetchConfig(timeout=5)) as client:
        for number in range(10):
            client.fetch(f"http://127.0.0.1:{port}/feed/{number}")
            assert threading.active_count() <= before + 1  # at most the server's handler
    # While each request was being answered, no watchdog thread existed.
    for threads in recorder.threads_seen:
        assert not any(isinstance(t, threading.Timer) for t in threads)


def test_a_drip_on_a_kept_alive_connection_is_cut_at_the_deadline() -> None:
    """The first request is answered whole; the second, on the same connection, gets a
    status line and then a header byte every 0.1 s."""
    accepted = 0
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def serve() -> None:
            nonlocal accepted
            conn, _ = listener.accept()
            accepted += 1
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(FEED)
                             + FEED)
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
            assert client.fetch(f"http://127.0.0.1:{port}/first").body == FEED
            started = time.monotonic()
            with pytest.raises(FetchError, match=r"gave up after 0\.8 s"):
                client.fetch(f"http://127.0.0.1:{port}/second")
            elapsed = time.monotonic() - started
        thread.join(timeout=15)
    assert accepted == 1  # the second request did go over the kept-alive connection
    assert 0.6 < elapsed < 1.5


def test_a_tls_handshake_that_never_comes_is_cut_at_the_deadline() -> None:
    """The server accepts the connection and then says nothing: the handshake is bounded
    by the fetch's deadline like any other operation."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with Fetcher(FetchConfig(timeout=0.8)) as client:
            started = time.monotonic()
            with pytest.raises(FetchError, match=r"gave up after 0\.8 s") as caught:
                client.fetch(f"https://127.0.0.1:{port}/feed")
            elapsed = time.monotonic() - started
    assert str(caught.value).startswith(f"https://127.0.0.1:{port}/feed")
    assert 0.6 < elapsed < 1.5


def test_an_untrusted_certificate_is_refused_naming_the_url(tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            with conn, contextlib.suppress(OSError):
                context.wrap_socket(conn, server_side=True).recv(1024)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        url = f"https://127.0.0.1:{port}/feed"
        with Fetcher(FetchConfig(timeout=5)) as client, pytest.raises(FetchError) as caught:
            client.fetch(url)
        thread.join(timeout=10)
    message = str(caught.value)
    assert message.startswith(url) and "certificate" in message.lower(), message
