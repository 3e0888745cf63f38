"""One clear error per failure, with the exit status README documents (issue 12, problem 7).

Real failures: a read-only and a full file system (tmpfs mounts: the tests run as root, as
CI does), a damaged SQLite file, a closed pipe, a slow run under a fast schedule, a server
asking to wait until a far date.
"""

from __future__ import annotations

import json
import os
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from conftest import FIXED_NOW, Workspace, aggregate_command, seed_text
from daemon_process import DaemonProcess
from pytest_httpserver import HTTPServer
from test_clean_stops import bulk_seeds

EXIT_STORE = 4
EXIT_OUTPUT = 5


@contextmanager
def tmpfs(where: Path, size: str, *, read_only: bool = False) -> Iterator[Path]:
    """A small tmpfs file system mounted at `where` for the test's duration."""
    where.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                   check=True, capture_output=True, timeout=30)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True,
                       timeout=30)


def config_with_output(workspace: Workspace, out_dir: Path) -> None:
    workspace.write_config("", header=f"""
[output]
dir = "{out_dir}"
base_url = "http://feeds.example.test/"

[store]
path = "../state/aggregator.db"
""")


def assert_one_error(stderr: str, *expected: str) -> None:
    errors = [line for line in stderr.splitlines() if line.startswith("aggregate: error:")]
    assert len(errors) == 1, stderr
    for text in expected:
        assert text in errors[0], stderr
    assert "Traceback" not in stderr


def test_a_read_only_output_directory_exits_5_naming_it(workspace: Workspace) -> None:
    with tmpfs(workspace.root / "ro", "64k", read_only=True) as out_dir:
        config_with_output(workspace, out_dir)
        result = workspace.run("--once")
    assert result.returncode == EXIT_OUTPUT, result.stderr
    assert_one_error(result.stderr, "output.dir", str(out_dir), "Read-only file system")


def test_a_full_disk_exits_5_with_the_summary_and_keeps_the_old_files(
    workspace: Workspace,
) -> None:
    with tmpfs(workspace.root / "small", "1m") as out_dir:
        config_with_output(workspace, out_dir)
        assert workspace.run("--once").returncode == 0
        before = (out_dir / "combined.atom").read_bytes()
        with open(out_dir / "filler", "wb") as filler:
            try:
                while True:
                    filler.write(b"\0" * 65536)
                    filler.flush()
            except OSError:
                pass
        (workspace.seeds / "more.txt").write_text(seed_text([(
            "Europol supports a new operation against fraud", "Europol",
            "The Hague, 3 December 2024. Europol supported a new operation.")]))
        result = workspace.run("--once")
        after = (out_dir / "combined.atom").read_bytes()
        leftovers = [p.name for p in out_dir.iterdir() if p.name.endswith(".tmp")]
    assert result.returncode == EXIT_OUTPUT, result.stderr
    assert_one_error(result.stderr, "No space left on device")
    assert "(publishing failed)" in result.stderr and "sources ok" in result.stderr
    assert after == before and not leftovers
    ET.fromstring(after)


def test_a_damaged_store_exits_4_saying_to_move_it_aside(workspace: Workspace) -> None:
    assert workspace.run("--once").returncode == 0
    workspace.state.write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        Path(f"{workspace.state}{suffix}").unlink(missing_ok=True)
    result = workspace.run("--once")
    assert result.returncode == EXIT_STORE, result.stderr
    assert_one_error(result.stderr, str(workspace.state), "move it aside")


def test_a_state_directory_that_cannot_be_made_exits_4_naming_the_key(
    workspace: Workspace,
) -> None:
    (workspace.root / "not-a-dir").write_text("a file where the state directory should be")
    workspace.write_config("", header="""
[output]
dir = "../output"
[store]
path = "../not-a-dir/state.db"
""")
    result = workspace.run("--once")
    assert result.returncode == EXIT_STORE, result.stderr
    assert_one_error(result.stderr, "store.path", "not-a-dir")
    assert not (workspace.output / "combined.atom").exists()


def test_an_unsupported_store_url_names_the_key(workspace: Workspace) -> None:
    workspace.write_config("", header="""
[output]
dir = "../output"
[store]
url = "mysql://user@db.example.test/news"
""")
    result = workspace.run("--once")
    assert result.returncode == 2, result.stderr
    assert_one_error(result.stderr, "store.url", "mysql")


def test_json_logs_give_the_summary_as_json(workspace: Workspace) -> None:
    result = workspace.run("--once", "--log-format", "json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    summary = [line for line in lines if line["msg"] == "summary"]
    assert len(summary) == 1, result.stderr
    assert summary[0]["stories"] == 19 and summary[0]["outcome"] == "ok"
    assert summary[0]["exit_code"] == 0


def test_a_closed_pipe_ends_quietly(workspace: Workspace) -> None:
    assert workspace.run("--once").returncode == 0
    command = " ".join([*aggregate_command(), "explain", "NATO", "--config",
                        str(workspace.config)])
    result = subprocess.run(["bash", "-c", f"{command} | head -c 10; exit ${{PIPESTATUS[0]}}"],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "AGGREGATOR_NOW": FIXED_NOW})
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr
    assert result.stderr == ""
    assert result.returncode in (0, 141)


def test_a_skipped_tick_is_said_in_our_words(workspace: Workspace) -> None:
    bulk_seeds(workspace)
    workspace.write_config('[schedule]\ninterval = "1s"\njitter = "0s"\n')
    daemon = DaemonProcess(workspace)
    try:
        daemon.wait_for_lines(r"tick skipped: the previous run is still going", timeout=60)
        assert daemon.stop() == 0
    finally:
        daemon.close()
    assert "maximum number of running instances" not in daemon.log


def test_a_retry_after_date_is_shown_as_a_date(
    workspace: Workspace, loopback: HTTPServer
) -> None:
    loopback.expect_request("/busy").respond_with_data(
        "", status=503, headers={"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"})
    workspace.write_config(f"""
[[sources]]
type = "feed"
agency = "nato"
url = "{loopback.url_for('/busy')}"
""")
    result = workspace.run("--once")
    assert result.returncode == 1
    assert "asks us to wait until 2099-10-21 07:28:00Z (" in result.stderr, result.stderr
    assert "e+" not in result.stderr


def test_help_lists_the_exit_codes() -> None:
    result = subprocess.run([*aggregate_command(), "--help"], capture_output=True, text=True,
                            timeout=60)
    text = " ".join(result.stdout.split())
    assert "4 the store cannot be used" in text
    assert "5 the output cannot be written" in text
