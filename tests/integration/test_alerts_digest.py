"""A digest window survives a SIGKILL: `newsflow worker` on the real Kafka and Elasticsearch, a loopback webhook.

A digest rule matches; the worker is killed before the interval ends, restarted, and the digest arrives once,
with the match, when the interval is over.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from pipeline.schemas import RAW_TOPIC
from pipeline.settings import Settings
from pipeline.topic_reader import TopicReader
from tests.integration.alerts_corpus import Receiver, wait_until
from tests.integration.test_alerts_pipeline import NATO_QUERY, alerts_worker_env, receiver, remove_test_data  # noqa: F401
from tests.integration.test_pipeline import WorkerProcess, create_topics, page_item, produce, raw_message

pytestmark = pytest.mark.integration

INTERVAL_S = 30


def test_digest_window_survives_sigkill(stack: Settings, unique: str, tmp_path: Path,
                                        receiver: Receiver) -> None:  # noqa: F811
    bootstrap = stack.kafka.bootstrap
    prefix = f"t{unique}."
    rules = tmp_path / "alerts.yaml"
    rules.write_text(json.dumps({"rules": [
        {"name": "nato-daily", "query": NATO_QUERY, "mode": "digest", "digest": f"{INTERVAL_S}s",
         "channels": {"webhook": receiver.url + "/ok/digest"}},
    ]}))
    env = alerts_worker_env(stack, unique, tmp_path, rules)
    create_topics(stack, unique)
    worker = WorkerProcess(env, "digest", tmp_path).start()
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
        # The table's changelog: the window written once, then removed (a tombstone) after the delivery.
        with TopicReader(stack, "test") as reader:
            records = [(json.loads(r.key), r.value) for r in reader.scan(f"t{unique}-alerts-digests-changelog")]
        assert [key for key, _ in records] == ["nato-daily", "nato-daily"] and records[-1][1] is None
        assert [a["url"] for a in json.loads(records[0][1])["alerts"]] == [seed.link]
    finally:
        worker.stop()
        remove_test_data(stack, unique)
