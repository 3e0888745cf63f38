"""No process of ours outlives the daemon or a run, whatever ends it (issue 12, problem 4),
and `aggregate --once` clears the temporary files of dead runs (problem 5)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import FIXED_NOW, Workspace, aggregate_command, seed_text
from daemon_process import DaemonProcess, poll


def bulk_seeds(workspace: Workspace) -> None:
    """~1,500 items, enough for a run to start worker processes."""
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


def descendants(pid: int) -> dict[int, str]:
    """Every live process below `pid`, with its command line."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
    found: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, its_parent in parents.items():
            if its_parent == parent and child not in found:
                found[child] = command_line(child)
                frontier.append(child)
    return found


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
    except OSError:
        return ""


def alive(pids: dict[int, str]) -> dict[int, str]:
    """Those of `pids` still running (zombies count as gone) with the same command line."""
    living = {}
    for pid, command in pids.items():
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and command_line(pid) == command:
            living[pid] = command
    return living


def workers_of(pid: int, count: int) -> dict[int, str]:
    """Wait until `count` processes run below `pid` (its workers started); return them."""
    return poll(lambda: found if len(found := descendants(pid)) >= count else None,
                timeout=30, interval=0.05, what="worker processes")


def assert_all_gone(pids: dict[int, str], within: float) -> None:
    deadline = time.monotonic() + within
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(pids), f"left running: {alive(pids)}"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_daemon_stopped_mid_run_leaves_no_process_behind(
    workspace: Workspace, signum: int
) -> None:
    bulk_seeds(workspace)
    workspace.write_config('[schedule]\ninterval = "1h"\n')
    daemon = DaemonProcess(workspace)
    try:
        # A fork server, its two workers and the resource tracker.
        children = workers_of(daemon.process.pid, 4)
        status = daemon.stop(signum, timeout=10)
        assert status == (0 if signum == signal.SIGTERM else -signal.SIGKILL)
        assert_all_gone(children, within=3.0)
    finally:
        daemon.close()


def test_sigkill_of_a_run_leaves_no_process_behind(workspace: Workspace) -> None:
    bulk_seeds(workspace)
    run = subprocess.Popen(
        [*aggregate_command(), "--once", "--config", str(workspace.config)],
        env={**os.environ, "AGGREGATOR_NOW": FIXED_NOW}, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        children = workers_of(run.pid, 2)  # two forked workers
        run.send_signal(signal.SIGKILL)
        run.wait(10)
        assert_all_gone(children, within=5.0)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(10)


def test_once_removes_the_temporary_files_of_dead_runs_only(workspace: Workspace) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait(10)
    workspace.output.mkdir(parents=True, exist_ok=True)
    (workspace.output / "archive").mkdir()
    stale = [workspace.output / f".combined.atom.{dead.pid}.tmp",
             workspace.output / "archive" / f".combined-2024-11.atom.{dead.pid}.tmp"]
    live = workspace.output / f".nato.atom.{os.getpid()}.tmp"  # this test process: alive
    for path in [*stale, live]:
        path.write_text("half a file")
    result = workspace.run("--once", "-v")
    assert result.returncode == 0, result.stderr
    assert not any(path.exists() for path in stale)
    assert live.exists()
    assert "removed a stale temporary file file=.combined.atom" in result.stderr
