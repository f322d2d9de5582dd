"""Dead letters end to end on the real stack: a poison article dead-lettered by a real worker, the cause fixed,
`newsflow dlq replay`, the article indexed; a replayed letter is never replayed twice."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch
from kafka import KafkaProducer
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.dlq import Origin, dead_letter_for, original_payload
from pipeline.dlq_tools import list_letters, replay_letters
from pipeline.index import ensure_index, ensure_index_template, index_name, run_with_client
from pipeline.schemas import DLQ_REPLAYED_TOPIC, ENRICHED_TOPIC, DeadLetter, EnrichedArticle
from pipeline.settings import Settings, load_settings
from pipeline.topic_reader import TopicReader
from pipeline.topics import ensure_topics
from testkit.topics import delete_topics, produce
from testkit.worker import WorkerProcess, worker_env

pytestmark = pytest.mark.integration

PUBLISHED = datetime(2026, 2, 10, 9, 30, tzinfo=UTC)


def _article(n: int) -> EnrichedArticle:
    body = f"Article {n}: the council approved the new harbour plan on Tuesday after a long debate."
    return EnrichedArticle(id=f"dlq-art{n}", story_id=f"dlq-art{n}", feed_url="http://feeds.example/rss",
                           url=f"https://example.com/dlq/{n}", title=f"Harbour plan {n}", body=body,
                           ingested_at=PUBLISHED, published_at=PUBLISHED, text_fingerprint=f"fp-dlq-{n}",
                           word_count=len(body.split()))


def _wait(what: str, check: Callable[[], object], timeout_s: float, worker: WorkerProcess) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        worker.check_alive()
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; worker log:\n{worker.tail()}")


def _cli(env: dict[str, str], *args: str) -> str:
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.stdout  # logs (stderr) are not part of what the command prints


def test_poison_dead_lettered_cause_fixed_replay_indexes_it(stack: Settings, unique: str, tmp_path: Path) -> None:
    env = worker_env(stack.kafka.bootstrap, unique, tmp_path / "data", NEWSFLOW_ES_INDEX_PREFIX=f"tq-{unique}",
                     NEWSFLOW_ES_ALIAS=f"tqa-{unique}", NEWSFLOW_SINK_BATCH_TIMEOUT_S="0.2",
                     NEWSFLOW_PIPELINE_OFFLOAD_PROCESSES="0", NEWSFLOW_SINK_MAX_RETRIES="0")
    settings = load_settings(environ=env)
    ensure_topics(settings)
    month_index = index_name(settings, PUBLISHED)

    async def prepare(es: object) -> None:
        await ensure_index_template(es, settings)  # type: ignore[arg-type]
        await ensure_index(es, settings, month_index)  # type: ignore[arg-type]

    run_with_client(settings.es, prepare)
    es = Elasticsearch(settings.es.url)
    # The cause: the month's index refuses writes (as after an operator's mistake or a maintenance block).
    es.indices.put_settings(index=month_index, settings={"index.blocks.write": True})
    worker = WorkerProcess(env, "dlq", tmp_path).start()
    try:
        poison, good = _article(1), _article(2)
        topic = settings.kafka.topic(ENRICHED_TOPIC)
        produce(settings.kafka.bootstrap, topic, [(poison.id.encode(), poison.model_dump_json().encode())])
        _wait("the dead letter", lambda: list_letters(settings, stage="sink"), 180, worker)

        [listed] = [json.loads(line) for line in _cli(env, "dlq", "list", "--stage", "sink", "--since", "1h",
                                                      "--json").splitlines()]
        assert listed["kind"] == "document_rejected" and listed["topic"] == topic and not listed["replayed"]
        assert listed["key"] == poison.id and "payload" not in listed
        assert _cli(env, "dlq", "list", "--stage", "clean", "--json").strip() == ""
        shown = json.loads(_cli(env, "dlq", "show", str(listed["dlq_offset"]), "--json"))
        assert EnrichedArticle.model_validate_json(shown["payload"]) == poison
        human = _cli(env, "dlq", "show", str(listed["dlq_offset"]))
        assert "document_rejected" in human and poison.title in human

        # The cause fixed, the letter replayed: the article is indexed; meanwhile a good one went straight through.
        es.indices.put_settings(index=month_index, settings={"index.blocks.write": False})
        produce(settings.kafka.bootstrap, topic, [(good.id.encode(), good.model_dump_json().encode())])
        out = _cli(env, "dlq", "replay", "--stage", "sink")
        assert f"replayed {listed['dlq_offset']} (sink/document_rejected) -> {topic}" in out
        assert "-- 1 replayed, 0 skipped, 0 already replayed before" in out

        def hits() -> dict[str, dict]:
            es.indices.refresh(index=settings.es.alias)
            found = es.search(index=settings.es.alias, query={"ids": {"values": [poison.id, good.id]}})
            return {h["_id"]: h["_source"] for h in found["hits"]["hits"]}

        _wait("the replayed article in Elasticsearch", lambda: len(hits()) == 2, 120, worker)
        assert hits()[poison.id]["title"] == poison.title

        # Never twice: the replay is recorded on the compacted topic; a second replay skips the letter.
        again = _cli(env, "dlq", "replay")
        assert "-- 0 replayed, 0 skipped, 1 already replayed before" in again
        [after] = [json.loads(line) for line in _cli(env, "dlq", "list", "--json").splitlines()]
        assert after["replayed"] is True
        human = _cli(env, "dlq", "list")
        assert f"{listed['dlq_offset']:>8}" in human and "document_rejected" in human and "[replayed]" in human
        assert "-- 1 dead letters, 1 replayed" in human
        with TopicReader(settings, "test") as reader:
            records = list(reader.scan(settings.kafka.topic(DLQ_REPLAYED_TOPIC)))
        assert [r.key for r in records] == [f"0:{listed['dlq_offset']}".encode()]
        assert len(list_letters(settings)) == 1  # the replayed article did not fail again
    finally:
        worker.stop()
        for index in es.indices.get(index=f"tq-{unique}-*", allow_no_indices=True):
            es.indices.delete(index=index)
        es.options(ignore_status=404).indices.delete_index_template(name=f"tq-{unique}-template")
        es.close()
        delete_topics(settings.kafka.bootstrap, unique)


def test_letter_keeps_the_original_bytes_for_replay() -> None:
    """Bytes that are not UTF-8 travel in base64, so replay puts back exactly what failed; UTF-8 stays text."""
    raw = b'{"title": "caf\xe9"}'  # Latin-1, not UTF-8
    letter = dead_letter_for("sink", ValueError("bad"), Origin(payload=raw, topic="news.enriched", partition=0,
                                                               offset=5, key=b"k"))
    assert "\ufffd" in letter.payload and letter.payload_base64 is not None
    assert original_payload(DeadLetter.model_validate_json(letter.model_dump_json())) == raw

    text = '{"title": "café"}'.encode()
    letter = dead_letter_for("clean", ValueError("bad"), Origin(payload=text, topic="news.raw"))
    assert letter.payload_base64 is None and original_payload(letter) == text
    # Letters written before these fields existed still read, and replay their text.
    old = DeadLetter.model_validate({"stage": "clean", "kind": "invalid_message", "error": "x", "payload": "p"})
    assert old.payload_truncated is False and original_payload(old) == b"p"


def test_list_filters_and_replay_skips_what_it_cannot_put_back(stack: Settings, unique: str) -> None:
    """Filters by stage, kind and time; replay skips discarded, truncated, topic-less and unreadable letters
    (with the reason) and replays the rest byte for byte."""
    settings = load_settings(environ={"NEWSFLOW_KAFKA_TOPIC_PREFIX": f"t{unique}.", "NEWSFLOW_KAFKA_PARTITIONS": "1"})
    ensure_topics(settings)
    raw, dlq = settings.kafka.topic("news.raw"), settings.kafka.topic("news.dlq")
    latin1 = b'{"title": "caf\xe9"}'
    two_hours_ago = int((time.time() - 7200) * 1000)
    letters = [
        (dead_letter_for("clean", ValueError("not json"), Origin(payload=latin1, topic=raw, key=b"k1")), None),
        (dead_letter_for("clean", ValueError("old"), Origin(payload=b"{}", topic=raw)), two_hours_ago),
        (DeadLetter(stage="clean", kind="discarded", error="too short", topic=raw, payload="{}"), None),
        (DeadLetter(stage="enrich", kind="EnrichFailed", error="x", topic=raw, payload="{}",
                    payload_truncated=True), None),
        (DeadLetter(stage="connector", kind="publish_failed", error="x", payload="{}"), None),
    ]
    producer = KafkaProducer(bootstrap_servers=settings.kafka.servers, acks="all")
    try:
        for letter, ts in letters:
            producer.send(dlq, value=letter.model_dump_json().encode(), timestamp_ms=ts)
        producer.send(dlq, value=b"not a letter")
        producer.flush(timeout=30)
    finally:
        producer.close()
    try:
        assert [e.offset for e in list_letters(settings)] == [0, 1, 2, 3, 4, 5]
        assert [e.offset for e in list_letters(settings, stage="clean")] == [0, 1, 2]
        assert [e.offset for e in list_letters(settings, kind="discarded")] == [2]
        recent = list_letters(settings, since=datetime.now(UTC) - timedelta(hours=1))
        assert [e.offset for e in recent] == [0, 2, 3, 4, 5] and recent[-1].unreadable

        result = replay_letters(settings)
        assert [e.offset for e in result.replayed] == [0, 1]
        why = {e.offset: reason for e, reason in result.skipped}
        assert set(why) == {2, 3, 4, 5}
        assert "discarded" in why[2] and "truncated" in why[3] and "source topic" in why[4]
        assert why[5].startswith("unreadable")
        with TopicReader(settings, "test") as reader:
            back = list(reader.scan(raw))
        assert [(r.key, r.value) for r in back] == [(b"k1", latin1), (None, b"{}")]
        # Discarded letters only on request; the rest never twice.
        again = replay_letters(settings, kind="discarded")
        assert [e.offset for e in again.replayed] == [2] and not any(e.offset in (0, 1) for e in again.replayed)
        assert replay_letters(settings).replayed == []
    finally:
        delete_topics(settings.kafka.bootstrap, unique)
