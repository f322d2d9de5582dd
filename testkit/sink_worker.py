"""A minimal Faust worker whose one agent runs the sink, for a child process: ``python -c WORKER DATADIR``; and
:class:`SinkRig`, which runs it on isolated topics and index for a test.

The same wiring pipeline/agents.py uses for the index agent, nothing else: its own app id, topic prefix and index
prefix come from the environment (``NEWSFLOW_*``). Used by tests/integration/test_sink.py, test_sink_es_down.py and
bench/sink_throughput.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from elasticsearch import ApiError, TransportError
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from pipeline.index import make_client
from pipeline.schemas import DLQ_TOPIC, ENRICHED_TOPIC, DeadLetter, EnrichedArticle, Entity
from pipeline.settings import PROJECT_ROOT, Settings, load_settings
from pipeline.topics import ensure_topic
from testkit.es_index import delete_indices

__all__ = ["WORKER", "SinkRig", "make_article", "make_rig"]

WORKER = r'''
import sys
import faust
from pipeline.logs import configure_logging
from pipeline.schemas import DLQ_TOPIC, ENRICHED_TOPIC
from pipeline.settings import load_settings
from pipeline.sink import index_stream

settings = load_settings()
configure_logging("info", "json")
app = faust.App(settings.pipeline.app_id, broker=f"kafka://{settings.kafka.bootstrap}", store="memory://",
                datadir=sys.argv[1], autodiscover=False, web_enabled=False, key_serializer="raw",
                value_serializer="raw", consumer_auto_offset_reset="earliest", topic_disable_leader=True,
                broker_commit_interval=0.5, topic_replication_factor=1)
enriched = app.topic(settings.kafka.topic(ENRICHED_TOPIC), key_type=bytes, value_type=bytes)
dlq = app.topic(settings.kafka.topic(DLQ_TOPIC), key_type=bytes, value_type=bytes)

async def send_dead_letter(letter):
    await (await dlq.send(key=(letter.key or "").encode(), value=letter.model_dump_json().encode()))

@app.agent(enriched)
async def index(stream):
    await index_stream(stream, settings, send_dead_letter)

worker = faust.Worker(app, loglevel="INFO", quiet=True, override_logging=False, redirect_stdouts=False)
worker.execute_from_commandline()
'''


def make_article(n: int, **kw: object) -> EnrichedArticle:
    data: dict[str, object] = dict(
        id=f"doc{n:04d}", story_id=f"story{n % 7}", feed_url="http://feeds.example/rss",
        url=f"https://example.com/{n}", title=f"Article {n} on the Kyiv talks", body=f"Body {n} " * 30,
        source="Example News", language="en", ingested_at=datetime.now(UTC), published_at=datetime.now(UTC),
        text_fingerprint=f"fp{n}", word_count=60, entities=[Entity(name="Kyiv", label="GPE")], entity_names=["Kyiv"],
    )
    data.update(kw)
    return EnrichedArticle.model_validate(data)


@dataclass
class SinkRig:
    """One isolated sink: settings with unique names, its topics, a producer and the worker process."""

    settings: Settings
    env: dict[str, str]
    workdir: Path
    worker: subprocess.Popen[bytes] | None = None

    @property
    def enriched(self) -> str:
        return self.settings.kafka.topic(ENRICHED_TOPIC)

    @property
    def dlq(self) -> str:
        return self.settings.kafka.topic(DLQ_TOPIC)

    def create_topics(self, partitions: int = 2) -> None:
        ensure_topic(self.settings, self.enriched, partitions=partitions)
        ensure_topic(self.settings, self.dlq, partitions=1)

    def produce(self, values: list[tuple[str, bytes]]) -> None:
        producer = KafkaProducer(bootstrap_servers=self.settings.kafka.bootstrap, acks="all", linger_ms=5)
        try:
            for key, value in values:
                producer.send(self.enriched, key=key.encode(), value=value)
            producer.flush(timeout=30)
        finally:
            producer.close()

    def start_worker(self) -> None:
        log = (self.workdir / "worker.log").open("ab")
        self.worker = subprocess.Popen([sys.executable, "-c", WORKER, str(self.workdir / "faust")],
                                       cwd=PROJECT_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def stop_worker(self) -> None:
        if self.worker and self.worker.poll() is None:
            self.worker.send_signal(signal.SIGTERM)
            try:
                self.worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                self.worker.wait()

    def worker_log(self) -> str:
        return (self.workdir / "worker.log").read_text(errors="replace")[-3000:]

    def committed_all(self) -> bool:
        """True once the worker's consumer group has committed the end offset of every partition."""
        consumer = KafkaConsumer(bootstrap_servers=self.settings.kafka.bootstrap)
        admin = KafkaAdminClient(bootstrap_servers=self.settings.kafka.bootstrap)
        try:
            parts = [TopicPartition(self.enriched, p) for p in consumer.partitions_for_topic(self.enriched) or []]
            ends = consumer.end_offsets(parts)
            group = self.settings.pipeline.app_id
            committed = admin.list_group_offsets({group: parts}).get(group, {})
            return all(committed.get(tp) is not None and committed[tp].offset >= ends[tp] for tp in parts)
        finally:
            consumer.close()
            admin.close()

    def dead_letters(self, count: int, timeout_s: float = 20) -> list[DeadLetter]:
        consumer = KafkaConsumer(self.dlq, bootstrap_servers=self.settings.kafka.bootstrap,
                                 auto_offset_reset="earliest", consumer_timeout_ms=1000)
        out: list[DeadLetter] = []
        deadline = time.monotonic() + timeout_s
        try:
            while len(out) < count and time.monotonic() < deadline:
                out.extend(DeadLetter.model_validate_json(r.value) for r in consumer)
        finally:
            consumer.close()
        return out

    def count(self) -> int:
        es = make_client(self.settings.es)
        try:
            if not es.indices.exists_alias(name=self.settings.es.alias):
                return 0
            es.indices.refresh(index=self.settings.es.alias)
            return int(es.count(index=self.settings.es.alias)["count"])
        except (ApiError, TransportError):  # a shard still starting, or the node stopped by the test
            return -1
        finally:
            es.close()

    def wait_for(self, what: str, check: Callable[[], bool], timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if check():
                return
            assert self.worker is None or self.worker.poll() is None, f"worker died:\n{self.worker_log()}"
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}; worker log:\n{self.worker_log()}")

    def cleanup(self) -> None:
        self.stop_worker()
        prefix = self.settings.es.index_prefix
        delete_indices(self.settings, f"{prefix}-*", f"{prefix}-template")


def make_rig(stack: Settings, unique: str, workdir: Path, **env_extra: str) -> SinkRig:
    env_settings = {
        "NEWSFLOW_KAFKA_BOOTSTRAP": stack.kafka.bootstrap,
        "NEWSFLOW_KAFKA_TOPIC_PREFIX": f"t{unique}.",
        "NEWSFLOW_PIPELINE_APP_ID": f"sinktest-{unique}",
        "NEWSFLOW_ES_INDEX_PREFIX": f"ts-{unique}",
        "NEWSFLOW_ES_ALIAS": f"tsa-{unique}",
        "NEWSFLOW_SINK_BATCH_SIZE": "50",
        "NEWSFLOW_SINK_BATCH_TIMEOUT_S": "0.3",
        "NEWSFLOW_SINK_INITIAL_BACKOFF_S": "0.2",
        "NEWSFLOW_SINK_MAX_BACKOFF_S": "2",
        "NEWSFLOW_SINK_BULK_CONCURRENCY": "2",  # exercise the split: one id's versions must stay in order
        **env_extra,
    }
    settings = load_settings(environ=env_settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSFLOW_")} | env_settings
    return SinkRig(settings=settings, env=env, workdir=workdir)
