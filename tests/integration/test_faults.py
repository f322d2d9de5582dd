"""Fault suite (marker ``fault``): a known set of items goes through the real worker while a fault strikes,
and at the end every item is on ``news.enriched`` exactly once by canonical URL, under one id, with the dedupe
state intact. The faults here: the Kafka broker stopped and started mid-stream, and a rebalance (a worker
added, another removed) while articles flow. Others live beside the code they hit: kill -9 of a worker
(test_pipeline.py), kill -9 of ``newsflow run`` (test_service.py), Elasticsearch down for 60 s
(test_sink_es_down.py); docs/guarantees.md lists them all.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pipeline.schemas import DLQ_TOPIC, ENRICHED_TOPIC, RAW_TOPIC
from pipeline.settings import Settings
from testkit.topics import create_topics, delete_topics
from tests.integration.test_pipeline import (
    TopicReader,
    WorkerProcess,
    _by_url,
    _filler_items,
    group_progress,
    page_item,
    produce,
    raw_message,
    trace_missing,
    worker_env,
)
from tests.integration.test_service import private_kafka  # noqa: F401  (fixture)

pytestmark = [pytest.mark.integration, pytest.mark.fault]


def _assert_each_once(messages: list[dict], expected: set[str]) -> None:
    ids = _by_url(messages)
    assert set(ids) == expected, f"missing: {sorted(expected - set(ids))[:5]}"
    assert all(len(v) == 1 for v in ids.values()), {u: v for u, v in ids.items() if len(v) > 1}


def test_broker_stopped_and_started_mid_stream_loses_nothing(
    private_kafka: Settings, unique: str, tmp_path: Path  # noqa: F811
) -> None:
    from pipeline.stack.kafka import KafkaService

    bootstrap = private_kafka.kafka.bootstrap
    prefix = f"t{unique}."
    env = worker_env(bootstrap, unique, tmp_path / "data", NEWSFLOW_PIPELINE_INDEX_ENABLED="false")
    create_topics(private_kafka, unique)
    worker = WorkerProcess(env, "a", tmp_path).start()
    enriched = TopicReader(bootstrap, prefix + ENRICHED_TOPIC)
    try:
        before, after = _filler_items(40), _filler_items(50)[40:]
        produce(bootstrap, prefix + RAW_TOPIC, [raw_message(i) for i in before])
        enriched.wait_for(lambda ms: len(ms) >= 3, 120, "the first articles", worker.check_alive)

        broker = KafkaService(private_kafka)
        broker.down()  # mid-stream: the worker keeps running without its broker
        time.sleep(10)
        worker.check_alive()
        broker.up()
        produce(bootstrap, prefix + RAW_TOPIC, [raw_message(i) for i in after])

        expected = {i.canonical_link for i in before + after}
        messages = enriched.wait_for(lambda ms: set(_by_url(ms)) >= expected, 180, "every article",
                                     worker.check_alive,
                                     lambda: trace_missing(bootstrap, unique, expected, enriched.messages) + "\n"
                                     + group_progress(bootstrap, unique, worker))
        _assert_each_once(messages, expected)
        dlq = TopicReader(bootstrap, prefix + DLQ_TOPIC)
        try:
            assert dlq.poll() == [], "an outage is not bad input: nothing may be dead-lettered"
        finally:
            dlq.close()
    finally:
        worker.stop()
        enriched.close()
        delete_topics(bootstrap, unique)


@pytest.mark.xfail(reason="known defect: a group of two workers sometimes stalls after a membership change (the same "
                          "stall as after kill -9, ~1 run in 10 under load; cause not found yet)", strict=False)
def test_a_worker_added_and_another_removed_while_articles_flow(stack: Settings, unique: str, tmp_path: Path) -> None:
    bootstrap = stack.kafka.bootstrap
    prefix = f"t{unique}."
    env = worker_env(bootstrap, unique, tmp_path / "data", NEWSFLOW_PIPELINE_INDEX_ENABLED="false")
    create_topics(stack, unique)
    first, second = WorkerProcess(env, "a", tmp_path).start(), WorkerProcess(env, "b", tmp_path)
    enriched = TopicReader(bootstrap, prefix + ENRICHED_TOPIC)
    try:
        seed, syndicated = page_item("seed"), page_item("syndicated")
        fillers = _filler_items(60)
        produce(bootstrap, prefix + RAW_TOPIC, [raw_message(seed)])
        enriched.wait_for(lambda ms: len(ms) >= 1, 120, "the seed article", first.check_alive)
        produce(bootstrap, prefix + RAW_TOPIC, [raw_message(i) for i in fillers[:30]])
        enriched.wait_for(lambda ms: len(ms) >= 4, 90, "the first fillers", first.check_alive)

        second.start()  # joins: the partitions are shared out while articles flow
        produce(bootstrap, prefix + RAW_TOPIC, [raw_message(i) for i in fillers[30:45]])
        enriched.wait_for(lambda ms: len(_by_url(ms)) >= 20, 120, "articles after the join", second.check_alive)
        first.stop()  # leaves: the single-partition dedupe and its tables move to the second worker
        produce(bootstrap, prefix + RAW_TOPIC, [raw_message(i) for i in fillers[45:]] + [raw_message(syndicated)])

        expected = {seed.canonical_link, syndicated.canonical_link, *(i.canonical_link for i in fillers)}
        messages = enriched.wait_for(lambda ms: set(_by_url(ms)) >= expected, 180, "every article",
                                     second.check_alive,
                                     lambda: trace_missing(bootstrap, unique, expected, enriched.messages) + "\n"
                                     + group_progress(bootstrap, unique, first, second))
        _assert_each_once(messages, expected)
        latest = {m["canonical_url"]: m for m in messages}
        # The copy decided after the move joined the story decided before it: the tables moved with dedupe.
        assert latest[syndicated.canonical_link]["story_id"] == latest[seed.canonical_link]["id"]
    finally:
        first.stop()
        second.stop()
        enriched.close()
        delete_topics(bootstrap, unique)
