"""Writing many files at once: only changed ones, atomically, no temporary left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.errors import PublishError
from aggregator.fileio import write_many_if_changed


def test_only_changed_files_are_written_and_no_temporary_is_left(tmp_path: Path) -> None:
    (tmp_path / "archive").mkdir()
    same, edited, new = tmp_path / "a.atom", tmp_path / "b.atom", tmp_path / "archive" / "c.rss"
    same.write_bytes(b"same")
    edited.write_bytes(b"old")
    before = same.stat().st_mtime_ns
    written = write_many_if_changed({same: b"same", edited: b"new!", new: b"fresh"})
    assert sorted(written) == sorted([edited, new])
    assert same.stat().st_mtime_ns == before
    assert edited.read_bytes() == b"new!" and new.read_bytes() == b"fresh"
    leftovers = [p for p in tmp_path.rglob(".*") if p.is_file()]
    assert leftovers == []


def test_a_file_that_cannot_be_written_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "x.atom"
    with pytest.raises(PublishError, match=r"no-such-dir/x.atom: cannot write"):
        write_many_if_changed({tmp_path / "ok.atom": b"ok", missing: b"x"})
    assert not (tmp_path / "ok.atom").exists()  # nothing renamed into place
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".")] == []
