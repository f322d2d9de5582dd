"""Smoke tests of the real local stack: each client library against the real servers."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from elasticsearch import AsyncElasticsearch
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from pipeline.settings import Settings

pytestmark = pytest.mark.integration


def _create_topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    finally:
        admin.close()


async def _consume(bootstrap: str, topic: str, count: int, timeout_s: float = 30) -> list[dict]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=f"smoke-{topic}", enable_auto_commit=False)
    await consumer.start()
    out: list[dict] = []
    try:
        async with asyncio.timeout(timeout_s):
            while len(out) < count:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    out.extend(json.loads(r.value.decode("utf-8")) for r in records)
    finally:
        await consumer.stop()
    return out


async def test_kafka_python_produces_and_aiokafka_consumes(stack: Settings, unique: str) -> None:
    topic = f"smoke.{unique}"
    _create_topic(stack.kafka.bootstrap, topic)
    producer = KafkaProducer(bootstrap_servers=stack.kafka.bootstrap, acks="all", enable_idempotence=True,
                             compression_type="gzip")
    for i in range(3):
        producer.send(topic, key=f"k{i}".encode(), value=json.dumps({"n": i, "text": "Kiev – Київ"}).encode())
    producer.flush(timeout=30)
    producer.close()

    got = await _consume(stack.kafka.bootstrap, topic, 3)
    assert [m["n"] for m in got] == [0, 1, 2]
    assert got[0]["text"] == "Kiev – Київ"


def test_faust_agent_forwards_between_two_topics(stack: Settings, unique: str, tmp_path: Path) -> None:
    """A trivial Faust worker on the real broker: reads one topic, writes another."""
    src, dst = f"smoke.{unique}.in", f"smoke.{unique}.out"
    app_file = tmp_path / "forward_app.py"
    app_file.write_text(textwrap.dedent(f"""
        import faust
        app = faust.App("smoke-{unique}", broker="kafka://{stack.kafka.bootstrap}", store="memory://",
                        web_enabled=False, topic_partitions=1, topic_replication_factor=1)
        src = app.topic("{src}", value_serializer="raw")
        dst = app.topic("{dst}", value_serializer="raw")

        @app.agent(src)
        async def forward(stream):
            async for value in stream:
                await dst.send(value=value.upper())
    """))
    for t in (src, dst):
        _create_topic(stack.kafka.bootstrap, t)
    log_file = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "faust", "-A", "forward_app", "worker", "-l", "info", "--without-web"],
        cwd=tmp_path, stdout=log_file, stderr=subprocess.STDOUT,
    )
    try:
        producer = KafkaProducer(bootstrap_servers=stack.kafka.bootstrap)
        producer.send(src, value=json.dumps({"hello": "faust"}).encode())
        producer.flush(timeout=30)
        producer.close()
        got = asyncio.run(_consume(stack.kafka.bootstrap, dst, 1, timeout_s=90))
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
        log_file.close()
    assert got == [{"HELLO": "FAUST"}]


async def test_elasticsearch_indexes_and_finds_a_document(stack: Settings, unique: str) -> None:
    es = AsyncElasticsearch(stack.es.url)
    index = f"smoke-{unique}"
    try:
        health = await es.cluster.health(wait_for_status="yellow", timeout="30s")
        assert health["status"] in ("yellow", "green")
        await es.index(index=index, id="a1", document={"title": "NATO signals compromise", "n": 1}, refresh=True)
        found = await es.search(index=index, query={"match": {"title": "compromise"}})
        assert found["hits"]["total"]["value"] == 1
        assert found["hits"]["hits"][0]["_id"] == "a1"
    finally:
        await es.indices.delete(index=index, ignore_unavailable=True)
        await es.close()
