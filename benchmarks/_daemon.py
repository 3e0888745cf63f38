"""Shared by the daemon benchmarks: a scratch workspace and the daemon as a subprocess."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

AGENCIES = """
[agencies.nato]
name = "NATO"
[agencies.europol]
name = "Europol"
[agencies.eurojust]
name = "Eurojust"
[agencies.interpol]
name = "INTERPOL"
aliases = ["Interpol (news and events)"]
[agencies.jcs]
name = "US Joint Chiefs of Staff"
aliases = ["US Defense Joint Chiefs of Staff"]
"""


def make_workspace(root: Path, extra_toml: str) -> Path:
    """Copy the bundled seeds under `root` and write a config; return the config's path."""
    (root / "seeds").mkdir(parents=True)
    for seed in sorted((REPO / "seeds").glob("*.txt")):
        shutil.copyfile(seed, root / "seeds" / seed.name)
    config = root / "config" / "aggregator.toml"
    config.parent.mkdir()
    config.write_text(
        '[output]\ndir = "../output"\n\n[store]\npath = "../state/aggregator.db"\n'
        + AGENCIES
        + '\n[[sources]]\ntype = "seedfile"\npath = "../seeds/*.txt"\n\n'
        + extra_toml,
        encoding="utf-8",
    )
    return config


def aggregate_command() -> list[str]:
    """The `aggregate` script of the running interpreter's environment."""
    script = Path(sys.executable).parent / "aggregate"
    found = str(script) if script.exists() else shutil.which("aggregate")
    return [found] if found else [sys.executable, "-m", "aggregator"]


class Daemon:
    """`aggregate` as a subprocess, its stderr lines counted as they arrive."""

    def __init__(self, config: Path, *args: str) -> None:
        self.process = subprocess.Popen(
            [*aggregate_command(), *args, "--config", str(config)],
            cwd=config.parent.parent, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True,
        )
        self.lines: list[str] = []
        self.runs = 0
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                if re.search(r": run( |$)", line):
                    self.runs += 1
                self._changed.notify_all()

    def wait_runs(self, count: int, timeout: float) -> None:
        """Block until `count` runs have finished; exit with the log if that takes too long."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.runs < count:
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    self.fail(f"only {self.runs} of {count} runs within {timeout:.0f}s")
                self._changed.wait(min(left, 1.0))

    def port(self, timeout: float = 30.0) -> int:
        """The port of `--serve 127.0.0.1:0`, from the daemon's `serving url=` line."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    match = re.search(r"serving url=http://[^ ]*:(\d+)/", line)
                    if match:
                        return int(match.group(1))
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.fail("no 'serving' line")
                self._changed.wait(1.0)

    def rss_kib(self) -> int:
        """Resident set size now, in KiB (Linux /proc)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        """User plus system CPU time used so far (Linux /proc)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / os.sysconf("SC_CLK_TCK")

    def stop(self) -> int:
        """SIGTERM, then the exit status (killed after 15 s)."""
        self.process.terminate()
        try:
            return self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def fail(self, message: str) -> None:
        """Stop the daemon and exit, showing the end of its log."""
        self.process.kill()
        tail = "\n".join(self.lines[-20:])
        sys.exit(f"benchmark failed: {message}\n--- daemon log (tail) ---\n{tail}")
