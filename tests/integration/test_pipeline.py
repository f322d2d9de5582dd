"""The Faust pipeline on the real broker: `newsflow worker` subprocesses, fixture pages in, news.enriched out.

Two tests share their workers across many asserts because a worker takes seconds to start:

* the whole path (clean, dedupe, enrich, index) with poison messages and an exact duplicate;
* kill -9 mid-stream, restart next to a second worker: nothing lost, one id per article, dedupe state intact.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from pipeline.schemas import DLQ_TOPIC, ENRICHED_TOPIC, RAW_TOPIC
from pipeline.settings import Settings
from testkit.raw_items import _filler_items, page_item, raw_message
from testkit.topics import TopicReader, _by_url, create_topics, delete_topics, produce, trace_missing
from testkit.worker import WorkerProcess, group_progress, worker_env

pytestmark = pytest.mark.integration

SEED_ENTITIES = {"NATO", "Mark Rutte", "Dmitry Peskov", "Vitaly Kim", "Donald Trump", "Kiev", "Abu Dhabi", "Ukraine",
                 "Russia"}
BOILERPLATE = ["Article Word Jumble", "Play The Word Game", "Most Popular Articles", "21.1 C"]


def test_worker_cleans_dedupes_enriches_and_indexes(stack: Settings, unique: str, tmp_path: Path) -> None:
    bootstrap = stack.kafka.bootstrap
    prefix = f"t{unique}."
    env = worker_env(bootstrap, unique, tmp_path / "data", NEWSFLOW_ES_INDEX_PREFIX=f"t{unique}",
                     NEWSFLOW_ES_ALIAS=f"t{unique}", NEWSFLOW_SINK_BATCH_TIMEOUT_S="0.5")
    create_topics(stack, unique)
    worker = WorkerProcess(env, "solo", tmp_path).start()
    enriched = TopicReader(bootstrap, prefix + ENRICHED_TOPIC)
    dlq = TopicReader(bootstrap, prefix + DLQ_TOPIC)
    es = Elasticsearch(stack.es.url)
    try:
        seed, syndicated, unrelated = page_item("seed"), page_item("syndicated"), page_item("unrelated")
        # The seed first and alone, so it is the first copy of its story whatever the partitions' order.
        produce(bootstrap, prefix + RAW_TOPIC, [raw_message(seed)])
        enriched.wait_for(lambda ms: len(ms) >= 1, 120, "the seed article", worker.check_alive)
        produce(bootstrap, prefix + RAW_TOPIC, [
            raw_message(syndicated),
            (b"poison-1", b"<html>not json"),
            (b"poison-2", b'{"schema_version": 1, "title": "no feed_url"}'),
            raw_message(unrelated),
            raw_message(seed),  # the same item again (second feed, or a replay): still one article
        ])
        dlq.wait_for(lambda ms: len(ms) >= 2, 60, "two dead letters", worker.check_alive)
        enriched.wait_for(lambda ms: len({m["id"] for m in ms}) >= 3, 60, "three articles", worker.check_alive)
        messages = enriched.wait_for(lambda ms: len(ms) >= 4, 30, "the duplicate's re-emission",
                                     worker.check_alive)

        # Exactly one id per canonical URL: the duplicate item was re-emitted (idempotent), not made new.
        ids = _by_url(messages)
        assert {u: len(v) for u, v in ids.items()} == {seed.canonical_link: 1, syndicated.canonical_link: 1,
                                                       unrelated.canonical_link: 1}
        latest = {m["canonical_url"]: m for m in messages}
        s, c, u = latest[seed.canonical_link], latest[syndicated.canonical_link], latest[unrelated.canonical_link]

        # Clean: boilerplate gone. Enrich: the acceptance entities, "Kiev" a place.
        for junk in BOILERPLATE:
            assert junk not in s["body"], junk
        assert set(s["entity_names"]) >= SEED_ENTITIES, SEED_ENTITIES - set(s["entity_names"])
        assert all(e["label"] != "PERSON" for e in s["entities"] if e["name"] == "Kiev")
        assert s["word_count"] > 300 and s["language"] == "en"

        # Dedupe: the syndicated copy joins the seed's story; the unrelated article is its own story.
        assert s["duplicate_of"] is None and s["story_id"] == s["id"]
        assert c["story_id"] == s["story_id"] and c["duplicate_of"] == s["id"]
        assert u["story_id"] == u["id"] != s["story_id"] and u["duplicate_of"] is None

        # Errors: both poison messages dead-lettered with their payload; the stream went on (above).
        letters = {m["key"]: m for m in dlq.messages}
        assert letters["poison-1"]["stage"] == "clean" and letters["poison-1"]["kind"] == "invalid_message"
        assert letters["poison-1"]["payload"] == "<html>not json"
        assert letters["poison-2"]["topic"] == prefix + RAW_TOPIC and letters["poison-2"]["offset"] is not None

        # Index: the three articles are searchable by id.
        deadline = time.monotonic() + 60
        found: set[str] = set()
        while time.monotonic() < deadline and len(found) < 3:
            worker.check_alive()
            if es.indices.exists_alias(name=f"t{unique}"):
                es.indices.refresh(index=f"t{unique}")
                hits = es.search(index=f"t{unique}", query={"match_all": {}}, size=10)["hits"]["hits"]
                found = {h["_id"] for h in hits}
            time.sleep(0.5)
        assert found == {s["id"], c["id"], u["id"]}

        # Ordering per URL: two corrections of the unrelated article published back to back are decided and sent on
        # in order (version 2, then 3), and the index ends with the last one's text.
        first_line = "Delegations from Russia and Ukraine met for a second day in Abu Dhabi on Thursday"
        corrections = [unrelated.model_copy(update={"content": unrelated.content.replace(
            first_line, first_line.replace("Thursday", day))}) for day in ("Wednesday", "Friday")]
        produce(bootstrap, prefix + RAW_TOPIC, [raw_message(item) for item in corrections])
        messages = enriched.wait_for(
            lambda ms: any(m["id"] == u["id"] and m["version"] == 3 for m in ms), 60, "the second correction",
            worker.check_alive)
        versions = [(m["version"], "Friday" in m["body"], "Wednesday" in m["body"]) for m in messages
                    if m["id"] == u["id"]]
        assert versions == [(1, False, False), (2, False, True), (3, True, False)], versions
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            es.indices.refresh(index=f"t{unique}")
            doc = es.search(index=f"t{unique}", query={"ids": {"values": [u["id"]]}})["hits"]["hits"][0]["_source"]
            if doc["version"] == 3:
                break
            time.sleep(0.5)
        assert doc["version"] == 3 and "Friday" in doc["body"] and "Wednesday" not in doc["body"], doc["version"]
    finally:
        worker.stop()
        enriched.close()
        dlq.close()
        for index in es.indices.get(index=f"t{unique}-*", allow_no_indices=True):
            es.indices.delete(index=index)
        es.options(ignore_status=404).indices.delete_index_template(name=f"t{unique}-template")
        es.close()
        delete_topics(bootstrap, unique)


def _has_rocksdict() -> bool:
    try:
        import rocksdict  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.fault
@pytest.mark.parametrize("store", [
    "memory://",
    pytest.param("rocksdb://", marks=pytest.mark.skipif(not _has_rocksdict(), reason="extra rocksdb not installed")),
])
def test_kill_9_restart_and_two_workers_lose_nothing(stack: Settings, unique: str, tmp_path: Path, store: str) -> None:
    bootstrap = stack.kafka.bootstrap
    prefix = f"t{unique}."
    env = worker_env(bootstrap, unique, tmp_path / "data", NEWSFLOW_PIPELINE_INDEX_ENABLED="false",
                     NEWSFLOW_PIPELINE_STORE=store)
    create_topics(stack, unique)
    first = WorkerProcess(env, "a", tmp_path).start()
    second = WorkerProcess(env, "b", tmp_path)
    enriched = TopicReader(bootstrap, prefix + ENRICHED_TOPIC)
    try:
        seed, syndicated = page_item("seed"), page_item("syndicated")
        fillers = _filler_items(60)
        produce(bootstrap, prefix + RAW_TOPIC, [raw_message(seed)])
        enriched.wait_for(lambda ms: len(ms) >= 1, 120, "the seed article", first.check_alive)
        produce(bootstrap, prefix + RAW_TOPIC, [raw_message(i) for i in fillers])
        # Mid-stream: some fillers are through, most are not.
        enriched.wait_for(lambda ms: len(ms) >= 5, 60, "the first fillers", first.check_alive)
        first.kill9()
        assert len(_by_url(enriched.poll())) < 1 + len(fillers), "the worker finished before the kill"

        # Restart it, with a second worker in the same group: they share the partitions.
        first.start()
        second.start()
        produce(bootstrap, prefix + RAW_TOPIC, [raw_message(syndicated)])
        expected = {seed.canonical_link, syndicated.canonical_link, *(i.canonical_link for i in fillers)}

        def alive() -> None:
            first.check_alive()
            second.check_alive()

        messages = enriched.wait_for(lambda ms: set(_by_url(ms)) >= expected, 150, "every article", alive,
                                     lambda: trace_missing(bootstrap, unique, expected, enriched.messages) + "\n"
                                     + group_progress(bootstrap, unique, first, second))

        # Nothing lost, and no article under two ids (replays re-emit the same id).
        ids = _by_url(messages)
        assert set(ids) == expected
        assert all(len(v) == 1 for v in ids.values()), {u: v for u, v in ids.items() if len(v) > 1}
        # Dedupe state survived the kill: the copy sent after the restart joined the pre-restart story.
        latest = {m["canonical_url"]: m for m in messages}
        assert latest[syndicated.canonical_link]["story_id"] == latest[seed.canonical_link]["id"]
        assert latest[syndicated.canonical_link]["duplicate_of"] == latest[seed.canonical_link]["id"]
        # Both workers did work: the raw partitions were shared (the offload pool starts on first use).
        logs = first.log_path.read_text() + second.log_path.read_text()
        assert logs.count("offload pool started") >= 3, "the second worker never got a partition"
    finally:
        first.stop()
        second.stop()
        enriched.close()
        delete_topics(bootstrap, unique)
