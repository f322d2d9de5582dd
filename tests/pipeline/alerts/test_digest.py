"""Digest windows (pipeline.alerts.digest) on a recorded changelog, without Kafka."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

from pipeline.alerts.digest import DigestWindows
from pipeline.alerts.matcher import Match
from pipeline.alerts.present import alert_event, webhook_body
from pipeline.alerts.rules import Channels, Rule
from pipeline.schemas import DeadLetter, DigestItem
from testkit.alerts_corpus import sample_article


class _Changelog:
    """Records what DigestWindows writes to the table's changelog topic (the Kafka side has its own test)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, object, int, str]] = []

    async def send(self, *, key: str, value: object, partition: int, key_serializer: str,
                   value_serializer: str) -> asyncio.Future[None]:
        self.sent.append((key, value, partition, value_serializer))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def test_digest_windows_group_per_rule_in_their_partition() -> None:
    now = [0.0]
    table = SimpleNamespace(data={}, changelog_topic=_Changelog())
    windows = DigestWindows(table, clock=lambda: now[0])
    rule = Rule(name="d", query="q", mode="digest", digest="30m", channels=Channels(log=True))
    other = Rule(name="e", query="q", mode="digest", digest="1h", channels=Channels(log=True))
    for n in range(3):
        event = alert_event(Match(rule, sample_article().model_copy(update={"story_id": f"s{n}"})), copies=1,
                            indexed_at=None, top_entities=3).model_copy(update={"article_id": f"a{n}"})
        assert await windows.add(DigestItem(rule="d", alert=event, interval_s=1800), partition=2)
    assert not await windows.add(DigestItem(rule="d", alert=event, interval_s=1800), partition=2)  # a replay
    await windows.add(DigestItem(rule="e", alert=alert_event(Match(other, sample_article()), copies=1, indexed_at=None,
                                                             top_entities=3), interval_s=3600), partition=1)
    assert windows.due({1, 2}) == [] and len(windows) == 4
    assert {(k, p) for k, _v, p, _s in table.changelog_topic.sent} == {("d", 2), ("e", 1)}
    now[0] = 1800
    assert windows.due({0, 1}) == []  # another worker owns partition 2
    [(name, partition, alerts)] = windows.due({2})
    assert (name, partition) == ("d", 2) and [a.article_id for a in alerts] == ["a0", "a1", "a2"]
    assert json.loads(webhook_body(rule, alerts))["kind"] == "digest"
    await windows.close("d", 2, [a.alert_id for a in alerts])
    key, value, partition, serializer = table.changelog_topic.sent[-1]
    assert (key, partition, serializer) == ("d", 2, "json") and value["closes_at"] is None and value["alerts"] == []
    assert len(windows) == 1 and windows.due({0, 1, 2}, now=3600)[0][0] == "e"
    # A replay of a delivered alert (its offset not committed when its worker died) opens no new window...
    assert not await windows.add(DigestItem(rule="d", alert=event, interval_s=1800), partition=2)
    assert windows.due({2}, now=10_000) == [(n, p, a) for n, p, a in windows.due({2}, now=10_000) if n == "e"]
    # ... while a new alert does, in the rule's partition, and the window still knows the ids sent last time.
    fresh = event.model_copy(update={"alert_id": "new-alert", "article_id": "a9"})
    assert await windows.add(DigestItem(rule="d", alert=fresh, interval_s=1800), partition=2)
    assert not await windows.add(DigestItem(rule="d", alert=event, interval_s=1800), partition=2)
    now[0] = 3700
    assert [(n, p, [a.article_id for a in al]) for n, p, al in windows.due({2})] == [("d", 2, ["a9"])]
    # A rule that is gone is forgotten: a tombstone.
    await windows.remove("d", 2)
    assert table.changelog_topic.sent[-1] == ("d", None, 2, "raw")


class _SizeLimitedChangelog(_Changelog):
    """Refuses an entry larger than a Kafka message, as aiokafka's producer does (Faust wraps the error)."""

    async def send(self, *, key: str, value: object, partition: int, key_serializer: str,
                   value_serializer: str) -> asyncio.Future[None]:
        from aiokafka.errors import MessageSizeTooLargeError
        from faust.exceptions import ProducerSendError

        if len(json.dumps(value)) > 1_000_000:
            try:
                raise MessageSizeTooLargeError("The message is too large")
            except MessageSizeTooLargeError as exc:
                raise ProducerSendError(f"Error while sending: {exc!r}") from exc
        return await super().send(key=key, value=value, partition=partition, key_serializer=key_serializer,
                                  value_serializer=value_serializer)


async def _run_digests(table: SimpleNamespace, rule: Rule, values: list[bytes], deliverer: object) -> tuple[
        list[SimpleNamespace], list[DeadLetter]]:
    """``digests_stream`` over messages of ``values`` on partition 0 (fakes of what it uses of Faust's messages and
    events); returns the messages and the dead letters sent."""
    from pipeline.alerts.digest import digests_stream

    messages = [SimpleNamespace(partition=0, topic="news.digests", offset=n, value=v, key=b"d", refcount=1)
                for n, v in enumerate(values)]
    for m in messages:  # what pipeline.acks.held uses of a Faust message and event
        m.incref = lambda m=m: setattr(m, "refcount", m.refcount + 1)
    events = [SimpleNamespace(value=m.value, message=m, ack=lambda m=m: setattr(m, "refcount", m.refcount - 1))
              for m in messages]

    class _Stream:
        async def events(self):  # type: ignore[no-untyped-def]
            for event in events:
                yield event

    letters: list[DeadLetter] = []

    async def send_dead_letter(letter: DeadLetter) -> None:
        letters.append(letter)

    watcher = SimpleNamespace(rules={"d": rule}, reload=lambda: False)
    await digests_stream(_Stream(), table, deliverer=deliverer, send_dead_letter=send_dead_letter,  # type: ignore[arg-type]
                         owned=lambda: None, watcher=watcher)  # type: ignore[arg-type]
    return messages, letters


async def test_an_alert_the_window_cannot_hold_is_dead_lettered_and_the_window_kept() -> None:
    table = SimpleNamespace(data={}, changelog_topic=_SizeLimitedChangelog())
    rule = Rule(name="d", query="q", mode="digest", digest="30m", channels=Channels(log=True))

    def item(n: int, title: str) -> bytes:
        event = alert_event(Match(rule, sample_article(id=f"a{n}", story_id=f"s{n}", title=title)), copies=1,
                            indexed_at=None, top_entities=3)
        return DigestItem(rule="d", alert=event, interval_s=1800).model_dump_json().encode()

    values = [item(0, "Small"), item(1, "A" * 2_000_000), item(2, "Small again")]
    messages, letters = await _run_digests(table, rule, values, SimpleNamespace())
    assert [(d.stage, d.kind, d.offset) for d in letters] == [("alert", "message_too_large", 1)]
    assert [a["article_id"] for a in table.data["d"]["alerts"]] == ["a0", "a2"]  # the agent went on
    assert [m.refcount for m in messages] == [1, 1, 1]  # every hold released: the dead letter is done too


async def test_a_full_window_is_delivered_early_and_the_next_one_opened() -> None:
    """A thousand alerts in one interval would not fit one changelog message: the window is delivered as soon as
    the next alert would overflow it, and nothing is dead-lettered."""
    from pipeline.alerts.digest import WINDOW_MAX_BYTES
    from pipeline.schemas import AlertEvent

    table = SimpleNamespace(data={}, changelog_topic=_SizeLimitedChangelog())
    rule = Rule(name="d", query="q", mode="digest", digest="1h", channels=Channels(log=True))
    alerts = [alert_event(Match(rule, sample_article(id=f"a{n}", story_id=f"s{n}", title="T" * 100_000)), copies=1,
                          indexed_at=None, top_entities=3) for n in range(20)]
    values = [DigestItem(rule="d", alert=a, interval_s=3600).model_dump_json().encode() for a in alerts]
    delivered: list[list[AlertEvent]] = []

    class _Deliverer:
        async def deliver(self, rule: Rule, batch: list[AlertEvent]) -> None:
            delivered.append(batch)

    _messages, letters = await _run_digests(table, rule, values, _Deliverer())
    assert letters == []
    kept = [a["article_id"] for a in table.data["d"]["alerts"]]
    sent = [a.article_id for batch in delivered for a in batch]
    assert len(delivered) >= 2 and sent + kept == [f"a{n}" for n in range(20)]  # each once, in order
    for batch in delivered:
        assert sum(len(a.model_dump_json()) for a in batch) <= WINDOW_MAX_BYTES
    # The ids of the last delivered window travel with the open one: a replay of one of them is recognised.
    assert table.data["d"]["sent"] == [a.alert_id for a in delivered[-1]]
