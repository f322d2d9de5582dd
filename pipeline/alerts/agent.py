"""The ``alerts`` agent: news.indexed -> match -> once per (rule, story) -> channels.

Hook: the index agent, after Elasticsearch acknowledged a batch and before its offsets become committable,
sends each acknowledged article to ``news.indexed`` (key = story id) and waits for the broker (:func:`indexed_hook`,
returned by :func:`register_alerts`). So an article is alerted only once it is indexed, a worker crash between the
two replays the batch, and indexing pays only one broker round trip per bulk for alerting. An article
larger than a Kafka message (a title of a megabyte) is indexed but cannot be sent: it is dead-lettered (stage
alert, kind message_too_large) and the batch goes on.

Once per story per rule: the table ``alerts-sent`` maps ``"<rule>|<story_id>"`` to the first alert. news.indexed
is keyed by story id, so every copy of a story is on one partition and each entry is written to the changelog
partition of the message that caused it: the worker that owns a partition recovers exactly the entries of its
stories after a restart or rebalance. A syndicated copy, a replay and a correction find the entry and stay
silent. The entry is written after the deliveries of its batch ended (delivered or dead-lettered), then the
batch is acked: a crash in between re-sends that batch's alerts once (same ``alert_id``, which receivers use to
drop the repeat).

Digest rules: their new alerts go to ``news.digests`` (key = rule name, awaited like the table entries) where
the rule's window is kept (:mod:`pipeline.alerts.digest`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from elasticsearch import ApiError, AsyncElasticsearch, TransportError
from pydantic import ValidationError

from pipeline.acks import delivered, held
from pipeline.alerts.channels import Deliverer, dead_letter_event
from pipeline.alerts.digest import register_digests
from pipeline.alerts.matcher import Match, Matcher, story_copies
from pipeline.alerts.present import alert_event, alert_id
from pipeline.alerts.rules import Rule, load_rules, rules_path
from pipeline.backoff import backoff_delay
from pipeline.dlq import DeadLetterSender, Origin, Retry, dead_letter, error_kind
from pipeline.errors import NewsflowError
from pipeline.index import make_async_client
from pipeline.logs import get_logger
from pipeline.metrics import ALERT_MATCHES, ALERT_RULE_RELOADS, ALERT_RULES
from pipeline.schemas import AlertEvent, DigestItem, EnrichedArticle
from pipeline.settings import Settings

if TYPE_CHECKING:
    from pipeline.app import NewsflowApp
    from pipeline.sink import OnIndexed

__all__ = ["RulesWatcher", "alerts_stream", "indexed_hook", "register_alerts", "table_key"]

log = get_logger(__name__)


def table_key(rule: str, story_id: str) -> str:
    return f"{rule}|{story_id}"  # rule names cannot contain "|"


class RulesWatcher:
    """The rules file's current content as a :class:`Matcher`, re-read when its modification time changes."""

    def __init__(self, path: Path, *, msearch_chunk: int) -> None:
        self.path = path
        self.msearch_chunk = msearch_chunk
        self._stamp: tuple[int, int] | None = None
        self.matcher = Matcher([], msearch_chunk=msearch_chunk)
        self.rules: dict[str, Rule] = {}
        self.reload()

    def _mtime(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def reload(self) -> bool:
        """Re-read the file if it changed; an invalid file keeps the previous rules (and says why)."""
        stamp = self._mtime()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            rules = load_rules(self.path)
        except NewsflowError as exc:
            ALERT_RULE_RELOADS.labels("error").inc()
            log.error("alert rules not reloaded, keeping the previous ones", file=str(self.path), error=str(exc))
            return False
        ALERT_RULE_RELOADS.labels("ok").inc()
        ALERT_RULES.set(len(rules))
        self.matcher = Matcher(rules, msearch_chunk=self.msearch_chunk)
        self.rules = {r.name: r for r in rules}
        log.info("alert rules loaded", file=str(self.path), rules=len(rules), unnarrowed=self.matcher.always)
        return True


class _Table:
    """The few operations on the Faust table, writing each entry to the changelog partition of its message."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def __contains__(self, key: str) -> bool:
        return self.table.get(key) is not None

    async def put(self, key: str, value: dict[str, Any], partition: int) -> Any:
        """Set the entry locally and send it to the changelog; returns the send's future (await it)."""
        self.table.data[key] = value
        # Sent and awaited like any other output (send_changelog's fire-and-forget buffer fills up when a
        # batch brings thousands of alerts).
        return await self.table.changelog_topic.send(key=key, value=value, partition=partition,
                                                     key_serializer="json", value_serializer="json")


async def alerts_stream(stream: Any, settings: Settings, table: Any, *, send_topic: Callable[[bytes, bytes],
                        Awaitable[None]], send_dead_letter: DeadLetterSender, flush: Callable[[], Awaitable[Any]],
                        send_digest: Callable[[DigestItem], Awaitable[None]], watcher: RulesWatcher) -> None:
    """The body of the Faust ``alerts`` agent on news.indexed (values: EnrichedArticle JSON bytes)."""
    a = settings.alerts
    es = make_async_client(settings.es)
    deliverer = Deliverer(a, send_topic=send_topic, send_dead_letter=send_dead_letter)
    sent = _Table(table)

    async def watch() -> None:
        while True:
            await asyncio.sleep(min(1.0, a.reload_interval_s))
            with contextlib.suppress(Exception):
                watcher.reload()

    background = asyncio.create_task(watch())
    try:
        async for events in stream.take_events(a.batch_size, within=a.batch_timeout_s):
            with held(*events):
                await _alert_batch(events, settings, es, watcher.matcher, sent, deliverer, send_digest,
                                   send_dead_letter)
                await flush()  # table entries (changelog) and news.alerts sends acknowledged before the ack
    finally:
        background.cancel()
        with contextlib.suppress(BaseException):
            await background
        await deliverer.close()
        await es.close()


async def _match_until_done(matcher: Matcher, es: AsyncElasticsearch, settings: Settings,
                            articles: Sequence[EnrichedArticle]) -> list[Match]:
    """Match, waiting (with backoff, forever) while Elasticsearch is unavailable or busy: nothing is skipped.

    Raises:
        ApiError: Elasticsearch refused the batch for itself (a 4xx other than 429): the caller dead-letters it.
    """
    attempt = 0
    while True:
        try:
            return await matcher.match(es, settings.es.alias, articles)
        except (ApiError, TransportError) as exc:
            if isinstance(exc, ApiError) and 400 <= exc.meta.status < 500 and exc.meta.status != 429:
                raise
            delay = backoff_delay(attempt, initial_s=settings.alerts.initial_backoff_s,
                                  max_s=settings.alerts.max_backoff_s)
            log.warning("alert matching waits for elasticsearch", attempt=attempt + 1, delay_s=round(delay, 2),
                        error=str(exc)[:300])
            await asyncio.sleep(delay)
            attempt += 1


async def _alert_batch(events: Sequence[Any], settings: Settings, es: AsyncElasticsearch, matcher: Matcher,
                       sent: _Table, deliverer: Deliverer, send_digest: Callable[[DigestItem], Awaitable[None]],
                       send_dead_letter: DeadLetterSender) -> None:
    articles: list[EnrichedArticle] = []
    partition: dict[str, int] = {}  # article id -> its news.indexed partition
    indexed_at: dict[str, datetime] = {}
    valid = []  # the events of ``articles``
    for event in events:
        m = event.message
        try:
            article = EnrichedArticle.model_validate_json(event.value)
        except (ValidationError, ValueError) as exc:
            await dead_letter_event(event, exc, send_dead_letter)
            continue
        valid.append(event)
        articles.append(article)
        partition[article.id] = m.partition
        # The index agent sent this message right after Elasticsearch's acknowledgement.
        stamp = getattr(m, "timestamp", None)
        indexed_at[article.id] = datetime.fromtimestamp(stamp, UTC) if stamp else datetime.now(UTC)
    try:
        matches = await _match_until_done(matcher, es, settings, articles)
    except ApiError as exc:
        # Waiting would not help: the batch goes to news.dlq (stage alert) to be looked at and replayed.
        log.error("alert batch refused by elasticsearch, dead-lettered", articles=len(valid), error=str(exc)[:300])
        for event in valid:
            await dead_letter_event(event, exc, send_dead_letter)
        return
    fresh: list[Match] = []
    seen: set[str] = set()
    repeats = 0
    for match in matches:
        key = table_key(match.rule.name, match.article.story_id)
        if key in seen or key in sent:
            repeats += 1
            continue
        seen.add(key)
        fresh.append(match)
    ALERT_MATCHES.labels("new").inc(len(fresh))
    if repeats:
        ALERT_MATCHES.labels("repeat").inc(repeats)
        log.info("alert repeats suppressed", matches=repeats)  # a copy, a replay or a correction of a story
    if not fresh:
        return
    fresh = matcher.highlight(fresh)
    copies = await story_copies(es, settings.es.alias, sorted({m.article.story_id for m in fresh}))
    instant: list[tuple[Rule, AlertEvent]] = []
    digest: list[DigestItem] = []
    for match in fresh:
        event = alert_event(match, copies=copies.get(match.article.story_id, 1),
                            indexed_at=indexed_at.get(match.article.id), top_entities=settings.alerts.top_entities)
        if match.rule.mode == "digest":
            digest.append(DigestItem(rule=match.rule.name, alert=event,
                                     interval_s=match.rule.digest_interval().total_seconds()))
        else:
            instant.append((match.rule, event))
    # Every channel of every alert at once: a slow or failing one holds up nobody else.
    await asyncio.gather(deliverer.deliver_batch(instant), *(send_digest(item) for item in digest))
    pending = []
    for match in fresh:
        a = match.article
        entry = {"alert_id": alert_id(match.rule.name, a.story_id), "article_id": a.id,
                 "at": datetime.now(UTC).isoformat()}
        pending.append(await sent.put(table_key(match.rule.name, a.story_id), entry, partition[a.id]))
    await asyncio.gather(*pending)


def register_alerts(app: NewsflowApp, settings: Settings, send_dead_letter: DeadLetterSender) -> OnIndexed:
    """Add the ``alerts`` agent (when ``alerts.enabled``); return the index agent's after-acknowledgement hook."""
    # One view of the rules file for both agents (the digest agent looks rules up by name).
    watcher = RulesWatcher(rules_path(settings), msearch_chunk=settings.alerts.msearch_chunk)

    async def send_topic(key: bytes, value: bytes) -> None:
        await delivered([await app.alerts_topic.send(key=key, value=value)])

    async def send_digest(item: DigestItem) -> None:
        await delivered([await app.digests_topic.send(key=item.rule.encode(), value=item.model_dump_json().encode())])

    async def alerts(stream: Any) -> None:
        await alerts_stream(stream, settings, app.alerted_table, send_topic=send_topic,
                            send_dead_letter=send_dead_letter, flush=app.producer.flush, send_digest=send_digest,
                            watcher=watcher)

    app.agent(app.indexed_topic, name="alerts", concurrency=1)(alerts)
    register_digests(app, lambda: Deliverer(settings.alerts, send_topic=send_topic, send_dead_letter=send_dead_letter),
                     send_dead_letter, watcher)
    return indexed_hook(app, settings, send_dead_letter)


def indexed_hook(app: NewsflowApp, settings: Settings, send_dead_letter: DeadLetterSender) -> OnIndexed:
    """The index agent's after-acknowledgement hook: each acknowledged article to news.indexed (key = story id),
    awaited. An article larger than a Kafka message (a title of a megabyte) is indexed but cannot be matched: it is
    dead-lettered (stage alert, kind message_too_large) and the batch goes on; raising would crash the index agent
    and leave its batch unacknowledged for good."""
    # Waits for Kafka as the sink's dead letters do (sink backoff), not as the alert channels do.
    retry = Retry(settings.sink.initial_backoff_s, settings.sink.max_backoff_s)

    async def on_indexed(articles: list[EnrichedArticle]) -> None:
        pending = []
        for a in articles:
            value = a.model_dump_json().encode()
            try:
                pending.append(await app.indexed_topic.send(key=a.story_id.encode(), value=value))
            except Exception as exc:
                if error_kind(exc) != "message_too_large":
                    raise
                origin = Origin(payload=value, topic=app.indexed_topic.get_topic_name(), key=a.story_id)
                await dead_letter("alert", exc, origin, send_dead_letter, retry=retry, article_id=a.id)
        await delivered(pending)

    return on_indexed
