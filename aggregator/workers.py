"""Worker processes for a run's pure, CPU-bound work: parsing feeds, normalizing and
analysing items. One pool serves a run; the pipeline starts it when a run has enough work
to repay the start, before any fetch thread exists.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import select
import threading
import time
from concurrent.futures import ProcessPoolExecutor

log = logging.getLogger(__name__)


def processes() -> int:
    """How many processors this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def start_pool(workers: int, preload: tuple[str, ...] = ()) -> ProcessPoolExecutor | None:
    """A pool of worker processes, already running; None if none could start (the work is
    then done in this process, slower but working).

    Forked when no other thread runs: fast (the modules are loaded already) and it never
    re-imports the program's main module. With other threads about (the daemon's), forking
    could copy a lock some thread holds, so workers come from a fork server instead.
    """
    context: multiprocessing.context.BaseContext
    pool = None
    try:
        if threading.active_count() == 1:
            context = multiprocessing.get_context("fork")
        else:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(list(preload))
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=exit_with,
                                   initargs=(os.getpid(),))
        # A fork pool starts all its workers on the first task: let that happen here, while
        # this is still the only thread.
        pool.submit(int).result()
    except Exception as exc:  # no fork here, or a main module that cannot be imported again
        log.warning("cannot start worker processes (%r); working in this process", exc)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        return None
    log.debug("workers=%d start=%s", workers, context.get_start_method())
    return pool


def exit_with(run_pid: int) -> None:
    """Worker initializer: leave as soon as the process whose run this worker serves is gone.

    Watched by pid, not as the parent: a fork server's workers are its children, and it
    stays up as long as they hold its "alive" pipe, so watching the parent would keep both
    (and the resource tracker) running for ever after the run was killed. A pidfd wakes the
    watcher the moment the run ends; without one, it polls.
    """
    try:
        watched = os.pidfd_open(run_pid)
    except (AttributeError, OSError):
        watched = None
    if watched is None and not _alive(run_pid):
        os._exit(0)

    def watch() -> None:
        if watched is not None:
            select.select([watched], [], [])
        else:
            while _alive(run_pid):
                time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="newswire-run-watch", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
