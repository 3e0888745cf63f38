"""Atomic file writing: the one place output files are written.

A reader (a feed reader, a web server, a person) sees either the old file or the new one,
never half of one; a file whose bytes would not change is not touched, so its mtime and
HTTP validators stay put.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from aggregator.errors import PublishError


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write `data` to `path` atomically unless it already holds exactly that; True if written."""
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise PublishError(f"{path}: cannot read: {exc.strerror}") from None
    write_atomic(path, data)
    return True


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same directory, fsync, then rename over `path`."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise PublishError(f"{path}: cannot write: {exc.strerror}") from None
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
