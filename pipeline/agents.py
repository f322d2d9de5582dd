"""The agents, thin and in path order: clean -> dedupe -> enrich -> index (-> alerts, in pipeline/alerts/agent.py).
Each one parses its message once, calls the stage function (off the event loop when it is blocking: the pool-side
adapters live beside their stages, :func:`pipeline.clean.clean_and_sign` and :func:`pipeline.enrich.enrich_batch`),
sends on, and dead-letters what fails.

Delivery guarantee: at-least-once with idempotent results. An event is acked (its offset becomes committable)
only after everything it produced has been acknowledged by the broker: each agent awaits the delivery of its
sends, and dedupe also flushes its table changelog writes; each agent holds its events (:func:`pipeline.acks.held`)
so that one cancelled or crashing half-way never acks what it did not finish. A worker killed at any point therefore
replays from the last committed offset, and a replay yields the same output: ``clean`` is deterministic, ``dedupe``
re-emits an already-decided article with exactly the ids it was first given (:attr:`Decision.existing`),
``enrich`` is deterministic and the index sink writes with ``_id = id``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pipeline.acks import delivered, held
from pipeline.clean import clean_and_sign
from pipeline.dedupe import Deduper, MappingDedupeStore, decide_article
from pipeline.dlq import DeadLetterSender, origin_of, stage_guard
from pipeline.enrich import enrich_isolating, enrich_options
from pipeline.metrics import (
    CLEAN_FIELDS_TRUNCATED,
    CLEAN_HTML_FLATTENED,
    STAGE_MESSAGES,
    STAGE_SECONDS,
)
from pipeline.offload import Offload
from pipeline.schemas import (
    SIGNATURE_HEADER,
    CleanArticle,
    DeadLetter,
    DedupedArticle,
    RawItem,
    decode_signature,
    header_value,
)
from pipeline.settings import PipelineSettings, Settings

if TYPE_CHECKING:
    from pipeline.app import NewsflowApp
    from pipeline.sink import OnIndexed

__all__ = ["register_agents"]

AgentFun = Callable[[Any], Awaitable[None]]  # a Faust agent's body: it consumes the stream it is given


def register_agents(app: NewsflowApp, settings: Settings, offload: Offload) -> None:
    """Add the clean, dedupe, enrich and (when ``pipeline.index_enabled``) index and alerts agents to ``app``."""
    p = settings.pipeline
    dead_letter = _dead_letter_sender(app)
    app.agent(app.raw_topic, name="clean", concurrency=p.clean_concurrency)(
        clean_agent(app, p, offload, dead_letter))
    app.agent(app.clean_topic, name="dedupe", concurrency=1)(
        dedupe_agent(app, p, offload, dead_letter))
    app.agent(app.deduped_topic, name="enrich", concurrency=p.enrich_concurrency)(
        enrich_agent(app, settings, offload, dead_letter))
    if p.index_enabled:
        # Imported only by a worker that indexes: the Elasticsearch client costs ~1 s and 15 MB at start-up.
        from pipeline.alerts.agent import register_alerts

        on_indexed = register_alerts(app, settings, dead_letter)
        app.agent(app.enriched_topic, name="index", concurrency=1)(index_agent(settings, dead_letter, on_indexed))


def clean_agent(app: NewsflowApp, p: PipelineSettings, offload: Offload, dead_letter: DeadLetterSender) -> AgentFun:
    """1. clean: news.raw (N partitions) -> news.clean (1 partition), parallel across workers and instances."""

    async def clean(stream: Any) -> None:
        async for event in stream.events():
            with held(event):
                async with stage_guard("clean", origin_of(event), dead_letter):
                    item = RawItem.model_validate_json(event.value)
                    signed = await offload.run(clean_and_sign, item, min_words=p.min_words,
                                               num_perm=p.minhash_permutations, shingle_size=p.shingle_size)
                    if signed.html_flattened:
                        CLEAN_HTML_FLATTENED.inc()
                    for field in signed.truncated:
                        CLEAN_FIELDS_TRUNCATED.labels(field=field).inc()
                    await delivered([await app.clean_topic.send(
                        key=signed.key.encode(), value=signed.value.encode(),
                        headers={SIGNATURE_HEADER: signed.signature},
                    )])

    return clean


def dedupe_agent(app: NewsflowApp, p: PipelineSettings, offload: Offload, dead_letter: DeadLetterSender) -> AgentFun:
    """2. dedupe: news.clean (1 partition) + tables -> news.deduped (N partitions, key = id)."""
    deduper = Deduper(MappingDedupeStore(app.url_table, app.fingerprint_table, app.signature_table),
                      threshold=p.near_duplicate_threshold, num_perm=p.minhash_permutations,
                      retention_days=p.dedupe_retention_days)

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]  # mode types async receivers too narrowly
    async def _tables_recovered(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        # The tables may have changed under the in-memory LSH index (recovered from the changelog, or this
        # worker took over news.clean): rebuild it before the next decision.
        deduper.mark_stale()

    async def dedupe(stream: Any) -> None:
        async for event in stream.events():
            with held(event):
                async with stage_guard("dedupe", origin_of(event), dead_letter):
                    article = CleanArticle.model_validate_json(event.value)
                    signature = decode_signature(header_value(event, SIGNATURE_HEADER), p.minhash_permutations,
                                                 p.shingle_size)
                    out = await decide_article(deduper, article, signature, offload, shingle_size=p.shingle_size)
                    if out is not None:
                        await app.deduped_topic.send(key=out.id.encode(), value=out.model_dump_json().encode())
                    # Output and the tables' changelog writes are both on the broker before this event is acked.
                    await app.producer.flush()

    return dedupe


def enrich_agent(app: NewsflowApp, settings: Settings, offload: Offload, dead_letter: DeadLetterSender) -> AgentFun:
    """3. enrich: news.deduped (N) -> news.enriched (N), in batches through the process pool (spaCy)."""
    p = settings.pipeline
    options = enrich_options(settings)

    async def enrich(stream: Any) -> None:
        async for events in stream.take_events(p.nlp_batch_size, within=p.nlp_batch_timeout_s):
            with held(*events):
                start = time.perf_counter()
                # count=False: a batch stage counts its messages once, after the batch (failures are counted as they
                # happen).
                batch: list[tuple[Any, DedupedArticle]] = []
                for event in events:
                    async with stage_guard("enrich", origin_of(event), dead_letter, count=False):
                        batch.append((event, DedupedArticle.model_validate_json(event.value)))
                if not batch:
                    continue
                pending = []
                for event, (article_id, value) in await enrich_isolating(batch, offload, options, dead_letter):
                    async with stage_guard("enrich", origin_of(event), dead_letter, count=False):
                        pending.append(await app.enriched_topic.send(key=article_id.encode(), value=value.encode()))
                await delivered(pending)
                _count_batch("enrich", start, len(pending))

    return enrich


def index_agent(settings: Settings, dead_letter: DeadLetterSender, on_indexed: OnIndexed) -> AgentFun:
    """4. index: news.enriched -> Elasticsearch (bulk, _id = id, acked after Elasticsearch acked), then
    5. alerts: what Elasticsearch acknowledged -> news.indexed (``on_indexed``) -> rules -> channels."""
    from pipeline.sink import index_stream  # a worker that does not index never imports the Elasticsearch client

    async def index(stream: Any) -> None:
        await index_stream(stream, settings, dead_letter, on_indexed)

    return index


def _count_batch(stage: str, start: float, done: int) -> None:
    """A batch stage's successes, counted once per batch, each timed as its share of the batch."""
    if done:
        STAGE_MESSAGES.labels(stage, "ok").inc(done)
        took = (time.perf_counter() - start) / done
        for _ in range(done):
            STAGE_SECONDS.labels(stage).observe(took)


def _dead_letter_sender(app: NewsflowApp) -> DeadLetterSender:
    async def send(letter: DeadLetter) -> None:
        key = letter.key.encode() if letter.key is not None else None
        await delivered([await app.dlq_topic.send(key=key, value=letter.model_dump_json().encode())])

    return send
