"""The `aggregate` command: argument parsing, logging, the run lock and exit codes.

This is the only module that prints for a person or exits. Exit status: 0 every source
read and everything published; 1 some source failed (the rest was published); 2 usage or
config error (nothing published); 3 another instance holds the lock.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from aggregator import __version__, logs
from aggregator.config import CONFIG_ENV_VAR, Config, find_config_path, load_config
from aggregator.errors import (
    AggregatorError,
    ConfigError,
    LockHeldError,
    PublishError,
    StoreError,
)

EXIT_OK = 0
EXIT_SOURCE_FAILED = 1
EXIT_USAGE = 2
EXIT_LOCKED = 3
LOCK_NAME = ".aggregate.lock"

log = logging.getLogger("aggregator")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; `aggregate --help` documents every option."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", metavar="FILE",
        help=f"config file (default: ${CONFIG_ENV_VAR}, else config/aggregator.toml)",
    )
    volume = common.add_mutually_exclusive_group()
    volume.add_argument("-v", "--verbose", action="count", default=0,
                        help="say more: per-source lines (-v), debugging detail (-vv)")
    volume.add_argument("-q", "--quiet", action="store_true",
                        help="print errors only, no summary line")
    common.add_argument("--log-format", choices=logs.LOG_FORMATS, default="text",
                        help="log lines as 'key=value' text (default) or as JSON objects")
    parser = argparse.ArgumentParser(
        prog="aggregate",
        parents=[common],
        description="Aggregate the news of security and justice agencies from seed files and "
                    "live feeds, merge duplicate stories, and publish per-agency and combined "
                    "Atom, RSS and JSON feeds.",
        epilog="Exit status: 0 all sources read and published; 1 some source failed, the rest "
               "published; 2 usage or config error; 3 another instance holds the lock.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--once", action="store_true",
                        help="run once and exit (for cron and CI); without it, run as a daemon")
    parser.add_argument("--serve", nargs="?", const="", metavar="HOST:PORT",
                        help="daemon: also serve the output over HTTP "
                             "(default 127.0.0.1:8080, or [serve] in the config)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    explain = commands.add_parser(
        "explain", parents=[common],
        help="show why items were or were not merged into a story",
        description="Show a story's members and why they were merged, and the near misses "
                    "that were kept apart. Give a story id (or its first characters) or "
                    "words of a title.",
    )
    explain.add_argument("query", nargs="+", metavar="WORDS-OR-ID")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `aggregate` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose, args.quiet, args.log_format,
                   daemon=not args.once and args.command is None)
    try:
        config = load_config(find_config_path(args.config))
        if args.command == "explain":
            return _explain(config, " ".join(args.query))
        if args.once:
            if args.serve is not None:
                parser.error("--serve runs with the daemon; leave out --once")
            return _once(config, quiet=args.quiet)
        return _daemon(config, args.serve)
    except LockHeldError as exc:
        _error(str(exc))
        return EXIT_LOCKED
    except (ConfigError, StoreError) as exc:
        _error(str(exc))
        return EXIT_USAGE
    except PublishError as exc:
        _error(str(exc))
        return EXIT_SOURCE_FAILED
    except AggregatorError as exc:
        _error(str(exc))
        return EXIT_SOURCE_FAILED
    except KeyboardInterrupt:
        _error("interrupted")
        return 130


def _once(config: Config, *, quiet: bool) -> int:
    from aggregator.pipeline import run_once

    with run_lock(config):
        result = run_once(config)
    # Each failed source was already logged as an error, naming its file or URL.
    if not quiet:
        print(f"aggregate: {result.summary()}", file=sys.stderr)
    return result.exit_code


def _daemon(config: Config, serve: str | None) -> int:
    from aggregator import scheduler

    with run_lock(config):
        return scheduler.run_daemon(config, serve=serve)


def _explain(config: Config, query: str) -> int:
    from aggregator.explain import explain

    text, found = explain(config, query)
    print(text)
    return EXIT_OK if found else EXIT_SOURCE_FAILED


@contextmanager
def run_lock(config: Config) -> Iterator[None]:
    """Hold the output directory's lock, so two runs never publish at once, and with SQLite
    the state file's lock too: one process per state file, whatever its output directory
    (several nodes share a store only through PostgreSQL, which coordinates them)."""
    out_dir = config.output.dir
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(config.path, "output.dir",
                          f"cannot create {out_dir}: {exc.strerror}") from None
    state = config.store.sqlite_path
    if state is not None:
        try:
            state.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(config.path, "store.path",
                              f"cannot create {state.parent}: {exc.strerror}") from None
    with _held(out_dir / LOCK_NAME):
        if state is None:
            yield
            return
        with _held(state.with_name(state.name + ".lock")):
            yield


@contextmanager
def _held(lock_path: Path) -> Iterator[None]:
    """Hold a file lock, or raise LockHeldError at once if another process has it."""
    from filelock import FileLock, Timeout

    lock = FileLock(lock_path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise LockHeldError(lock_path) from None
    try:
        yield
    finally:
        lock.release()


def _setup_logging(verbose: int, quiet: bool, log_format: logs.LogFormat, *, daemon: bool) -> None:
    level = logging.ERROR if quiet else (
        logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    )
    logs.setup(level, log_format)
    if daemon and not quiet and verbose == 0:
        # A daemon has no summary line on exit: its one line per run is the record of work.
        logging.getLogger("aggregator.scheduler").setLevel(logging.INFO)
        logging.getLogger("aggregator.serve").setLevel(logging.INFO)


def _error(message: str) -> None:
    # Through logging, so `--log-format json` keeps every line of stderr machine-readable.
    log.error("%s", message)
