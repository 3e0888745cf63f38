"""deploy/: the service config loads, and the unit and Containerfile agree with it and the CLI.

No init system or container engine runs here, so these read the files: they catch a config
key that no longer exists, a path that moved, or a command line the CLI would refuse.
"""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import REPO

from aggregator.cli import build_parser
from aggregator.config import load_config

DEPLOY = REPO / "deploy"
STATE = Path("/var/lib/newswire")


def test_the_service_config_keeps_state_and_output_in_the_volume() -> None:
    config = load_config(DEPLOY / "aggregator.toml")
    assert config.output.dir == STATE / "output"
    assert config.store.sqlite_path == STATE / "state" / "aggregator.db"
    seeds = [s for s in config.sources if s.type == "seedfile"]
    assert [s.path for s in seeds] == ["/opt/newswire/seeds/*.txt"]
    # The installed seeds are the repository's (copied to /opt/newswire by both recipes).
    assert list((REPO / "seeds").glob("*.txt"))
    assert set(config.agencies) == set(load_config(REPO / "config" / "aggregator.toml").agencies)


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=True, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DEPLOY / "newswire.service", encoding="utf-8")
    return parser


def test_the_systemd_unit_runs_the_daemon_with_reload_and_a_clean_stop() -> None:
    service = unit()["Service"]
    command = shlex.split(service["ExecStart"])
    assert command[0] == "/opt/newswire/.venv/bin/aggregate"
    args = build_parser().parse_args(command[1:])
    assert not args.once and args.serve == "127.0.0.1:8080"
    assert service["Environment"] == "AGGREGATOR_CONFIG=/etc/newswire/aggregator.toml"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["KillSignal"] == "SIGTERM" and int(service["TimeoutStopSec"]) > 10
    assert service["StateDirectory"] == STATE.name
    assert set(service["RestartPreventExitStatus"].split()) == {"2", "3"}


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed")
def test_systemd_accepts_the_unit() -> None:
    analyze = shutil.which("systemd-analyze") or "systemd-analyze"
    result = subprocess.run([analyze, "verify", "--man=no", str(DEPLOY / "newswire.service")],
                            capture_output=True, text=True, timeout=60)
    # The ExecStart binary exists only on an installed host; any other complaint is a bug.
    problems = [line for line in result.stderr.splitlines()
                if line.strip() and "/opt/newswire/.venv/bin/aggregate" not in line
                and "Failed to prepare filename" not in line]
    assert problems == [], result.stderr


def test_the_containerfile_runs_the_daemon_on_a_volume() -> None:
    text = (DEPLOY / "Containerfile").read_text(encoding="utf-8")
    joined = re.sub(r"\\\n\s*", " ", text)  # continuation lines make one instruction
    lines = [line.strip() for line in joined.splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    copies = [shlex.split(line)[1:-1] for line in lines if line.startswith("COPY ")]
    for sources in copies:
        for source in sources:
            assert (REPO / source).exists(), f"Containerfile copies a missing {source}"
    assert "COPY deploy/aggregator.toml /etc/newswire/aggregator.toml" in lines
    assert f'VOLUME ["{STATE}"]' in lines
    assert "AGGREGATOR_CONFIG=/etc/newswire/aggregator.toml" in text
    command = next(line for line in lines if line.startswith("CMD "))
    assert command == 'CMD ["aggregate", "--serve", "0.0.0.0:8080"]'
    assert "STOPSIGNAL SIGTERM" in lines and "EXPOSE 8080" in lines


def test_the_multinode_config_shares_a_postgresql_store() -> None:
    config = load_config(DEPLOY / "multinode.toml")
    assert config.store.url.startswith("postgresql+psycopg://newswire:newswire@postgres:5432/")
    assert config.store.lease == 300 and config.store.batch == 100 and config.store.node is None
    assert config.output.dir == STATE / "output"
    assert set(config.agencies) == set(load_config(DEPLOY / "aggregator.toml").agencies)


def test_the_compose_file_runs_nodes_on_one_postgresql() -> None:
    import yaml

    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    nodes = {name: s for name, s in services.items() if name.startswith("node-")}
    assert len(nodes) >= 2
    database = services["postgres"]["environment"]
    config = load_config(DEPLOY / "multinode.toml")
    assert config.store.url.startswith(
        f"postgresql+psycopg://{database['POSTGRES_USER']}:{database['POSTGRES_PASSWORD']}"
        f"@postgres:5432/{database['POSTGRES_DB']}")
    host_ports = set()
    for name, service in nodes.items():
        args = build_parser().parse_args(service["command"][1:])
        assert service["command"][0] == "aggregate" and args.serve == "0.0.0.0:8080"
        mounted = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
        config_path = service["environment"]["AGGREGATOR_CONFIG"]
        assert (DEPLOY / mounted[config_path]).resolve() == DEPLOY / "multinode.toml"
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert service["hostname"] == name  # the default node name is <hostname>:<pid>
        host_ports.add(service["ports"][0].split(":")[0])
        assert (REPO / service["build"]["dockerfile"]).exists()
    assert len(host_ports) == len(nodes)
    # The image has the PostgreSQL driver.
    assert "pip install '.[postgresql]'" in (DEPLOY / "Containerfile").read_text()


def test_the_systemd_template_runs_one_named_node_per_instance(tmp_path: Path) -> None:
    parser = configparser.ConfigParser(strict=True, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DEPLOY / "newswire@.service", encoding="utf-8")
    service = parser["Service"]
    command = shlex.split(service["ExecStart"])
    assert command[0] == "/opt/newswire/.venv/bin/aggregate"
    assert build_parser().parse_args(command[1:]).serve == ""  # host and port: [serve]
    assert service["Environment"] == "AGGREGATOR_CONFIG=/etc/newswire/%i.toml"
    assert service["StateDirectory"] == "newswire/%i"
    assert set(service["RestartPreventExitStatus"].split()) == {"2", "3"}
    # The install steps at the top of the unit make a valid config for the node.
    text = (DEPLOY / "multinode.toml").read_text(encoding="utf-8")
    text = re.sub(r"(?m)^# node = .*", 'node = "node-1"', text)
    text = text.replace("/var/lib/newswire/output", "/var/lib/newswire/node-1/output")
    (tmp_path / "node-1.toml").write_text(text, encoding="utf-8")
    config = load_config(tmp_path / "node-1.toml")
    assert config.store.node == "node-1"
    assert config.output.dir == STATE / "node-1" / "output"
