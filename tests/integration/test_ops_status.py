"""`newsflow status` against the real Kafka and Elasticsearch, a run state this test writes and real HTTP endpoints
this test serves: every figure agrees with what the test put there; exit 1 when a part is down."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata
from typer.testing import CliRunner

from connectors.state import FeedState, StateStore
from pipeline.alerts.stats import sent_changelog
from pipeline.cli import app
from pipeline.runstate import ChildState, RunState, read_run_state, write_run_state
from pipeline.schemas import (
    ALERTS_TOPIC,
    CLEAN_TOPIC,
    DEDUPED_TOPIC,
    DLQ_TOPIC,
    ENRICHED_TOPIC,
    RAW_TOPIC,
    AlertEvent,
    DeadLetter,
    EnrichedArticle,
)
from pipeline.settings import Settings
from testkit.es_index import index_through_sink, isolated_settings

pytestmark = pytest.mark.integration

PORTS = (7100, 7101)  # this worktree's port range

METRICS = """# HELP newsflow_stage_messages_total Messages handled per stage
# TYPE newsflow_stage_messages_total counter
newsflow_stage_messages_total{stage="clean",status="ok"} 40.0
newsflow_stage_messages_total{stage="clean",status="error"} 2.0
"""


class _Child(BaseHTTPRequestHandler):
    ready = True

    def do_GET(self) -> None:
        if self.path == "/ready":
            ok = type(self).ready
            body, code, kind = json.dumps({"ready": ok}).encode(), (200 if ok else 503), "application/json"
        elif self.path == "/health":
            body, code, kind = b'{"alive": true}', 200, "application/json"
        elif self.path == "/metrics":
            body, code, kind = METRICS.encode(), 200, "text/plain; version=0.0.4"
        else:
            body, code, kind = b"{}", 404, "application/json"
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def _serve(port: int, ready: bool) -> ThreadingHTTPServer:
    handler = type(f"Child{port}", (_Child,), {"ready": ready})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture()
def rig(stack: Settings, unique: str, tmp_path: Path) -> Iterator[tuple[Settings, dict[str, str]]]:
    env = {"NEWSFLOW_KAFKA_TOPIC_PREFIX": f"t{unique}.", "NEWSFLOW_KAFKA_PARTITIONS": "2",
           "NEWSFLOW_PIPELINE_APP_ID": f"t{unique}", "NEWSFLOW_DATA_DIR": str(tmp_path / "data"),
           "NEWSFLOW_ES_INDEX_PREFIX": f"ts-{unique}", "NEWSFLOW_ES_ALIAS": f"tsa-{unique}"}
    with isolated_settings(env, unique, f"ts-{unique}-*") as settings:
        yield settings, env


def _fill(settings: Settings) -> None:
    """What the test counts on: records by topic, partition and age; committed offsets; letters; alerts."""
    t = settings.kafka.topic
    old = int((time.time() - 600) * 1000)  # ten minutes ago: lag, but not in "per minute"
    producer = KafkaProducer(bootstrap_servers=settings.kafka.servers, acks="all")
    try:
        def send(topic: str, partition: int, n: int, timestamp_ms: int | None = None) -> None:
            for i in range(n):
                producer.send(t(topic), value=json.dumps({"n": i}).encode(), partition=partition,
                              timestamp_ms=timestamp_ms)

        send(RAW_TOPIC, 0, 5, old)
        send(RAW_TOPIC, 0, 3)
        send(RAW_TOPIC, 1, 4)
        send(CLEAN_TOPIC, 0, 4)
        send(DEDUPED_TOPIC, 1, 3)
        send(ENRICHED_TOPIC, 0, 2)
        for stage in ("clean", "clean", "sink"):
            letter = DeadLetter(stage=stage, kind="invalid_message", error="bad", topic=t(RAW_TOPIC), payload="x")
            producer.send(t(DLQ_TOPIC), value=letter.model_dump_json().encode())
        for n in range(2):
            alert = AlertEvent(rule="harbour", query="harbour", article_id=f"a{n}", story_id=f"a{n}", title="t")
            producer.send(t(ALERTS_TOPIC), value=alert.model_dump_json().encode())
        for n in range(3):  # alerts-sent entries, as the alerts agent writes them (every channel)
            producer.send(sent_changelog(settings), key=json.dumps(f"harbour|a{n}").encode(),
                          value=json.dumps({"alert_id": f"x{n}", "article_id": f"a{n}", "at": "2026-12-02T00:00:00Z"})
                          .encode())
        producer.flush(timeout=30)
    finally:
        producer.close()
    # The app's group has read raw[0] up to 6 and all of enriched[0]; nothing else committed yet.
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka.servers, group_id=settings.pipeline.app_id,
                             enable_auto_commit=False)
    try:
        consumer.assign([TopicPartition(t(RAW_TOPIC), 0), TopicPartition(t(ENRICHED_TOPIC), 0)])
        consumer.commit({TopicPartition(t(RAW_TOPIC), 0): OffsetAndMetadata(6, "", -1),
                         TopicPartition(t(ENRICHED_TOPIC), 0): OffsetAndMetadata(2, "", -1)})
    finally:
        consumer.close()


def _articles(n: int) -> list[EnrichedArticle]:
    now = datetime.now(UTC)
    return [EnrichedArticle(id=f"st{i}", story_id=f"st{i}", feed_url="http://f.example/rss", title=f"T{i}",
                            body="Some words about the harbour.", ingested_at=now, published_at=now,
                            text_fingerprint=f"fp{i}") for i in range(n)]


def _feeds(settings: Settings) -> None:
    store = StateStore(settings.data_path / "feeds")
    now = datetime.now(UTC)
    store.save(FeedState(url="http://a.example/rss", title="A", last_status="ok", last_success_at=now,
                         items_published=12))
    store.save(FeedState(url="http://b.example/rss", title="B", last_status="error", error_count=3,
                         last_error="HTTP 503 from b.example", last_error_kind="http_status", last_error_at=now))


def _status(env: dict[str, str]) -> tuple[int, dict[str, Any], str]:
    result = CliRunner().invoke(app, ["status", "--json"], env=env)
    human = CliRunner().invoke(app, ["status"], env=env)
    assert human.exit_code == result.exit_code, human.output
    return result.exit_code, json.loads(result.stdout.strip().splitlines()[-1]), human.output


def test_status_reports_what_the_test_counted(rig: tuple[Settings, dict[str, str]]) -> None:
    settings, env = rig
    _fill(settings)
    asyncio.run(index_through_sink(settings, _articles(5)))
    _feeds(settings)
    servers = [_serve(PORTS[0], True), _serve(PORTS[1], True)]
    sleepers = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"]) for _ in PORTS]
    started = datetime.now(UTC) - timedelta(seconds=90)
    try:
        children = [ChildState(name=name, pid=p.pid, port=port, started_at=started, restarts=r, log=f"/tmp/{name}.log")
                    for name, p, port, r in zip(("worker-1", "connector"), sleepers, PORTS, (2, 0), strict=True)]
        write_run_state(settings, RunState(pid=os.getpid(), started_at=started, children=children))
        assert read_run_state(settings) is not None

        code, st, human = _status(env)
        assert code == 0 and st["ok"] is True and st["down"] == [], st["down"]
        assert st["kafka"]["up"] and st["elasticsearch"]["up"]
        t = settings.kafka.topic
        lag = st["consumer_lag"]
        assert lag["group"] == settings.pipeline.app_id == env["NEWSFLOW_PIPELINE_APP_ID"]
        raw = {r["partition"]: r for r in lag["topics"][t(RAW_TOPIC)]["partitions"]}
        assert raw[0] == {"partition": 0, "committed": 6, "end": 8, "lag": 2}
        assert raw[1] == {"partition": 1, "committed": None, "end": 4, "lag": 4}
        assert lag["topics"][t(CLEAN_TOPIC)]["lag"] == 4
        assert lag["topics"][t(DEDUPED_TOPIC)]["lag"] == 3
        assert lag["topics"][t(ENRICHED_TOPIC)]["lag"] == 0
        assert lag["total"] == 2 + 4 + 4 + 3 + 0
        assert st["throughput"]["per_minute"] == {"connector": 7, "clean": 4, "dedupe": 3, "enrich": 2, "index": 5}
        assert st["elasticsearch"]["documents"] == 5
        assert st["dead_letters"]["total"] == 3 and st["dead_letters"]["by_stage"] == {"clean": 2, "sink": 1}
        assert st["alerts"] == {"sent": 3, "on_topic": 2}
        feeds = st["feeds"]
        assert (feeds["total"], feeds["ok"], feeds["failing"]) == (2, 1, 1)
        [failing] = [f for f in feeds["feeds"] if f["health"] == "failing"]
        assert failing["url"] == "http://b.example/rss" and failing["last_error"] == "HTTP 503 from b.example"
        run = st["run"]
        assert run["state"] == "running" and 85 <= run["uptime_s"] < 600
        rows = {c["name"]: c for c in run["children"]}
        assert rows["worker-1"]["pid"] == sleepers[0].pid and rows["worker-1"]["restarts"] == 2
        assert rows["worker-1"]["ready"] is True and rows["connector"]["ready"] is True
        assert 85 <= rows["connector"]["uptime_s"] < 600
        assert rows["worker-1"]["metrics"]["newsflow_stage_messages_total"] == 42.0
        assert "FAILING x3 http://b.example/rss" in human and "group t" in human and "worker-1" in human

        # A child that is not ready: the run is down, exit 1.
        servers[1].shutdown()
        servers[1].server_close()
        servers[1] = _serve(PORTS[1], False)
        code, st, human = _status(env)
        assert code == 1 and st["down"] == ["run"]
        assert {c["name"]: c["ready"] for c in st["run"]["children"]} == {"worker-1": True, "connector": False}
        assert "DOWN: run" in human and "NOT READY" in human

        # newsflow run killed (its pid gone): the state file is stale, reported as down, no crash.
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        write_run_state(settings, RunState(pid=gone.pid, started_at=started, children=children))
        code, st, _ = _status(env)
        assert code == 1 and st["run"]["state"] == "stale" and "run" in st["down"]
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
        for p in sleepers:
            p.kill()
            p.wait()


def test_status_without_a_run_and_with_kafka_unreachable(rig: tuple[Settings, dict[str, str]]) -> None:
    _, env = rig
    code, st, _ = _status(env)
    assert st["run"] == {"state": "absent"} and "run" not in st["down"]
    assert st["feeds"]["total"] == 0 and st["dead_letters"]["total"] == 0 and st["alerts"] == {"sent": 0, "on_topic": 0}
    assert code == 0, st["down"]
    # A remote cluster that does not answer (nothing listens there): down, exit 1, every part still reported.
    code, st, human = _status({**env, "NEWSFLOW_KAFKA_BOOTSTRAP": "127.0.0.1:7119"})
    assert code == 1 and "kafka" in st["down"] and st["consumer_lag"] == {"error": "Kafka unreachable"}
    assert st["elasticsearch"]["up"] is True and "kafka          DOWN" in human
