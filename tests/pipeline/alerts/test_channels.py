"""Alert channels (pipeline.alerts.channels): the webhook signature."""

from __future__ import annotations

import hashlib
import hmac


def test_signature_is_hmac_of_exact_body() -> None:
    from pipeline.alerts.channels import sign

    body = b'{"kind":"alert"}'
    assert sign("k", body) == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()


async def test_a_channel_that_gets_no_answer_is_dead_lettered_under_its_own_name() -> None:
    """The poster reports a connection error without a channel; the deliverer names it (slack, not webhook)."""
    from pipeline.alerts.channels import Deliverer
    from pipeline.alerts.matcher import Match
    from pipeline.alerts.present import alert_event
    from pipeline.alerts.rules import Channels, Rule
    from pipeline.schemas import DeadLetter
    from pipeline.settings import AlertSettings
    from testkit.alerts_corpus import sample_article

    letters: list[DeadLetter] = []

    async def send_dead_letter(letter: DeadLetter) -> None:
        letters.append(letter)

    async def send_topic(key: bytes, value: bytes) -> None:
        raise AssertionError("no topic channel")

    rule = Rule(name="s", query="energy", channels=Channels(slack="http://127.0.0.1:9/hook"))  # nothing listens
    event = alert_event(Match(rule, sample_article()), copies=1, indexed_at=None, top_entities=3)
    deliverer = Deliverer(AlertSettings(max_attempts=1, delivery_timeout_s=5), send_topic=send_topic,
                          send_dead_letter=send_dead_letter)
    try:
        assert await deliverer.deliver(rule, [event]) == {"slack": False}
    finally:
        await deliverer.close()
    [letter] = letters
    assert letter.stage == "alert" and letter.kind == "alert_delivery" and letter.error.startswith("slack: ")
