"""The Elasticsearch sink: bulk-index enriched articles by id, commit offsets only after Elasticsearch acknowledged.

Two layers, like quixstreams' ``BatchingSink`` under its app:

* :class:`ElasticSink` indexes a list of :class:`~pipeline.schemas.EnrichedArticle` with the async bulk
  helper and does not return until every document is either acknowledged or rejected. 429, 5xx and
  connection errors are retried with exponential backoff, forever (logging each wait): Elasticsearch
  being down is backpressure, never a reason to drop or dead-letter. A per-document 4xx (a mapping
  error such as ``word_count`` out of the integer range) is returned as a rejection.
* :func:`index_stream` is the body of the Faust ``index`` agent: batches bounded by
  ``sink.batch_size`` / ``sink.batch_timeout_s`` (``stream.take_events``), unparseable messages and
  rejections to ``news.dlq`` (stage ``sink``), and the Kafka offsets of a batch acknowledged only
  after the bulk returned.

Ack-after-bulk in Faust (faust-streaming 0.15, ``faust/streams.py`` ``Stream.take_events``): the events
of a batch are acked in the generator's ``finally`` when the agent asks for the next batch, so an agent
that awaits the bulk before moving on only acks indexed documents. But that ``finally`` also runs when
the agent is cancelled or crashes mid-bulk (worker shutdown while Elasticsearch is down), which would
mark un-indexed messages committable. So each message of a batch is held (:func:`pipeline.acks.held`, one extra
reference) until Elasticsearch acknowledged it: on the failure path take_events' ack leaves the refcount at 1,
the offset is never committed, and the message is consumed again after restart (at-least-once; ``_id`` =
article id makes the replay harmless).

Routing: a document goes to the monthly index of ``published_at`` (falling back to ``ingested_at``),
except when the id already lives in another index behind the alias (a correction whose feed moved the
publication date to another month): then it overwrites that copy, so one id is one document. The
look-up is a real-time multi-get, made only for corrections (``version`` > 1): a version-1 replay has
the same published/ingested time and so the same index. Limitation: a version-1 message re-sent with
a different time in another month would be indexed twice (dedupe never emits that).
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from elasticsearch import ApiError, AsyncElasticsearch, NotFoundError, TransportError
from elasticsearch.helpers import async_streaming_bulk
from pydantic import ValidationError

from pipeline.acks import held
from pipeline.backoff import backoff_delay
from pipeline.dlq import DeadLetterSender, Origin, Retry, dead_letter, origin_of
from pipeline.errors import DocumentRejected, ElasticUnavailable
from pipeline.index import ensure_index_template, index_name, make_async_client
from pipeline.logs import get_logger
from pipeline.metrics import (
    ELASTIC_WAITING,
    END_TO_END_LAG,
    PUBLISH_TO_INDEX_LAG,
    SINK_BACKLOG,
    SINK_BULK_SECONDS,
    SINK_DOCUMENTS,
)
from pipeline.schemas import EnrichedArticle
from pipeline.settings import Settings

__all__ = ["ElasticSink", "Rejection", "article_document", "index_stream"]

log = get_logger(__name__)

# Called with the articles Elasticsearch acknowledged, before their offsets become committable.
OnIndexed = Callable[[list[EnrichedArticle]], Awaitable[None]]


def article_document(article: EnrichedArticle, indexed_at: datetime) -> dict[str, Any]:
    """The Elasticsearch document for one article: its fields plus ``indexed_at`` and ``entity_labeled``.

    ``entity_labeled`` ("Mark Rutte (PERSON)") keeps each name with its label for terms aggregations:
    ``entities`` is an object field (Kibana cannot aggregate nested fields), which flattens names and
    labels into two unrelated arrays.
    """
    doc = article.model_dump(mode="json")
    doc["indexed_at"] = indexed_at.astimezone(UTC).isoformat()
    doc["entity_labeled"] = sorted({f"{e.name} ({e.label})" for e in article.entities})
    return doc


def route_time(article: EnrichedArticle) -> datetime:
    """The time that picks an article's monthly index: published, else ingested."""
    return article.published_at or article.ingested_at


@dataclass(frozen=True)
class Rejection:
    """A document Elasticsearch refused for itself (not for being busy or down)."""

    position: int  # in the list given to index_articles
    article: EnrichedArticle
    status: int
    reason: str


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


def _reason(item: dict[str, Any]) -> str:
    error = item.get("error")
    if isinstance(error, dict):
        text = f"{error.get('type')}: {error.get('reason')}"
        cause = error.get("caused_by")
        if isinstance(cause, dict):
            text += f" (caused by {cause.get('type')}: {cause.get('reason')})"
        return text
    return str(error)


class ElasticSink:
    """Indexes batches of articles into the monthly indices; see the module docstring."""

    def __init__(self, es: AsyncElasticsearch, settings: Settings, *, sleep: Callable[[float], Awaitable[Any]]
                 = asyncio.sleep, index_for: Callable[[EnrichedArticle], str] | None = None) -> None:
        self.es = es
        self.settings = settings
        self._sleep = sleep
        # Set by `newsflow reindex` to write into indices not yet behind the alias (it routes corrections itself).
        self._index_for = index_for

    def _backoff(self, attempt: int) -> float:
        s = self.settings.sink
        return backoff_delay(attempt, initial_s=s.initial_backoff_s, max_s=s.max_backoff_s)

    async def _wait(self, attempt: int, what: str, exc: BaseException | str) -> None:
        delay = self._backoff(attempt)
        ELASTIC_WAITING.set(1)
        # Never gives up (giving up would mean dropping or dead-lettering good documents); after
        # sink.max_retries attempts in a row the wait is logged as an error, for someone to look at.
        log_fn = log.warning if attempt < self.settings.sink.max_retries else log.error
        log_fn("elasticsearch unavailable, waiting", what=what, attempt=attempt + 1,
               delay_s=round(delay, 2), error=str(exc)[:300])
        await self._sleep(delay)

    async def start(self) -> None:
        """Create/upgrade the index template and this month's index, waiting (forever) for Elasticsearch."""
        attempt = 0
        while True:
            try:
                setup = await ensure_index_template(self.es, self.settings)
            except ElasticUnavailable as exc:
                await self._wait(attempt, "index template", exc)
                attempt += 1
                continue
            ELASTIC_WAITING.set(0)
            log.info("index ready", template=setup.template, version=setup.version, analyzer=setup.analyzer,
                     action=setup.action, index=setup.current_index)
            return

    async def _existing_indices(self, ids: Sequence[str]) -> dict[str, str]:
        """Where each id already lives behind the alias (id -> index); ids not yet indexed are absent.

        A real-time multi-get (not a search, which only sees refreshed documents) over every index
        behind the alias; asked only for corrections (version > 1), so its cost stays small.
        """
        if not ids:
            return {}
        try:
            indices = sorted(await self.es.indices.get_alias(name=self.settings.es.alias))
        except NotFoundError:  # the alias does not exist yet
            return {}
        resp = await self.es.mget(docs=[{"_index": i, "_id": d} for d in ids for i in indices], source=False)
        found: dict[str, str] = {}
        for doc in resp["docs"]:
            if doc.get("found"):
                # Should a copy exist twice, the oldest index is the one kept up to date.
                found[doc["_id"]] = min(found.get(doc["_id"], doc["_index"]), doc["_index"])
        return found

    async def _bulk_once(self, articles: Sequence[EnrichedArticle]) -> list[dict[str, Any]]:
        """One bulk request; returns one result item per article, in order. Raises on request failure."""
        located = ({} if self._index_for else
                   await self._existing_indices(sorted({a.id for a in articles if a.version > 1})))
        now = datetime.now(UTC)
        actions = [
            {
                "_op_type": "index",
                "_index": (self._index_for(a) if self._index_for else
                           located.get(a.id) or index_name(self.settings, route_time(a))),
                "_id": a.id,
                "_source": article_document(a, now),
            }
            for a in articles
        ]
        results: list[dict[str, Any]] = []
        start = time.perf_counter()
        # max_retries=0: retries happen in index_articles, which keeps results in request order.
        async for _ok, item in async_streaming_bulk(
            self.es, actions, chunk_size=len(actions), max_chunk_bytes=100 * 1024 * 1024,
            raise_on_error=False, raise_on_exception=True, max_retries=0, yield_ok=True,
        ):
            results.append(next(iter(item.values())))
        SINK_BULK_SECONDS.observe(time.perf_counter() - start)
        return results

    def _split(self, positions: list[int], articles: Sequence[EnrichedArticle]) -> list[list[int]]:
        """Spread positions over ``sink.bulk_concurrency`` groups by id, so one id's versions stay in order."""
        # Small batches stay one request: below ~20 documents the per-request overhead dominates.
        n = max(1, min(self.settings.sink.bulk_concurrency, len(positions) // 20))
        groups: list[list[int]] = [[] for _ in range(n)]
        for position in positions:
            groups[zlib.crc32(articles[position].id.encode()) % n].append(position)
        return [g for g in groups if g]

    async def index_articles(self, articles: Sequence[EnrichedArticle]) -> list[Rejection]:
        """Index ``articles``; return only once each is acknowledged or rejected.

        A batch goes out as ``sink.bulk_concurrency`` bulk requests at once: one request is indexed by one
        write thread of the node, so concurrent requests let a multi-core node use its cores.

        Returns:
            The rejections (per-document 4xx such as mapping errors), for the dead-letter queue.
        """
        pending = list(range(len(articles)))
        rejections: list[Rejection] = []
        attempt = 0
        SINK_BACKLOG.set(len(pending))
        while pending:
            groups = self._split(pending, articles)
            started = time.perf_counter()
            outcomes = await asyncio.gather(*(self._bulk_once([articles[i] for i in g]) for g in groups),
                                            return_exceptions=True)
            retry: list[int] = []
            failure: BaseException | str | None = None
            rejected_before = len(rejections)
            indexed_at = time.time()
            for group, outcome in zip(groups, outcomes, strict=True):
                if isinstance(outcome, (ApiError, TransportError)):
                    if isinstance(outcome, ApiError) and not _retryable(outcome.meta.status):
                        # The whole request was refused (not one document): nothing to dead-letter, so keep
                        # waiting for an operator rather than drop data.
                        log.error("bulk request refused", status=outcome.meta.status, error=str(outcome)[:300])
                    retry += group
                    failure = outcome
                    continue
                if isinstance(outcome, BaseException):
                    raise outcome
                for position, item in zip(group, outcome, strict=True):
                    status = int(item.get("status", 500))
                    article = articles[position]
                    if 200 <= status < 300:
                        SINK_DOCUMENTS.labels("indexed").inc()
                        END_TO_END_LAG.observe(max(0.0, indexed_at - article.ingested_at.timestamp()))
                        if article.published_at is not None:
                            PUBLISH_TO_INDEX_LAG.observe(max(0.0, indexed_at - article.published_at.timestamp()))
                    elif _retryable(status):
                        retry.append(position)
                        failure = failure or f"documents answered {status}"
                    else:
                        SINK_DOCUMENTS.labels("rejected").inc()
                        rejections.append(Rejection(position, article, status, _reason(item)))
            rejected = len(rejections) - rejected_before
            if len(retry) < len(pending):
                ELASTIC_WAITING.set(0)
                log.info("bulk indexed", documents=len(pending), indexed=len(pending) - len(retry) - rejected,
                         retried=len(retry), rejected=rejected, requests=len(groups), attempt=attempt + 1,
                         took_ms=round((time.perf_counter() - started) * 1000))
            if retry:
                SINK_DOCUMENTS.labels("retried").inc(len(retry))
                await self._wait(attempt, "bulk", failure or "retry")
                attempt += 1
            else:
                attempt = 0
            pending = sorted(retry)
            SINK_BACKLOG.set(len(pending))
        return rejections


def _parse(value: Any) -> EnrichedArticle:
    if isinstance(value, (bytes, str)):
        return EnrichedArticle.model_validate_json(value)
    if isinstance(value, EnrichedArticle):
        return value
    return EnrichedArticle.model_validate(value)  # a dict, should the topic carry a json serializer


async def index_events(events: Sequence[Any], sink: ElasticSink, send_dead_letter: DeadLetterSender,
                       on_indexed: OnIndexed | None = None) -> None:
    """Index one batch of Faust events; return once every one is indexed or dead-lettered.

    Steps: 1. hold each message (:func:`pipeline.acks.held`) so nothing can ack it before Elasticsearch did; 2. parse,
    dead-lettering what is not an EnrichedArticle; 3. bulk (waits while ES is down); 4. dead-letter
    rejections; 4b. hand the acknowledged articles to ``on_indexed`` (the alerts hook: it must return only
    once they are safely passed on); 5. release the holds: the batch is acked and its offsets become committable.
    """
    with held(*events):  # 1. and 5.
        await _index_held(events, sink, send_dead_letter, on_indexed)


async def _index_held(events: Sequence[Any], sink: ElasticSink, send_dead_letter: DeadLetterSender,
                      on_indexed: OnIndexed | None) -> None:
    # 2. The batch is acked right after: its dead letters wait for Kafka (sink backoff) rather than be lost.
    retry = Retry(sink.settings.sink.initial_backoff_s, sink.settings.sink.max_backoff_s)
    articles: list[EnrichedArticle] = []
    origins: list[Origin] = []
    for event in events:
        origin = origin_of(event)
        try:
            articles.append(_parse(event.value))
            origins.append(origin)
        except (ValidationError, ValueError) as exc:
            SINK_DOCUMENTS.labels("invalid").inc()
            await dead_letter("sink", exc, origin, send_dead_letter, retry=retry)
    # 3.
    rejections = await sink.index_articles(articles) if articles else []
    # 4.
    for rejection in rejections:
        error = DocumentRejected(f"Elasticsearch rejected the document ({rejection.status}): {rejection.reason}")
        await dead_letter("sink", error, origins[rejection.position], send_dead_letter, retry=retry,
                          event="document rejected", article_id=rejection.article.id, error=rejection.reason[:300])
    # 4b.
    if on_indexed is not None and articles:
        rejected = {r.position for r in rejections}
        acked = [a for i, a in enumerate(articles) if i not in rejected]
        if acked:
            await on_indexed(acked)


async def index_stream(stream: Any, settings: Settings, send_dead_letter: DeadLetterSender,
                       on_indexed: OnIndexed | None = None) -> None:
    """The body of the Faust ``index`` agent on ``news.enriched`` (values: raw EnrichedArticle JSON bytes).

    Example (pipeline/agents.py)::

        @app.agent(enriched_topic)
        async def index(stream):
            await index_stream(stream, settings, send_dead_letter)
    """
    es = make_async_client(settings.es)
    sink = ElasticSink(es, settings)
    try:
        await sink.start()
        async for events in stream.take_events(settings.sink.batch_size, within=settings.sink.batch_timeout_s):
            await index_events(events, sink, send_dead_letter, on_indexed)
    finally:
        await es.close()

