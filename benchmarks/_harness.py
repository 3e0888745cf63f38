"""Shared pieces of the benchmarks: synthetic corpora, workspaces, timed runs of the CLI.

Every figure is a whole `aggregate` process, timed from outside: wall seconds and the peak
resident memory the kernel reports for that process (``os.wait4``).
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = Path(os.environ.get("NEWSWIRE_BENCH_DIR", ROOT / "benchmarks" / "_work"))
AGGREGATE = str(Path(sys.executable).parent / "aggregate")
CONFIG = """\
[output]
dir = "../output"
base_url = "http://localhost:8080/"

[store]
path = "../state/aggregator.db"

[[sources]]
type = "seedfile"
path = "../seeds/*.txt"
"""
_TIMING = re.compile(r"timing read=([\d.]+)s dedup=([\d.]+)s publish=([\d.]+)s")


@dataclass(frozen=True)
class Run:
    """One timed process."""

    wall: float
    peak_mb: float
    status: int
    stderr: str
    cpu: float = 0.0
    """User + system CPU seconds of the process and the children it waited for."""

    @property
    def phases(self) -> dict[str, float]:
        """The run's own phase timings (read, dedup, publish), from its -v log line."""
        match = _TIMING.search(self.stderr)
        if match is None:
            return {}
        return dict(zip(("read", "dedup", "publish"), map(float, match.groups()), strict=True))


def timed(command: Sequence[str], cwd: Path | None = None,
          env: dict[str, str] | None = None) -> Run:
    """Run a command to completion; its wall time and peak RSS (MB)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env={**os.environ, **(env or {})},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    return Run(wall, usage.ru_maxrss / 1024, process.returncode, stderr,
               usage.ru_utime + usage.ru_stime)


def corpus(items: int, seed: int = 7, days: int = 365) -> Path:
    """A synthetic seed corpus of `items` items over `days` days (generated once, reused)."""
    directory = WORK / (f"corpus-{items}-{seed}" + ("" if days == 365 else f"-{days}d"))
    if not (directory / ".complete").exists():
        shutil.rmtree(directory, ignore_errors=True)
        subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / "gen_seeds.py"), "--items", str(items),
             "--out", str(directory / "seeds"), "--seed", str(seed), "--days", str(days),
             "--truth",
             str(directory / "truth.json")],
            check=True, stdout=subprocess.DEVNULL,
        )
        (directory / ".complete").touch()
    return directory / "seeds"


def workspace(name: str, seed_files: Sequence[Path]) -> Path:
    """A fresh directory with a config, links to `seed_files`, no state and no output."""
    root = WORK / name
    shutil.rmtree(root, ignore_errors=True)
    (root / "config").mkdir(parents=True)
    (root / "seeds").mkdir()
    (root / "config" / "aggregator.toml").write_text(CONFIG)
    for path in seed_files:
        (root / "seeds" / path.name).symlink_to(path)
    return root


def aggregate(root: Path, *args: str) -> Run:
    """`aggregate --once -v` on a workspace."""
    return timed([AGGREGATE, "--once", "-v", "--config", str(root / "config" / "aggregator.toml"),
                  *args])


def reset(root: Path) -> None:
    """Forget the state and the output: the next run is cold."""
    shutil.rmtree(root / "state", ignore_errors=True)
    shutil.rmtree(root / "output", ignore_errors=True)


def output_stamps(root: Path) -> dict[str, int]:
    """Each published file's mtime, to tell which files a run rewrote."""
    return {p.name: p.stat().st_mtime_ns for p in (root / "output").iterdir()
            if not p.name.startswith(".")}


def median(values: Sequence[float]) -> float:
    """The median, the figure to quote on a noisy shared machine."""
    return statistics.median(values)


def check(run: Run, what: str) -> Run:
    """Stop the benchmark when a run failed: its figures would mean nothing."""
    if run.status not in (0, 1):
        sys.exit(f"{what}: aggregate exited {run.status}:\n{run.stderr[-2000:]}")
    return run
