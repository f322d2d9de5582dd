"""Alert channels (pipeline.alerts.channels): the webhook signature, retries and dead letters, batch delivery."""

from __future__ import annotations

import hashlib
import hmac

from pipeline.alerts.channels import Deliverer, sign
from pipeline.alerts.matcher import Match
from pipeline.alerts.present import alert_event
from pipeline.alerts.rules import Channels, Rule
from pipeline.metrics import ALERT_RETRIES, ALERTS_SENT
from pipeline.schemas import AlertEvent, DeadLetter
from pipeline.settings import AlertSettings
from testkit.alerts_corpus import Receiver, sample_article


def _event(rule: Rule) -> AlertEvent:
    return alert_event(Match(rule, sample_article()), copies=1, indexed_at=None, top_entities=3)


def _deliverer(settings: AlertSettings, letters: list[DeadLetter], topic: list[bytes] | None = None) -> Deliverer:
    """A Deliverer whose dead letters land in ``letters`` and topic alerts (keys) in ``topic`` (None: none expected)."""

    async def send_dead_letter(letter: DeadLetter) -> None:
        letters.append(letter)

    async def send_topic(key: bytes, value: bytes) -> None:
        if topic is None:
            raise AssertionError("no topic channel")
        topic.append(key)

    return Deliverer(settings, send_topic=send_topic, send_dead_letter=send_dead_letter)


def test_signature_is_hmac_of_exact_body() -> None:
    body = b'{"kind":"alert"}'
    assert sign("k", body) == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()


async def test_a_channel_that_gets_no_answer_is_dead_lettered_under_its_own_name() -> None:
    """The poster reports a connection error without a channel; the deliverer names it (slack, not webhook)."""
    letters: list[DeadLetter] = []
    rule = Rule(name="s", query="energy", channels=Channels(slack="http://127.0.0.1:9/hook"))  # nothing listens
    deliverer = _deliverer(AlertSettings(max_attempts=1, delivery_timeout_s=5), letters)
    try:
        assert await deliverer.deliver(rule, [_event(rule)]) == {"slack": False}
    finally:
        await deliverer.close()
    [letter] = letters
    assert letter.stage == "alert" and letter.kind == "alert_delivery" and letter.error.startswith("slack: ")


async def test_a_batch_is_delivered_once_per_channel_failures_are_retried_then_dead_lettered() -> None:
    """deliver_batch on a real loopback receiver: first attempts together, the failed ones one by one."""
    letters: list[DeadLetter] = []
    topic: list[bytes] = []
    hooks = Receiver()
    rules = [Rule(name=f"ok{n}", query="energy", channels=Channels(webhook=f"{hooks.url}/ok/{n}")) for n in range(50)]
    rules += [Rule(name="flaky", query="energy", channels=Channels(webhook=f"{hooks.url}/flaky", topic=True)),
              Rule(name="down", query="energy", channels=Channels(slack=f"{hooks.url}/fail", topic=True))]
    batch = [(rule, _event(rule)) for rule in rules]
    sent_ok = ALERTS_SENT.labels("webhook", "ok")._value.get()
    retries = ALERT_RETRIES.labels("webhook")._value.get()
    deliverer = _deliverer(AlertSettings(max_attempts=2, initial_backoff_s=0.05, delivery_timeout_s=5), letters, topic)
    try:
        await deliverer.deliver_batch(batch)
    finally:
        await deliverer.close()
        hooks.close()
    assert sorted(path for path, _h, _b, _t in hooks.requests if path.startswith("/ok/")) == \
        sorted(f"/ok/{n}" for n in range(50))  # each once
    assert [path for path, _h, _b, _t in hooks.requests if path == "/flaky"] == ["/flaky"] * 2  # 500, then 200
    assert [path for path, _h, _b, _t in hooks.requests if path == "/fail"] == ["/fail"] * 2  # max_attempts
    assert ALERTS_SENT.labels("webhook", "ok")._value.get() == sent_ok + 51
    assert ALERT_RETRIES.labels("webhook")._value.get() == retries + 1
    [letter] = letters
    assert letter.error.startswith("slack: answered 500") and '"rule": "down"' in letter.payload
    assert sorted(topic) == sorted(event.alert_id.encode() for _r, event in batch[-2:])  # the other channel


async def test_a_batch_whose_poster_cannot_start_is_retried_then_dead_lettered_not_raised() -> None:
    async def no_poster(*args: object, **kwargs: object) -> object:
        raise OSError("cannot start the poster")

    letters: list[DeadLetter] = []
    rule = Rule(name="w", query="energy", channels=Channels(webhook="http://127.0.0.1:9/hook"))
    deliverer = _deliverer(AlertSettings(max_attempts=2, initial_backoff_s=0.01), letters)
    deliverer._poster.post_many = no_poster  # type: ignore[method-assign]
    deliverer._poster.post = no_poster  # type: ignore[method-assign]
    try:
        await deliverer.deliver_batch([(rule, _event(rule))])  # does not raise: the alerts agent goes on
    finally:
        await deliverer.close()
    [letter] = letters
    assert letter.error.startswith("webhook: cannot start the poster")
