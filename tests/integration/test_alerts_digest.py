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
from testkit.alerts_corpus import NATO_QUERY, Receiver, wait_until
from testkit.es_index import remove_test_data
from testkit.raw_items import page_item, raw_message
from testkit.topics import create_topics, produce
from testkit.worker import WorkerProcess, alerts_worker_env, group_progress

pytestmark = pytest.mark.integration

INTERVAL_S = 30


def _digest_rules(tmp_path: Path, receiver: Receiver) -> Path:
    rules = tmp_path / "alerts.yaml"
    rules.write_text(json.dumps({"rules": [
        {"name": "nato-daily", "query": NATO_QUERY, "mode": "digest", "digest": f"{INTERVAL_S}s",
         "channels": {"webhook": receiver.url + "/ok/digest"}},
    ]}))
    return rules


def _window_opened(workers: list[WorkerProcess]) -> WorkerProcess:
    """The worker whose digest agent holds the window, once its table entry is in the changelog (the log line
    comes after that)."""
    def owner() -> WorkerProcess | None:
        return next((w for w in workers if "digest window extended" in w.log_path.read_text()), None)

    def alive() -> None:
        for w in workers:
            w.check_alive()

    wait_until(owner, 180, "the digest window", alive)
    found = owner()
    assert found is not None
    return found


def _digest_delivered_once(stack: Settings, unique: str, receiver: Receiver, workers: list[WorkerProcess],
                           survivor: WorkerProcess, opened: float, url: str) -> None:
    try:
        wait_until(lambda: receiver.to("/ok/digest"), 240, "the digest after the crash", survivor.check_alive)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{group_progress(stack.kafka.bootstrap, unique, *workers)}") from None
    [arrived] = [t for p, _h, _b, t in receiver.requests if p == "/ok/digest"]
    assert arrived >= opened + INTERVAL_S - 5  # at the end of the interval, not at once
    [(_headers, body)] = receiver.to("/ok/digest")
    digest = json.loads(body)
    assert digest["kind"] == "digest" and digest["rule"] == "nato-daily"
    [alert] = digest["alerts"]
    assert alert["url"] == url and alert["rule"] == "nato-daily"
    wait_until(lambda: "digest window closed" in survivor.log_path.read_text(), 30, "the window's removal",
               survivor.check_alive)
    time.sleep(3)  # a second digest would come within the flush period
    assert len(receiver.to("/ok/digest")) == 1
    # The survivor recovered the window from the changelog: a replayed match is not added twice.
    assert sum(w.log_path.read_text().count("digest window extended") for w in workers) == 1
    # The table's changelog: the window written once, then closed after the delivery, keeping the id it sent.
    with TopicReader(stack, "test") as reader:
        records = [(json.loads(r.key), r.value) for r in reader.scan(f"t{unique}-alerts-digests-changelog")]
    assert [key for key, _ in records] == ["nato-daily", "nato-daily"]
    opened_entry, closed_entry = (json.loads(value) for _, value in records)
    assert [a["url"] for a in opened_entry["alerts"]] == [url]
    assert closed_entry["closes_at"] is None and closed_entry["alerts"] == []
    assert closed_entry["sent"] == [alert["alert_id"]]


def test_digest_window_survives_sigkill(stack: Settings, unique: str, tmp_path: Path,
                                        receiver: Receiver) -> None:
    env = alerts_worker_env(stack, unique, tmp_path, _digest_rules(tmp_path, receiver))
    create_topics(stack, unique)
    worker = WorkerProcess(env, "digest", tmp_path).start()
    try:
        seed = page_item("seed")
        produce(stack.kafka.bootstrap, f"t{unique}.{RAW_TOPIC}", [raw_message(seed)])
        _window_opened([worker])
        opened = time.time()
        worker.kill9()
        assert receiver.to("/ok/digest") == []  # killed inside the interval: nothing sent yet
        worker.start()
        _digest_delivered_once(stack, unique, receiver, [worker], worker, opened, seed.link)
    finally:
        worker.stop()
        remove_test_data(stack, unique)


def test_digest_window_moves_to_another_worker(stack: Settings, unique: str, tmp_path: Path,
                                               receiver: Receiver) -> None:
    """Two workers; the one holding the window is SIGKILLed: the other takes its partitions in the rebalance,
    recovers the window and sends the digest once."""
    env = alerts_worker_env(stack, unique, tmp_path, _digest_rules(tmp_path, receiver))
    create_topics(stack, unique)
    workers = [WorkerProcess(env, name, tmp_path).start() for name in ("a", "b")]
    try:
        seed = page_item("seed")
        produce(stack.kafka.bootstrap, f"t{unique}.{RAW_TOPIC}", [raw_message(seed)])
        owner = _window_opened(workers)
        opened = time.time()
        owner.kill9()
        assert receiver.to("/ok/digest") == []
        [survivor] = [w for w in workers if w is not owner]
        _digest_delivered_once(stack, unique, receiver, workers, survivor, opened, seed.link)
    finally:
        for w in workers:
            w.stop()
        remove_test_data(stack, unique)
