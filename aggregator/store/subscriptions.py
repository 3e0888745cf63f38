"""WebSub subscriptions: which callbacks the hub of `aggregate --serve` pushes each feed to,
until their lease ends."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from aggregator.store.api import Subscription
from aggregator.store.engine import SqlBase, chunks, dialect_insert
from aggregator.store.schema import websub_subscriptions

_KEY = (websub_subscriptions.c.callback, websub_subscriptions.c.topic)


class SubscriptionTables(SqlBase):
    """The `websub_subscriptions` table."""

    def save_subscription(self, subscription: Subscription) -> None:
        """Insert or replace the subscription of a callback to a topic (a renewal); an
        upsert, so two nodes' hubs saving one subscription at once never collide."""
        row = {f.name: getattr(subscription, f.name) for f in fields(Subscription)}
        with self._tx() as conn:
            statement = dialect_insert(conn, websub_subscriptions).values(**row)
            conn.execute(statement.on_conflict_do_update(
                index_elements=list(_KEY),
                set_={name: statement.excluded[name] for name in row
                      if name not in ("callback", "topic")},
            ))

    def delete_subscription(self, callback: str, topic: str) -> bool:
        """Remove a subscription; True if there was one."""
        with self._tx() as conn:
            deleted = conn.execute(websub_subscriptions.delete().where(
                (websub_subscriptions.c.callback == callback)
                & (websub_subscriptions.c.topic == topic)))
            return bool(deleted.rowcount)

    def subscription(self, callback: str, topic: str, now: datetime) -> Subscription | None:
        """The subscription of a callback to a topic, unless it has expired by `now`."""
        with self._tx() as conn:
            row = conn.execute(sa.select(websub_subscriptions).where(
                (websub_subscriptions.c.callback == callback)
                & (websub_subscriptions.c.topic == topic)
                & (websub_subscriptions.c.expires > now))).first()
        return None if row is None else _subscription(row)

    def subscribers(self, topics: Iterable[str], now: datetime) -> list[Subscription]:
        """The subscriptions to any of `topics` whose lease runs past `now`."""
        found: list[Subscription] = []
        with self._tx() as conn:
            for chunk in chunks(sorted(set(topics))):
                rows = conn.execute(sa.select(websub_subscriptions).where(
                    websub_subscriptions.c.topic.in_(chunk)
                    & (websub_subscriptions.c.expires > now)
                ).order_by(websub_subscriptions.c.topic, websub_subscriptions.c.callback))
                found.extend(_subscription(row) for row in rows)
        return found

    def expire_subscriptions(self, now: datetime) -> int:
        """Delete the subscriptions whose lease ended by `now`; how many there were."""
        with self._tx() as conn:
            deleted = conn.execute(websub_subscriptions.delete().where(
                websub_subscriptions.c.expires <= now))
            return int(deleted.rowcount or 0)


def _subscription(row: Any) -> Subscription:
    return Subscription(**{f.name: getattr(row, f.name) for f in fields(Subscription)})
