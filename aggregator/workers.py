"""Worker processes for a run's pure, CPU-bound work: parsing feeds, normalizing and
analysing items. One pool serves a run; the pipeline starts it when a run has enough work
to repay the start, before any fetch thread exists.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
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
        parent: int | None = None
        if threading.active_count() == 1:
            context = multiprocessing.get_context("fork")
            parent = os.getpid()  # forked workers are this process's children
        else:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(list(preload))
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_exit_with_parent,
                                   initargs=(parent,))
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


def _exit_with_parent(expected: int | None = None) -> None:
    """Worker initializer: leave as soon as the process that started this worker is gone.
    A killed run would otherwise leave its idle workers waiting for ever: each holds the
    writing end of its own task pipe, so it never sees the pipe close. `expected` is the
    parent a forked worker should have: one whose parent died before this ran (a run
    killed while starting its pool) leaves at once instead of watching its new parent."""
    parent = os.getppid()
    if expected is not None and parent != expected:
        os._exit(0)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="newswire-parent-watch", daemon=True).start()
