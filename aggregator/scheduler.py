"""The daemon: run at start, then on the schedule, until SIGTERM or SIGINT.

APScheduler 3.x runs the job on one worker thread, so runs never overlap (max_instances 1),
missed runs collapse into one (coalesce) if still within the misfire grace, and each run
starts a little late at random (jitter) so many daemons do not hit a feed at once. The job
ticks at the shortest configured interval; feed units skip themselves when not due.

A run that fails is logged and recorded for /healthz; the next one happens on time. SIGHUP
reloads the config (a bad one is reported and the running one kept). SIGTERM/SIGINT let the
run in progress finish, for up to `STOP_BUDGET` seconds, then exit 0; a run still going then
is abandoned, which is safe because every published file is renamed into place whole.
"""

from __future__ import annotations

import faulthandler
import gc
import logging
import math
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Any

from aggregator.config import Config, FeedSource, load_config
from aggregator.errors import AggregatorError, ConfigError
from aggregator.fileio import remove_stale_temporaries
from aggregator.logs import facts
from aggregator.status import DaemonStatus, RunRecord, published_sizes

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

    from aggregator.serve import Address, HttpServer
    from aggregator.websub import Hub

log = logging.getLogger(__name__)

STOP_BUDGET = 4.0
"""Seconds after a stop signal that a run in progress gets to finish (the HTTP server shuts
down meanwhile). Well under the 10 s promise: a run in one long C call holds the GIL, and
Python code waits for it, the signal handler before this budget and the exit after it (2.2 s
each seen, with `list(re.finditer(...))` over a 2.3 MB seed file)."""
HARD_STOP = 9.5
"""Seconds after a stop signal at which faulthandler's C thread, which needs no GIL, dumps
every thread's stack and ends the process (status 1) if Python could not."""
JOB_ID = "run"

_SIGNAL_POLL = 0.25
"""Seconds the daemon's main thread waits for an order before looking for signals again."""

_STOP = "stop"
_RELOAD = "reload"


@dataclass(frozen=True, slots=True)
class SchedulePlan:
    """The job's timing, derived from the config."""

    tick: float
    """Seconds between runs: the shortest of `[schedule] interval` and the feeds' intervals."""
    jitter: float
    """Each run starts up to this many seconds late, at random."""
    misfire_grace: int
    """A run may start up to this many seconds late (APScheduler takes whole seconds)."""

    @classmethod
    def of(cls, config: Config) -> SchedulePlan:
        """The plan for `config`."""
        schedule = config.schedule
        intervals = [schedule.interval]
        intervals += [s.interval for s in config.enabled_sources
                      if isinstance(s, FeedSource) and s.interval is not None]
        tick = min(intervals)
        jitter = schedule.jitter if schedule.jitter is not None else min(tick / 10, 30.0)
        grace = schedule.misfire_grace if schedule.misfire_grace is not None else tick
        return cls(tick=tick, jitter=jitter, misfire_grace=max(1, math.ceil(grace)))

    def stale_after(self, config: Config) -> float:
        """Age of the last good run at which /healthz fails."""
        if config.serve.stale_after is not None:
            return config.serve.stale_after
        return max(3 * self.tick, 60.0)

    def max_age(self, config: Config) -> int:
        """Cache-Control max-age of published files: they may change at every tick."""
        seconds = config.serve.max_age if config.serve.max_age is not None else self.tick
        return int(seconds)


class Daemon:
    """The scheduled job, its config (swapped on reload) and its status."""

    def __init__(self, config: Config, status: DaemonStatus,
                 on_reload: Callable[[Config, SchedulePlan], None] | None = None,
                 adjust: Callable[[Config], Config] | None = None,
                 hub: Hub | None = None) -> None:
        self.status = status
        self._adjust = adjust
        self._hub = hub
        self._config = config
        self._plan = SchedulePlan.of(config)
        self._on_reload = on_reload
        self._lock = threading.Lock()
        self._stopping = False
        self._idle = threading.Event()
        self._idle.set()
        self._heap_frozen = False
        self._scheduler: BackgroundScheduler | None = None

    @property
    def config(self) -> Config:
        """The config the next run will use."""
        return self._config

    @property
    def plan(self) -> SchedulePlan:
        """The schedule in force."""
        return self._plan

    def start(self) -> None:
        """Start the scheduler; the first run begins at once."""
        from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        plan = self._plan
        scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1,
                          "misfire_grace_time": plan.misfire_grace},
            timezone=UTC,
        )
        scheduler.add_job(self.run_job, _trigger(plan), id=JOB_ID, name="aggregate run",
                          next_run_time=datetime.now(UTC))
        scheduler.add_listener(self._skipped, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
        scheduler.start()
        self._scheduler = scheduler
        log.info("daemon started", extra=facts(
            config=str(self._config.path), interval=plan.tick, jitter=plan.jitter,
            misfire_grace=plan.misfire_grace, pid=os.getpid(),
        ))

    def _skipped(self, event: Any) -> None:
        """Our words for APScheduler's skipped and missed runs (its own are kept for -vv)."""
        from apscheduler.events import EVENT_JOB_MAX_INSTANCES

        if event.code == EVENT_JOB_MAX_INSTANCES:
            log.warning("tick skipped: the previous run is still going (runs never overlap; "
                        "a tick shorter than a run skips ticks)",
                        extra=facts(interval=self._plan.tick))
        else:
            log.warning("tick skipped: it was due too long ago (a suspend or an overrun, "
                        "past [schedule] misfire_grace)",
                        extra=facts(misfire_grace=self._plan.misfire_grace))

    def run_job(self) -> None:
        """One scheduled run; never raises, so one bad run never stops the next."""
        with self._lock:
            if self._stopping:
                return
            self._idle.clear()
        try:
            self._run(self._config)
            if not self._heap_frozen:
                _freeze_heap()
                self._heap_frozen = True
        finally:
            self._idle.set()

    def _run(self, config: Config) -> None:
        from aggregator.pipeline import run_once

        if self._hub is not None:
            from aggregator.websub import with_served_hub

            config = with_served_hub(config)
        started = time.time()
        self.status.run_started(started)
        try:
            result = run_once(with_feed_intervals(config))
        except Exception as exc:  # the daemon outlives any one run, whatever went wrong
            finished = time.time()
            message = str(exc) if isinstance(exc, AggregatorError) else (
                f"internal error: {exc!r}"
            )
            log.error("run failed", extra=facts(outcome="error", error=message,
                                               duration=finished - started))
            log.debug("run failed", exc_info=True)
            self.status.run_finished(RunRecord(started, finished, None, message), {})
            return
        finished = time.time()
        record = RunRecord(started, finished, result)
        failed = [s.name for s in result.failed_sources]
        # Each failed source was logged by the pipeline already; this is the run's one line.
        level = (logging.ERROR if result.publish_error else
                 logging.WARNING if failed else logging.INFO)
        log.log(level, "run", extra=facts(
            outcome=record.outcome, duration=record.duration,
            sources_ok=len(result.sources) - len(failed), sources_failed=len(failed),
            items=result.items_total, new=result.items_new, updated=result.items_updated,
            stories=result.stories, written=len(result.files_written),
            unchanged=result.files_unchanged,
            **({"failed": failed} if failed else {}),
            **({"error": result.publish_error} if result.publish_error else {}),
        ))
        self.status.run_finished(record, published_sizes(config.output.dir))
        if self._hub is not None and result.files_written:
            self._hub.feeds_changed(result.files_written)  # queued: subscribers never wait

    def reload(self) -> None:
        """Read the config file again; keep the running config if the new one is bad."""
        old = self._config
        try:
            new = load_config(old.path)
            if self._adjust is not None:
                new = self._adjust(new)
            if new.output.dir != old.output.dir:
                raise ConfigError(new.path, "output.dir",
                                  "cannot change while the daemon runs (it holds the lock "
                                  "there); restart the daemon to move the output")
            if new.store.url != old.store.url:
                raise ConfigError(new.path, "store",
                                  "cannot change while the daemon runs (it holds the store's "
                                  "lock); restart the daemon to use another store")
        except AggregatorError as exc:
            log.error("reload failed; keeping the running config", extra=facts(error=str(exc)))
            self.status.reloaded(False)
            return
        except Exception as exc:  # a bug in reading the config must not stop the daemon
            log.error("reload failed; keeping the running config",
                      extra=facts(error=f"internal error: {exc!r}"))
            log.debug("reload failed", exc_info=True)
            self.status.reloaded(False)
            return
        plan = SchedulePlan.of(new)
        if plan != self._plan and self._scheduler is not None:
            self._scheduler.reschedule_job(JOB_ID, trigger=_trigger(plan))
            self._scheduler.modify_job(JOB_ID, misfire_grace_time=plan.misfire_grace)
        self._config, self._plan = new, plan
        if self._on_reload is not None:
            self._on_reload(new, plan)
        self.status.reloaded(True)
        log.info("config reloaded", extra=facts(config=str(new.path), interval=plan.tick,
                                                jitter=plan.jitter))

    def stop(self, budget: float = STOP_BUDGET) -> bool:
        """Stop scheduling; wait up to `budget` s for the run in progress. True if none is left."""
        with self._lock:
            self._stopping = True
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        if not self._idle.is_set():
            log.info("stopping: waiting for the run in progress", extra=facts(budget=budget))
        return self._idle.wait(budget)


def with_feed_intervals(config: Config) -> Config:
    """The config as the daemon runs it: a feed without its own `interval` is fetched every
    `[schedule] interval`, not on every tick (the tick is shorter when another feed asks
    for less). A one-shot run fetches every feed: cron sets its cadence."""
    sources = tuple(
        replace(s, interval=config.schedule.interval)
        if isinstance(s, FeedSource) and s.interval is None else s
        for s in config.sources
    )
    return replace(config, sources=sources)


def _freeze_heap() -> None:
    """Move what the first run left alive (imported modules, caches) out of the GC's sight.

    A full collection walks every tracked object: ~60k after a run, 11-14 ms, a pause that
    every HTTP request in flight would wait out. Frozen objects are still freed by reference
    counting; only cycles among them would stay, and modules live for the whole process.
    """
    gc.collect()
    gc.freeze()


def _trigger(plan: SchedulePlan) -> Any:
    from apscheduler.triggers.interval import IntervalTrigger

    return IntervalTrigger(seconds=plan.tick, jitter=plan.jitter or None, timezone=UTC)


def run_daemon(config: Config, *, serve: str | None = None) -> int:
    """Run until SIGTERM/SIGINT (exit status 0); with `serve`, also serve over HTTP."""
    _quiet_apscheduler()
    remove_stale_temporaries(config.output.dir)
    status = DaemonStatus(stale_after=SchedulePlan.of(config).stale_after(config))
    server = _http_server(config, serve, status) if serve is not None else None
    hub = server.hub if server is not None else None
    adjust = server.published_config if server is not None else None
    if adjust is not None:
        config = adjust(config)
    if server is not None:
        # The hub accepts topics under the base URL actually published (maybe derived).
        server.reconfigure(config, SchedulePlan.of(config))
    daemon = Daemon(config, status, server.reconfigure if server is not None else None,
                    adjust, hub)
    control = _Control(daemon, server.stop if server is not None else None)
    previous = control.install_signal_handlers()
    try:
        daemon.start()
        if server is None:
            control.run()
        else:
            # The HTTP server runs in the main thread; orders are carried out in another.
            thread = threading.Thread(target=control.run, name="control", daemon=True)
            thread.start()
            try:
                server.run()
            finally:
                control.request_stop()  # also when the server ended on its own
                thread.join()
        finished = daemon.stop(control.stop_budget_left())
    finally:
        if hub is not None:
            hub.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if not finished:
        _abandon()
    log.info("daemon stopped", extra=facts(runs=status.health().body["runs"]))
    return 0


class _Control:
    """Carries out what signals ask (reload, stop) outside the signal handlers."""

    def __init__(self, daemon: Daemon, stop_server: Callable[[], None] | None) -> None:
        self._daemon = daemon
        self._stop_server = stop_server
        self._events: queue.SimpleQueue[tuple[str, int, float]] = queue.SimpleQueue()
        self.stop_requested_at: float | None = None

    def install_signal_handlers(self) -> dict[int, Any]:
        """Route SIGTERM, SIGINT and SIGHUP here; return the handlers they replace."""

        def handler(signum: int, frame: FrameType | None) -> None:
            # Only a queue put: SimpleQueue.put is safe in a signal handler, logging is not.
            order = _RELOAD if signum == signal.SIGHUP else _STOP
            self._events.put((order, signum, time.monotonic()))

        return {signum: signal.signal(signum, handler)
                for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}

    def request_stop(self) -> None:
        """Stop as if signalled (the HTTP server ended)."""
        self._events.put((_STOP, 0, time.monotonic()))

    def run(self) -> None:
        """Reload on each SIGHUP; on the first stop, stop the HTTP server and return."""
        while True:
            try:
                order, signum, at = self._events.get(timeout=_SIGNAL_POLL)
            except queue.Empty:
                # Woken on purpose: a signal the kernel hands to another thread does not
                # interrupt this wait, and Python runs its handler only once the main
                # thread is back in the interpreter (a SIGTERM could wait for ever).
                continue
            if order == _RELOAD:
                log.info("reloading the config", extra=facts(signal=_signal_name(signum)))
                self._daemon.reload()
                continue
            self.stop_requested_at = at
            faulthandler.dump_traceback_later(max(0.1, at + HARD_STOP - time.monotonic()),
                                              exit=True)
            if signum:
                log.info("stopping", extra=facts(signal=_signal_name(signum)))
            if self._stop_server is not None:
                self._stop_server()
            return

    def stop_budget_left(self) -> float:
        """Seconds left for the run in progress, counted from the stop signal."""
        start = self.stop_requested_at if self.stop_requested_at is not None else time.monotonic()
        return max(0.0, start + STOP_BUDGET - time.monotonic())


class _ServedDaemon:
    """The HTTP side of a daemon: the server and what a reload changes of it."""

    def __init__(self, config: Config, server: HttpServer, apply: Callable[[Config], None],
                 address: Address, hub: Hub) -> None:
        self._config = config
        self._server = server
        self._apply = apply
        self._address = address
        self.hub = hub

    def published_config(self, config: Config) -> Config:
        """`config` with the base URL it publishes under, checked against the address served:
        derived from it when the config leaves base_url out, or a warning when they differ."""
        from aggregator.serve import check_base_url

        check = check_base_url(config.output, self._address)
        if check.warning:
            log.warning("%s", check.warning)
        if check.derived:
            log.info("publishing under the served address",
                     extra=facts(base_url=check.base_url))
        return replace(config, output=replace(config.output, base_url=check.base_url))

    def run(self) -> None:
        self._server.run()

    def stop(self) -> None:
        self._server.stop()

    def reconfigure(self, config: Config, plan: SchedulePlan) -> None:
        if (config.serve.host, config.serve.port) != (self._config.serve.host,
                                                      self._config.serve.port):
            log.warning("serve.host and serve.port take effect when the daemon restarts")
        self._apply(config)


def _http_server(config: Config, option: str, status: DaemonStatus) -> _ServedDaemon:
    from aggregator import serve, websub

    address = serve.resolve_address(option, config.serve)
    where = "--serve" if option.strip() else f"{config.path}: serve"
    sock = serve.listen(address, where=where)
    plan = SchedulePlan.of(config)
    hub = websub.Hub(websub.HubSettings.of(config))
    hub.start()
    endpoints = serve.Endpoints(config.output.dir, status,
                                serve.ServeSettings(max_age=plan.max_age(config)), hub)

    def apply(new: Config) -> None:
        hub.configure(websub.HubSettings.of(new))
        new_plan = SchedulePlan.of(new)
        endpoints.settings = serve.ServeSettings(max_age=new_plan.max_age(new))
        status.set_stale_after(new_plan.stale_after(new))

    server = serve.HttpServer(endpoints, sock, access_log=config.serve.access_log,
                              read_timeout=config.serve.read_timeout,
                              idle_timeout=config.serve.idle_timeout)
    return _ServedDaemon(config, server, apply, serve.bound_address(sock), hub)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


def _abandon() -> None:
    """Exit now, leaving a run that would not finish in time.

    Its worker thread cannot be interrupted and the interpreter would wait for it at exit.
    Published files stay whole (they are renamed into place) and the store's transaction
    rolls back; the kernel releases the run lock with the process.
    """
    log.warning("stopped with a run still in progress; it was abandoned",
                extra=facts(budget=STOP_BUDGET))
    logging.shutdown()
    os._exit(0)


def _quiet_apscheduler() -> None:
    """APScheduler says two INFO lines per run, and its own words for skipped runs (ours are
    logged instead: `Daemon._skipped`); keep them for -vv (debug) only."""
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("apscheduler").setLevel(logging.ERROR)
