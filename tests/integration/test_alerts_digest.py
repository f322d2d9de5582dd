"""A digest window survives a SIGKILL: `newsflow worker` on the real Kafka and Elasticsearch, a loopback webhook.

A digest rule matches; the worker is killed before the interval ends, restarted, and the digest arrives once,
with the match, when the interval is over.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from pipeline.schemas import RAW_TOPIC
from pipeline.settings import Settings
from tests.integration.alerts_corpus import Receiver, wait_until
from tests.integration.test_alerts_pipeline import NATO_QUERY
from tests.integration.test_pipeline import (
    WorkerProcess,
    create_topics,
    delete_topics,
    page_item,
    produce,
    raw_message,
    worker_env,
)

pytestmark = pytest.mark.integration

INTERVAL_S = 30


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_digest_window_survives_sigkill(stack: Settings, unique: str, tmp_path: Path, receiver: Receiver) -> None:
    bootstrap = stack.kafka.bootstrap
    prefix = f"t{unique}."
    rules = tmp_path / "alerts.yaml"
    rules.write_text(json.dumps({"rules": [
        {"name": "nato-daily", "query": NATO_QUERY, "mode": "digest", "digest": f"{INTERVAL_S}s",
         "channels": {"webhook": receiver.url + "/ok/digest"}},
    ]}))
    env = worker_env(bootstrap, unique, tmp_path / "data", NEWSFLOW_ES_INDEX_PREFIX=f"t{unique}",
                     NEWSFLOW_ES_ALIAS=f"t{unique}", NEWSFLOW_SINK_BATCH_TIMEOUT_S="0.3",
                     NEWSFLOW_ALERTS_RULES_FILE=str(rules), NEWSFLOW_ALERTS_INITIAL_BACKOFF_S="0.2")
    create_topics(stack, unique)
    worker = WorkerProcess(env, "digest", tmp_path).start()
    es = Elasticsearch(stack.es.url)
    try:
        seed = page_item("seed")
        produce(bootstrap, prefix + RAW_TOPIC, [raw_message(seed)])
        # The window holds the match once its table entry is in the changelog (the log line comes after that).
        wait_until(lambda: "digest window extended" in worker.log_path.read_text(), 180, "the digest window",
                   worker.check_alive)
        opened = time.time()
        worker.kill9()
        assert receiver.to("/ok/digest") == []  # killed inside the interval: nothing sent yet

        worker.start()
        wait_until(lambda: receiver.to("/ok/digest"), 240, "the digest after the restart", worker.check_alive)
        [arrived] = [t for p, _h, _b, t in receiver.requests if p == "/ok/digest"]
        assert arrived >= opened + INTERVAL_S - 5  # at the end of the interval, not at once
        [(_headers, body)] = receiver.to("/ok/digest")
        digest = json.loads(body)
        assert digest["kind"] == "digest" and digest["rule"] == "nato-daily"
        [alert] = digest["alerts"]
        assert alert["url"] == seed.link and alert["rule"] == "nato-daily"
        wait_until(lambda: "digest window closed" in worker.log_path.read_text(), 30, "the window's removal",
                   worker.check_alive)
        time.sleep(3)  # a second digest would come within the flush period
        assert len(receiver.to("/ok/digest")) == 1
        # The restarted worker recovered the window from the changelog: a replayed match is not added twice.
        assert worker.log_path.read_text().count("digest window extended") == 1
    finally:
        worker.stop()
        for index in es.indices.get(index=f"t{unique}-*", allow_no_indices=True):
            es.indices.delete(index=index)
        es.options(ignore_status=404).indices.delete_index_template(name=f"t{unique}-template")
        es.close()
        delete_topics(bootstrap, unique)
