"""The `aggregate` command: argument parsing, logging, the run lock and exit codes.

This is the only module that prints for a person or exits. Exit status: 0 every source
read and everything published; 1 some source failed (the rest was published); 2 usage or
config error (nothing published); 3 another instance holds the lock; 4 the store cannot be
used (nothing published); 5 the output cannot be written (earlier files stay whole).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
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
from aggregator.model import RunResult

EXIT_OK = 0
EXIT_SOURCE_FAILED = 1
EXIT_USAGE = 2
EXIT_LOCKED = 3
EXIT_STORE = 4
EXIT_OUTPUT = 5
EXIT_BROKEN_PIPE = 128 + 13
"""As a shell reports a program that SIGPIPE ended (`aggregate explain x | head -1`)."""
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
               "published; 2 usage or config error; 3 another instance holds the lock; 4 the "
               "store cannot be used; 5 the output cannot be written.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--once", action="store_true",
                        help="run once and exit (for cron and CI); without it, run as a daemon")
    parser.add_argument("--serve", nargs="?", const="", metavar="HOST:PORT",
                        help="daemon: also serve the output over HTTP, with a WebSub hub "
                             "at /websub (default 127.0.0.1:8080, or [serve] in the config)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    explain = commands.add_parser(
        "explain", parents=[common],
        help="show why items were or were not merged into a story",
        description="Show a story's members and why they were merged, and the near misses "
                    "that were kept apart. Give a story id (or its first characters) or "
                    "words of a title.",
    )
    explain.add_argument("query", nargs="+", metavar="WORDS-OR-ID")
    forget = commands.add_parser(
        "forget", parents=[common],
        help="take an item or a story down for good",
        description="Take one item, or a story with all its items, down for good: it leaves "
                    "every feed and never comes back from its source. Give the id as "
                    "published (urn:uuid:… for a story, urn:newswire:item:… for an item), "
                    "its first characters, or an item's guid or link. The output is "
                    "republished at once (or by the running daemon's next run).",
    )
    forget.add_argument("reference", metavar="ITEM-OR-STORY-ID")
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
        if args.command == "forget":
            return _forget(config, args.reference)
        if args.once:
            if args.serve is not None:
                parser.error("--serve runs with the daemon; leave out --once")
            return _once(config, quiet=args.quiet, log_format=args.log_format)
        return _daemon(config, args.serve)
    except LockHeldError as exc:
        _error(str(exc))
        return EXIT_LOCKED
    except ConfigError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except StoreError as exc:
        _error(str(exc))
        return EXIT_STORE
    except PublishError as exc:
        _error(str(exc))
        return EXIT_OUTPUT
    except BrokenPipeError:
        # The reader went away (`| head`): say nothing more, and let no flush at exit fail.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except AggregatorError as exc:
        _error(str(exc))
        return EXIT_SOURCE_FAILED
    except KeyboardInterrupt:
        _error("interrupted")
        return 130


def _once(config: Config, *, quiet: bool, log_format: logs.LogFormat = "text") -> int:
    from aggregator import clock
    from aggregator.fileio import remove_stale_temporaries
    from aggregator.unchanged import unchanged_run

    with run_lock(config):
        # A killed run may have left temporary files; holding the lock, none is being written.
        remove_stale_temporaries(config.output.dir)
        # A rerun where nothing changed is answered without loading the pipeline.
        result = unchanged_run(config, clock.now())
        if result is None:
            from aggregator.pipeline import run_once

            result = run_once(config)
    # Each failed source was already logged as an error, naming its file or URL.
    if not quiet:
        if log_format == "json":
            _log_summary(result)
        else:
            print(f"aggregate: {result.summary()}", file=sys.stderr)
    return result.exit_code


def _log_summary(result: RunResult) -> None:
    """The summary as one log record, so `--log-format json` gives it as a JSON object."""
    summary = logging.getLogger("aggregator.summary")
    summary.setLevel(logging.INFO)
    failed = [s.name for s in result.failed_sources]
    summary.info("summary", extra=logs.facts(
        outcome="error" if result.publish_error else "source_failed" if failed else "ok",
        exit_code=result.exit_code, duration=round(result.duration, 3),
        sources_ok=len(result.sources) - len(failed), sources_failed=len(failed),
        items=result.items_total, new=result.items_new, updated=result.items_updated,
        stories=result.stories, written=len(result.files_written),
        unchanged=result.files_unchanged,
        **({"failed": failed} if failed else {}),
        **({"error": result.publish_error} if result.publish_error else {}),
    ))


def _daemon(config: Config, serve: str | None) -> int:
    from aggregator import scheduler

    with run_lock(config):
        return scheduler.run_daemon(config, serve=serve)


def _explain(config: Config, query: str) -> int:
    from aggregator.explain import explain

    text, found = explain(config, query)
    print(text)
    return EXIT_OK if found else EXIT_SOURCE_FAILED


def _forget(config: Config, reference: str) -> int:
    from aggregator import clock
    from aggregator.forget import forget
    from aggregator.pipeline import publish_now

    outcome = forget(config, reference, clock.now())
    print(outcome.text)
    if not outcome.removed:
        return EXIT_SOURCE_FAILED
    try:
        with run_lock(config):
            written, _ = publish_now(config)
    except LockHeldError:
        # A daemon holds the lock: the store changed, so its next run republishes.
        print("Another aggregate (the daemon?) holds the output: its next run republishes.")
        return EXIT_OK
    print(f"Republished: {len(written)} files written.")
    return EXIT_OK


@contextmanager
def run_lock(config: Config) -> Iterator[None]:
    """Hold the output directory's lock, so two runs never publish at once, and with SQLite
    the state file's lock too: one process per state file, whatever its output directory
    (several nodes share a store only through PostgreSQL, which coordinates them)."""
    out_dir = config.output.dir
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PublishError(f"{config.path}: output.dir: cannot create {out_dir}: "
                           f"{exc.strerror}") from None
    state = config.store.sqlite_path
    if state is not None:
        try:
            state.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{config.path}: store.path: cannot create {state.parent}: "
                             f"{exc.strerror}") from None
    # A read-only or foreign output directory cannot be published into (exit 5); a state
    # directory or lock that cannot be made means an unusable store (exit 4).
    with _held(out_dir / LOCK_NAME, lambda why: PublishError(
            f"{config.path}: output.dir: cannot write in {out_dir}: {why}")):
        if state is None:
            yield
            return
        with _held(state.with_name(state.name + ".lock"), lambda why: StoreError(
                f"{state}: cannot lock the state file: {why}")):
            yield


@contextmanager
def _held(lock_path: Path, unusable: Callable[[str], AggregatorError]) -> Iterator[None]:
    """Hold a file lock, or raise LockHeldError at once if another process has it (and
    `unusable(reason)` if the lock file cannot be made at all)."""
    from filelock import FileLock, Timeout

    lock = FileLock(lock_path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise LockHeldError(lock_path) from None
    except OSError as exc:
        raise unusable(str(exc.strerror or exc)) from None
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
        logging.getLogger("aggregator.websub").setLevel(logging.INFO)


def _error(message: str) -> None:
    # Through logging, so `--log-format json` keeps every line of stderr machine-readable.
    log.error("%s", message)
