"""The list of published files: what the last publish wrote or kept, and nothing else.

Publishing writes it (atomically, as `.published` in the output directory, hidden so it
is never served itself); the HTTP server serves exactly the files it names, and `/metrics`
reports their sizes. A file someone else put in the directory (a copy, a hard link, a
leftover) is not listed, so it is not reachable. Names are relative paths with `/`, so
files in subdirectories are listed like any other.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from aggregator.fileio import write_if_changed

MANIFEST_NAME = ".published"
PUBLISHED_RECORD = ".aggregate.published"
"""Beside the manifest: the stamp of the store state and settings the output directory shows,
with the files and agencies of that publish. It lives with the files, not in the store:
several nodes share one store, each publishing its own directory. Publishing is skipped
while the stamp is unchanged (and `aggregator.unchanged` reads it too)."""
PUBLISH_SETTINGS = ("output", "agencies", "websub", "topics", "countries")
"""The config tables whose fingerprint is part of the publish stamp."""


def write_manifest(out_dir: Path, names: Iterable[str]) -> bool:
    """Record the published files' names; True if the list changed."""
    listed = sorted(set(names))
    data = (json.dumps({"files": listed}, ensure_ascii=False, indent=1) + "\n").encode()
    return write_if_changed(out_dir / MANIFEST_NAME, data)


def read_manifest(out_dir: Path) -> frozenset[str]:
    """The names the last publish listed (none when nothing was published yet)."""
    try:
        data = json.loads((out_dir / MANIFEST_NAME).read_bytes())
    except (OSError, ValueError):
        return frozenset()
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, list):
        return frozenset()
    return frozenset(name for name in files if isinstance(name, str) and safe_name(name))


def safe_name(name: str) -> bool:
    """A relative path inside the output directory: no `..`, no hidden part, no backslash."""
    if not name or name.startswith("/") or "\\" in name or "\x00" in name:
        return False
    return all(part and not part.startswith(".") for part in name.split("/"))


class Manifest:
    """The manifest, re-read only when the file was replaced (its size, mtime or inode)."""

    def __init__(self, out_dir: Path) -> None:
        self._dir = out_dir
        # A plain string: checked on every request, where building a Path costs more than
        # the stat itself.
        self._path = os.path.join(out_dir, MANIFEST_NAME)
        self._key: tuple[int, int, int] | None = None
        self._names: frozenset[str] = frozenset()

    def names(self) -> frozenset[str]:
        """The published names now."""
        try:
            info = os.stat(self._path)
        except OSError:
            self._key, self._names = None, frozenset()
            return self._names
        key = (info.st_size, info.st_mtime_ns, info.st_ino)
        if key != self._key:
            self._key, self._names = key, read_manifest(self._dir)
        return self._names
