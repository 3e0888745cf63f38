"""The seed-file adapter: plain-text files of agency news items.

Format (DESIGN.md): a title line, a blank line, `Source: <agency>`, a blank line, then body
paragraphs until the next item. An item starts wherever a non-blank line is followed by a blank
line and a `Source:` line, so bodies may hold blank lines and short title-like lines. UTF-8,
with or without a BOM, LF or CRLF line ends.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import re
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from aggregator.config import Config, SeedFileSource, SourceConfig
from aggregator.errors import ParseError, SourceError
from aggregator.model import RawItem
from aggregator.sources import Fetched, Preparer, ReadJob, ReadOutcome, read_one

if TYPE_CHECKING:  # imported where used: the unchanged-rerun check runs without the store
    from aggregator.store import SourceState

# A title line (anything not blank), a blank line, then "Source: name". `[^\S\n]` is
# whitespace other than a line break, so lines of spaces or tabs count as blank. The title
# starts at its first non-space character, which keeps the match linear on long lines.
_ITEM_START = re.compile(
    r"^[^\S\n]*(?P<title>\S[^\n]*)\n[^\S\n]*\n[^\S\n]*source[^\S\n]*:(?P<agency>[^\n]*)$",
    re.IGNORECASE | re.MULTILINE,
)
log = logging.getLogger(__name__)

# Blank lines (spaces allowed) at the start or end of a body.
_BLANK_EDGES = re.compile(r"\A(?:[^\S\n]*\n)+|(?:\n[^\S\n]*)+\Z")
# A NUL byte never occurs in text; other stray control characters are removed by normalize.
_BINARY_MARK = b"\x00"


def expand(pattern: str) -> list[Path]:
    """The files a seedfile source's glob matches, sorted so runs read them in one order."""
    return sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())


def expand_source(source: SourceConfig, config: Config) -> Sequence[SeedFileUnit]:
    """One unit per file the source's glob matches; SourceError if it matches none."""
    assert isinstance(source, SeedFileSource)
    files = expand(source.path)
    if not files:
        raise SourceError(_display(Path(source.path)), "no seed files match this pattern")
    base = config.path.resolve().parent
    return [
        SeedFileUnit(path=f, source_id="seedfile:" + os.path.relpath(f, base), name=_display(f))
        for f in files
    ]


def _signature(stat: os.stat_result) -> str:
    """Size, mtime and inode: a file with the same signature is taken as unchanged."""
    return f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}"


def _read_and_prepare(job: ReadJob, now: datetime, preparer: Preparer | None) -> ReadOutcome:
    """In a worker: read and parse a seed file, then prepare its items there too."""
    outcome = read_one(job, now)
    fetched = outcome.fetched
    if preparer is None or fetched is None or not fetched.items:
        return outcome
    try:
        return ReadOutcome(job, Fetched((), fetched.state, preparer(fetched.items, job.known)))
    except Exception:  # the pipeline prepares the items itself and reports what fails
        return outcome


def _collect(job: ReadJob, future: Future[ReadOutcome], now: datetime) -> ReadOutcome:
    try:
        return future.result()
    except Exception as exc:  # a crashed worker: read this file here instead
        log.debug("worker failed reading %s (%r); reading it here", job.unit.name, exc)
        return read_one(job, now)


def _display(path: Path) -> str:
    """The path as a user would type it: relative to the working directory when inside it."""
    relative = os.path.relpath(path)
    return path.as_posix() if relative.startswith("..") else Path(relative).as_posix()


@dataclass(frozen=True, slots=True)
class SeedFileUnit:
    """One seed file. Unchanged files (same size, mtime and inode, or same bytes) are skipped."""

    path: Path
    source_id: str
    name: str

    def due(self, state: SourceState | None, now: datetime) -> bool:
        """Seed files are read on every run (cheaply skipped when unchanged)."""
        return True

    @staticmethod
    @contextmanager
    def read_many(
        jobs: Sequence[ReadJob], now: datetime, pool: Executor | None = None,
        preparer: Preparer | None = None,
    ) -> Iterator[Iterator[ReadOutcome]]:
        """Read many seed files: with worker processes, each worker reads, parses and
        prepares whole files; the outcomes come in the jobs' order either way."""
        if pool is None:
            yield (read_one(job, now) for job in jobs)
            return
        underway = deque((job, pool.submit(_read_and_prepare, job, now, preparer))
                         for job in jobs)

        def outcomes() -> Iterator[ReadOutcome]:
            while underway:
                # Let go of each result once handed on: a large run's items would otherwise
                # all stay in memory until the last file is read.
                job, future = underway.popleft()
                yield _collect(job, future, now)

        try:
            yield outcomes()
        finally:
            for _, future in underway:
                future.cancel()

    def signature(self) -> str:
        """The file's signature now (OSError if it cannot be read): a state holding the
        same one means the file is unchanged."""
        return _signature(self.path.stat())

    def surely_unchanged(self, state: SourceState | None, force: bool) -> bool:
        """Whether reading will find the file unchanged (its signature is the stored one)."""
        return self.expected_work(state, force) == 0 and state is not None and not force

    def expected_work(self, state: SourceState | None, force: bool) -> int:
        """Bytes this run will likely read: the file's size, unless it looks unchanged."""
        try:
            stat = self.path.stat()
        except OSError:
            return 0
        unchanged = state is not None and not force and state.signature == _signature(stat)
        return 0 if unchanged else stat.st_size

    def read(self, state: SourceState | None, now: datetime, *, force: bool) -> Fetched:
        """Parse the file unless the state shows it unchanged."""
        try:
            stat = self.path.stat()
            signature = _signature(stat)
            if state is not None and not force and state.signature == signature:
                return Fetched(None, state)
            data = self.path.read_bytes()
        except OSError as exc:
            raise ParseError(self.name, None, f"cannot read: {exc.strerror}") from None
        from aggregator.store import SourceState

        content_hash = hashlib.blake2b(data, digest_size=16).hexdigest()
        if state is not None and not force and state.content_hash == content_hash:
            return Fetched(None, replace(state, signature=signature))
        items = parse_seed_bytes(data, self.name, source_id=self.source_id)
        base = state or SourceState(source_id=self.source_id, kind="seedfile")
        return Fetched(items, replace(base, signature=signature, content_hash=content_hash))

    def failed(self, state: SourceState | None, now: datetime, error: SourceError) -> SourceState:
        """Count the failure; the next run reads the file again."""
        from aggregator.store import SourceState

        base = state or SourceState(source_id=self.source_id, kind="seedfile")
        return replace(base, last_attempt=now, last_error=str(error), failures=base.failures + 1)


def parse_seed_bytes(data: bytes, file: str, *, source_id: str | None = None) -> list[RawItem]:
    """Decode and parse a seed file's bytes; `file` names it in errors and item origins."""
    return parse_seed_text(decode_seed_bytes(data, file), file, source_id=source_id)


def decode_seed_bytes(data: bytes, file: str) -> str:
    """UTF-8 text with the BOM dropped and line ends made `\\n`; ParseError for binary data."""
    nul = data.find(_BINARY_MARK)
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise ParseError(file, line, f"binary data, not a text file (NUL byte at offset {nul})")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ParseError(file, line, f"not UTF-8 text (byte 0x{data[exc.start]:02x} "
                         f"at offset {exc.start})") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def parse_seed_text(text: str, file: str, *, source_id: str | None = None) -> list[RawItem]:
    """Split decoded seed text into items; ParseError if it holds none or starts with junk."""
    starts = list(_ITEM_START.finditer(text))
    if not starts:
        line = _first_text_line(text, 0)
        reason = "empty file" if line is None else "no items (expected a title line, a blank " \
            "line and a 'Source: <agency>' line)"
        raise ParseError(file, line, reason)
    stray = _first_text_line(text[: starts[0].start()], 0)
    if stray is not None:
        raise ParseError(file, stray, "text before the first item is not an item (expected "
                         "a title line, a blank line and a 'Source: <agency>' line)")
    return list(_items(text, starts, file, source_id or file))


def _items(text: str, starts: list[re.Match[str]], file: str, source_id: str) -> Iterator[RawItem]:
    line = 1
    offset = 0
    for position, match in enumerate(starts):
        line += text.count("\n", offset, match.start())
        offset = match.start()
        body_end = starts[position + 1].start() if position + 1 < len(starts) else len(text)
        yield RawItem(
            source_id=source_id,
            origin=f"{file}:{line}",
            agency_label=match.group("agency").strip(),
            title=match.group("title").strip(),
            content=_BLANK_EDGES.sub("", text[match.end() : body_end]),
            position=position,
        )


def _first_text_line(text: str, first_line: int) -> int | None:
    """The 1-based number of the first non-blank line of `text`, or None if all blank."""
    for number, line in enumerate(text.split("\n"), start=first_line + 1):
        if line.strip():
            return number
    return None
