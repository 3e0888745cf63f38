#!/usr/bin/env python3
"""Benchmark several nodes on one PostgreSQL: 1, 2 and 4 nodes over 1,000 loopback feeds.

A server on 127.0.0.1 serves N small feeds (`tests/feed_farm.py`: two items each, an ETag,
304 to a conditional request) and counts every request per feed. For each node count, on a
fresh PostgreSQL schema, the nodes are started together as `aggregate --once` processes
(each with its own config and output directory, the same `[store] url`) and the round is
timed from the first start to the last exit, twice:

- cold: an empty store, every feed fetched, parsed, stored, placed into stories, published;
- warm: the next round, every feed due again (the stored next-fetch times are cleared, as
  if the feeds' hour had passed): every feed answers 304.

The feeds' `interval` is an hour, longer than any round: so a fetch per feed above 1.00
would be a feed fetched twice by two nodes in one interval.

It prints, per node count, the median, min and max wall seconds of each round and the
fetches per feed of each round (must be 1.00: the leases let no feed be fetched twice).

    python benchmarks/multinode.py                  # 1, 2, 4 nodes; 1,000 feeds; 3 runs
    python benchmarks/multinode.py --nodes 1 2 --feeds 300 --runs 1

Needs the PostgreSQL of the machine (`NEWSWIRE_TEST_POSTGRES`, default
`postgresql+psycopg://postgres@127.0.0.1:5432/test`); each run uses a schema of its own,
dropped after. Bounded by `--max-seconds`; talks only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from feed_farm import FeedFarm  # noqa: E402

POSTGRES_URL = os.environ.get(
    "NEWSWIRE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def aggregate_command() -> list[str]:
    """The `aggregate` script of the running interpreter's environment."""
    script = Path(sys.executable).parent / "aggregate"
    found = str(script) if script.exists() else shutil.which("aggregate")
    return [found] if found else [sys.executable, "-m", "aggregator"]


@contextmanager
def fresh_schema() -> Iterator[str]:
    """A store URL on a PostgreSQL schema of its own, dropped afterwards."""
    schema = f"newswire_bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def write_node(root: Path, name: str, store_url: str, sources: str) -> Path:
    """A node's config (its own output directory, the shared store); returns its path."""
    config = root / name / "config" / "aggregator.toml"
    config.parent.mkdir(parents=True)
    config.write_text(textwrap.dedent(f"""
        [output]
        dir = "../output"
        base_url = "http://feeds.example.test/"

        [store]
        url = "{store_url}"
        node = "{name}"
        lease = "5m"
        batch = 50

        [fetch]
        concurrency = 16
        per_host = 16

        [agencies.nato]
        name = "NATO"
    """) + sources, encoding="utf-8")
    return config


def round_of(configs: Sequence[Path], timeout: float) -> float:
    """Start every node's `aggregate --once` at once; seconds until the last one exits."""
    env = {k: v for k, v in os.environ.items() if k not in ("AGGREGATOR_NOW", "AGGREGATOR_CONFIG")}
    started = time.perf_counter()
    processes = [subprocess.Popen([*aggregate_command(), "--once", "-q", "--config", str(c)],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True) for c in configs]
    for process in processes:
        _, stderr = process.communicate(timeout=timeout)
        if process.returncode != 0:
            raise SystemExit(f"a node failed (exit {process.returncode}):\n{stderr}")
    return time.perf_counter() - started


def measure(nodes: int, feeds: int, timeout: float) -> tuple[float, float, float, float]:
    """(cold seconds, cold fetches per feed, warm seconds, warm fetches per feed)."""
    with FeedFarm(feeds) as farm, fresh_schema() as store_url, \
            tempfile.TemporaryDirectory(prefix="newswire-multinode-") as scratch:
        sources = farm.sources_toml(interval="1h")
        configs = [write_node(Path(scratch), f"node-{n}", store_url, sources)
                   for n in range(1, nodes + 1)]
        cold = round_of(configs, timeout)
        cold_fetches = sum(len(t) for t in farm.snapshot().values()) / feeds
        engine = sa.create_engine(store_url)
        with engine.begin() as conn:  # as if the hour had passed: every feed is due
            conn.execute(sa.text("UPDATE sources SET next_attempt = NULL"))
        engine.dispose()
        before = sum(len(t) for t in farm.snapshot().values())
        warm = round_of(configs, timeout)
        warm_fetches = (sum(len(t) for t in farm.snapshot().values()) - before) / feeds
    return cold, cold_fetches, warm, warm_fetches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=900.0)
    args = parser.parse_args()
    deadline = time.monotonic() + args.max_seconds
    print(f"{args.feeds} loopback feeds, 2 items each; {os.cpu_count()} CPUs; "
          f"{args.runs} run(s) per node count")
    print(f"{'nodes':>5}  {'cold round s (med, min-max)':>28}  {'fetches/feed':>12}  "
          f"{'warm round s (med, min-max)':>28}  {'fetches/feed':>12}")
    for nodes in args.nodes:
        results = []
        for _ in range(args.runs):
            left = deadline - time.monotonic()
            if left <= 0:
                raise SystemExit("out of time (--max-seconds)")
            results.append(measure(nodes, args.feeds, timeout=left))
        cold = [r[0] for r in results]
        warm = [r[2] for r in results]
        cold_fetches = max(r[1] for r in results)
        warm_fetches = max(r[3] for r in results)
        print(f"{nodes:>5}  {_spread(cold):>28}  {cold_fetches:>12.2f}  "
              f"{_spread(warm):>28}  {warm_fetches:>12.2f}", flush=True)


def _spread(values: Sequence[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


if __name__ == "__main__":
    main()
