"""Atomic file writing: the one place output files are written.

A reader (a feed reader, a web server, a person) sees either the old file or the new one,
never half of one; a file whose bytes would not change is not touched, so its mtime and
HTTP validators stay put.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aggregator.errors import PublishError
from aggregator.logs import facts

log = logging.getLogger(__name__)

_TEMPORARY = re.compile(r"\..+\.(\d+)\.tmp")
"""`write_atomic`'s temporary files, named after the writing process: `.NAME.PID.tmp`."""


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


def remove_stale_temporaries(out_dir: Path) -> list[str]:
    """Delete the temporary files of writers that are provably dead (no process has their
    pid); return their paths relative to `out_dir`. Call it holding the run lock."""
    removed: list[str] = []
    for folder, subfolders, names in os.walk(out_dir):
        subfolders[:] = [d for d in subfolders if not d.startswith(".")]
        for name in names:
            match = _TEMPORARY.fullmatch(name)
            if match is None or _process_exists(int(match.group(1))):
                continue
            path = Path(folder) / name
            try:
                path.unlink()
            except OSError:
                continue
            relative = path.relative_to(out_dir).as_posix()
            log.info("removed a stale temporary file", extra=facts(file=relative))
            removed.append(relative)
    return removed


def _process_exists(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True
_SYNC_THREADS = 8
"""fsyncs in flight at once when writing many files: the file system journals them
together, so a batch costs little more than one."""


def write_many_if_changed(files: Mapping[Path, bytes]) -> list[Path]:
    """`write_if_changed` for many files at once, equally atomic: the changed ones are
    written to temporary files, made durable together, then renamed into place, and each
    directory is synced once. Returns the paths written."""
    changed = {path: data for path, data in files.items() if _differs(path, data)}
    temporaries: dict[Path, Path] = {}
    target = Path("output")
    try:
        for target, data in changed.items():
            temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            with open(temporary, "wb") as handle:
                temporaries[target] = temporary
                handle.write(data)
        with ThreadPoolExecutor(max_workers=_SYNC_THREADS) as pool:
            list(pool.map(_fsync_file, temporaries.values()))
        for target, temporary in temporaries.items():
            os.replace(temporary, target)
    except OSError as exc:
        for temporary in temporaries.values():
            with contextlib.suppress(OSError):
                temporary.unlink()
        raise PublishError(f"{target}: cannot write: {exc.strerror}") from None
    for directory in {path.parent for path in changed}:
        _fsync_directory(directory)
    return list(changed)


def _differs(path: Path, data: bytes) -> bool:
    try:
        return not (path.stat().st_size == len(data) and path.read_bytes() == data)
    except FileNotFoundError:
        return True
    except OSError as exc:
        raise PublishError(f"{path}: cannot read: {exc.strerror}") from None


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
