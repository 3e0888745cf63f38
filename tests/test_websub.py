"""WebSub: the hub of `aggregate --serve` against a loopback subscriber written from the spec,
and the pings `[websub] hubs` sends, all with real processes on 127.0.0.1."""

from __future__ import annotations

import json
import re
import socket
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest
from conftest import Workspace, seed_text
from daemon_process import DaemonProcess
from pytest_httpserver import HTTPServer
from websub_subscriber import Subscriber
from werkzeug import Request, Response

from aggregator.config import load_config
from aggregator.errors import ConfigError
from aggregator.pipeline import run_once
from aggregator.websub import with_served_hub

ATOM = "{http://www.w3.org/2005/Atom}"
BASE = "http://feeds.example.test/"
HUB = BASE + "websub"
COMBINED_ATOM = BASE + "combined.atom"
FAST = '[schedule]\ninterval = "1s"\njitter = "0s"\n'
CHANGED_RUN = r": run outcome=\S+ .* written=[1-9]"
PUSH_WITHIN = 2.0
"""The issue's promise: a subscriber has the new feed within 2 s of the run that changed it."""
QUIET_WAIT = 2.0
"""How long to watch for a push that must not come."""


@pytest.fixture
def subscriber() -> Iterator[Subscriber]:
    with Subscriber() as running:
        yield running


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    started: list[DaemonProcess] = []
    yield started
    for daemon in started:
        daemon.close()


def serve(daemons: list[DaemonProcess], workspace: Workspace) -> tuple[DaemonProcess, str]:
    """Start `aggregate --serve 127.0.0.1:0`; its first run done, return it and its hub URL."""
    daemon = DaemonProcess(workspace, "--serve", "127.0.0.1:0")
    daemons.append(daemon)
    base = daemon.base_url
    daemon.wait_for_runs(1)
    return daemon, f"{base}/websub"


def add_story(workspace: Workspace, number: int) -> str:
    """Add a seed file with one new story; returns its title."""
    title = f"NATO opens liaison office number {number} in Tallinn"
    body = (f"On 5 December 2024 NATO opened liaison office number {number} in Tallinn, "
            "Estonia, to coordinate cyber defence training with the host nation.")
    (workspace.seeds / f"extra{number}.txt").write_text(seed_text([(title, "NATO", body)]),
                                                         encoding="utf-8")
    return title


def changed_run(daemon: DaemonProcess, before: int) -> float:
    """Wait for a run after the first `before` ones that wrote files; when it was seen."""
    daemon.wait_for_lines(CHANGED_RUN, before + 1)
    return time.monotonic()


def test_subscriber_is_verified_then_pushed_signed_feed_and_nothing_after_unsubscribe_or_lease(
    workspace: Workspace, daemons: list[DaemonProcess], subscriber: Subscriber
) -> None:
    workspace.write_config(FAST + '[websub]\nmin_lease = "1s"\n')
    daemon, hub = serve(daemons, workspace)
    secret = "s3cret-of-the-subscriber"

    # Three subscriptions: one stays, one unsubscribes, one has a one-second lease.
    answer = subscriber.request(hub, "subscribe", "/stays", COMBINED_ATOM, secret=secret)
    assert answer.status_code == 202, answer.text
    assert subscriber.request(hub, "subscribe", "/leaves", COMBINED_ATOM).status_code == 202
    assert subscriber.request(hub, "subscribe", "/short", COMBINED_ATOM,
                              lease_seconds=1).status_code == 202
    daemon.wait_for_lines(r"websub subscribed", 3)
    stays = subscriber.verifications("/stays")[0]
    assert stays.confirmed
    assert stays.params["hub.mode"] == "subscribe"
    assert stays.params["hub.topic"] == COMBINED_ATOM
    assert stays.params["hub.lease_seconds"] == "864000"  # the documented default
    assert subscriber.verifications("/short")[0].params["hub.lease_seconds"] == "1"

    assert subscriber.request(hub, "unsubscribe", "/leaves", COMBINED_ATOM).status_code == 202
    daemon.wait_for_lines(r"websub unsubscribed")
    assert subscriber.verifications("/leaves")[-1].params["hub.mode"] == "unsubscribe"
    time.sleep(1.2)  # the short lease ends

    # The feeds name the daemon's hub, and the new story arrives, signed, within 2 s.
    feed = ET.parse(workspace.output / "combined.atom").getroot()
    links = {link.get("rel"): link.get("href") for link in feed.findall(f"{ATOM}link")}
    assert links["hub"] == HUB and links["self"] == COMBINED_ATOM
    served = httpx.get(hub.removesuffix("/websub") + "/combined.atom")
    assert served.headers["link"] == f'<{HUB}>; rel="hub", <{COMBINED_ATOM}>; rel="self"'
    assert "link" not in httpx.get(hub.removesuffix("/websub") + "/index.html").headers
    runs = len(daemon.matching(CHANGED_RUN))
    title = add_story(workspace, 1)
    seen = changed_run(daemon, runs)
    subscriber.wait(lambda: subscriber.deliveries("/stays"), 1, PUSH_WITHIN + 5, "the push")
    push = subscriber.deliveries("/stays")[0]
    assert push.at - seen <= PUSH_WITHIN, f"pushed {push.at - seen:.2f}s after the run"
    assert push.signed_with(secret)
    assert not push.signed_with("another secret")
    assert push.headers["content-type"].startswith("application/atom+xml")
    assert push.links() == {"hub": HUB, "self": COMBINED_ATOM}
    assert title.encode() in push.body
    assert push.body == (workspace.output / "combined.atom").read_bytes()

    time.sleep(QUIET_WAIT)
    assert subscriber.deliveries("/leaves") == [], "pushed after unsubscribing"
    assert subscriber.deliveries("/short") == [], "pushed after the lease ended"
    assert len(subscriber.deliveries("/stays")) == 1, "pushed again without a change"


def test_subscriptions_survive_a_restart(
    workspace: Workspace, daemons: list[DaemonProcess], subscriber: Subscriber
) -> None:
    workspace.write_config(FAST)
    first, hub = serve(daemons, workspace)
    topic = BASE + "nato.rss"
    assert subscriber.request(hub, "subscribe", "/nato", topic, secret="k").status_code == 202
    first.wait_for_lines(r"websub subscribed")
    assert first.stop() == 0

    second, _ = serve(daemons, workspace)
    runs = len(second.matching(CHANGED_RUN))
    title = add_story(workspace, 2)
    seen = changed_run(second, runs)
    subscriber.wait(lambda: subscriber.deliveries("/nato"), 1, PUSH_WITHIN + 5, "the push")
    push = subscriber.deliveries("/nato")[0]
    assert push.at - seen <= PUSH_WITHIN
    assert push.signed_with("k")
    assert push.headers["content-type"].startswith("application/rss+xml")
    assert push.links() == {"hub": HUB, "self": topic}
    assert title.encode() in push.body
    assert len(subscriber.verifications("/nato")) == 1  # not verified again


def test_failed_deliveries_are_retried_with_backoff_and_a_slow_callback_delays_no_run(
    workspace: Workspace, daemons: list[DaemonProcess], subscriber: Subscriber
) -> None:
    workspace.write_config(FAST + '[websub]\nretry_backoff = "0.3s"\ntimeout = "20s"\n')
    daemon, hub = serve(daemons, workspace)
    subscriber.answer("/flaky", 500, 503, 204)
    subscriber.answer("/slow", 204, delay=8.0)  # holds every delivery for 8 s
    assert subscriber.request(hub, "subscribe", "/flaky", COMBINED_ATOM).status_code == 202
    assert subscriber.request(hub, "subscribe", "/slow", COMBINED_ATOM).status_code == 202
    daemon.wait_for_lines(r"websub subscribed", 2)

    runs = len(daemon.matching(CHANGED_RUN))
    add_story(workspace, 3)
    changed_run(daemon, runs)
    subscriber.wait(lambda: subscriber.deliveries("/flaky"), 3, 10, "three attempts")
    attempts = [d.at for d in subscriber.deliveries("/flaky")]
    assert attempts[1] - attempts[0] >= 0.3 * 0.9
    assert attempts[2] - attempts[1] >= 0.6 * 0.9  # the wait doubles
    assert daemon.matching(r"websub delivery failed; will retry .*reason=\"HTTP 500\"")

    # While /slow still holds its delivery, the next change is published on the next tick
    # and the runs take their usual time.
    add_story(workspace, 4)
    changed_run(daemon, runs + 1)
    assert subscriber.deliveries("/slow")[0].at > time.monotonic() - 8.0, "slow one answered"
    durations = [float(re.search(r"duration=([\d.]+)", line).group(1))  # type: ignore[union-attr]
                 for line in daemon.matching(CHANGED_RUN)[runs:]]
    assert len(durations) >= 2 and max(durations) < 3.0, durations
    subscriber.wait(lambda: subscriber.deliveries("/flaky"), 4, 5, "the second push")
    assert len(subscriber.deliveries("/flaky")) == 4


def test_only_our_published_feeds_can_be_subscribed_and_unconfirmed_intent_stores_nothing(
    workspace: Workspace, daemons: list[DaemonProcess], subscriber: Subscriber
) -> None:
    workspace.write_config(FAST)
    daemon, hub = serve(daemons, workspace)
    callback = subscriber.callback("/cb")

    def post(**form: str) -> httpx.Response:
        return httpx.post(hub, data=form, timeout=10)

    refused = {
        "hub.topic": post(**{"hub.mode": "subscribe", "hub.callback": callback,
                             "hub.topic": "http://elsewhere.test/feed.atom"}),
        "not published here": post(**{"hub.mode": "subscribe", "hub.callback": callback,
                                      "hub.topic": BASE + "no-such-agency.atom"}),
        "hub.callback": post(**{"hub.mode": "subscribe", "hub.callback": "ftp://x.test/cb",
                                "hub.topic": COMBINED_ATOM}),
        "hub.mode": post(**{"hub.mode": "publish", "hub.callback": callback,
                            "hub.topic": COMBINED_ATOM}),
        "hub.lease_seconds": post(**{"hub.mode": "subscribe", "hub.callback": callback,
                                     "hub.topic": COMBINED_ATOM, "hub.lease_seconds": "-5"}),
        "hub.secret": post(**{"hub.mode": "subscribe", "hub.callback": callback,
                              "hub.topic": COMBINED_ATOM, "hub.secret": "x" * 200}),
    }
    for named, response in refused.items():
        assert response.status_code == 400, (named, response.text)
        assert named in response.text
    not_a_form = httpx.post(hub, content=b"{}", headers={"content-type": "application/json"})
    assert not_a_form.status_code == 415
    too_large = httpx.post(hub, content=b"hub.secret=" + b"x" * 20_000,
                           headers={"content-type": "application/x-www-form-urlencoded"})
    assert too_large.status_code == 413
    assert httpx.get(hub).status_code in (404, 405)

    # A callback that does not confirm (404 to the challenge) is not subscribed.
    form = {"hub.mode": "subscribe", "hub.callback": callback, "hub.topic": COMBINED_ATOM}
    assert httpx.post(hub, data=form).status_code == 202
    daemon.wait_for_lines(r"websub intent not verified .*reason=\"HTTP 404\"")
    assert len(subscriber.verifications()) == 1  # none for the refused requests
    runs = len(daemon.matching(CHANGED_RUN))
    add_story(workspace, 5)
    changed_run(daemon, runs)
    time.sleep(QUIET_WAIT)
    assert subscriber.deliveries() == []


# -- external hubs ------------------------------------------------------------------------


def test_external_hubs_are_advertised_and_pinged_after_a_run_that_changed_feeds(
    workspace: Workspace, loopback: HTTPServer
) -> None:
    pings: list[dict[str, list[str]]] = []

    def record(request: Request) -> Response:
        pings.append(parse_qs(request.get_data(as_text=True)))
        return Response(status=204)

    loopback.expect_request("/hub", method="POST").respond_with_handler(record)
    hub = loopback.url_for("/hub")
    workspace.write_config(f'[websub]\nhubs = ["{hub}"]\n')

    first = workspace.run("--once")
    assert first.returncode == 0, first.stderr
    assert len(pings) == 1
    assert pings[0]["hub.mode"] == ["publish"]
    urls = pings[0]["hub.url"]
    assert BASE + "combined.atom" in urls and BASE + "combined.json" in urls
    assert BASE + "nato.rss" in urls
    assert not any(u.endswith((".opml", ".html")) for u in urls)

    atom = ET.parse(workspace.output / "nato.atom").getroot()
    assert [link.get("href") for link in atom.findall(f"{ATOM}link[@rel='hub']")] == [hub]
    rss = ET.parse(workspace.output / "nato.rss").getroot()
    rss_links = {link.get("rel"): link.get("href")
                 for link in rss.findall(f"channel/{ATOM}link")}
    assert rss_links == {"self": BASE + "nato.rss", "hub": hub}
    feed = json.loads((workspace.output / "combined.json").read_text(encoding="utf-8"))
    assert feed["hubs"] == [{"type": "WebSub", "url": hub}]
    assert feed["feed_url"] == BASE + "combined.json"

    # Nothing changed: no ping. One story more: a ping for the feeds it changed.
    again = workspace.run("--once")
    assert again.returncode == 0 and len(pings) == 1, again.stderr
    add_story(workspace, 6)
    third = workspace.run("--once")
    assert third.returncode == 0 and len(pings) == 2, third.stderr
    assert BASE + "nato.atom" in pings[1]["hub.url"]
    assert BASE + "europol.atom" not in pings[1]["hub.url"]


@pytest.fixture
def hanging_hub() -> Iterator[str]:
    """A hub that takes connections and never answers (a hung server, not a refused port)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    yield f"http://127.0.0.1:{port}/hub"
    listener.close()


def _run_seconds(result_stderr: str) -> float:
    match = re.search(r"; ([\d.]+)s$", result_stderr.strip().splitlines()[-1])
    assert match, result_stderr
    return float(match.group(1))


def test_a_hub_that_hangs_or_is_down_costs_a_run_at_most_the_timeout(
    tmp_path: Path, hanging_hub: str
) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    down_hub = f"http://127.0.0.1:{closed.getsockname()[1]}/hub"
    closed.close()  # nothing listens there: connections are refused

    plain = Workspace(tmp_path / "plain")
    plain.copy_bundled_seeds()
    plain.write_config("")
    hubs = Workspace(tmp_path / "hubs")
    hubs.copy_bundled_seeds()
    hubs.write_config(f'[websub]\nhubs = ["{hanging_hub}", "{down_hub}"]\ntimeout = "1s"\n')

    baseline = plain.run("--once")
    assert baseline.returncode == 0, baseline.stderr
    started = time.monotonic()
    pinged = hubs.run("--once", timeout=60)
    elapsed = time.monotonic() - started
    assert pinged.returncode == 0, pinged.stderr  # a hub is no source: the run succeeded
    assert f"{hanging_hub}: WebSub ping failed: no answer within 1s" in pinged.stderr
    assert f"{down_hub}: WebSub ping failed: ConnectError" in pinged.stderr
    assert (workspace_feed := hubs.output / "combined.atom").is_file(), workspace_feed
    # The hung hub was waited for (the timeout), and not more than a noisy machine's slack
    # on top of a run without hubs; without the bound the run would wait on it for ever.
    assert _run_seconds(pinged.stderr) >= 0.95, pinged.stderr
    extra = _run_seconds(pinged.stderr) - _run_seconds(baseline.stderr)
    assert extra < 1.0 + 1.0, (extra, pinged.stderr)
    assert elapsed < 15, elapsed


def test_a_once_run_names_only_the_configured_hubs(workspace: Workspace) -> None:
    config = load_config(workspace.config)
    now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    feed = workspace.output / "combined.atom"

    def hubs() -> list[str | None]:
        return [link.get("href")
                for link in ET.parse(feed).getroot().findall(f"{ATOM}link[@rel='hub']")]

    run_once(with_served_hub(config), now=now)  # as `aggregate --serve` runs
    assert hubs() == [HUB]
    again = run_once(config, now=now)  # as `aggregate --once` runs: no hub of its own
    assert "combined.atom" in again.files_written and "nato.rss" in again.files_written
    assert hubs() == []
    assert run_once(config, now=now).files_written == ()


def test_a_failed_ping_is_a_warning_of_the_run_result(workspace: Workspace) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    down_hub = f"http://127.0.0.1:{closed.getsockname()[1]}/hub"
    closed.close()
    workspace.write_config(f'[websub]\nhubs = ["{down_hub}"]\ntimeout = "2s"\n')
    result = run_once(load_config(workspace.config),
                      now=datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
    assert result.exit_code == 0
    assert [w for w in result.warnings if "WebSub" in w] == [
        f"{down_hub}: WebSub ping failed: ConnectError: [Errno 111] Connection refused"]


# -- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "key"), [
    ('[websub]\nhubs = ["ftp://hub.example.test/"]\n', "websub.hubs[0]"),
    ('[websub]\nhubs = "http://hub.example.test/"\n', "websub.hubs"),
    ('[websub]\nmin_lease = "2d"\nmax_lease = "1d"\n', "websub.min_lease"),
    ('[websub]\nlease = "1m"\n', "websub.lease"),
    ('[websub]\ntimeout = "soon"\n', "websub.timeout"),
    ('[websub]\nattempts = 0\n', "websub.attempts"),
    ('[websub]\nhub = ["http://hub.example.test/"]\n', "websub.hub"),
])
def test_websub_config_errors_name_the_key(workspace: Workspace, body: str, key: str) -> None:
    workspace.write_config(body)
    with pytest.raises(ConfigError) as error:
        load_config(workspace.config)
    assert str(error.value).startswith(f"{workspace.config}: {key}: ")


def test_a_websub_config_error_stops_the_cli_before_anything_is_published(
    workspace: Workspace,
) -> None:
    workspace.write_config('[websub]\nhubs = ["ftp://hub.example.test/"]\n')
    result = workspace.run("--once")
    assert result.returncode == 2
    assert (f"{workspace.config}: websub.hubs[0]: must be an http(s) URL, got "
            "'ftp://hub.example.test/'") in result.stderr
    assert not any(workspace.output.glob("*.atom"))


def test_websub_defaults(workspace: Workspace) -> None:
    websub = load_config(workspace.config).websub
    assert websub.hubs == () and websub.advertised == ()
    assert (websub.lease, websub.min_lease, websub.max_lease) == (864_000, 300, 2_592_000)
    assert (websub.timeout, websub.attempts, websub.retry_backoff) == (5.0, 6, 10.0)
