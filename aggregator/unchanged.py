"""The unchanged rerun: a one-shot run over seed files none of which changed since the last
run, recognised and recorded with plain `sqlite3`, without loading the pipeline.

A cron job reruns `aggregate --once` every few minutes, and mostly nothing changed. The full
pipeline would find that out too, but only after importing SQLAlchemy, which alone costs
more than everything else such a run does. This check reads the same tables (one schema:
the store's, at the version `SCHEMA_VERSION` names) and answers only when it is sure:
every source is a seed file with the same signature (size, mtime, inode) and the same
agencies config as when it was last read, no failures, no item waiting for a story, no item
of a source the config no longer lists (the full run would withdraw it), and the published
files are there with the stamp the next publish would compute. Then it records
what the full run would have recorded (each source's last attempt and success) and returns
the same result. In every other case — PostgreSQL, live feeds, a file that changed, a store
at another schema version, any doubt — it returns None and the full pipeline runs.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Sequence
from contextlib import closing
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aggregator.config import Config
from aggregator.errors import SourceError
from aggregator.manifest import MANIFEST_NAME
from aggregator.model import RunResult, SourceReport

if TYPE_CHECKING:
    from aggregator.sources.seedfile import SeedFileUnit

log = logging.getLogger(__name__)

SCHEMA_VERSION = 6
"""The store schema version (its count of migrations) these queries were written for; a
store at any other version goes through the full pipeline. (Versions 2-5 added tables these
queries do not read: leases, WebSub subscriptions, tombstones, story feeds.)"""
_SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"
"""How the store's DateTime columns are written on SQLite (SQLAlchemy's storage format)."""
_CHUNK = 500
"""Source ids per IN (...) list, under SQLite's variable limit."""


def unchanged_run(config: Config, now: datetime) -> RunResult | None:
    """The result of a run at `now` when nothing it would read changed (recording the
    attempt as the full run does); None when the full pipeline must run."""
    timer = time.perf_counter()
    path = config.store.sqlite_path
    sources = config.enabled_sources
    if path is None or not path.is_file() or not sources:
        return None
    if any(source.type != "seedfile" for source in sources):
        return None
    from aggregator.sources import seedfile

    units: list[SeedFileUnit] = []
    for source in sources:
        try:
            units.extend(seedfile.expand_source(source, config))
        except SourceError:
            return None  # the full run reports it
    try:
        with closing(sqlite3.connect(path, timeout=30, isolation_level=None)) as db:
            # The store's durability: with its write-ahead log, NORMAL syncs at checkpoints.
            db.execute("PRAGMA synchronous=NORMAL")
            result = _check_and_record(db, config, units, now.replace(microsecond=0))
    except (sqlite3.Error, OSError, ValueError) as exc:
        log.debug("unchanged-rerun check gave up (%r); running the full pipeline", exc)
        return None
    if result is None:
        return None
    items_total, stories, files = result
    log.info("publish skipped: nothing changed since the last run")
    log.info("timing read=%.2fs dedup=0.00s publish=0.00s", time.perf_counter() - timer)
    return RunResult(
        started=now.replace(microsecond=0),
        duration=time.perf_counter() - timer,
        sources=tuple(SourceReport(name=unit.name, ok=True, skipped=True) for unit in units),
        items_new=0,
        items_updated=0,
        items_total=items_total,
        stories=stories,
        files_written=(),
        files_unchanged=files,
    )


def _check_and_record(
    db: sqlite3.Connection, config: Config, units: Sequence[SeedFileUnit], now: datetime
) -> tuple[int, int, int] | None:
    """(items, stories, published files) after recording the run, or None if anything
    would make the full run do more than that."""
    # The write lock first, so nothing changes between the checks and the record.
    db.execute("BEGIN IMMEDIATE")
    try:
        version = db.execute("SELECT version FROM schema_version").fetchone()
        if version is None or version[0] != SCHEMA_VERSION:
            return None
        digest = config.fingerprint("agencies")
        ids = [unit.source_id for unit in units]
        known: dict[str, tuple[str | None, str | None, int, str | None]] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for row in db.execute(
                "SELECT source_id, signature, read_digest, failures, last_error FROM sources "
                f"WHERE source_id IN ({marks})", chunk,
            ):
                known[row[0]] = (row[1], row[2], row[3], row[4])
        for unit in units:
            state = known.get(unit.source_id)
            if state is None or state[1] != digest or state[2] or state[3] is not None:
                return None
            if state[0] != unit.signature():
                return None
        if db.execute("SELECT 1 FROM items WHERE story_id IS NULL LIMIT 1").fetchone():
            return None  # items an interrupted run left unplaced
        stored_sources = {row[0] for row in db.execute("SELECT DISTINCT source_id FROM items")}
        if not stored_sources <= set(ids):
            return None  # items of a removed (or switched off) source: the full run decides
        files = _published_files(db, config)
        if files is None:
            return None
        stamp = now.astimezone(UTC).replace(tzinfo=None).strftime(_SQLITE_DATETIME)
        db.executemany(
            "UPDATE sources SET read_digest = ?, last_attempt = ?, last_success = ?, "
            "last_error = NULL, failures = 0 WHERE source_id = ?",
            [(digest, stamp, stamp, source_id) for source_id in ids],
        )
        items_total = int(db.execute("SELECT count(*) FROM items").fetchone()[0])
        stories = int(db.execute("SELECT count(*) FROM stories").fetchone()[0])
        db.execute("COMMIT")
        return items_total, stories, files
    finally:
        if db.in_transaction:
            db.execute("ROLLBACK")


def _published_files(db: sqlite3.Connection, config: Config) -> int | None:
    """How many files the last publish wrote, if publishing now would be skipped (the
    same stamp as the pipeline computes, the output directory's record of it and every file
    it names still there); else None."""
    from aggregator import publish
    from aggregator.manifest import PUBLISHED_RECORD

    out_dir = config.output.dir
    try:
        last = json.loads((out_dir / PUBLISHED_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(last, dict) or not (out_dir / MANIFEST_NAME).is_file():
        return None
    row = db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
    generation = int(row[0]) if row and row[0] else 0
    stamp = publish.publish_stamp(generation, config)
    files = last.get("files")
    if last.get("stamp") != stamp or not isinstance(files, list):
        return None
    if not all((out_dir / n).is_file() for n in files):
        return None
    return len(files)
