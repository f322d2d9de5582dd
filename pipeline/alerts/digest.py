"""Digests: a digest rule's alerts are collected over its interval and sent as one message per channel.

The ``alerts`` agent sends each new alert of a digest rule to ``news.digests`` (key = rule name) and waits
for the broker before it marks the alert as sent. So every alert of one rule lands on one partition, and the
``alert-digests`` agent of the worker that owns that partition keeps the rule's open window in the Faust table
``alerts-digests`` (key = rule name, changelog partitioned like news.digests): a worker that is killed or
loses the partition in a rebalance leaves the window in the changelog, and the next owner recovers it.

The window opens with the rule's first alert and closes ``digest`` later (wall clock, so it survives a
restart), or earlier when it is full: an alert that would grow it past ``WINDOW_MAX_BYTES`` (the window is one
Kafka message in the changelog) first has the window delivered as it is, then opens the next one. A closed
window is delivered by the owner (one message per channel, the rule's current version; dead-lettered like any
alert when a channel keeps failing) and only then closed in the table, keeping the ids it sent so that a replay of
one of them (from a worker that died before committing it) is not sent again in a new window. A crash between the
delivery and the close delivers that digest once more (same ``alert_id`` values). See
docs/alerting.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from pydantic import ValidationError

from pipeline.acks import held
from pipeline.alerts.channels import Deliverer, dead_letter_event
from pipeline.dlq import DeadLetterSender, error_kind
from pipeline.logs import get_logger
from pipeline.schemas import AlertEvent, DigestItem

if TYPE_CHECKING:
    from pipeline.alerts.agent import RulesWatcher
    from pipeline.app import NewsflowApp

__all__ = ["DigestWindows", "digests_stream", "register_digests"]

log = get_logger(__name__)

FLUSH_EVERY_S = 1.0  # how often the owner looks for windows that closed: the digest's lateness at most
# A window is one changelog message: below Kafka's 1 MB default with room for the ids of the last window.
WINDOW_MAX_BYTES = 800_000


class DigestWindows:
    """The open windows in the Faust table; each entry written to (and removed from) its own changelog partition.

    Entry: ``{"partition": p, "closes_at": epoch seconds, "alerts": [AlertEvent JSON, ...], "sent": [alert_id, ...]}``;
    between windows ``closes_at`` is None and ``sent`` holds the ids the last window delivered.
    """

    def __init__(self, table: Any, clock: Callable[[], float] = time.time) -> None:
        self.table = table
        self._clock = clock
        self._bytes: dict[str, int] = {}  # size of each open window's alerts as JSON, kept as they are added

    def full(self, item: DigestItem) -> tuple[int, list[AlertEvent]] | None:
        """(partition, alerts) of the rule's open window when ``item`` would grow it past WINDOW_MAX_BYTES (then
        deliver and close it first); None when it fits, when the window is empty, or when the alert alone is too
        large for any window (the caller dead-letters it when the changelog refuses it)."""
        entry = self.table.data.get(item.rule)
        if not entry or entry["closes_at"] is None or not entry["alerts"]:
            return None
        size = self._bytes.get(item.rule)
        if size is None:  # recovered from the changelog
            size = self._bytes[item.rule] = sum(len(json.dumps(a)) for a in entry["alerts"])
        alone = len(item.alert.model_dump_json())
        if size + alone <= WINDOW_MAX_BYTES or alone > WINDOW_MAX_BYTES:
            return None  # it fits; or it fits no window at all
        return entry["partition"], [AlertEvent.model_validate(a) for a in entry["alerts"]]

    async def add(self, item: DigestItem, partition: int) -> bool:
        """Add the alert to its rule's window (opening one); False when it is a replay: already in the open window,
        or delivered with the window that closed last."""
        entry = self.table.data.get(item.rule)
        alert_id = item.alert.alert_id
        if entry is not None and alert_id in entry.get("sent", ()):
            return False
        if entry is None or entry["closes_at"] is None:
            entry = {"partition": entry["partition"] if entry else partition,
                     "closes_at": self._clock() + item.interval_s, "alerts": [],
                     "sent": entry.get("sent", []) if entry else []}
        if any(a.get("alert_id") == alert_id for a in entry["alerts"]):
            return False
        previous = self.table.data.get(item.rule)
        alert = item.alert.model_dump(mode="json")
        size = (self._bytes.get(item.rule, 0) if entry["alerts"] else 0) + len(json.dumps(alert))
        entry = {**entry, "alerts": [*entry["alerts"], alert]}
        try:
            await self._write(item.rule, entry, entry["partition"])
        except BaseException:
            # Not in the changelog (a window grown past a Kafka message, or a shutdown): not kept here either.
            if previous is None:
                self.table.data.pop(item.rule, None)
            else:
                self.table.data[item.rule] = previous
            raise
        self._bytes[item.rule] = size
        return True

    def due(self, partitions: set[int], *, now: float | None = None) -> list[tuple[str, int, list[AlertEvent]]]:
        """(rule, partition, alerts) of the closed windows this worker owns (its active ``partitions``)."""
        now = self._clock() if now is None else now
        closed = []
        for rule, entry in list(self.table.data.items()):
            if entry and entry["closes_at"] is not None and entry["partition"] in partitions \
                    and entry["closes_at"] <= now:
                closed.append((rule, entry["partition"], [AlertEvent.model_validate(a) for a in entry["alerts"]]))
        return closed

    async def close(self, rule: str, partition: int, sent: list[str]) -> None:
        """The window was delivered: keep only the ids it sent. An alert of it replayed later (its news.digests
        offset was not committed when the worker that added it died) is then recognised, not sent again in a new
        window. The next window carries the ids until it closes in turn."""
        self._bytes.pop(rule, None)
        await self._write(rule, {"partition": partition, "closes_at": None, "alerts": [], "sent": sent}, partition)

    async def remove(self, rule: str, partition: int) -> None:
        """Forget the rule's window (a tombstone in the changelog): for a rule that no longer exists."""
        self.table.data.pop(rule, None)
        self._bytes.pop(rule, None)
        await self._write(rule, None, partition)

    async def _write(self, key: str, value: dict[str, Any] | None, partition: int) -> None:
        if value is not None:
            self.table.data[key] = value
        # Awaited: the message that caused it is acked only once its entry is in the changelog. None is sent raw:
        # a tombstone, which recovery applies as a deletion.
        fut = await self.table.changelog_topic.send(key=key, value=value, partition=partition, key_serializer="json",
                                                    value_serializer="json" if value is not None else "raw")
        await fut

    def __len__(self) -> int:
        return sum(len(e["alerts"]) for e in self.table.data.values() if e)


async def digests_stream(stream: Any, table: Any, *, deliverer: Deliverer,
                         send_dead_letter: DeadLetterSender, owned: Callable[[], set[int] | None],
                         watcher: RulesWatcher) -> None:
    """The body of the ``alert-digests`` agent on news.digests (values: DigestItem JSON bytes).

    ``owned`` gives the news.digests partitions this worker is the active owner of, None while a rebalance or a
    table recovery is under way (a window half recovered must not be sent).
    """
    windows = DigestWindows(table)
    lock = asyncio.Lock()  # a window is never extended while it is being delivered and removed

    async def flush() -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY_S)
            with contextlib.suppress(Exception):
                watcher.reload()
            partitions = owned()
            if not partitions:
                continue
            async with lock:
                for name, partition, alerts in windows.due(partitions):
                    await deliver(name, partition, alerts)

    async def deliver(name: str, partition: int, alerts: list[AlertEvent], *, early: bool = False) -> None:
        """Deliver a window and close it (the caller holds the lock)."""
        rule = watcher.rules.get(name)
        if rule is None:
            log.warning("digest dropped: its rule was removed", rule=name, alerts=len(alerts))
            await windows.remove(name, partition)
            return
        try:
            await deliverer.deliver(rule, alerts)
        except Exception as exc:  # the deliverer dead-letters failures itself: a bug's last net
            log.error("digest not delivered", rule=name, alerts=len(alerts), error=str(exc)[:300])
        await windows.close(name, partition, [a.alert_id for a in alerts])
        log.info("digest window full, delivered early" if early else "digest window closed", rule=name,
                 alerts=len(alerts))

    background = asyncio.create_task(flush())
    try:
        async for event in stream.events():
            with held(event):
                try:
                    item = DigestItem.model_validate_json(event.value)
                except (ValidationError, ValueError) as exc:
                    await dead_letter_event(event, exc, send_dead_letter)
                    continue
                async with lock:
                    if (full := windows.full(item)) is not None:
                        await deliver(item.rule, *full, early=True)
                    try:
                        added = await windows.add(item, event.message.partition)
                    except Exception as exc:
                        if error_kind(exc) != "message_too_large":
                            raise
                        # This alert alone would not fit a Kafka message (an alert of megabytes): it goes to news.dlq,
                        # the window stays as it was, the agent goes on.
                        await dead_letter_event(event, exc, send_dead_letter)
                        continue
                    if added:
                        log.info("digest window extended", rule=item.rule, alert_id=item.alert.alert_id)
    finally:
        background.cancel()
        with contextlib.suppress(BaseException):
            await background
        # Open windows stay in the table: the next owner (this worker restarted, or another) delivers them.


def register_digests(app: NewsflowApp, deliverer: Callable[[], Deliverer], send_dead_letter: DeadLetterSender,
                     watcher: RulesWatcher) -> None:
    """Add the ``alert-digests`` agent on news.digests."""
    topic = app.digests_topic.get_topic_name()

    def owned() -> set[int] | None:
        recovery = cast(Any, app.tables).recovery  # the TableManager's; not in its abstract type
        if app.rebalancing or app.in_recovery or not recovery.completed.is_set():
            return None
        return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic}

    async def digests(stream: Any) -> None:
        d = deliverer()
        try:
            await digests_stream(stream, app.digest_table, deliverer=d, send_dead_letter=send_dead_letter,
                                 owned=owned, watcher=watcher)
        finally:
            await d.close()

    app.agent(app.digests_topic, name="alert-digests", concurrency=1)(digests)
