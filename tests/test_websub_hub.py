"""The hub in-process, against the loopback subscriber and a real SQLite store: the cases a
daemon test would take long to reach (wrong challenge, 410, giving up, renewal, a full
queue, a newer feed overtaking a waiting retry)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from websub_subscriber import Subscriber

from aggregator.store import open_store
from aggregator.websub import Hub, HubSettings

BASE = "http://feeds.example.test/"
TOPIC = BASE + "combined.atom"


@pytest.fixture
def settings(tmp_path: Path) -> HubSettings:
    out_dir = tmp_path / "output"
    out_dir.mkdir()
    (out_dir / "combined.atom").write_bytes(b"<feed>first</feed>")
    return HubSettings(
        base_url=BASE, hub_url=BASE + "websub", advertised=(BASE + "websub",), out_dir=out_dir,
        store_url=f"sqlite:///{tmp_path / 'state.db'}", lease=3600, min_lease=1,
        max_lease=7200, attempts=3, retry_backoff=0.2, queue=100, timeout=2.0,
    )


@pytest.fixture
def subscriber() -> Iterator[Subscriber]:
    with Subscriber() as running:
        yield running


@pytest.fixture
def hub(settings: HubSettings) -> Iterator[Hub]:
    running = Hub(settings)
    running.start()
    yield running
    running.stop()


def subscribe(hub: Hub, subscriber: Subscriber, path: str, *, secret: str | None = None,
              mode: str = "subscribe") -> None:
    """Ask for a subscription and wait until the hub has verified it."""
    with subscriber._changed:
        subscriber._state.intents.add((path, mode, TOPIC))
    before = len(subscriber.verifications(path))
    form = {"hub.mode": [mode], "hub.callback": [subscriber.callback(path)],
            "hub.topic": [TOPIC]}
    if secret is not None:
        form["hub.secret"] = [secret]
    assert hub.request(form) == (202, "accepted: the hub will verify the intent at "
                                      "hub.callback\n")
    subscriber.wait(lambda: subscriber.verifications(path), before + 1, 5, "verification")
    time.sleep(0.1)  # the hub stores it right after the answer


def publish(settings: HubSettings, hub: Hub, body: bytes) -> None:
    (settings.out_dir / "combined.atom").write_bytes(body)
    hub.feeds_changed(["combined.atom", "index.html"])


def test_a_wrong_challenge_subscribes_nothing(
    hub: Hub, settings: HubSettings, subscriber: Subscriber
) -> None:
    path = "/echoes-wrong"
    form = {"hub.mode": ["subscribe"], "hub.callback": [subscriber.callback(path)],
            "hub.topic": [TOPIC]}
    # 200, but not the challenge: only the exact challenge confirms (§5.3.1).
    subscriber.answer_challenges_wrongly(path)
    assert hub.request(form)[0] == 202
    subscriber.wait(lambda: subscriber.verifications(path), 1, 5, "verification")
    time.sleep(0.1)
    publish(settings, hub, b"<feed>second</feed>")
    time.sleep(0.5)
    assert subscriber.deliveries() == []


def test_renewal_replaces_the_secret_and_410_ends_the_subscription(
    hub: Hub, settings: HubSettings, subscriber: Subscriber
) -> None:
    subscribe(hub, subscriber, "/cb", secret="old")
    subscribe(hub, subscriber, "/cb", secret="new")
    publish(settings, hub, b"<feed>second</feed>")
    subscriber.wait(lambda: subscriber.deliveries("/cb"), 1, 5, "the push")
    first = subscriber.deliveries("/cb")[0]
    assert first.signed_with("new") and not first.signed_with("old")
    assert first.body == b"<feed>second</feed>"

    subscriber.answer("/cb", 410)
    publish(settings, hub, b"<feed>third</feed>")
    subscriber.wait(lambda: subscriber.deliveries("/cb"), 2, 5, "the push answered 410")
    store = open_store(settings.store_url)
    try:
        deadline = time.monotonic() + 5
        while store.subscription(subscriber.callback("/cb"), TOPIC, datetime.now(UTC)):
            assert time.monotonic() < deadline, "the subscription outlived its 410"
            time.sleep(0.05)
    finally:
        store.close()
    publish(settings, hub, b"<feed>fourth</feed>")
    time.sleep(0.6)
    assert len(subscriber.deliveries("/cb")) == 2, "pushed after 410 Gone"


def test_a_failing_callback_is_given_up_after_the_attempts(
    hub: Hub, settings: HubSettings, subscriber: Subscriber, caplog: pytest.LogCaptureFixture
) -> None:
    subscribe(hub, subscriber, "/down")
    subscriber.answer("/down", 500, 500, 500, 500, 500)
    publish(settings, hub, b"<feed>second</feed>")
    subscriber.wait(lambda: subscriber.deliveries("/down"), 3, 5, "three attempts")
    time.sleep(1.0)  # a fourth would come 0.8 s after the third
    assert len(subscriber.deliveries("/down")) == 3
    assert "websub delivery failed; giving up" in caplog.text


def test_a_newer_feed_overtakes_a_waiting_retry(
    hub: Hub, settings: HubSettings, subscriber: Subscriber
) -> None:
    subscribe(hub, subscriber, "/cb")
    subscriber.answer("/cb", 503)
    publish(settings, hub, b"<feed>second</feed>")
    subscriber.wait(lambda: subscriber.deliveries("/cb"), 1, 5, "the failed push")
    publish(settings, hub, b"<feed>third</feed>")  # while the retry waits
    subscriber.wait(lambda: subscriber.deliveries("/cb"), 2, 5, "the retry")
    time.sleep(0.6)
    bodies = [d.body for d in subscriber.deliveries("/cb")]
    assert bodies == [b"<feed>second</feed>", b"<feed>third</feed>"]


def test_a_full_queue_answers_503_and_an_unpublished_topic_400(settings: HubSettings) -> None:
    idle = Hub(replace(settings, queue=1))  # not started: nothing takes tasks off the queue
    form = {"hub.mode": ["subscribe"], "hub.callback": ["http://127.0.0.1:9/cb"],
            "hub.topic": [TOPIC]}
    assert idle.request(form)[0] == 202
    status, text = idle.request(form)
    assert status == 503 and "busy" in text
    missing = dict(form, **{"hub.topic": [BASE + "nato.atom"]})
    status, text = idle.request(missing)
    assert status == 400 and text.startswith("hub.topic:") and "not published" in text
    # Unsubscribing needs no published file: the feed may be gone.
    idle.stop()


def test_a_reload_that_moves_the_store_moves_the_subscriptions(
    hub: Hub, settings: HubSettings, subscriber: Subscriber, tmp_path: Path
) -> None:
    subscribe(hub, subscriber, "/cb")
    hub.configure(replace(settings, store_url=f"sqlite:///{tmp_path / 'other.db'}"))
    publish(settings, hub, b"<feed>second</feed>")
    time.sleep(0.5)
    assert subscriber.deliveries() == []  # the new store knows no subscriber
    hub.configure(settings)
    publish(settings, hub, b"<feed>third</feed>")
    subscriber.wait(lambda: subscriber.deliveries("/cb"), 1, 5, "the push")
    assert subscriber.deliveries("/cb")[0].body == b"<feed>third</feed>"
