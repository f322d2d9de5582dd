"""Alert metrics and a batch Elasticsearch refuses, in `newsflow worker` on the real Kafka and Elasticsearch with a
loopback webhook receiver: the counts the worker's Prometheus endpoint shows after a delivery, a retry and a
dead letter; then a batch refused with a 4xx (a closed index) goes to news.dlq, stage alert, and the worker
carries on.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from pipeline.schemas import DLQ_TOPIC, INDEXED_TOPIC, RAW_TOPIC
from pipeline.settings import Settings
from testkit.alerts_corpus import NATO_QUERY, Receiver, wait_until
from testkit.es_index import remove_test_data
from testkit.raw_items import page_item, raw_message
from testkit.topics import TopicReader, create_topics, produce
from testkit.worker import WorkerProcess, alerts_worker_env, free_port, scrape

pytestmark = pytest.mark.integration


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_alert_metrics_and_a_refused_batch(stack: Settings, unique: str, tmp_path: Path,
                                           receiver: Receiver) -> None:
    bootstrap = stack.kafka.bootstrap
    prefix = f"t{unique}."
    rules = tmp_path / "alerts.yaml"
    hook = receiver.url
    rules.write_text(json.dumps({"rules": [
        {"name": "ok", "query": NATO_QUERY, "channels": {"webhook": hook + "/ok/ok"}},
        {"name": "flaky", "query": NATO_QUERY, "channels": {"webhook": hook + "/flaky"}},
        {"name": "dead", "query": NATO_QUERY, "channels": {"webhook": hook + "/fail"}},
    ]}))
    metrics_port = free_port()
    env = alerts_worker_env(stack, unique, tmp_path, rules, NEWSFLOW_ALERTS_MAX_ATTEMPTS="3",
                            NEWSFLOW_ALERTS_DELIVERY_TIMEOUT_S="5", NEWSFLOW_METRICS_PORT=str(metrics_port))
    create_topics(stack, unique)
    worker = WorkerProcess(env, "metrics", tmp_path).start()
    indexed = TopicReader(bootstrap, prefix + INDEXED_TOPIC)
    dlq = TopicReader(bootstrap, prefix + DLQ_TOPIC)
    es = Elasticsearch(stack.es.url)
    try:
        produce(bootstrap, prefix + RAW_TOPIC, [raw_message(page_item("seed"))])

        # 1. One delivery, one retry then delivery, one channel retried then dead-lettered.
        wait_until(lambda: receiver.to("/ok/ok") and len(receiver.to("/flaky")) == 2, 180, "the seed's alerts",
                   worker.check_alive)
        dlq.wait_for(lambda ms: any(m["kind"] == "alert_delivery" for m in ms), 60, "the alert dead letter",
                     worker.check_alive)
        wait_until(lambda: value(scrape(metrics_port), "newsflow_dlq_letters_total", stage="alert",
                                 kind="alert_delivery"), 30, "the dead letter counted", worker.check_alive)
        m = scrape(metrics_port)
        assert value(m, "newsflow_alerts_matches_total", outcome="new") == 3
        assert value(m, "newsflow_alerts_matches_total", outcome="repeat") == 0
        assert value(m, "newsflow_alerts_sent_total", channel="webhook", status="ok") == 2  # ok, flaky
        assert value(m, "newsflow_alerts_sent_total", channel="webhook", status="dead_letter") == 1
        assert value(m, "newsflow_alerts_retries_total", channel="webhook") == 1 + 2  # flaky once, dead twice
        assert value(m, "newsflow_dlq_letters_total", stage="alert", kind="alert_delivery") == 1
        assert value(m, "newsflow_alerts_latency_seconds_count", channel="webhook") == 2  # delivered ones only
        assert 0 < value(m, "newsflow_alerts_latency_seconds_sum", channel="webhook") < 120
        assert len(receiver.to("/fail")) == 3

        # 2. Elasticsearch refuses a batch for itself (4xx: the index is closed): dead-lettered, stage alert,
        # with the article as payload; the worker keeps running.
        [article] = indexed.wait_for(lambda ms: len(ms) >= 1, 30, "the seed on news.indexed")
        copy = {**article, "id": article["id"] + "-copy", "story_id": article["story_id"] + "-copy"}
        for index in es.indices.get(index=f"t{unique}-*"):  # by name: wildcards are refused for closing
            es.indices.close(index=index)
        produce(bootstrap, prefix + INDEXED_TOPIC, [(copy["story_id"].encode(), json.dumps(copy).encode())])
        letters = dlq.wait_for(lambda ms: any(m["stage"] == "alert" and m["kind"] != "alert_delivery" for m in ms),
                               120, "the refused batch's dead letter", worker.check_alive)
        [refused] = [m for m in letters if m["stage"] == "alert" and m["kind"] != "alert_delivery"]
        assert refused["kind"] == "BadRequestError" and "index_closed" in refused["error"]
        assert refused["topic"] == prefix + INDEXED_TOPIC and json.loads(refused["payload"])["id"] == copy["id"]
        m = scrape(metrics_port)
        assert value(m, "newsflow_dlq_letters_total", stage="alert", kind="BadRequestError") == 1
        assert value(m, "newsflow_alerts_matches_total", outcome="new") == 3  # nothing matched, nothing sent
        assert len(receiver.to("/ok/ok")) == 1
        worker.check_alive()
    finally:
        worker.stop()
        for reader in (indexed, dlq):
            reader.close()
        es.close()
        remove_test_data(stack, unique)
