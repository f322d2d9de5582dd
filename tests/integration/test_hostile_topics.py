"""Poison on every topic a worker consumes (issue #10 item 2, tests/hostile/cases.yaml): one real `newsflow worker`
(indexing and alerts on) on the real Kafka and Elasticsearch.

On each of news.raw, news.clean, news.deduped, news.enriched, news.indexed and news.digests the test produces, on
partition 0: a message that is not JSON (nor UTF-8), valid JSON of the wrong schema, 10 MB that is not JSON, and
the largest message the topic accepts when it does not compress; then 10 MB of the topic's own schema; then a good
item on the same partition. Each poison message must come out as one dead letter (stage, kind invalid_message,
its source topic and offset, a payload that fits a Kafka message), one log line and one count of
``newsflow_dlq_letters_total{stage,kind}``; each valid 10 MB message as its stage makes of it (VALID_TEN_MB). The
worker must log no error, the good items must be indexed and alerted (instant and digest rules, so news.indexed and
news.digests carry good messages after their poison), and the group must commit past every message.

What the broker accepts: a topic's ``max.message.bytes`` (default 1 MB) bounds a record batch as written, after
compression, and the producer's ``max_request_size`` bounds the record before compression. So 10 MB that compresses
(produced with gzip, as the connector produces) lands on a default topic and reaches the worker; 10 MB that does
not compress is refused at produce time (asserted first), and ~1 MB of random bytes is the largest such message.

Also a 1 MB title (cases.yaml ``one_megabyte_title``): as an EnrichedArticle on news.enriched (what the sink does
with it in Elasticsearch, and after) and as a RawItem on news.raw (what the whole pipeline does with it).
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError

from pipeline.canonical import text_fingerprint
from pipeline.schemas import (
    ALERTS_TOPIC,
    CLEAN_TOPIC,
    DEDUPED_TOPIC,
    DIGESTS_TOPIC,
    DLQ_TOPIC,
    ENRICHED_TOPIC,
    INDEXED_TOPIC,
    RAW_TOPIC,
    AlertEvent,
    CleanArticle,
    DedupedArticle,
    DigestItem,
    EnrichedArticle,
    RawItem,
)
from pipeline.settings import Settings
from testkit.alerts_corpus import WORDS, wait_until
from testkit.es_index import remove_test_data
from testkit.raw_items import page_item
from testkit.topics import TopicReader, create_topics
from testkit.worker import WorkerProcess, alerts_worker_env, free_port, scrape

pytestmark = pytest.mark.integration

# Each topic the worker consumes -> the stage that dead-letters what it cannot read.
STAGES = {RAW_TOPIC: "clean", CLEAN_TOPIC: "dedupe", DEDUPED_TOPIC: "enrich", ENRICHED_TOPIC: "sink",
          INDEXED_TOPIC: "alert", DIGESTS_TOPIC: "alert"}
TEN_MB = 10 * 1024 * 1024
# The broker's message.max.bytes (1048588 by default) less a one-record batch's overhead and a short key.
LARGEST_INCOMPRESSIBLE = 1_048_000


def _poison() -> dict[str, bytes]:
    """The poison messages by name (built when needed: 11 MB)."""
    return {
        "not_json": b"<html>not json, nor UTF-8: \xff\xfe\x00",
        "wrong_schema": b'{"schema_version": 1, "feed_url": null, "title": ["a", "list"], "body": 7}',
        # Every byte value, over and over: not JSON, not UTF-8, control characters (six bytes each in JSON).
        "ten_megabytes": bytes(range(256)) * (TEN_MB // 256),
        "largest_incompressible": random.Random(10).randbytes(LARGEST_INCOMPRESSIBLE),
    }


def _ten_megabytes_valid(topic: str, key: str) -> bytes:
    """A message of 10 MB of the right schema for ``topic`` (text that compresses, so it lands on a default topic):
    each stage must get rid of it without crashing, whatever it makes of it."""
    filler = ("lorem ipsum dolor sit amet " * (TEN_MB // 27 + 1))[:TEN_MB]
    article = _clean(10, id=key, story_id=key, summary=filler)
    model: Any
    if topic == RAW_TOPIC:
        model = RawItem(feed_url="https://hostile.example.com/rss", link="https://hostile.example.com/big",
                        title="Ten megabytes", content=f"<p>{filler}</p>")
    elif topic == CLEAN_TOPIC:
        model = CleanArticle.model_validate(article)
    elif topic == DEDUPED_TOPIC:
        model = DedupedArticle.model_validate(article)
    elif topic in (ENRICHED_TOPIC, INDEXED_TOPIC):
        model = EnrichedArticle.model_validate(article)
    else:
        model = DigestItem(rule="rutte-digest", interval_s=2, alert=AlertEvent(
            rule="rutte-digest", query="Rutte", article_id=key, story_id=key, title=filler))
    return model.model_dump_json().encode()


# What becomes of a valid 10 MB message on each topic: (stage, kind) of its dead letter, None when it is handled.
# news.raw: clean's HTML cap refuses it. news.clean, news.deduped: the stage's output is larger than a Kafka message.
# news.enriched: indexed, but too large for news.indexed. news.indexed: matched against the rules (none matches).
# news.digests: the rule's window with it would be larger than a Kafka message.
VALID_TEN_MB = {RAW_TOPIC: ("clean", "discarded"), CLEAN_TOPIC: ("dedupe", "message_too_large"),
                DEDUPED_TOPIC: ("enrich", "message_too_large"), ENRICHED_TOPIC: ("alert", "message_too_large"),
                INDEXED_TOPIC: None, DIGESTS_TOPIC: ("alert", "message_too_large")}
RULES = {"rules": [
    {"name": "rutte", "query": "Rutte", "channels": {"topic": True}},
    {"name": "rutte-digest", "query": "Rutte", "mode": "digest", "digest": "2s", "channels": {"topic": True}},
]}
MEGABYTE_TITLE = "A" * 1_000_000


def _produce(bootstrap: str, records: list[tuple[str, bytes, bytes]]) -> list[int]:
    """Send each (topic, key, value) to partition 0 of its topic, one after the other; their offsets.

    gzip-compressed (as the connector sends), except the largest incompressible value (gzip would only add to it).
    """
    offsets = []
    gzip = KafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type="gzip",
                         max_request_size=16 * 1024 * 1024)
    plain = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=16 * 1024 * 1024)
    try:
        for topic, key, value in records:
            producer = plain if key.endswith(b"-largest_incompressible") else gzip
            offsets.append(producer.send(topic, key=key, value=value, partition=0).get(timeout=60).offset)
    finally:
        gzip.close()
        plain.close()
    return offsets


def _text(seed: int) -> str:
    """Random words (no two texts near-duplicates) around "Mark Rutte said", which the rules match."""
    rng = random.Random(seed)
    words = [rng.choice(WORDS) for _ in range(90)]
    return " ".join(words[:30]).capitalize() + ". Mark Rutte said " + " ".join(words[30:]) + "."


def _clean(n: int, **fields: Any) -> dict[str, Any]:
    body = fields.pop("body", None) or _text(n)
    url = f"https://hostile.example.com/good/{n}"
    now = datetime.now(UTC)
    return {"url": url, "canonical_url": url, "feed_url": "https://hostile.example.com/rss",
            "title": f"Good article {n}, after the poison", "body": body, "ingested_at": now, "published_at": now,
            "language": "en", "word_count": len(body.split()), "text_fingerprint": text_fingerprint(body),
            "source": "Hostile Example", "source_domain": "hostile.example.com", **fields}


def _group_behind(bootstrap: str, group: str, topics: list[str]) -> dict[str, tuple[int | None, int]]:
    """Partition 0 of each topic whose committed offset is not its end offset: topic -> (committed, end)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        committed = admin.list_group_offsets(group).get(group, {})
        parts = [TopicPartition(t, 0) for t in topics]
        ends = consumer.end_offsets(parts)
        behind = {}
        for tp in parts:
            meta = committed.get(tp)
            if meta is None or meta.offset != ends[tp]:
                behind[tp.topic] = (meta.offset if meta else None, ends[tp])
        return behind
    finally:
        consumer.close()
        admin.close()


def _log_records(worker: WorkerProcess) -> list[dict[str, Any]]:
    """The worker's log records (JSON lines; the pool process writes console lines, read as their text)."""
    records = []
    for line in worker.log_path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line[line.find("{"):]) if "{" in line else None
        except ValueError:
            record = None
        if not isinstance(record, dict):
            level = next((lv for lv in ("error", "critical") if f"[{lv}" in line or "Traceback" in line), "other")
            record = {"event": line, "level": level}
        records.append(record)
    return records


def test_poison_on_every_topic_is_dead_lettered_and_the_worker_goes_on(stack: Settings, unique: str,
                                                                       tmp_path: Path) -> None:
    bootstrap = stack.kafka.bootstrap
    prefix = f"t{unique}."
    rules = tmp_path / "alerts.yaml"
    rules.write_text(json.dumps(RULES))
    metrics_port = free_port()
    env = alerts_worker_env(stack, unique, tmp_path, rules, NEWSFLOW_METRICS_PORT=str(metrics_port))
    create_topics(stack, unique)

    # 10 MB that does not compress never reaches a worker: the broker refuses it (the default max.message.bytes).
    refused = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=16 * 1024 * 1024, retries=0)
    try:
        with pytest.raises(KafkaError) as info:
            refused.send(prefix + RAW_TOPIC, key=b"refused", value=os.urandom(TEN_MB), partition=0).get(timeout=60)
        assert type(info.value).__name__ == "MessageSizeTooLargeError", repr(info.value)
    finally:
        refused.close()

    worker = WorkerProcess(env, "hostile", tmp_path).start()
    dlq = TopicReader(bootstrap, prefix + DLQ_TOPIC)
    alerts = TopicReader(bootstrap, prefix + ALERTS_TOPIC)
    es = Elasticsearch(stack.es.url)
    try:
        # 1. The poison, on partition 0 of every topic; then a good item on partition 0 of each pipeline topic
        # (news.indexed and news.digests get theirs from the worker once the good items are indexed).
        poison = [(prefix + topic, f"poison-{topic}-{name}".encode(), value)
                  for topic in STAGES for name, value in _poison().items()]
        poison_offsets = dict(zip([key.decode() for _, key, _ in poison], _produce(bootstrap, poison), strict=True))
        valid = [(prefix + topic, f"valid-{topic}-ten_megabytes".encode()) for topic in STAGES]
        valid_offsets = dict(zip([key.decode() for _, key in valid], _produce(bootstrap, [
            (topic, key, _ten_megabytes_valid(topic.removeprefix(prefix), key.decode())) for topic, key in valid]),
            strict=True))
        seed = page_item("seed")
        clean = CleanArticle.model_validate(_clean(1))
        deduped = DedupedArticle.model_validate(_clean(2, id="hostile-good-2", story_id="hostile-good-2"))
        enriched = EnrichedArticle.model_validate(_clean(3, id="hostile-good-3", story_id="hostile-good-3",
                                                         entity_names=["Mark Rutte"]))
        # A 1 MB title: the sink's part on news.enriched, the whole pipeline's from news.raw.
        big_title = EnrichedArticle.model_validate(_clean(4, id="hostile-title-4", story_id="hostile-title-4",
                                                          title=MEGABYTE_TITLE, body="A title of a megabyte. " * 30))
        big_raw = RawItem(feed_url="https://hostile.example.com/rss", link="https://hostile.example.com/good/5",
                          canonical_link="https://hostile.example.com/good/5", title=MEGABYTE_TITLE,
                          summary=_text(5), language="en")
        _produce(bootstrap, [
            (prefix + RAW_TOPIC, seed.key.encode(), seed.model_dump_json().encode()),
            (prefix + CLEAN_TOPIC, clean.key.encode(), clean.model_dump_json().encode()),
            (prefix + DEDUPED_TOPIC, deduped.id.encode(), deduped.model_dump_json().encode()),
            (prefix + ENRICHED_TOPIC, enriched.id.encode(), enriched.model_dump_json().encode()),
            (prefix + ENRICHED_TOPIC, big_title.id.encode(), big_title.model_dump_json().encode()),
            (prefix + RAW_TOPIC, big_raw.key.encode(), big_raw.model_dump_json().encode()),
        ])

        # 2. One dead letter per poison message: its stage, invalid_message, where it came from, a payload cut
        # to fit (the 10 MB and 1 MB ones).
        letters = dlq.wait_for(lambda ms: {m["key"] for m in ms} >= set(poison_offsets), 120,
                               "a dead letter for every poison message", worker.check_alive, worker.tail)
        by_key: dict[str, list[dict[str, Any]]] = {}
        for m in letters:
            by_key.setdefault(m["key"], []).append(m)
        for topic, key, value in poison:
            [letter] = by_key[key.decode()]
            where = (letter["stage"], letter["kind"], letter["topic"], letter["partition"], letter["offset"])
            assert where == (STAGES[topic.removeprefix(prefix)], "invalid_message", topic, 0,
                             poison_offsets[key.decode()]), key
            assert letter["payload_truncated"] is (len(value) > 400_000), key
            if key.endswith(b"-not_json"):
                assert letter["payload_base64"] is not None  # not UTF-8: replay gets the very bytes back

        # The valid 10 MB messages: one letter each, but on news.indexed (it went through the rules), cut to fit.
        expected_valid = {key.decode(): VALID_TEN_MB[topic.removeprefix(prefix)] for topic, key in valid}
        letters = dlq.wait_for(lambda ms: {m["key"] for m in ms} >= {k for k, e in expected_valid.items() if e}, 120,
                               "a dead letter for the valid 10 MB messages", worker.check_alive, worker.tail)
        for topic, key in valid:
            found_letters = [m for m in letters if m["key"] == key.decode()]
            expected = expected_valid[key.decode()]
            if expected is None:
                assert found_letters == [], key
                continue
            [letter] = found_letters
            assert (letter["stage"], letter["kind"]) == expected, key
            assert letter["payload_truncated"], key
            if topic == prefix + ENRICHED_TOPIC:  # indexed, then refused on its way to news.indexed
                assert (letter["topic"], letter["offset"]) == (prefix + INDEXED_TOPIC, None)
            else:
                assert (letter["topic"], letter["offset"]) == (topic, valid_offsets[key.decode()]), key

        # 3. The good items went through: indexed, alerted by the instant and the digest rule.
        good_urls = {seed.canonical_link, clean.canonical_url, deduped.canonical_url, enriched.canonical_url}

        def indexed() -> dict[str, dict[str, Any]]:
            if not es.indices.exists_alias(name=f"t{unique}"):
                return {}
            es.indices.refresh(index=f"t{unique}")
            hits = es.search(index=f"t{unique}", query={"match_all": {}}, size=20,
                             source_excludes=["body", "title", "summary"])["hits"]["hits"]
            return {h["_source"]["canonical_url"]: h for h in hits}

        wait_until(lambda: set(indexed()) >= good_urls, 120, "the good items indexed", worker.check_alive)
        stories = {h["_source"]["story_id"] for u, h in indexed().items() if u in good_urls}
        assert len(stories) == 4

        def alerted(rule: str) -> set[str]:
            return {m["story_id"] for m in alerts.poll() if m["rule"] == rule}

        wait_until(lambda: alerted("rutte") >= stories and alerted("rutte-digest") >= stories, 90,
                   "the good items' instant and digest alerts", worker.check_alive)

        # 4. The 1 MB title. On news.enriched: Elasticsearch indexes it whole (title.keyword, ignore_above 512, is
        # left out), but the article is larger than a Kafka message, so it cannot go on to news.indexed: dead-lettered
        # at the alert stage as message_too_large, and the index agent goes on. From news.raw: clean cuts the title
        # to 1,000 characters (counted), so the article fits its messages and is indexed.
        def letter_for(key: str) -> list[dict[str, Any]]:
            return [m for m in dlq.poll() if m["key"] == key]

        wait_until(lambda: letter_for(big_title.story_id), 60, "the dead letter of the megabyte title",
                   worker.check_alive)
        [title_letter] = letter_for(big_title.story_id)
        assert (title_letter["stage"], title_letter["kind"], title_letter["topic"]) == (
            "alert", "message_too_large", prefix + INDEXED_TOPIC)
        assert title_letter["payload_truncated"] and title_letter["payload"].startswith('{"schema_version":1')
        found = es.search(index=f"t{unique}", query={"ids": {"values": [big_title.id]}}, source=["title"])
        [hit] = found["hits"]["hits"]
        assert hit["_source"]["title"] == MEGABYTE_TITLE
        assert es.count(index=f"t{unique}", query={"bool": {"filter": [
            {"ids": {"values": [big_title.id]}}, {"exists": {"field": "title.keyword"}}]}})["count"] == 0
        wait_until(lambda: big_raw.canonical_link in indexed(), 60, "the megabyte-title item indexed",
                   worker.check_alive)
        found = es.search(index=f"t{unique}", query={"term": {"canonical_url": big_raw.canonical_link}},
                          source=["title"])
        [hit] = found["hits"]["hits"]
        assert hit["_source"]["title"] == "A" * 999 + "…"
        assert letter_for(big_raw.key) == []
        assert scrape(metrics_port)[("newsflow_clean_fields_truncated_total", frozenset({("field", "title")}))] == 1

        # 5. The group commits past every poison message: nothing is left unacknowledged behind it.
        topics = [prefix + t for t in STAGES]
        wait_until(lambda: not _group_behind(bootstrap, f"t{unique}", topics), 60,
                   "the group's offsets committed to the end of every topic", worker.check_alive)

        # 6. One count per dead letter, one log line per poison message, and the worker never stopped.
        samples = scrape(metrics_port)
        counted = {(dict(labels)["stage"], dict(labels)["kind"]): v for (name, labels), v in samples.items()
                   if name == "newsflow_dlq_letters_total" and v}
        assert counted == dict(Counter((m["stage"], m["kind"]) for m in dlq.poll()))
        records = _log_records(worker)
        logged = Counter((r.get("topic"), r.get("offset")) for r in records
                         if r.get("event") == "message dead-lettered")
        for topic, key, _ in poison:
            assert logged[(topic, poison_offsets[key.decode()])] == 1, key
        for topic, key in valid:
            if expected_valid[key.decode()] and topic != prefix + ENRICHED_TOPIC:
                assert logged[(topic, valid_offsets[key.decode()])] == 1, key
        # mode's "Thread keepalive is not responding" is logged at error level when a loaded machine delays the
        # worker's threads for a few seconds: about the host, not about the poison. Anything else fails the test.
        assert not [r for r in records if r.get("level") in ("error", "critical")
                    and "Thread keepalive is not responding" not in str(r.get("event"))]
        worker.check_alive()
    finally:
        worker.stop()
        for reader in (dlq, alerts):
            reader.close()
        es.close()
        remove_test_data(stack, unique)
