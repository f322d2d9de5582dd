"""Delivering alerts: webhook (HMAC-signed), Slack, SMTP email, the news.alerts topic, the log.

:meth:`Deliverer.deliver` runs a rule's channels concurrently; each is tried ``alerts.max_attempts`` times
with :func:`pipeline.backoff.backoff_delay` between attempts and ``alerts.delivery_timeout_s`` per attempt,
then dead-lettered to news.dlq (stage ``alert``) with the alert as payload. One channel failing never holds
up another: they run side by side and each ends on its own.

An alert batch goes through :meth:`Deliverer.deliver_batch`: the first attempts of its webhook and Slack deliveries
are handed to the worker's poster process (:mod:`pipeline.alerts.poster`) at once and awaited together, with no task
per alert; the poster makes at most ``alerts.max_concurrent_deliveries`` connections at a time. Retries, and the
other channels, run one delivery at a time per alert: at most ``alerts.max_concurrent_deliveries`` of those attempts
run at once (a slot is held for one attempt, never during a backoff), each waiting for a slot before it builds its
body and request.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import smtplib
import time
from collections.abc import Awaitable, Callable, Sequence
from email.message import EmailMessage
from typing import Any

from pipeline.alerts.poster import Poster
from pipeline.alerts.present import email_bodies, slack_body, subject, webhook_body
from pipeline.alerts.rules import Rule
from pipeline.backoff import backoff_delay
from pipeline.dlq import DeadLetterSender, Origin, Retry, dead_letter, origin_of
from pipeline.errors import AlertDeliveryError
from pipeline.logs import get_logger
from pipeline.metrics import ALERT_LATENCY, ALERT_RETRIES, ALERTS_SENT
from pipeline.schemas import AlertEvent
from pipeline.settings import AlertSettings

__all__ = ["SIGNATURE_HEADER", "Deliverer", "dead_letter_event", "sign"]

log = get_logger(__name__)

SIGNATURE_HEADER = "X-Newsflow-Signature"
_HTTP = ("webhook", "slack")  # the channels the poster process delivers
TopicSender = Callable[[bytes, bytes], Awaitable[None]]  # (key, value), returns once the broker acknowledged


def _refusal(channel: str, answer: tuple[int, str]) -> AlertDeliveryError | None:
    """None for a 2xx answer; anything else (a redirect too: never followed) is a failed attempt."""
    status, reason = answer
    # Not the URL in the error: a Slack webhook's path is its secret.
    return None if 200 <= status < 300 else AlertDeliveryError(channel, f"answered {status} {reason}".rstrip())


def sign(secret: str, body: bytes) -> str:
    """The ``X-Newsflow-Signature`` value: ``sha256=`` + hex HMAC-SHA256 of the exact body bytes."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


async def dead_letter_event(event: Any, exc: BaseException, send_dead_letter: DeadLetterSender) -> None:
    """Send a consumed message the alert agents cannot use to news.dlq (stage alert), as it came."""
    # Sent once: should Kafka fail, the error propagates and the message, not acknowledged, comes again.
    await dead_letter("alert", exc, origin_of(event), send_dead_letter, retry=None)


class Deliverer:
    """Sends alerts on a rule's channels, with retries and dead letters (see the module docstring)."""

    def __init__(self, settings: AlertSettings, *, send_topic: TopicSender, send_dead_letter: DeadLetterSender
                 ) -> None:
        self.settings = settings
        self.send_topic = send_topic
        self.send_dead_letter = send_dead_letter
        self._poster = Poster(limit=settings.max_concurrent_deliveries, timeout_s=settings.delivery_timeout_s,
                              nice=settings.delivery_nice)
        self._slots = asyncio.Semaphore(settings.max_concurrent_deliveries)

    async def close(self) -> None:
        await self._poster.close()

    async def _post(self, channel: str, url: str, body: bytes, headers: dict[str, str]) -> None:
        """POST ``body`` from the poster process (:func:`_refusal` says what counts as delivered)."""
        refused = _refusal(channel, await self._poster.post(url, body, headers))
        if refused is not None:
            raise refused

    async def deliver(self, rule: Rule, alerts: Sequence[AlertEvent]) -> dict[str, bool]:
        """Deliver on every channel of ``rule``; returns channel -> delivered (False: dead-lettered)."""
        names = rule.channels.names()
        if len(names) == 1:  # the common case: no task of its own
            return {names[0]: await self._channel(names[0], rule, alerts)}
        results = await asyncio.gather(*(self._channel(name, rule, alerts) for name in names))
        return dict(zip(names, results, strict=True))

    async def deliver_batch(self, alerts: Sequence[tuple[Rule, AlertEvent]]) -> None:
        """Deliver each instant alert on every channel of its rule, as :meth:`deliver` does one by one.

        The first attempts of all the webhook and Slack deliveries go to the poster at once and are awaited together;
        only what fails is retried one by one (:meth:`_channel`). A broad rule set brings hundreds of alerts a batch,
        and a task per alert waiting for a slot cost the worker more than making the requests. The other channels
        run beside them, each on its own.
        """
        http: list[tuple[str, Rule, AlertEvent]] = []
        others = []
        for rule, event in alerts:
            for name in rule.channels.names():
                if name in _HTTP:
                    http.append((name, rule, event))
                else:
                    others.append(self._channel(name, rule, [event]))

        async def over_http() -> None:
            answers: list[tuple[int, str] | Exception]
            try:
                requests = [self._request(name, rule, [event]) for name, rule, event in http]
                # The poster times each request out itself (delivery_timeout_s); the margin lets its answer arrive
                # rather than count a request it delivered as failed (and deliver it twice).
                answers = await self._poster.post_many(requests, timeout_s=self.settings.delivery_timeout_s + 1)
            except Exception as exc:  # no poster (it could not start): every first attempt failed, as one by one
                answers = [exc] * len(http)
            retries = []
            for (name, rule, event), answer in zip(http, answers, strict=True):
                error = answer if isinstance(answer, Exception) else _refusal(name, answer)
                if error is None:
                    self._delivered(name, [event])
                else:
                    retries.append(self._channel(name, rule, [event], failed=error))
            await asyncio.gather(*retries)

        await asyncio.gather(over_http(), *others)

    async def _channel(self, name: str, rule: Rule, alerts: Sequence[AlertEvent], *,
                       failed: Exception | None = None) -> bool:
        """Up to ``max_attempts`` attempts on one channel, then a dead letter; ``failed``: the first attempt was
        made (by :meth:`deliver_batch`) and failed so."""
        s = self.settings
        for attempt in range(s.max_attempts):
            error = failed if attempt == 0 else None
            if error is None:
                try:
                    # The timeout counts from the attempt's start, not from the wait for a slot; asyncio.timeout,
                    # not wait_for: no task per attempt.
                    async with self._slots, asyncio.timeout(s.delivery_timeout_s):
                        await self._send(name, rule, alerts)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    error = exc
                else:
                    self._delivered(name, alerts)
                    return True
            if attempt + 1 >= s.max_attempts:
                await self._dead_letter(name, rule, alerts, error)
                return False
            ALERT_RETRIES.labels(name).inc()
            delay = backoff_delay(attempt, initial_s=s.initial_backoff_s, max_s=s.max_backoff_s)
            log.info("alert delivery failed, retrying", channel=name, attempt=attempt + 1,
                     delay_s=round(delay, 2), error=str(error)[:300] or type(error).__name__)
            await asyncio.sleep(delay)
        return False  # max_attempts >= 1: not reached

    @staticmethod
    def _delivered(name: str, alerts: Sequence[AlertEvent]) -> None:
        ALERTS_SENT.labels(name, "ok").inc()
        now = time.time()
        for a in alerts:
            if a.indexed_at is not None:
                ALERT_LATENCY.labels(name).observe(max(0.0, now - a.indexed_at.timestamp()))

    async def _dead_letter(self, name: str, rule: Rule, alerts: Sequence[AlertEvent], exc: BaseException) -> None:
        error = exc if isinstance(exc, AlertDeliveryError) else AlertDeliveryError(
            name, str(exc)[:1000] or type(exc).__name__)
        payload = json.dumps({"channel": name, "rule": rule.name,
                              "alerts": [a.model_dump(mode="json") for a in alerts]}, ensure_ascii=False)
        ALERTS_SENT.labels(name, "dead_letter").inc()
        # The alert is marked sent once its deliveries end, so its letter waits for Kafka rather than be lost.
        s = self.settings
        await dead_letter("alert", error, Origin(payload=payload, key=alerts[0].alert_id if alerts else None),
                          self.send_dead_letter, retry=Retry(s.initial_backoff_s, s.max_backoff_s),
                          event="alert dead-lettered", channel=name, alerts=len(alerts))

    def _request(self, name: str, rule: Rule, alerts: Sequence[AlertEvent]) -> tuple[str, bytes, dict[str, str]]:
        """The (url, body, headers) of a webhook or Slack delivery."""
        ch = rule.channels
        if name == "slack" and ch.slack:
            return ch.slack, slack_body(rule, alerts), {"Content-Type": "application/json"}
        if name == "webhook" and ch.webhook:
            body = webhook_body(rule, alerts)
            headers = {"Content-Type": "application/json", "User-Agent": "newsflow-alerts"}
            if rule.secret:
                headers[SIGNATURE_HEADER] = sign(rule.secret, body)
            return ch.webhook, body, headers
        raise ValueError(f"rule {rule.name!r} has no {name} channel")

    async def _send(self, name: str, rule: Rule, alerts: Sequence[AlertEvent]) -> None:
        ch = rule.channels
        if name in _HTTP:
            await self._post(name, *self._request(name, rule, alerts))
        elif name == "email" and ch.email:
            await asyncio.to_thread(self._send_email, rule, alerts, ch.email)
        elif name == "topic":
            for a in alerts:
                await self.send_topic(a.alert_id.encode(), a.model_dump_json().encode("utf-8"))
        elif name == "log":
            for a in alerts:
                log.info("alert", rule=rule.name, alert_id=a.alert_id, article_id=a.article_id,
                         story_id=a.story_id, title=a.title, source=a.source, url=a.url)

    def _send_email(self, rule: Rule, alerts: Sequence[AlertEvent], to: list[str]) -> None:
        # Blocking smtplib in a thread (asyncio.to_thread): the event loop never waits on the mail server.
        s = self.settings
        msg = EmailMessage()
        msg["Subject"] = subject(rule, alerts)
        msg["From"] = s.smtp_from
        msg["To"] = ", ".join(to)
        if len(alerts) == 1:
            msg["X-Newsflow-Alert-Id"] = alerts[0].alert_id
        plain, html_body = email_bodies(rule, alerts)
        msg.set_content(plain)
        msg.add_alternative(html_body, subtype="html")
        with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.delivery_timeout_s) as smtp:
            if s.smtp_starttls:
                smtp.starttls()
            if s.smtp_user:
                smtp.login(s.smtp_user, s.smtp_password.get_secret_value() if s.smtp_password else "")
            smtp.send_message(msg)
