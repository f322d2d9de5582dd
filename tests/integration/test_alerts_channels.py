"""Channels against real loopback servers: a digest is one message per channel; a failing channel does not
hold up the others."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from email import message_from_bytes

from pipeline.alerts.channels import Deliverer
from pipeline.alerts.matcher import Match
from pipeline.alerts.present import alert_event
from pipeline.alerts.rules import Channels, Rule
from pipeline.schemas import DeadLetter, EnrichedArticle
from pipeline.settings import AlertSettings
from testkit.alerts_corpus import Mailbox, Receiver


def _article(n: int) -> EnrichedArticle:
    return EnrichedArticle(id=f"a{n}", story_id=f"s{n}", feed_url="http://f", url=f"https://example.com/{n}",
                           title=f"Flood warning {n}", body="Rivers rise.", source="Reuters",
                           ingested_at=datetime.now(UTC), text_fingerprint=f"fp{n}")


async def test_digest_is_one_message_per_channel(receiver: Receiver, smtp: tuple[Mailbox, int]) -> None:
    mailbox, port = smtp
    rule = Rule(name="floods", query="flood", mode="digest", digest="1h",
                channels=Channels(webhook=receiver.url + "/ok", slack=receiver.url + "/slack", email=["d@example.org"]))
    alerts = [alert_event(Match(rule, _article(n)), copies=1, indexed_at=datetime.now(UTC), top_entities=3)
              for n in range(3)]
    letters: list[DeadLetter] = []

    async def no_topic(key: bytes, value: bytes) -> None:
        raise AssertionError("no topic channel")

    async def collect(letter: DeadLetter) -> None:
        letters.append(letter)

    deliverer = Deliverer(AlertSettings(smtp_port=port), send_topic=no_topic, send_dead_letter=collect)
    try:
        assert await deliverer.deliver(rule, alerts) == {"webhook": True, "slack": True, "email": True}
    finally:
        await deliverer.close()
    [(_, body)] = receiver.to("/ok")
    digest = json.loads(body)
    assert digest["kind"] == "digest" and [a["article_id"] for a in digest["alerts"]] == ["a0", "a1", "a2"]
    [(_, slack)] = receiver.to("/slack")
    assert all(f"Flood warning {n}" in json.loads(slack)["text"] for n in range(3))
    [mail] = mailbox.to("d@example.org")
    message = message_from_bytes(mail)
    assert "3 new stories" in message["Subject"]
    assert not letters


async def test_failing_channel_is_dead_lettered_without_delaying_others(receiver: Receiver,
                                                                        smtp: tuple[Mailbox, int]) -> None:
    mailbox, port = smtp
    rule = Rule(name="r", query="flood", channels=Channels(webhook=receiver.url + "/fail", email=["x@example.org"]))
    [alert] = [alert_event(Match(rule, _article(1)), copies=1, indexed_at=datetime.now(UTC), top_entities=3)]
    letters: list[DeadLetter] = []
    email_done: list[float] = []

    async def no_topic(key: bytes, value: bytes) -> None:
        raise AssertionError("no topic channel")

    async def collect(letter: DeadLetter) -> None:
        letters.append(letter)

    settings = AlertSettings(smtp_port=port, max_attempts=4, initial_backoff_s=0.5, max_backoff_s=2)
    deliverer = Deliverer(settings, send_topic=no_topic, send_dead_letter=collect)
    start = time.monotonic()
    original = deliverer._send_email

    def timed(*args: object) -> None:
        original(*args)  # type: ignore[arg-type]
        email_done.append(time.monotonic() - start)

    deliverer._send_email = timed  # type: ignore[method-assign]  # record when the email went out
    try:
        assert await deliverer.deliver(rule, [alert]) == {"webhook": False, "email": True}
    finally:
        await deliverer.close()
    took = time.monotonic() - start
    assert len(receiver.to("/fail")) == 4 and took > 1.0  # three backoff waits: ~0.5 + 1 + 2, jittered
    assert email_done and email_done[0] < 1.0 < took  # the email did not wait for the webhook's retries
    assert len(mailbox.to("x@example.org")) == 1
    [letter] = letters
    assert letter.stage == "alert" and letter.kind == "alert_delivery" and "500" in letter.error
    assert json.loads(letter.payload)["alerts"][0]["alert_id"] == alert.alert_id
