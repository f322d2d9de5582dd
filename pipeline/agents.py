"""The agents, thin and in path order: clean -> dedupe -> enrich -> index. Each one validates, calls the stage
function (off the event loop when it is blocking), sends on, and dead-letters what fails.

Delivery guarantee: at-least-once with idempotent results. An event is acked (its offset becomes committable)
only after everything it produced has been acknowledged by the broker: each agent awaits the delivery of its
sends, and dedupe also flushes its table changelog writes. A worker killed at any point therefore replays
from the last committed offset, and a replay yields the same output: ``clean`` is deterministic, ``dedupe``
re-emits an already-decided article with exactly the ids it was first given (:attr:`Decision.existing`),
``enrich`` is deterministic and the index sink writes with ``_id = id``.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Awaitable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from pipeline.dedupe import MappingDedupeStore
from pipeline.dlq import origin_of, stage_guard
from pipeline.logs import get_logger
from pipeline.metrics import ARTICLES_DEDUPED, STAGE_MESSAGES, STAGE_SECONDS
from pipeline.offload import Offload
from pipeline.schemas import CleanArticle, DeadLetter, DedupedArticle, EnrichedArticle, RawItem

if TYPE_CHECKING:
    from pipeline.app import NewsflowApp

__all__ = ["clean_and_sign", "decode_signature", "encode_signature", "register_agents"]

log = get_logger(__name__)

# The MinHash signature travels from clean to dedupe in a Kafka header, so the CPU work runs in the parallel
# clean stage and the single dedupe consumer only looks things up. Readers that do not know it ignore it.
SIGNATURE_HEADER = "newsflow-minhash"


def encode_signature(signature: Sequence[int], num_perm: int, shingle_size: int) -> bytes:
    return f"{num_perm}/{shingle_size}:".encode() + struct.pack(f"<{len(signature)}Q", *signature)


def decode_signature(value: bytes | None, num_perm: int, shingle_size: int) -> list[int] | None:
    """The signature in a header, or None when absent or made with other parameters (then it is recomputed)."""
    prefix = f"{num_perm}/{shingle_size}:".encode()
    if not value or not value.startswith(prefix) or len(value) != len(prefix) + 8 * num_perm:
        return None
    return list(struct.unpack(f"<{num_perm}Q", value[len(prefix) :]))


def clean_and_sign(item: RawItem, *, min_words: int, num_perm: int, shingle_size: int) -> tuple[str, bytes]:
    """Pool-side: clean one item and sign its body. Returns the CleanArticle JSON and the signature header."""
    from pipeline.clean import clean_article
    from pipeline.dedupe import minhash_signature

    article = clean_article(item, min_words=min_words)
    signature = minhash_signature(article.body, num_perm=num_perm, shingle_size=shingle_size)
    return article.model_dump_json(), encode_signature(signature, num_perm, shingle_size)


def enrich_batch(payloads: list[str], **options: Any) -> list[str]:
    """Pool-side: enrich DedupedArticle JSONs; returns EnrichedArticle JSONs in the same order.

    ``options`` go to :func:`pipeline.enrich.enrich_articles` (model, batch_size, variants_file, ner_max_words).
    """
    from pipeline.enrich import enrich_articles

    articles = [DedupedArticle.model_validate_json(p) for p in payloads]
    return [a.model_dump_json() for a in enrich_articles(articles, **options)]


def _header(event: Any, name: str) -> bytes | None:
    headers = event.headers or {}
    pairs = headers.items() if isinstance(headers, dict) else headers
    for key, value in pairs:
        if key == name:
            found: bytes | None = value  # faust types Event.headers as a bare Mapping: values are bytes or None
            return found
    return None


def _key(value: str | None) -> bytes | None:
    return value.encode("utf-8") if value is not None else None


async def _delivered(pending: Iterable[Awaitable[Any]]) -> None:
    """Wait until the broker acknowledged these sends (before the source event is acked)."""
    await asyncio.gather(*pending)


def register_agents(app: NewsflowApp, offload: Offload) -> None:
    """Add the clean, dedupe, enrich and (when ``pipeline.index_enabled``) index agents to ``app``."""
    settings = app.settings
    p = settings.pipeline
    enrich_options = {
        "model": p.spacy_model,
        "batch_size": p.nlp_batch_size,
        "variants_file": str(settings.path(p.entity_variants_file)),
        "ner_max_words": p.ner_max_words,
    }

    async def send_dead_letter(letter: DeadLetter) -> None:
        await _delivered([await app.dlq_topic.send(key=_key(letter.key), value=letter.model_dump_json().encode())])

    # 1. clean: news.raw (N partitions) -> news.clean (1 partition), parallel across workers and instances.
    async def clean(stream: Any) -> None:
        async for event in stream.events():
            async with stage_guard("clean", origin_of(event), send_dead_letter):
                item = RawItem.model_validate_json(event.value)
                article_json, signature = await offload.run(
                    clean_and_sign, item, min_words=p.min_words, num_perm=p.minhash_permutations,
                    shingle_size=p.shingle_size,
                )
                article = CleanArticle.model_validate_json(article_json)
                await _delivered([await app.clean_topic.send(
                    key=article.key.encode(), value=article_json.encode(), headers={SIGNATURE_HEADER: signature},
                )])

    app.agent(app.raw_topic, name="clean", concurrency=p.clean_concurrency)(clean)

    # 2. dedupe: news.clean (1 partition) + tables -> news.deduped (N partitions, key = id).
    from pipeline.dedupe import Deduper, minhash_signature

    store = MappingDedupeStore(app.url_table, app.fingerprint_table, app.signature_table)
    deduper = Deduper(store, threshold=p.near_duplicate_threshold, num_perm=p.minhash_permutations,
                      retention_days=p.dedupe_retention_days)
    index_state = {"stale": True}

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]  # mode types async receivers too narrowly
    async def _tables_recovered(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        # The tables may have changed under the in-memory LSH index (recovered from the changelog, or this
        # worker took over news.clean): rebuild it before the next decision.
        index_state["stale"] = True

    async def dedupe(stream: Any) -> None:
        async for event in stream.events():
            async with stage_guard("dedupe", origin_of(event), send_dead_letter):
                article = CleanArticle.model_validate_json(event.value)
                signature = decode_signature(_header(event, SIGNATURE_HEADER), p.minhash_permutations,
                                             p.shingle_size)
                if signature is None:
                    signature = await offload.run(minhash_signature, article.body, num_perm=p.minhash_permutations,
                                                  shingle_size=p.shingle_size)
                if index_state["stale"]:
                    # In slices: the loop keeps serving the other agents and the consumer's heartbeats. Cleared
                    # first: a rebalance during the rebuild marks it stale again, and a failed one is retried.
                    index_state["stale"] = False
                    try:
                        for _ in deduper.rebuild_steps():
                            await asyncio.sleep(0)
                    except BaseException:
                        index_state["stale"] = True
                        raise
                # A decision that fails half-way needs no rebuild: an index entry is only ever a candidate, checked
                # against the signature table, and a rebuild would index the same signature record anyway.
                decision = deduper.decide(article, signature)
                ARTICLES_DEDUPED.labels(decision.action).inc()
                out = decision.article or decision.existing
                log.debug("dedupe decided", action=decision.action, article_id=out.id if out else None,
                          story_id=out.story_id if out else None)
                if out is not None:
                    await app.deduped_topic.send(key=out.id.encode(), value=out.model_dump_json().encode())
                # Output and the tables' changelog writes are both on the broker before this event is acked.
                await app.producer.flush()

    app.agent(app.clean_topic, name="dedupe", concurrency=1)(dedupe)

    # 3. enrich: news.deduped (N) -> news.enriched (N), in batches through the process pool (spaCy).
    async def enrich(stream: Any) -> None:
        async for events in stream.take_events(p.nlp_batch_size, within=p.nlp_batch_timeout_s):
            start = time.perf_counter()
            good: list[tuple[Any, str]] = []
            # count=False: a batch stage counts its messages once, after the batch (failures are counted as they
            # happen).
            for event in events:
                async with stage_guard("enrich", origin_of(event), send_dead_letter, count=False):
                    article = DedupedArticle.model_validate_json(event.value)
                    good.append((event, article.model_dump_json()))
            if not good:
                continue
            try:
                results = await offload.run(enrich_batch, [j for _, j in good], **enrich_options)
                pairs = list(zip(good, results, strict=True))
            except Exception as exc:
                # One bad article must not dead-letter its whole batch: retry one by one, isolate the culprit.
                log.warning("enrich batch failed, retrying one by one", size=len(good), error=str(exc)[:300])
                pairs = []
                for event, payload in good:
                    async with stage_guard("enrich", origin_of(event), send_dead_letter, count=False):
                        [result] = await offload.run(enrich_batch, [payload], **{**enrich_options, "batch_size": 1})
                        pairs.append(((event, payload), result))
            pending = []
            for (event, _payload), result in pairs:
                async with stage_guard("enrich", origin_of(event), send_dead_letter, count=False):
                    enriched = EnrichedArticle.model_validate_json(result)
                    pending.append(await app.enriched_topic.send(key=enriched.id.encode(), value=result.encode()))
            await _delivered(pending)
            if pending:
                STAGE_MESSAGES.labels("enrich", "ok").inc(len(pending))
                took = (time.perf_counter() - start) / len(pending)
                for _ in pending:
                    STAGE_SECONDS.labels("enrich").observe(took)

    app.agent(app.deduped_topic, name="enrich", concurrency=p.enrich_concurrency)(enrich)

    # 4. index: news.enriched -> Elasticsearch (bulk, _id = id, acked after Elasticsearch acked);
    # 5. alerts: what Elasticsearch acknowledged -> news.indexed -> rules -> channels (pipeline/alerts/agent.py).
    if p.index_enabled:
        from pipeline.alerts.agent import register_alerts
        from pipeline.sink import index_stream

        on_indexed = register_alerts(app, send_dead_letter)

        async def index(stream: Any) -> None:
            await index_stream(stream, settings, send_dead_letter, on_indexed)

        app.agent(app.enriched_topic, name="index", concurrency=1)(index)
