"""`[output] base_url` against the address `--serve` binds (issue 12, problem 8)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import Workspace
from daemon_process import DaemonProcess

from aggregator.config import OutputConfig
from aggregator.serve import Address, check_base_url

ATOM = "{http://www.w3.org/2005/Atom}"
STORE = '[store]\npath = "../state/aggregator.db"\n'


def serve_once(workspace: Workspace, output_table: str) -> tuple[DaemonProcess, str]:
    """Start a daemon on a free port with this [output] table; return it and its URL."""
    workspace.write_config('[schedule]\ninterval = "1h"\n', header=output_table + STORE)
    daemon = DaemonProcess(workspace, "--serve", "127.0.0.1:0")
    try:
        base = daemon.base_url
        daemon.wait_for_runs(1)
    except BaseException:
        daemon.close()
        raise
    return daemon, base


def self_link(path: Path) -> str:
    root = ET.parse(path).getroot()
    return next(link.get("href") or "" for link in root.findall(f"{ATOM}link")
                if link.get("rel") == "self")


def test_left_out_it_follows_the_served_address(workspace: Workspace) -> None:
    daemon, base = serve_once(workspace, '[output]\ndir = "../output"\n')
    try:
        assert self_link(workspace.output / "combined.atom") == f"{base}/combined.atom"
        assert daemon.matching(rf"publishing under the served address base_url={base}/")
        assert not daemon.matching("warning")
        assert daemon.stop() == 0
    finally:
        daemon.close()


def test_a_local_base_url_on_another_port_is_warned_about(workspace: Workspace) -> None:
    daemon, base = serve_once(
        workspace, '[output]\ndir = "../output"\nbase_url = "http://localhost:8080/"\n')
    try:
        warning = daemon.wait_for_lines("warning: .*base_url")[0]
        assert "http://localhost:8080/" in warning and base.removeprefix("http://") in warning
        # Kept as given: the operator may mean it.
        assert self_link(workspace.output / "combined.atom").startswith("http://localhost:8080/")
        assert daemon.stop() == 0
    finally:
        daemon.close()


def test_a_public_base_url_is_a_proxy_and_no_warning(workspace: Workspace) -> None:
    daemon, _ = serve_once(
        workspace, '[output]\ndir = "../output"\nbase_url = "https://news.example.org/nw/"\n')
    try:
        assert not daemon.matching("warning")
        assert self_link(workspace.output / "combined.atom") == (
            "https://news.example.org/nw/combined.atom")
        assert daemon.stop() == 0
    finally:
        daemon.close()


def output(base_url: str, given: bool) -> OutputConfig:
    return OutputConfig(dir=Path("out"), base_url=base_url, title="t", max_entries=10,
                        base_url_given=given)


@pytest.mark.parametrize(("base_url", "given", "served", "expected", "warns"), [
    ("http://localhost:8080/", False, Address("127.0.0.1", 8080), "http://localhost:8080/", False),
    ("http://localhost:8080/", False, Address("127.0.0.1", 9000), "http://127.0.0.1:9000/", False),
    ("http://localhost:8080/", False, Address("::1", 9000), "http://[::1]:9000/", False),
    ("http://localhost:8080/", False, Address("0.0.0.0", 8080), "http://localhost:8080/", False),
    ("http://localhost:8080/", False, Address("0.0.0.0", 9000), "http://localhost:8080/", True),
    ("http://127.0.0.1:9000/", True, Address("localhost", 9000), "http://127.0.0.1:9000/", False),
    ("http://localhost:8080/", True, Address("127.0.0.1", 9000), "http://localhost:8080/", True),
    ("https://news.example.org/", True, Address("127.0.0.1", 8080),
     "https://news.example.org/", False),
])
def test_base_url_rules(base_url: str, given: bool, served: Address, expected: str,
                        warns: bool) -> None:
    check = check_base_url(output(base_url, given), served)
    assert check.base_url == expected
    assert (check.warning is not None) == warns
