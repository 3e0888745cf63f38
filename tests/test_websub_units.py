"""WebSub's pure steps, the hub's queue, the subscriptions in the store (SQLite and
PostgreSQL) and the hub links the renderers write."""

from __future__ import annotations

import json
import re
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aggregator import websub
from aggregator.config import load_config
from aggregator.publish import FeedPlan, Site, render_atom_and_rss, render_json
from aggregator.store import Subscription, open_store
from aggregator.websub import Hub, HubRequestError, HubSettings, parse_request

ATOM = "{http://www.w3.org/2005/Atom}"
SETTINGS = HubSettings(
    base_url="http://feeds.example.test/", hub_url="http://feeds.example.test/websub",
    advertised=("http://feeds.example.test/websub",),
    out_dir=Path("/nonexistent"), store_url="sqlite://", lease=864_000, min_lease=300,
    max_lease=2_592_000, attempts=6, retry_backoff=10.0, queue=3, timeout=5.0,
)
CALLBACK = "http://127.0.0.1:9/cb?id=7"
TOPIC = "http://feeds.example.test/combined.atom"


def form(**fields: str) -> dict[str, list[str]]:
    base = {"hub.mode": "subscribe", "hub.callback": CALLBACK, "hub.topic": TOPIC}
    base.update({k.replace("_", ".", 1): v for k, v in fields.items()})
    return {k: [v] for k, v in base.items()}


def test_a_subscription_request_is_read_with_the_lease_the_hub_grants() -> None:
    request = parse_request(form(hub_secret="k"), SETTINGS)
    assert (request.mode, request.callback, request.topic) == ("subscribe", CALLBACK, TOPIC)
    assert request.lease_seconds == 864_000 and request.secret == "k"
    assert parse_request(form(hub_lease_seconds="3600"), SETTINGS).lease_seconds == 3600
    assert parse_request(form(hub_lease_seconds="5"), SETTINGS).lease_seconds == 300
    assert parse_request(form(hub_lease_seconds="99999999"), SETTINGS).lease_seconds == 2_592_000
    leaving = parse_request(form(hub_mode="unsubscribe", hub_secret="k"), SETTINGS)
    assert (leaving.mode, leaving.lease_seconds, leaving.secret) == ("unsubscribe", 0, None)


@pytest.mark.parametrize(("fields", "named"), [
    ({"hub_mode": "publish"}, "hub.mode"),
    ({"hub_callback": ""}, "hub.callback"),
    ({"hub_callback": "javascript:alert(1)"}, "hub.callback"),
    ({"hub_callback": "http://127.0.0.1/cb#part"}, "hub.callback"),
    ({"hub_callback": "http://x.test/" + "a" * 2048}, "hub.callback"),
    ({"hub_topic": ""}, "hub.topic"),
    ({"hub_topic": "http://elsewhere.test/combined.atom"}, "hub.topic"),
    ({"hub_topic": "http://feeds.example.test/index.html"}, "hub.topic"),
    ({"hub_topic": "http://feeds.example.test/../etc/passwd.atom"}, "hub.topic"),
    ({"hub_topic": "http://feeds.example.test/archive/combined-2024-12.atom"}, "hub.topic"),
    ({"hub_lease_seconds": "1h"}, "hub.lease_seconds"),
    ({"hub_secret": "é" * 100}, "hub.secret"),
])
def test_a_bad_request_is_refused_naming_the_field(fields: dict[str, str], named: str) -> None:
    with pytest.raises(HubRequestError, match=f"^{re.escape(named)}:"):
        parse_request(form(**fields), SETTINGS)


def test_a_field_given_twice_is_refused() -> None:
    twice = form()
    twice["hub.topic"] = [TOPIC, "http://feeds.example.test/nato.atom"]
    with pytest.raises(HubRequestError, match=r"hub\.topic: given more than once"):
        parse_request(twice, SETTINGS)


def test_topics_are_the_published_feeds_under_base_url() -> None:
    base = "http://feeds.example.test/"
    assert websub.topic_name(base + "topic-ukraine.rss", base) == "topic-ukraine.rss"
    assert websub.topic_name(base + "country-me.json", base) == "country-me.json"
    assert websub.topic_name(base + "feeds.opml", base) is None
    assert websub.topic_name("https://feeds.example.test/nato.atom", base) is None
    assert websub.feed_names(["index.html", "nato.rss", "feeds.opml", "combined.atom"]) == [
        "combined.atom", "nato.rss"]


def test_signature_is_hmac_sha256_in_hex() -> None:
    # RFC 4231, test case 2.
    assert websub.signature("Jefe", b"what do ya want for nothing?") == (
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")


def test_callback_query_is_kept_and_links_name_hub_and_topic() -> None:
    assert websub.with_query(CALLBACK, {"hub.mode": "subscribe", "hub.challenge": "a b"}) == (
        "http://127.0.0.1:9/cb?id=7&hub.mode=subscribe&hub.challenge=a+b")
    assert websub.with_query("http://x.test/cb", {"a": "1"}) == "http://x.test/cb?a=1"
    assert websub.link_header("http://h.test/websub", TOPIC) == (
        f'<http://h.test/websub>; rel="hub", <{TOPIC}>; rel="self"')


def test_retries_wait_longer_each_time() -> None:
    assert [websub.retry_delay(n, SETTINGS) for n in (1, 2, 3, 4)] == [10, 20, 40, 80]


def test_the_queue_is_bounded_and_hands_out_tasks_when_due() -> None:
    queue = websub._TaskQueue(limit=3)
    later = websub._Fanout(("later.atom",))
    now = websub._Fanout(("now.atom",))
    assert queue.put(later, delay=0.2)
    assert queue.put(now)
    assert queue.put(websub._Fanout(("third.atom",)), delay=5)
    assert not queue.put(websub._Fanout(("fourth.atom",)))  # full
    started = time.monotonic()
    assert queue.get() is now
    assert queue.get() is later
    assert time.monotonic() - started >= 0.19
    queue.close()
    assert queue.get() is None  # closed: workers end, whatever is left
    assert not queue.put(now)


def test_subscriptions_are_stored_renewed_expired_and_removed(store_url: str) -> None:
    store = open_store(store_url)
    t0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

    def subscription(callback: str, topic: str, lease: int, secret: str | None = None,
                     at: datetime = t0) -> Subscription:
        return Subscription(callback, topic, secret, lease, at, at + timedelta(seconds=lease))

    try:
        store.save_subscription(subscription("http://a.test/1", TOPIC, 60, "s"))
        store.save_subscription(subscription("http://a.test/2", TOPIC, 10))
        store.save_subscription(subscription("http://a.test/1", "http://f.test/x.rss", 60))
        assert [s.callback for s in store.subscribers([TOPIC], t0)] == [
            "http://a.test/1", "http://a.test/2"]
        found = store.subscription("http://a.test/1", TOPIC, t0)
        assert found == subscription("http://a.test/1", TOPIC, 60, "s")
        # After 10 s the short lease is over; a renewal replaces the secret and the lease.
        later = t0 + timedelta(seconds=10)
        assert [s.callback for s in store.subscribers([TOPIC], later)] == ["http://a.test/1"]
        assert store.subscription("http://a.test/2", TOPIC, later) is None
        store.save_subscription(subscription("http://a.test/1", TOPIC, 600, "t", later))
        renewed = store.subscription("http://a.test/1", TOPIC, later)
        assert renewed is not None and renewed.secret == "t" and renewed.lease_seconds == 600
        assert store.expire_subscriptions(later) == 1
        assert store.delete_subscription("http://a.test/1", TOPIC)
        assert not store.delete_subscription("http://a.test/1", TOPIC)
        assert store.subscribers([TOPIC], t0) == []
        assert len(store.subscribers(["http://f.test/x.rss"], t0)) == 1
    finally:
        store.close()


def test_feeds_name_their_hubs_only_when_there_are_some() -> None:
    feed = FeedPlan("combined", "Test", ())
    plain = Site("Test", "http://f.test/", {})
    hubbed = Site("Test", "http://f.test/", {}, hubs=("http://f.test/websub", "http://h.test/"))
    atom, rss = render_atom_and_rss(feed, hubbed)
    links = [(link.get("rel"), link.get("href"))
             for link in ET.fromstring(atom).findall(f"{ATOM}link")]
    assert links == [("self", "http://f.test/combined.atom"), ("hub", "http://f.test/websub"),
                     ("hub", "http://h.test/"), ("alternate", "http://f.test/index.html")]
    channel = ET.fromstring(rss).find("channel")
    assert channel is not None
    assert channel.findtext("link") == "http://f.test/index.html"
    assert [(link.get("rel"), link.get("href")) for link in channel.findall(f"{ATOM}link")] == [
        ("self", "http://f.test/combined.rss"), ("hub", "http://f.test/websub"),
        ("hub", "http://h.test/")]
    assert json.loads(render_json(feed, hubbed))["hubs"] == [
        {"type": "WebSub", "url": "http://f.test/websub"},
        {"type": "WebSub", "url": "http://h.test/"}]
    atom_plain, rss_plain = render_atom_and_rss(feed, plain)
    assert b'rel="hub"' not in atom_plain + rss_plain
    assert "hubs" not in json.loads(render_json(feed, plain))


def test_served_feeds_name_every_hub_and_themselves_in_a_link_header(tmp_path: Path) -> None:
    config_path = tmp_path / "config" / "aggregator.toml"
    config_path.parent.mkdir()
    config_path.write_text('[output]\nbase_url = "http://f.test/news/"\n'
                           '[websub]\nhubs = ["http://h.test/"]\n', encoding="utf-8")
    settings = HubSettings.of(load_config(config_path))
    assert settings.hub_url == "http://f.test/news/websub"
    assert settings.advertised == ("http://f.test/news/websub", "http://h.test/")
    hub = Hub(settings)
    assert hub.discovery_link("nato.rss") == (
        '<http://f.test/news/websub>; rel="hub", <http://h.test/>; rel="hub", '
        '<http://f.test/news/nato.rss>; rel="self"')
    assert hub.discovery_link("index.html") is None
    assert hub.discovery_link("feeds.opml") is None
