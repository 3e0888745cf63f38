"""The daemon's HTTP server against slow, greedy and hostile clients, over 127.0.0.1.

Issue 12, problems 1 (slow clients exhausted the server) and 2 (no header limit).
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import json
import logging
import resource
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from conftest import Workspace
from daemon_process import DaemonProcess, ulimit_wrapper

from aggregator.http_limits import AcceptErrorThrottle

SLOW_CLIENTS = 2000
FILE_LIMIT = 1024


def address(base: str) -> tuple[str, int]:
    parts = urlsplit(base)
    return parts.hostname or "", parts.port or 80


def timed_get(base: str, path: str, timeout: float = 5.0) -> tuple[int, bytes, float]:
    """GET on a new connection: status, body and the seconds it took."""
    host, port = address(base)
    started = time.monotonic()
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        return response.status, body, time.monotonic() - started
    finally:
        connection.close()


def send_head(base: str, head: bytes, timeout: float = 10.0) -> bytes:
    """Send a raw request head (maybe refused half-way) and return what the server answered."""
    sock = socket.create_connection(address(base), timeout=timeout)
    try:
        # The server may answer and close before taking it all.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head)
        answer = b""
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            answer += data
        return answer
    finally:
        sock.close()


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DaemonProcess, str]]:
    """A daemon with short read and idle timeouts, serving the seeds."""
    workspace = Workspace(tmp_path_factory.mktemp("limits"))
    workspace.copy_bundled_seeds()
    workspace.write_config('[schedule]\ninterval = "1h"\n'
                           '[serve]\nread_timeout = "1s"\nidle_timeout = "1s"\n')
    daemon = DaemonProcess(workspace, "--serve", "127.0.0.1:0")
    try:
        base = daemon.base_url
        daemon.wait_for_runs(1)
        yield daemon, base
        assert daemon.stop() == 0
    finally:
        daemon.close()


def test_a_head_over_32_kib_gets_431_and_costs_no_memory(
    limited: tuple[DaemonProcess, str]
) -> None:
    daemon, base = limited
    before = rss_kib(daemon.process.pid)
    huge = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000_000 + b"\r\n\r\n"
    answer = send_head(base, huge)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert rss_kib(daemon.process.pid) - before < 20_000  # not the 20 MB it was sent
    # Just under the cap is fine.
    fits = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 30_000 + b"\r\n\r\n"
    assert send_head(base, fits + b"").split(b"\r\n", 1)[0] == b"HTTP/1.1 200 OK"


@pytest.mark.parametrize("count", [150, 5000])
def test_too_many_headers_get_431(limited: tuple[DaemonProcess, str], count: int) -> None:
    _, base = limited
    many = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(
        b"a%d: b\r\n" % i for i in range(count)) + b"\r\n"
    assert send_head(base, many).startswith(b"HTTP/1.1 431 ")
    ninety = b"GET /healthz HTTP/1.1\r\n" + b"".join(
        b"a%d: b\r\n" % i for i in range(90)) + b"\r\n"
    assert send_head(base, ninety).startswith(b"HTTP/1.1 200 ")


def test_a_client_trickling_its_head_is_cut_at_the_read_timeout(
    limited: tuple[DaemonProcess, str]
) -> None:
    _, base = limited
    sock = socket.create_connection(address(base), timeout=5)
    started = time.monotonic()
    closed_after = None
    try:
        sock.sendall(b"GET / HTTP/1.1\r\n")
        for index in range(40):  # one header line every 0.2 s: never a whole head
            time.sleep(0.2)
            try:
                sock.sendall(b"X-Slow-%d: 1\r\n" % index)
            except (BrokenPipeError, ConnectionResetError):
                closed_after = time.monotonic() - started
                break
    finally:
        sock.close()
    assert closed_after is not None and closed_after < 3.0  # read_timeout = 1s


def test_an_idle_keep_alive_connection_is_closed(limited: tuple[DaemonProcess, str]) -> None:
    _, base = limited
    sock = socket.create_connection(address(base), timeout=5)
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        while sock.recv(65536):  # the rest of the response, then the close
            pass
        assert time.monotonic() - started < 4.0  # idle_timeout = 1s
    finally:
        sock.close()


def test_two_thousand_slow_clients_under_a_1024_file_limit(workspace: Workspace) -> None:
    """The reported attack: clients sending one header line every 3 s, the daemon limited to
    1,024 files. /healthz still answers within 1 s and a scheduled run succeeds."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < SLOW_CLIENTS + 200:  # this test process holds the clients' ends
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, SLOW_CLIENTS + 500), hard))
    workspace.write_config('[schedule]\ninterval = "2s"\njitter = "0s"\n')
    daemon = DaemonProcess(workspace, "--serve", "127.0.0.1:0",
                           wrapper=ulimit_wrapper(FILE_LIMIT))
    clients: list[socket.socket] = []
    try:
        base = daemon.base_url
        serving = daemon.wait_for_lines("serving url=")[0]
        assert f"max_connections={FILE_LIMIT // 2}" in serving
        daemon.wait_for_runs(1)
        runs_before = len(daemon.wait_for_runs(1))
        for _ in range(SLOW_CLIENTS):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.connect_ex(address(base))
            clients.append(sock)
        started = time.monotonic()
        health_times: list[float] = []
        next_line = started
        line = 0
        while time.monotonic() - started < 9.0:  # within the daemon's 10 s read timeout
            if time.monotonic() >= next_line:
                payload = b"GET / HTTP/1.1\r\n" if line == 0 else b"X-Slow-%d: 1\r\n" % line
                for sock in clients:
                    # Not connected yet, or closed by the server to make room.
                    with contextlib.suppress(OSError):
                        sock.send(payload)
                line += 1
                next_line += 3.0
            status, body, took = timed_get(base, "/healthz", timeout=5.0)
            assert status == 200, body
            health_times.append(took)
            time.sleep(0.5)
        assert max(health_times) < 1.0, health_times
        # A scheduled run finished, and succeeded, while the clients hung on.
        runs = daemon.wait_for_runs(runs_before + 1, timeout=10)
        assert "outcome=ok" in runs[-1], runs[-1]
        health = json.loads(timed_get(base, "/healthz")[1])
        assert health["status"] == "ok" and health["last_run"]["outcome"] == "ok"
        assert daemon.stop() == 0
    finally:
        for sock in clients:
            sock.close()
        daemon.close()  # killed if a failed assertion left it running
    log = daemon.log
    assert "unable to open database file" not in log
    # Accept errors, if any, are throttled to one line per 10 s.
    assert len(daemon.matching("accept")) <= 2, daemon.matching("accept")[:5]
    assert len(log) < 100_000


def test_accept_errors_are_logged_once_per_interval_with_a_count() -> None:
    throttle = AcceptErrorThrottle(interval=60.0)

    def record() -> logging.LogRecord:
        error = OSError(errno.EMFILE, "Too many open files")
        return logging.LogRecord("asyncio", logging.ERROR, __file__, 1,
                                 "socket.accept() out of system resource", None,
                                 (OSError, error, None))

    first = record()
    assert throttle.filter(first)
    assert first.getMessage() == ("cannot accept connections: Too many open files "
                                  "(1 failed accepts since the last report)")
    assert first.exc_info is None
    assert not any(throttle.filter(record()) for _ in range(1000))
    other = logging.LogRecord("asyncio", logging.ERROR, __file__, 1, "something else", None,
                              None)
    assert throttle.filter(other)
