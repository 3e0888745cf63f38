"""The daemon as a user runs it: `aggregate [--serve]` in a subprocess, watched via stderr."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from conftest import FIXED_NOW, Workspace, aggregate_command

T = TypeVar("T")

STARTUP_TIMEOUT = 30.0
"""Generous: a cold Python start and the first run on a busy 2-core machine."""


class DaemonProcess:
    """A running `aggregate` daemon whose stderr lines are collected as they come.

    `wrapper` goes before the command and must `exec` it (so the pid is the daemon's), e.g.
    `ulimit_wrapper(1024)`.
    """

    def __init__(self, workspace: Workspace, *args: str,
                 env: dict[str, str] | None = None, wrapper: Sequence[str] = ()) -> None:
        full_env = {**os.environ, "AGGREGATOR_NOW": FIXED_NOW, **(env or {})}
        full_env.pop("AGGREGATOR_CONFIG", None)
        self.workspace = workspace
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            [*wrapper, *aggregate_command(), *args, "--config", str(workspace.config)],
            cwd=workspace.root, env=full_env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def log(self) -> str:
        """Everything the daemon said so far."""
        with self._changed:
            return "\n".join(self.lines)

    def matching(self, pattern: str) -> list[str]:
        """The stderr lines so far that match `pattern` (a regular expression)."""
        regex = re.compile(pattern)
        with self._changed:
            return [line for line in self.lines if regex.search(line)]

    def wait_for_lines(self, pattern: str, count: int = 1,
                       timeout: float = STARTUP_TIMEOUT) -> list[str]:
        """Wait until `count` stderr lines match `pattern`; fail with the log if they do not."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [line for line in self.lines if regex.search(line)]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.process.poll() is not None
                                      and not self._reader.is_alive()):
                    break
                self._changed.wait(min(remaining, 0.5))
        raise AssertionError(
            f"expected {count} line(s) matching {pattern!r} within {timeout}s "
            f"(exit status {self.process.poll()}); the daemon said:\n{self.log}"
        )

    def wait_for_runs(self, count: int, timeout: float = STARTUP_TIMEOUT) -> list[str]:
        """Wait until the daemon has logged `count` finished runs (of any outcome)."""
        return self.wait_for_lines(r": (run|run failed)( |$)", count, timeout)

    @property
    def base_url(self) -> str:
        """The URL the daemon serves on (it logs the port it got for `--serve HOST:0`)."""
        line = self.wait_for_lines(r"serving url=")[0]
        match = re.search(r"url=(\S+)", line)
        assert match, line
        return match.group(1).rstrip("/")

    def send(self, signum: int) -> None:
        """Send a signal to the daemon."""
        self.process.send_signal(signum)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Signal the daemon and return its exit status; fail if it takes over `timeout` s."""
        self.send(signum)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the daemon did not exit within {timeout}s of "
                                 f"{signal.Signals(signum).name}:\n{self.log}") from None

    def close(self) -> None:
        """Kill the daemon if it still runs (test clean-up)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._reader.join(5)


def ulimit_wrapper(open_files: int) -> list[str]:
    """A shell that lowers the file limit, then execs the daemon in its place."""
    return ["bash", "-c", f'ulimit -n {open_files} && exec "$@"', "aggregate"]


def poll(check: Callable[[], T | None], *, timeout: float = 20.0, interval: float = 0.1,
         what: str = "a condition") -> T:
    """Call `check` until it returns something other than None, or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except (OSError, AssertionError) as exc:  # e.g. the server is not up yet
            last_error = exc
            value = None
        if value is not None:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                         + (f" (last error: {last_error})" if last_error else ""))


@contextmanager
def serving_seeds(root: Path, config_body: str = '[schedule]\ninterval = "1h"\n',
                  *, header: str | None = None) -> Iterator[tuple[Workspace, str]]:
    """A workspace of the bundled seeds under `root`, published and served by a daemon on a
    free port: yields the workspace and the base URL, and stops the daemon (status 0) after."""
    workspace = Workspace(root)
    workspace.copy_bundled_seeds()
    workspace.write_config(config_body, header=header)
    daemon = DaemonProcess(workspace, "--serve", "127.0.0.1:0")
    try:
        base = daemon.base_url
        daemon.wait_for_runs(1)
        yield workspace, base
        assert daemon.stop() == 0
    finally:
        daemon.close()


def wait_healthy(base: str, what: str) -> None:
    """Poll `/healthz` until it answers 200."""
    import httpx

    poll(lambda: True if httpx.get(f"{base}/healthz").status_code == 200 else None, what=what)


def published_names(output: Path) -> Sequence[str]:
    """The published files of an output directory, as paths relative to it (the archive's
    files under `archive/` included; hidden files and directories themselves left out)."""
    return sorted(p.relative_to(output).as_posix() for p in output.rglob("*")
                  if p.is_file() and not any(part.startswith(".")
                                             for part in p.relative_to(output).parts))
