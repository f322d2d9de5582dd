"""`newsflow reindex` on the real Kafka and Elasticsearch: searches keep answering, same documents after."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from kafka import KafkaProducer
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.index import ensure_index_template, make_async_client, make_client
from pipeline.schemas import ENRICHED_TOPIC, EnrichedArticle
from pipeline.settings import Settings
from testkit.es_index import index_through_sink, isolated_settings

pytestmark = pytest.mark.integration

MONTHS = [datetime(2025, 11, 5, tzinfo=UTC), datetime(2026, 1, 20, tzinfo=UTC), datetime(2026, 2, 14, tzinfo=UTC)]


def _article(n: int, *, version: int = 1, published: datetime | None = None, title: str = "") -> EnrichedArticle:
    when = published or MONTHS[n % len(MONTHS)]
    body = f"Article {n} reports on the harbour works in the city, version {version}."
    return EnrichedArticle(id=f"a{n}", story_id=f"s{n}", version=version, feed_url="http://feeds.example/rss",
                           url=f"https://example.com/{n}", title=title or f"Harbour works {n}", body=body,
                           ingested_at=when, published_at=when, text_fingerprint=f"fp{n}-{version}",
                           word_count=len(body.split()))


def _produce(settings: Settings, articles: list[EnrichedArticle]) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.kafka.servers, acks="all")
    try:
        for a in articles:
            producer.send(settings.kafka.topic(ENRICHED_TOPIC), key=a.id.encode(), value=a.model_dump_json().encode())
        producer.flush(timeout=30)
    finally:
        producer.close()


@pytest.fixture()
def rig(stack: Settings, unique: str) -> Iterator[tuple[Settings, dict[str, str]]]:
    env = {"NEWSFLOW_ES_INDEX_PREFIX": f"ri-{unique}", "NEWSFLOW_ES_ALIAS": f"ria-{unique}",
           "NEWSFLOW_KAFKA_TOPIC_PREFIX": f"t{unique}.", "NEWSFLOW_KAFKA_PARTITIONS": "3",
           "NEWSFLOW_SINK_REINDEX_GRACE_S": "2"}
    with isolated_settings(env, unique, f"ri-{unique}*,*.ri-{unique}-*") as settings:
        yield settings, env


def _alias_indices(settings: Settings) -> list[str]:
    es = make_client(settings.es)
    try:
        return sorted(es.indices.get_alias(name=settings.es.alias))
    finally:
        es.close()


def _count(settings: Settings) -> int:
    es = make_client(settings.es)
    try:
        es.indices.refresh(index=settings.es.alias)
        return int(es.count(index=settings.es.alias)["count"])
    finally:
        es.close()


def test_reindex_while_searching_keeps_every_document(rig: tuple[Settings, dict[str, str]]) -> None:
    settings, env = rig
    articles = [_article(n) for n in range(60)]
    # A correction whose feed moved it to another month: it stays one document, where version 1 went.
    correction = _article(7, version=2, published=datetime(2026, 2, 27, tzinfo=UTC), title="Harbour works corrected")
    _produce(settings, [*articles, correction])
    asyncio.run(index_through_sink(settings, articles))
    asyncio.run(index_through_sink(settings, [correction]))  # a later batch: the sink finds version 1 and overwrites it
    before = _alias_indices(settings)
    assert _count(settings) == 60 and all(i.startswith(f"{settings.es.index_prefix}-") for i in before)

    totals: list[int] = []
    failures: list[str] = []
    stop = threading.Event()

    def search_loop() -> None:
        es = make_client(settings.es)
        try:
            while not stop.is_set():
                try:
                    resp = es.search(index=settings.es.alias, query={"match": {"body": "harbour"}}, size=0,
                                     track_total_hits=True)
                    if resp["_shards"]["failed"]:  # partial results: a shard went away under the search
                        failures.append(f"shards failed: {resp['_shards']}")
                    totals.append(int(resp["hits"]["total"]["value"]))
                except Exception as exc:  # any failed search fails the test
                    failures.append(repr(exc))
        finally:
            es.close()

    searcher = threading.Thread(target=search_loop, daemon=True)
    searcher.start()
    try:
        result = CliRunner().invoke(app, ["reindex", "--json"], env=env)
    finally:
        stop.set()
        searcher.join(timeout=30)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])

    assert failures == []
    assert len(totals) >= 5, totals  # searches really ran throughout
    assert set(totals) == {60}, sorted(set(totals))  # never a document missing or shown twice
    assert report["documents_before"] == 60 and report["documents_after"] == 60
    assert report["records_read"] >= 61 and report["invalid"] == 0 and report["rejected"] == 0
    after = _alias_indices(settings)
    assert after == report["new_indices"] and set(report["removed_indices"]) == set(before)
    assert all(i.startswith("r") and f".{settings.es.index_prefix}-" in i for i in after)
    assert _count(settings) == 60

    es = make_client(settings.es)
    try:
        concrete = set(es.indices.get(index=f"{settings.es.index_prefix}*"))
        assert concrete == set(after)  # the old indices are gone ...
        for month in ("2025.11", "2026.01", "2026.02"):  # ... their names now route to the rebuilt ones
            name = f"{settings.es.index_prefix}-{month}"
            assert es.indices.exists_alias(name=name)
            [target] = es.indices.get_alias(name=name)
            assert target in after and target.endswith(month)
        hit = es.search(index=settings.es.alias, query={"ids": {"values": ["a7"]}})["hits"]["hits"]
        assert len(hit) == 1 and hit[0]["_source"]["version"] == 2
        assert hit[0]["_index"].endswith(f"{MONTHS[7 % 3]:%Y.%m}")  # where version 1 was, not February
    finally:
        es.close()

    # The live sink carries on after the switch: template set-up and a new article for an old month.
    async def after_switch() -> None:
        aes = make_async_client(settings.es)
        try:
            setup = await ensure_index_template(aes, settings)
            assert setup.action == "unchanged"
        finally:
            await aes.close()

    asyncio.run(after_switch())
    asyncio.run(index_through_sink(settings, [_article(100, published=MONTHS[1])]))
    assert _count(settings) == 61
    assert _alias_indices(settings) == after


def test_reindex_refuses_to_lose_articles_the_topic_no_longer_holds(rig: tuple[Settings, dict[str, str]]) -> None:
    settings, env = rig
    articles = [_article(n) for n in range(10)]
    _produce(settings, articles[:6])  # as if retention had dropped the oldest four
    asyncio.run(index_through_sink(settings, articles))
    before = _alias_indices(settings)

    result = CliRunner().invoke(app, ["reindex"], env=env)
    assert result.exit_code == 1
    assert "holds 6 articles but alias" in result.output and "has 10" in result.output
    assert _alias_indices(settings) == before and _count(settings) == 10
    es = make_client(settings.es)
    try:  # the half-built indices were removed
        assert list(es.indices.get(index=f"*.{settings.es.index_prefix}-*", expand_wildcards="all")) == []
    finally:
        es.close()
