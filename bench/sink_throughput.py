"""Sink throughput into the local Elasticsearch node: documents per second, two ways.

1. direct: :class:`pipeline.sink.ElasticSink` bulk-indexes N articles (batches of ``sink.batch_size``);
2. kafka: N messages on a fresh ``news.enriched`` topic, consumed by a Faust worker running
   :func:`pipeline.sink.index_stream` (the production path); timed from the first document searchable to
   the last (worker start-up excluded).

Articles carry the seed article's text (~750 words), entities and keywords, so documents are news-sized.
Uses unique topic/index names and deletes them afterwards. Prints one JSON object on the last line.

    python bench/sink_throughput.py [--docs 20000] [--kafka-docs 20000] [--skip-kafka]
                                    [--batch-size N] [--bulk-concurrency N] [--body-words N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from elasticsearch import ApiError  # noqa: E402

from pipeline.index import make_async_client, make_client  # noqa: E402
from pipeline.schemas import EnrichedArticle, Entity  # noqa: E402
from pipeline.settings import PROJECT_ROOT, Settings, load_settings  # noqa: E402
from pipeline.sink import ElasticSink  # noqa: E402

SEED = Path("/work/shared/fixtures/seed-article.txt")


def articles(n: int, offset: int = 0, body_words: int | None = None) -> list[EnrichedArticle]:
    text = SEED.read_text(encoding="utf-8") if SEED.exists() else "Mark Rutte arrived in Kiev. " * 120
    if body_words:
        text = " ".join(text.split()[:body_words])
    now = datetime.now(UTC)
    out = []
    for i in range(offset, offset + n):
        out.append(EnrichedArticle(
            id=f"bench{i:07d}", story_id=f"story{i % 997}", feed_url="http://feeds.example/rss",
            url=f"https://example.com/news/{i}", canonical_url=f"https://example.com/news/{i}",
            title=f"NATO signals compromise as Ukraine fatigue grows ({i})", summary=text[:300], body=text,
            source="Example News", source_domain="example.com", language="en",
            published_at=now - timedelta(minutes=i % 1440), ingested_at=now, text_fingerprint=f"fp{i}",
            word_count=len(text.split()),
            entities=[Entity(name="Mark Rutte", label="PERSON", count=6), Entity(name="Kyiv", label="GPE", count=4),
                      Entity(name="NATO", label="ORG", count=5)],
            entity_names=["Mark Rutte", "Kyiv", "NATO"], keywords=["nato", "ukraine", "peace", "troops"],
        ))
    return out


def bench_settings(tag: str, **extra: str) -> Settings:
    return load_settings(environ={"NEWSFLOW_ES_INDEX_PREFIX": f"bench-{tag}", "NEWSFLOW_ES_ALIAS": f"bencha-{tag}",
                                  "NEWSFLOW_KAFKA_TOPIC_PREFIX": f"bench{tag}.", "NEWSFLOW_PIPELINE_APP_ID":
                                  f"bench-sink-{tag}", **extra})


async def direct(settings: Settings, n: int, body_words: int | None) -> dict[str, float]:
    docs = articles(n, body_words=body_words)
    es = make_async_client(settings.es)
    try:
        sink = ElasticSink(es, settings)
        await sink.start()
        size = settings.sink.batch_size
        start = time.perf_counter()
        rejected = 0
        for i in range(0, n, size):
            rejected += len(await sink.index_articles(docs[i:i + size]))
        took = time.perf_counter() - start
        await es.indices.refresh(index=settings.es.alias)
        count = (await es.count(index=settings.es.alias))["count"]
    finally:
        await es.close()
    return {"docs": n, "indexed": count, "rejected": rejected, "seconds": round(took, 2),
            "docs_per_s": round(n / took, 1)}


def through_kafka(settings: Settings, n: int, env: dict[str, str], body_words: int | None) -> dict[str, float]:
    import subprocess

    from kafka import KafkaProducer

    from pipeline.topics import ensure_topic
    from testkit.sink_worker import WORKER

    topic = settings.kafka.topic("news.enriched")
    ensure_topic(settings, topic)
    ensure_topic(settings, settings.kafka.topic("news.dlq"), partitions=1)
    producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all", linger_ms=20,
                             compression_type="gzip", batch_size=256 * 1024)
    for a in articles(n, offset=10_000_000, body_words=body_words):
        producer.send(topic, key=a.id.encode(), value=a.model_dump_json().encode())
    producer.flush(timeout=120)
    producer.close()
    es = make_client(settings.es)
    with tempfile.TemporaryDirectory() as tmp:
        log = open(Path(tmp) / "worker.log", "wb")  # noqa: SIM115
        worker = subprocess.Popen([sys.executable, "-c", WORKER, str(Path(tmp) / "faust")], cwd=PROJECT_ROOT,
                                  env=env, stdout=log, stderr=subprocess.STDOUT)
        first = last = None
        deadline = time.monotonic() + 600
        count = 0
        try:
            while time.monotonic() < deadline:
                time.sleep(0.2)
                try:
                    if not es.indices.exists_alias(name=settings.es.alias):
                        continue
                    count = int(es.count(index=settings.es.alias)["count"])
                except ApiError:  # the index exists but its shard is still starting
                    continue
                if count and first is None:
                    first = (time.monotonic(), count)
                if count >= n:
                    last = time.monotonic()
                    break
        finally:
            worker.terminate()
            worker.wait(timeout=60)
            log.close()
        # Where the worker's time went: inside bulk calls (Elasticsearch + client) or elsewhere (Kafka, Faust,
        # parsing). "bulk indexed" is the sink's one log line per bulk.
        bulk_ms = 0
        for line in (Path(tmp) / "worker.log").read_text(errors="replace").splitlines():
            if '"bulk indexed"' in line and "{" in line:
                try:
                    bulk_ms += json.loads(line[line.index("{"):]).get("took_ms", 0)
                except ValueError:
                    continue
    es.close()
    if first is None or last is None:
        return {"docs": n, "indexed": count, "error": "timed out"}  # type: ignore[dict-item]
    took = last - first[0]
    return {"docs": n, "indexed": count, "seconds": round(took, 2), "in_bulk_seconds": round(bulk_ms / 1000, 2),
            "docs_per_s": round((n - first[1]) / took, 1) if took > 0 else 0.0}


def cleanup(settings: Settings) -> None:
    es = make_client(settings.es)
    try:
        for index in es.indices.get(index=f"{settings.es.index_prefix}-*", allow_no_indices=True):
            es.indices.delete(index=index)
        es.options(ignore_status=404).indices.delete_index_template(name=f"{settings.es.index_prefix}-template")
    finally:
        es.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--kafka-docs", type=int, default=20_000)
    parser.add_argument("--skip-kafka", action="store_true")
    parser.add_argument("--batch-size", type=int, default=None, help="sink.batch_size (default from settings)")
    parser.add_argument("--bulk-concurrency", type=int, default=None, help="sink.bulk_concurrency")
    parser.add_argument("--body-words", type=int, default=None, help="cut the body to N words (default: whole)")
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:8]
    sink_env = {f"NEWSFLOW_SINK_{k.upper()}": str(v) for k, v in
                (("batch_size", args.batch_size), ("bulk_concurrency", args.bulk_concurrency)) if v is not None}
    result: dict[str, object] = {"bench": "sink_throughput", "cpus": os.cpu_count(),
                                 "note": "2-core machine shared with other work; local single-node ES, refresh 1s"}
    s1 = bench_settings(tag + "d", **sink_env)
    result["batch_size"] = s1.sink.batch_size
    result["body_words"] = args.body_words or "all (~750)"
    result["bulk_concurrency"] = s1.sink.bulk_concurrency
    try:
        result["direct"] = asyncio.run(direct(s1, args.docs, args.body_words))
        print("direct:", result["direct"], flush=True)
    finally:
        cleanup(s1)
    if not args.skip_kafka:
        s2 = bench_settings(tag + "k", **sink_env)
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSFLOW_")} | {
            "NEWSFLOW_ES_INDEX_PREFIX": s2.es.index_prefix, "NEWSFLOW_ES_ALIAS": s2.es.alias,
            "NEWSFLOW_KAFKA_TOPIC_PREFIX": s2.kafka.topic_prefix, "NEWSFLOW_PIPELINE_APP_ID": s2.pipeline.app_id,
            "PYTHONPATH": str(PROJECT_ROOT), **sink_env}
        try:
            result["kafka"] = through_kafka(s2, args.kafka_docs, env, args.body_words)
            print("kafka:", result["kafka"], flush=True)
        finally:
            cleanup(s2)
    result["target_docs_per_s"] = 2000
    print(json.dumps(result))


if __name__ == "__main__":
    main()
