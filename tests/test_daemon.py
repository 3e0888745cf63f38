"""The daemon as a user runs it: scheduled runs, failures survived, signals, the lock."""

from __future__ import annotations

import json
import signal
import socket
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import Workspace, seed_text
from daemon_process import DaemonProcess, poll, published_names, wait_healthy

ATOM = "{http://www.w3.org/2005/Atom}"
SCHEDULE_1S = '[schedule]\ninterval = "1s"\njitter = "0s"\n'


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    """Daemons started by a test, killed afterwards if the test left them running."""
    started: list[DaemonProcess] = []
    yield started
    for daemon in started:
        daemon.close()


def start(daemons: list[DaemonProcess], workspace: Workspace, *args: str) -> DaemonProcess:
    daemon = DaemonProcess(workspace, *args)
    daemons.append(daemon)
    return daemon


def assert_valid_output(output: Path, stories: int = 19) -> None:
    """The published files are whole: feeds parse and hold every story."""
    atom = ET.parse(output / "combined.atom").getroot()
    assert len(atom.findall(f"{ATOM}entry")) == stories
    rss = ET.parse(output / "combined.rss").getroot()
    assert len(rss.findall("channel/item")) == stories
    feed = json.loads((output / "combined.json").read_text(encoding="utf-8"))
    assert len(feed["items"]) == stories
    ET.parse(output / "feeds.opml")
    assert "</html>" in (output / "index.html").read_text(encoding="utf-8")
    leftovers = [p.name for p in output.iterdir() if p.name.endswith(".tmp")]
    assert not leftovers, f"temporary files left behind: {leftovers}"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_runs_at_start_and_on_schedule_then_stops_cleanly(
    workspace: Workspace, daemons: list[DaemonProcess], signum: int
) -> None:
    workspace.write_config(SCHEDULE_1S)
    daemon = start(daemons, workspace)
    first, second = daemon.wait_for_runs(2)[:2]
    assert "outcome=ok" in first and "new=20" in first and "stories=19" in first
    # The second run finds nothing new and leaves every file alone.
    assert "new=0" in second and "written=0" in second
    assert daemon.stop(signum) == 0
    assert_valid_output(workspace.output)
    assert daemon.matching(rf"stopping signal={signal.Signals(signum).name}")


def test_sigterm_during_a_long_run_exits_0_in_time_with_whole_files(
    workspace: Workspace, daemons: list[DaemonProcess]
) -> None:
    # A cold run over ~1,500 items takes several seconds here: long enough to be caught.
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
             "india", "juliet", "kilo", "lima"]
    for part in range(5):
        items = []
        for number in range(300):
            seed = part * 300 + number
            text = " ".join(words[(seed * 7 + k * k) % len(words)] for k in range(150))
            items.append((f"Exercise {seed} report {words[seed % 12]}", "NATO",
                          f"On 2 December 2024 NATO held exercise {seed}. {text}."))
        (workspace.seeds / f"bulk{part}.txt").write_text(seed_text(items), encoding="utf-8")
    workspace.write_config('[schedule]\ninterval = "1h"\n')
    daemon = start(daemons, workspace)
    daemon.wait_for_lines(r"daemon started")
    time.sleep(1.5)  # into the first run: that the run is still going is not required
    started = time.monotonic()
    assert daemon.stop(timeout=10) == 0
    assert time.monotonic() - started < 10
    assert daemon.matching(r"abandoned|: run ")
    # Whatever was published is whole; an abandoned write leaves only a hidden temp file.
    for name in published_names(workspace.output):
        data = (workspace.output / name).read_bytes()
        if name.endswith((".atom", ".rss", ".opml")):
            ET.fromstring(data)
        elif name.endswith(".json"):
            json.loads(data)


def test_failing_source_keeps_the_daemon_up_and_healthz_names_it(
    workspace: Workspace, daemons: list[DaemonProcess]
) -> None:
    workspace.write_config(SCHEDULE_1S)
    daemon = start(daemons, workspace, "--serve", "127.0.0.1:0")
    base = daemon.base_url
    daemon.wait_for_runs(1)
    assert httpx.get(f"{base}/healthz").status_code == 200
    before = (workspace.output / "combined.atom").read_bytes()

    seed = sorted(workspace.seeds.glob("*.txt"))[0]
    good = seed.read_bytes()
    seed.write_bytes(b"\x00\x01\x02 not a seed file\n")

    def failing() -> dict[str, object] | None:
        response = httpx.get(f"{base}/healthz")
        return response.json() if response.status_code == 503 else None

    health = poll(failing, what="/healthz to report the broken seed file")
    assert seed.name in str(health["reason"])
    sources = health["sources"]
    assert isinstance(sources, dict)
    assert sources["failed"] == 1
    assert seed.name in sources["failed_sources"][0]["name"]
    # The failure costs nothing else: the other file's items stay published, files stay whole.
    daemon.wait_for_lines(r"warning: run outcome=source_failed")
    assert daemon.process.poll() is None
    assert (workspace.output / "combined.atom").read_bytes() == before

    metrics = httpx.get(f"{base}/metrics").text
    assert f'newswire_source_up{{source="seeds/{seed.name}"}} 0' in metrics

    seed.write_bytes(good)
    wait_healthy(base, "/healthz to recover once the seed file is fixed")
    assert daemon.stop() == 0
    assert_valid_output(workspace.output)


def test_a_run_that_raises_is_logged_and_the_next_runs_on_time(
    workspace: Workspace, daemons: list[DaemonProcess]
) -> None:
    workspace.write_config(SCHEDULE_1S)
    daemon = start(daemons, workspace, "--serve", "127.0.0.1:0")
    base = daemon.base_url
    daemon.wait_for_runs(1)
    # A directory where the state file was: every run now fails opening the store. (Not
    # garbage written over the file: a run in progress would checkpoint its WAL back over it.)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{workspace.state}{suffix}").unlink(missing_ok=True)
    workspace.state.mkdir()
    failed = daemon.wait_for_lines(r"error: run failed outcome=error")[0]
    assert "aggregator.db" in failed
    health = httpx.get(f"{base}/healthz")
    assert health.status_code == 503
    assert health.json()["reason"].startswith("last run failed:")
    assert 'newswire_runs_total{outcome="error"}' in httpx.get(f"{base}/metrics").text
    daemon.wait_for_lines(r"error: run failed", count=2)  # still scheduling, still alive

    workspace.state.rmdir()  # the next run starts a fresh store and publishes again
    wait_healthy(base, "/healthz to recover after the store is replaced")
    assert daemon.stop() == 0
    assert_valid_output(workspace.output)


def test_sighup_with_a_broken_config_keeps_the_running_one(
    workspace: Workspace, daemons: list[DaemonProcess]
) -> None:
    config = workspace.write_config(SCHEDULE_1S)
    good = config.read_text(encoding="utf-8")
    daemon = start(daemons, workspace)
    daemon.wait_for_runs(1)

    config.write_text(good.replace('interval = "1s"', 'intervall = "1s"'), encoding="utf-8")
    daemon.send(signal.SIGHUP)
    failed = daemon.wait_for_lines(r"reload failed")[0]
    assert "schedule.intervall" in failed and "unknown key" in failed
    assert str(config.name) in failed
    runs = len(daemon.matching(r": run "))
    daemon.wait_for_runs(runs + 2)  # still running on the old config's 1 s schedule

    # A good config is taken: the next run publishes the new title.
    config.write_text(good.replace('title = "Test Newswire"', 'title = "Reloaded Wire"'),
                      encoding="utf-8")
    daemon.send(signal.SIGHUP)
    daemon.wait_for_lines(r"config reloaded")

    def retitled() -> bool | None:
        atom = ET.parse(workspace.output / "combined.atom").getroot()
        return True if atom.findtext(f"{ATOM}title") == "Reloaded Wire" else None

    poll(retitled, what="the reloaded title to be published")
    assert daemon.stop() == 0


def test_a_second_daemon_or_a_one_shot_run_exits_3(
    workspace: Workspace, daemons: list[DaemonProcess]
) -> None:
    workspace.write_config('[schedule]\ninterval = "1h"\n')
    daemon = start(daemons, workspace)
    daemon.wait_for_runs(1)
    second = workspace.run()
    assert second.returncode == 3, second.stderr
    assert ".aggregate.lock" in second.stderr
    once = workspace.run("--once")
    assert once.returncode == 3, once.stderr
    assert daemon.process.poll() is None
    assert daemon.stop() == 0


def test_a_taken_port_is_reported_and_nothing_runs(
    workspace: Workspace, daemons: list[DaemonProcess]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = workspace.run("--serve", f"127.0.0.1:{port}", timeout=30)
    assert result.returncode == 2, result.stderr
    assert f"--serve: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert published_names(workspace.output) == []


@pytest.mark.parametrize("option", ["127.0.0.1:http", "[::1", "127.0.0.1:70000"])
def test_a_bad_serve_address_is_a_usage_error(workspace: Workspace, option: str) -> None:
    result = workspace.run("--serve", option, timeout=30)
    assert result.returncode == 2, result.stderr
    assert "--serve" in result.stderr and option in result.stderr
    assert "Traceback" not in result.stderr


def test_json_logs_are_one_object_per_line(
    workspace: Workspace, daemons: list[DaemonProcess]
) -> None:
    workspace.write_config(SCHEDULE_1S)
    daemon = start(daemons, workspace, "--log-format", "json")
    daemon.wait_for_lines(r'"msg": "run"', count=2)
    assert daemon.stop() == 0
    records = [json.loads(line) for line in daemon.lines]
    runs = [r for r in records if r["msg"] == "run"]
    assert runs[0]["outcome"] == "ok" and runs[0]["stories"] == 19
    assert runs[0]["logger"] == "aggregator.scheduler" and runs[0]["level"] == "info"
    assert isinstance(runs[0]["duration"], float)


def test_a_stop_signal_the_kernel_hands_to_another_thread_still_stops_the_daemon() -> None:
    """The kernel may deliver SIGTERM to any thread of the daemon (the scheduler's, a
    fetch's); the main thread, waiting for orders, must still see it. Here a thread sends
    it to itself, so only that thread is interrupted: before the fix the main thread slept
    on until something else woke it (a daemon ignoring SIGTERM, seen in CI runs)."""
    import faulthandler
    import threading
    from typing import Any, cast

    from aggregator import scheduler

    control = scheduler._Control(cast(Any, None), None)
    previous = control.install_signal_handlers()
    guard = threading.Timer(5.0, control.request_stop)  # ends the wait if the signal is lost

    def send_to_this_thread() -> None:
        time.sleep(0.2)
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

    try:
        guard.start()
        threading.Thread(target=send_to_this_thread).start()
        started = time.monotonic()
        control.run()
        waited = time.monotonic() - started
    finally:
        faulthandler.cancel_dump_traceback_later()  # run() arms it to end a stuck daemon
        guard.cancel()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    assert waited < 2.0, f"the stop came {waited:.1f} s later, from the guard, not the signal"
