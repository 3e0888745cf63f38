#!/usr/bin/env python3
"""Benchmark live-feed runs: newswire against lemon24/reader on the same loopback feeds.

A server on 127.0.0.1 serves N synthetic feeds (RSS 2.0, every fifth one Atom) of E entries
each, with ETag and Last-Modified, answering conditional requests with 304. The entries are
news items from `benchmarks/gen_seeds.py` (realistic text, 1-2 KB of HTML each), so dedup
sees what it would see in real news. Then, on fresh state each round:

- newswire: `aggregate --once` cold (empty store) and warm (every feed answers 304), timed
  as whole processes; the warm run must rewrite no published file (mtimes compared); then
  a run after some feeds changed (`--changed`, 52 per 500 feeds by default: each gains 2
  new entries on top, new validators, the other entries as they were);
- reader: `update_feeds(workers=16, scheduled=False)` cold, warm and changed on its own SQLite file,
  timed as whole processes too (the feeds are added beforehand, untimed). `scheduled=False`
  because reader otherwise skips feeds updated within its default hour: the warm run would
  fetch nothing.

It prints the median, min and max of each figure and the ratios newswire / reader. newswire
runs with `[fetch] concurrency = 16` and `per_host = 16`: every feed is on one host here,
and reader, like most readers, has no per-host limit.

reader is not a project dependency; install it into the benchmark's environment only:

    python3 -m venv /tmp/bench && . /tmp/bench/bin/activate
    pip install -e . reader sgmllib3k     # reader's bundled feedparser imports sgmllib
    python benchmarks/live_feeds.py --runs 3

The script bounds its own runtime (`--max-seconds`) and talks only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
AGENCIES = 40
ENTRY_HTML_MAX = 1800
"""Entries keep whole paragraphs up to this many characters of HTML (at least one)."""
FIXED_NOW = "2026-11-23T09:00:00Z"
READER_SCRIPT = textwrap.dedent("""
    import sys, time
    from reader import make_reader
    database, mode, urls_file = sys.argv[1], sys.argv[2], sys.argv[3]
    reader = make_reader(database)
    if mode == "add":
        for url in open(urls_file).read().split():
            reader.add_feed(url)
    else:
        started = time.perf_counter()
        reader.update_feeds(workers=16, scheduled=False)
        print(time.perf_counter() - started)
    reader.close()
""")


class Budget:
    """The script's time limit: every subprocess gets what is left of it."""

    def __init__(self, seconds: float) -> None:
        self.ends = time.monotonic() + seconds

    def left(self) -> float:
        left = self.ends - time.monotonic()
        if left <= 0:
            raise TimeoutError("the benchmark ran out of its --max-seconds")
        return left


# -- the corpus ----------------------------------------------------------------------------


@dataclass(frozen=True)
class NewsItem:
    title: str
    paragraphs: tuple[str, ...]


def news_items(count: int, workdir: Path, budget: Budget) -> list[NewsItem]:
    """`count` news items written by gen_seeds.py, read back from its seed files."""
    out = workdir / "corpus"
    if not out.exists():
        subprocess.run(
            [sys.executable, str(HERE / "gen_seeds.py"), "--items", str(count), "--out",
             str(out), "--agencies", str(AGENCIES), "--dup-rate", "0", "--seed", "5"],
            check=True, stdout=subprocess.DEVNULL, timeout=budget.left(),
        )
    items: list[NewsItem] = []
    for path in sorted(out.glob("*.txt")):
        items.extend(_split_seed_file(path.read_text(encoding="utf-8-sig")))
    return items[:count]


def _split_seed_file(text: str) -> list[NewsItem]:
    # One pass over the lines: an item starts at a line followed by a blank line and a
    # "Source:" line (the seed format; see DESIGN.md).
    lines = text.replace("\r\n", "\n").split("\n")
    starts = [i for i in range(len(lines) - 2)
              if lines[i].strip() and not lines[i + 1].strip()
              and lines[i + 2].lower().startswith("source:")]
    items = []
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(lines)
        body = "\n".join(lines[start + 3 : end]).strip()
        paragraphs = tuple(p.strip() for p in re.split(r"\n\s*\n", body) if p.strip())
        items.append(NewsItem(lines[start].strip(), paragraphs))
    return items


NEWEST = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
NEW_ENTRIES = 2
"""Entries a changed feed gains on top (`--changed`)."""


def render_feeds(items: Sequence[NewsItem], feeds: int, entries: int) -> list[bytes]:
    """`feeds` documents of `entries` items each, newest first, one item per 7 hours."""
    return [_document(number, _entries(items, number, entries), NEWEST)
            for number in range(feeds)]


def changed_feeds(items: Sequence[NewsItem], feeds: int, entries: int, count: int
                  ) -> dict[int, bytes]:
    """`count` of the feeds, spread over them, each with NEW_ENTRIES new items on top (from
    the items after the feeds' own); the entries they had are unchanged below them."""
    changed: dict[int, bytes] = {}
    spare = feeds * entries
    for n in range(count):
        number = n * feeds // count
        fresh = items[spare + n * NEW_ENTRIES : spare + (n + 1) * NEW_ENTRIES]
        newer = NEWEST + timedelta(hours=1)
        on_top = [_entry_parts(item, number, f"new{k}", newer - timedelta(minutes=k))
                  for k, item in enumerate(fresh)]
        changed[number] = _document(number, on_top + _entries(items, number, entries), newer)
    return changed


def _entries(items: Sequence[NewsItem], number: int, entries: int) -> list[_Entry]:
    chunk = items[number * entries : (number + 1) * entries]
    return [_entry_parts(item, number, position, NEWEST - timedelta(hours=7 * position))
            for position, item in enumerate(chunk)]


def _document(number: int, rendered: list[_Entry], updated: datetime) -> bytes:
    return (_atom if number % 5 == 4 else _rss)(number, rendered, updated)


@dataclass(frozen=True)
class _Entry:
    title: str
    link: str
    guid: str
    date: datetime
    html: str


def _entry_parts(item: NewsItem, feed: int, position: int | str, date: datetime) -> _Entry:
    parts: list[str] = []
    size = 0
    for paragraph in item.paragraphs:
        piece = f"<p>{html.escape(paragraph)}</p>"
        if parts and size + len(piece) > ENTRY_HTML_MAX:
            break
        parts.append(piece)
        size += len(piece)
    slug = f"{feed}-{position}"
    return _Entry(item.title, f"https://agency{feed % AGENCIES}.example/news/{slug}",
                  f"urn:bench:{slug}", date, "".join(parts))


def _rss(feed: int, entries: list[_Entry], updated: datetime) -> bytes:
    out = ['<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
           f"<title>Agency {feed}</title><link>https://agency{feed % AGENCIES}.example/</link>"
           f"<description>News of agency {feed}</description>"
           f"<lastBuildDate>{format_datetime(updated)}</lastBuildDate>"]
    for e in entries:
        out.append(f"<item><title>{html.escape(e.title)}</title><link>{e.link}</link>"
                   f'<guid isPermaLink="false">{e.guid}</guid>'
                   f"<pubDate>{format_datetime(e.date)}</pubDate>"
                   f"<description>{html.escape(e.html)}</description></item>")
    out.append("</channel></rss>")
    return "".join(out).encode()


def _atom(feed: int, entries: list[_Entry], updated: datetime) -> bytes:
    out = ['<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
           f"<title>Agency {feed}</title><id>urn:bench:feed:{feed}</id>"
           f"<updated>{updated.isoformat()}</updated>"
           f'<link rel="alternate" href="https://agency{feed % AGENCIES}.example/"/>']
    for e in entries:
        out.append(f"<entry><title>{html.escape(e.title)}</title><id>{e.guid}</id>"
                   f'<link rel="alternate" href="{e.link}"/>'
                   f"<updated>{e.date.isoformat()}</updated>"
                   f'<content type="html">{html.escape(e.html)}</content></entry>')
    out.append("</feed>")
    return "".join(out).encode()


# -- the server ----------------------------------------------------------------------------


class FeedServer:
    """Serves the documents at /feed/<n>.xml on 127.0.0.1 with validators and 304s."""

    def __init__(self, documents: Sequence[bytes]) -> None:
        self.original = list(documents)
        self.documents: dict[str, bytes] = {}
        self.etags: dict[str, str] = {}
        self.modified: dict[str, str] = {}
        self.serve({n: body for n, body in enumerate(documents)})
        self.types = {path: "application/atom+xml" if b"<feed xmlns" in body[:200]
                      else "application/rss+xml" for path, body in self.documents.items()}
        self.requests = 0
        self.not_modified = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server.answer(self)

        ThreadingHTTPServer.daemon_threads = True
        ThreadingHTTPServer.request_queue_size = 256
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def serve(self, documents: dict[int, bytes]) -> None:
        """Serve these documents (by feed number) from now on, with validators of their own."""
        for number, body in documents.items():
            path = f"/feed/{number}.xml"
            self.documents[path] = body
            self.etags[path] = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
            changed = body != self.original[number]
            self.modified[path] = format_datetime(
                datetime(2026, 11, 20, 13 if changed else 12, tzinfo=UTC), usegmt=True)

    def restore(self) -> None:
        """Serve the original documents again."""
        self.serve(dict(enumerate(self.original)))

    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{self.port}{path}" for path in self.documents]

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        body = self.documents.get(handler.path)
        with self._lock:
            self.requests += 1
        if body is None:
            handler.send_response(404)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        etag = self.etags[handler.path]
        if (handler.headers.get("If-None-Match") == etag
                or handler.headers.get("If-Modified-Since") == self.modified[handler.path]):
            with self._lock:
                self.not_modified += 1
            handler.send_response(304)
            handler.send_header("ETag", etag)
            handler.end_headers()
            return
        handler.send_response(200)
        handler.send_header("Content-Type", self.types[handler.path] + "; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("ETag", etag)
        handler.send_header("Last-Modified", self.modified[handler.path])
        handler.end_headers()
        handler.wfile.write(body)

    def count(self) -> tuple[int, int]:
        with self._lock:
            return self.requests, self.not_modified

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# -- the two contenders --------------------------------------------------------------------


def newswire_config(root: Path, urls: Sequence[str]) -> Path:
    config = root / "config" / "aggregator.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    parts = ['[output]\ndir = "../output"\nbase_url = "http://127.0.0.1:8080/"\n'
             '[store]\npath = "../state/aggregator.db"\n'
             '[fetch]\nconcurrency = 16\nper_host = 16\ntimeout = "30s"\n']
    parts += [f'[agencies.agency-{n}]\nname = "Agency {n}"\n' for n in range(AGENCIES)]
    parts += [f'[[sources]]\ntype = "feed"\nagency = "agency-{n % AGENCIES}"\nurl = "{url}"\n'
              for n, url in enumerate(urls)]
    config.write_text("\n".join(parts), encoding="utf-8")
    return config


def aggregate_command() -> list[str]:
    script = Path(sys.executable).parent / "aggregate"
    return [str(script)] if script.exists() else [sys.executable, "-m", "aggregator"]


@dataclass
class Timing:
    wall: float
    inside: float | None = None
    note: str = ""
    cpu: float | None = None
    """User + system CPU seconds of the process and the children it waited for."""


def children_cpu() -> float:
    """CPU seconds used so far by the children this process has waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_newswire(config: Path, budget: Budget) -> Timing:
    env = {**os.environ, "AGGREGATOR_NOW": FIXED_NOW}
    env.pop("AGGREGATOR_CONFIG", None)
    started, cpu = time.perf_counter(), children_cpu()
    # -v for the run's own phase timings (read, dedup, publish).
    done = subprocess.run([*aggregate_command(), "--once", "-v", "--config", str(config)],
                          capture_output=True, text=True, env=env, timeout=budget.left())
    wall, cpu = time.perf_counter() - started, children_cpu() - cpu
    lines = done.stderr.strip().splitlines()
    summary = lines[-1] if lines else ""
    if done.returncode != 0:
        raise RuntimeError(f"aggregate exited {done.returncode}:\n{done.stderr[-3000:]}")
    inside = re.search(r"; ([0-9.]+)s$", summary)
    phases = next((line.split("timing ", 1)[1] for line in lines if " timing " in line), "")
    return Timing(wall, float(inside.group(1)) if inside else None,
                  f"{summary.removeprefix('aggregate: ')}; {phases}", cpu)


def run_reader(database: Path, urls_file: Path, mode: str, budget: Budget) -> Timing:
    started, cpu = time.perf_counter(), children_cpu()
    done = subprocess.run([sys.executable, "-c", READER_SCRIPT, str(database), mode,
                           str(urls_file)], capture_output=True, text=True,
                          timeout=budget.left())
    wall, cpu = time.perf_counter() - started, children_cpu() - cpu
    if done.returncode != 0:
        raise RuntimeError(f"reader failed:\n{done.stderr[-3000:]}")
    inside = float(done.stdout.strip().splitlines()[-1]) if mode == "update" else None
    return Timing(wall, inside, cpu=cpu)


def mtimes(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in directory.iterdir()
            if not p.name.startswith(".")}


@dataclass
class Results:
    figures: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, name: str, value: float | None) -> None:
        if value is not None:
            self.figures.setdefault(name, []).append(value)

    def median(self, name: str) -> float | None:
        values = self.figures.get(name)
        return statistics.median(values) if values else None


def one_round(round_no: int, workdir: Path, server: FeedServer, with_reader: bool,
              budget: Budget, results: Results, changed: dict[int, bytes]) -> None:
    root = workdir / f"round-{round_no}"
    shutil.rmtree(root, ignore_errors=True)
    server.restore()
    urls = server.urls()
    config = newswire_config(root / "newswire", urls)
    before = server.count()
    cold = run_newswire(config, budget)
    after_cold = server.count()
    output = root / "newswire" / "output"
    written = mtimes(output)
    warm = run_newswire(config, budget)
    after_warm = server.count()
    rewritten = sorted(n for n, t in mtimes(output).items() if written.get(n) != t)
    results.add("newswire cold", cold.wall)
    results.add("newswire cold (in run)", cold.inside)
    results.add("newswire warm", warm.wall)
    results.add("newswire warm (in run)", warm.inside)
    results.add("newswire cold CPU", cold.cpu)
    results.add("newswire warm CPU", warm.cpu)
    results.add("files rewritten on warm", len(rewritten))
    print(f"round {round_no}: newswire cold {cold.wall:.2f}s ({cold.note})", flush=True)
    print(f"round {round_no}: newswire warm {warm.wall:.2f}s ({warm.note}); "
          f"304s {after_warm[1] - after_cold[1]}/{after_warm[0] - after_cold[0]} requests; "
          f"files rewritten: {rewritten or 'none'}", flush=True)
    assert after_cold[0] - before[0] == len(urls), "every feed is fetched once cold"
    if changed:
        server.serve(changed)
        after = run_newswire(config, budget)
        server.restore()
        results.add("newswire changed", after.wall)
        results.add("newswire changed CPU", after.cpu)
        print(f"round {round_no}: newswire after {len(changed)} feeds changed "
              f"{after.wall:.2f}s ({after.note})", flush=True)
    if not with_reader:
        return
    reader_dir = root / "reader"
    reader_dir.mkdir(parents=True)
    urls_file = reader_dir / "urls.txt"
    urls_file.write_text("\n".join(urls), encoding="utf-8")
    database = reader_dir / "reader.sqlite"
    run_reader(database, urls_file, "add", budget)
    reader_cold = run_reader(database, urls_file, "update", budget)
    reader_warm = run_reader(database, urls_file, "update", budget)
    results.add("reader cold", reader_cold.wall)
    results.add("reader cold (in run)", reader_cold.inside)
    results.add("reader warm", reader_warm.wall)
    results.add("reader warm (in run)", reader_warm.inside)
    results.add("reader cold CPU", reader_cold.cpu)
    results.add("reader warm CPU", reader_warm.cpu)
    if changed:
        server.serve(changed)
        reader_after = run_reader(database, urls_file, "update", budget)
        server.restore()
        results.add("reader changed", reader_after.wall)
        results.add("reader changed CPU", reader_after.cpu)
    print(f"round {round_no}: reader cold {reader_cold.wall:.2f}s, warm "
          f"{reader_warm.wall:.2f}s", flush=True)


RATIO_TARGETS = {100: {"cold": 1.0, "warm": 0.5}, 500: {"cold": 0.75, "warm": 0.5, "changed": 0.75}}
"""Issue 14's targets: newswire's time over reader's, by the number of feeds."""


def ratio_target(feeds: int, step: str) -> float | None:
    """The target ratio of a step at this many feeds (the nearest size listed)."""
    nearest = min(RATIO_TARGETS, key=lambda n: abs(n - feeds))
    return RATIO_TARGETS[nearest].get(step)


def measure(feeds: int, entries: int, runs: int, with_reader: bool, budget: Budget,
            workdir: Path, changed: int | None = None) -> Results:
    """Rounds of cold, warm and changed runs over `feeds` loopback feeds (`changed`: feeds
    that gain entries; default 52 per 500 feeds)."""
    results = Results()
    count = round(feeds * 52 / 500) if changed is None else changed
    items = news_items(feeds * entries + count * NEW_ENTRIES, workdir, budget)
    documents = render_feeds(items, feeds, entries)
    server = FeedServer(documents)
    try:
        for round_no in range(1, runs + 1):
            one_round(round_no, workdir, server, with_reader, budget, results,
                      changed_feeds(items, feeds, entries, count))
    except (TimeoutError, subprocess.TimeoutExpired) as exc:
        print(f"stopped: out of time ({exc})", file=sys.stderr)
    finally:
        server.close()
    return results


def report(results: Results, args: argparse.Namespace, entries_total: int) -> None:
    print()
    print(f"{args.feeds} feeds x {args.entries} entries = {entries_total} entries; "
          f"{len(results.figures.get('newswire cold', []))} "
          "rounds; whole-process wall seconds (median, min, max)")
    for name, values in results.figures.items():
        print(f"  {name:28s} {statistics.median(values):8.2f} {min(values):8.2f} "
              f"{max(values):8.2f}")
    for ours, theirs in (("newswire cold", "reader cold"), ("newswire warm", "reader warm"),
                         ("newswire changed", "reader changed")):
        a, b = results.median(ours), results.median(theirs)
        target = ratio_target(args.feeds, ours.split()[-1])
        if a is not None and b:
            verdict = "" if target is None else \
                f" (target <= {target:g}: {'met' if a / b <= target else 'MISSED'})"
            print(f"  ratio {ours} / {theirs}: {a / b:.2f}{verdict}")
    if args.json:
        Path(args.json).write_text(json.dumps(results.figures, indent=2), encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--feeds", type=int, default=500)
    parser.add_argument("--entries", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3, help="rounds, each on fresh state")
    parser.add_argument("--no-reader", action="store_true", help="time newswire only")
    parser.add_argument("--workdir", help="where to keep the corpus and state (default: temp)")
    parser.add_argument("--max-seconds", type=float, default=1800,
                        help="give up after this long in all (default 1800)")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--changed", type=int, default=None,
                        help=f"feeds that gain {NEW_ENTRIES} entries after the warm run "
                             "(default: 52 per 500 feeds; 0: no such run)")
    args = parser.parse_args(argv)
    budget = Budget(args.max_seconds)
    with_reader = not args.no_reader
    if with_reader:
        try:
            import reader  # noqa: F401
        except ImportError:
            parser.error("reader is not installed here: pip install reader (or --no-reader)")
    temporary = None if args.workdir else tempfile.mkdtemp(prefix="newswire-bench-")
    workdir = Path(args.workdir or temporary or ".")
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        results = measure(args.feeds, args.entries, args.runs, with_reader, budget, workdir,
                          args.changed)
        report(results, args, args.feeds * args.entries)
    finally:
        if temporary:
            shutil.rmtree(temporary, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
