#!/usr/bin/env python3
"""WebSub push latency: from a run that changed a feed to its subscribers having it.

Runs the real daemon (`aggregate --serve 127.0.0.1:0`, a 1 s schedule) on a copy of the
bundled seeds, and a loopback subscriber that confirms every verification and records when
each push arrives. It subscribes 1, then 100, then 1,000 callbacks to `combined.atom` (each
verified by the hub), and for each count adds a story `--rounds` times: the time from the
daemon's log line of the run that wrote the feed to the first and the last push, and that
run's own duration (which must not grow with the subscribers: delivery is off the run's
path). The issue's target: the push within 2 s of the run.

Then `aggregate --once` on the seeds, cold, `--rounds` times each: without hubs, and with
`[websub] hubs` naming a hub that takes the connection and never answers (`timeout = "1s"`):
the run's wall time, and what the hung hub added (target: at most the timeout).

Usage::

    python benchmarks/websub_push.py [--counts 1 100 1000] [--rounds 3]

Bounded: every wait has a timeout; loopback only.
"""

from __future__ import annotations

import argparse
import re
import socket
import statistics
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
from _daemon import Daemon, aggregate_command, make_workspace
from _harness import timed

TOPIC = "http://localhost:8080/combined.atom"
WAIT = 60.0


class Subscriber:
    """Confirms every verification; records each push's arrival time per callback path."""

    def __init__(self) -> None:
        self.verified = 0
        self.pushes: list[tuple[str, float]] = []
        self.changed = threading.Condition()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                params = parse_qs(urlsplit(self.path).query)
                body = params.get("hub.challenge", [""])[0].encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                with owner.changed:
                    owner.verified += 1
                    owner.changed.notify_all()

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                arrived = time.monotonic()
                self.send_response(204)
                self.end_headers()
                with owner.changed:
                    owner.pushes.append((urlsplit(self.path).path, arrived))
                    owner.changed.notify_all()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.request_queue_size = 1024
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def wait(self, what: str, count: int) -> None:
        deadline = time.monotonic() + WAIT
        with self.changed:
            while (self.verified if what == "verified" else len(self.pushes)) < count:
                if time.monotonic() > deadline:
                    raise SystemExit(f"benchmark failed: fewer than {count} {what} in {WAIT}s")
                self.changed.wait(1.0)


def changed_run_seen(daemon: Daemon, before: int) -> tuple[float, float]:
    """Wait for the (before+1)th run that wrote files: when it was seen, and its duration."""
    deadline = time.monotonic() + WAIT
    with daemon._changed:
        while True:
            runs = [line for line in daemon.lines
                    if re.search(r": run outcome=\S+ .* written=[1-9]", line)]
            if len(runs) > before:
                seen = time.monotonic()
                match = re.search(r"duration=([\d.]+)", runs[before])
                return seen, float(match.group(1)) if match else float("nan")
            if time.monotonic() > deadline:
                daemon.fail("no run wrote the new story")
            daemon._changed.wait(0.5)


def hung_hub_cost(rounds: int) -> None:
    """Cold `--once` runs without hubs and with a hung hub: wall seconds and the time the
    pings took inside the run (its `websub pinged ... in N s` line), min-max."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)  # takes connections into the backlog, never answers
    hung = f"http://127.0.0.1:{listener.getsockname()[1]}/hub"
    walls: dict[str, list[float]] = {"no hub": [], "hung hub": []}
    pings: list[float] = []
    try:
        for number in range(rounds):
            for label, extra in (("no hub", ""),
                                 ("hung hub", f'[websub]\nhubs = ["{hung}"]\ntimeout = "1s"\n')):
                with tempfile.TemporaryDirectory() as scratch:
                    config = make_workspace(Path(scratch) / str(number), extra)
                    run = timed([*aggregate_command(), "--once", "-v", "--config", str(config)])
                    if run.status != 0:
                        raise SystemExit(f"benchmark failed: {label} run: {run.stderr}")
                    walls[label].append(run.wall)
                    match = re.search(r"websub pinged .* in ([\d.]+)s", run.stderr)
                    if label == "hung hub":
                        if match is None:
                            raise SystemExit(f"benchmark failed: no ping line: {run.stderr}")
                        pings.append(float(match.group(1)))
    finally:
        listener.close()
    plain, hung_walls = walls["no hub"], walls["hung hub"]
    print(f"aggregate --once, cold, {rounds} runs each (s, min-max):")
    print(f"  no hub           wall {min(plain):.2f}-{max(plain):.2f}")
    print(f"  hung hub         wall {min(hung_walls):.2f}-{max(hung_walls):.2f}   "
          f"its pings {min(pings):.2f}-{max(pings):.2f} (timeout 1s); median wall added "
          f"{statistics.median(hung_walls) - statistics.median(plain):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    subscriber = Subscriber()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        config = make_workspace(root, '[schedule]\ninterval = "1s"\njitter = "0s"\n')
        daemon = Daemon(config, "--serve", "127.0.0.1:0")
        hub = f"http://127.0.0.1:{daemon.port()}/websub"
        daemon.wait_runs(1, WAIT)
        subscribed, story, changed_runs = 0, 0, 1  # the first run wrote every file
        print("subscribers  run->first push  run->last push  run duration   (min-max, s)")
        try:
            with httpx.Client(timeout=10) as client:
                for count in args.counts:
                    for number in range(subscribed, count):
                        answer = client.post(hub, data={
                            "hub.mode": "subscribe", "hub.callback": subscriber.url(f"/{number}"),
                            "hub.topic": TOPIC, "hub.secret": f"secret-{number}"})
                        if answer.status_code != 202:
                            daemon.fail(f"subscription refused: {answer.status_code} {answer.text}")
                    subscriber.wait("verified", count)
                    time.sleep(0.5)  # the last verified ones are stored right after
                    subscribed = count
                    firsts, lasts, durations = [], [], []
                    for _ in range(args.rounds):
                        pushes_before = len(subscriber.pushes)
                        story += 1
                        (root / "seeds" / f"bench{story}.txt").write_text(
                            f"Benchmark story {story} about a liaison office\n\nSource: NATO\n\n"
                            f"On 3 December 2024 NATO opened liaison office {story} in Riga.\n",
                            encoding="utf-8")
                        seen, duration = changed_run_seen(daemon, changed_runs)
                        changed_runs += 1
                        subscriber.wait("pushes", pushes_before + count)
                        arrivals = [at for _, at in subscriber.pushes[pushes_before:]]
                        firsts.append(min(arrivals) - seen)
                        lasts.append(max(arrivals) - seen)
                        durations.append(duration)
                    print(f"{count:>11}  {min(firsts):6.2f}-{max(firsts):<6.2f}   "
                          f"{min(lasts):6.2f}-{max(lasts):<6.2f}  "
                          f"{min(durations):6.3f}-{max(durations):<6.3f}")
        finally:
            daemon.stop()
            subscriber.server.shutdown()
    print("(negative: the push arrived before this script saw the run's log line)")
    hung_hub_cost(args.rounds)


if __name__ == "__main__":
    main()
