"""The Faust pipeline on the real broker: `newsflow worker` subprocesses, fixture pages in, news.enriched out.

Two tests share their workers across many asserts because a worker takes seconds to start:

* the whole path (clean, dedupe, enrich, index) with poison messages and an exact duplicate;
* kill -9 mid-stream, restart next to a second worker: nothing lost, one id per article, dedupe state intact.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient

from pipeline.canonical import canonical_url
from pipeline.schemas import DLQ_TOPIC, ENRICHED_TOPIC, RAW_TOPIC, RawItem
from pipeline.settings import Settings
from testkit.topics import create_topics, delete_topics

pytestmark = pytest.mark.integration

PAGES = Path(__file__).resolve().parent.parent / "fixtures" / "pages"
PAGE_URLS = {
    "seed": ("seed-rt.html", "https://www.rt.com/news/632101-nato-compromise-ukraine-fatigue/"),
    "syndicated": ("seed-syndicated.html",
                   "https://eurasiawire.example.net/europe/2026/02/05/nato-compromise-ukraine-fatigue"),
    "unrelated": ("unrelated-same-topic.html",
                  "https://www.northernledger.example.org/world/abu-dhabi-talks-second-day"),
}


def page_item(name: str) -> RawItem:
    """A RawItem as the connector publishes it for one of the HTML fixture pages (full page fetched)."""
    file, url = PAGE_URLS[name]
    return RawItem(feed_url="https://feeds.example.org/world.xml", feed_name="test feed", link=url,
                   canonical_link=canonical_url(url), content=(PAGES / file).read_text(encoding="utf-8"),
                   content_fetched=True)


def produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for key, value in messages:
            producer.send(topic, key=key, value=value)
        producer.flush(timeout=30)
    finally:
        producer.close()


def raw_message(item: RawItem) -> tuple[bytes, bytes]:
    return item.key.encode(), item.model_dump_json().encode()


class TopicReader:
    """Reads a whole topic from the start, incrementally, without a consumer group."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                      enable_auto_commit=False, group_id=None)
        self.messages: list[dict] = []

    def poll(self) -> list[dict]:
        for records in self.consumer.poll(timeout_ms=500).values():
            self.messages.extend(json.loads(r.value.decode("utf-8")) for r in records)
        return self.messages

    def wait_for(self, done: Callable[[list[dict]], bool], timeout_s: float, what: str,
                 alive: Callable[[], None] | None = None, describe: Callable[[], str] | None = None) -> list[dict]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if done(self.poll()):
                return self.messages
            if alive is not None:
                alive()
        where = f"\n{describe()}" if describe is not None else ""
        raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}; got {len(self.messages)}{where}")

    def close(self) -> None:
        self.consumer.close()


class WorkerProcess:
    """`newsflow worker` in a subprocess with per-test environment; its log goes to a file in tmp."""

    def __init__(self, env: dict[str, str], name: str, log_dir: Path) -> None:
        self.env = {**os.environ, **env}
        self.name = name
        self.log_path = log_dir / f"worker-{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [sys.executable, "-m", "pipeline.cli", "worker", "--name", self.name, "--web-port", "0"]

    def start(self) -> WorkerProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.command(), env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        return self

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"{self.log_path.stem} exited with {self.proc.returncode}:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill9(self) -> None:
        """SIGKILL the worker and its process pool (its session), as a crash would."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def dump_state(self) -> str:
        """The worker's state dump (SIGUSR1, pipeline/diagnostics.py): where it stands when it makes no progress."""
        if self.proc is None or self.proc.poll() is not None:
            return f"worker {self.name}: not running"
        os.kill(self.proc.pid, signal.SIGUSR1)  # the main process only: the pool's processes die of SIGUSR1
        time.sleep(2)
        dumps = [line for line in self.log_path.read_text(errors="replace").splitlines() if "worker state dump" in line]
        return f"worker {self.name}: {dumps[-1] if dumps else 'no dump written'}"

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


def trace_missing(bootstrap: str, unique: str, expected: set[str], messages: list[dict]) -> str:
    """For each expected canonical URL missing from ``messages``: the topics it reached, with the ids it had."""
    missing = sorted(expected - set(_by_url(messages)))
    if not missing:
        return "nothing missing"
    seen: dict[str, list[str]] = {url: [] for url in missing}
    for topic in (RAW_TOPIC, "news.clean", "news.deduped", DLQ_TOPIC):
        reader = TopicReader(bootstrap, f"t{unique}.{topic}")
        try:
            for _ in range(6):
                reader.poll()
            for m in reader.messages:
                payload = m
                if topic == DLQ_TOPIC:
                    try:
                        payload = json.loads(m.get("payload") or "{}")
                    except ValueError:
                        continue
                url = payload.get("canonical_url") or payload.get("canonical_link")
                if url in seen:
                    seen[url].append(f"{topic}(id={payload.get('id')}, story={payload.get('story_id')}, "
                                     f"dup_of={payload.get('duplicate_of')}, kind={m.get('kind')})")
        finally:
            reader.close()
    return "missing:\n" + "\n".join(f"  {url}: {' '.join(where) or 'nowhere'}" for url, where in seen.items())


def group_progress(bootstrap: str, unique: str, *workers: WorkerProcess) -> str:
    """Where a stalled group stands: per topic partition, the group's committed offset against the end offset, and
    each worker's own state dump."""
    from kafka import TopicPartition

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        committed = admin.list_group_offsets(f"t{unique}").get(f"t{unique}", {})
        parts = [TopicPartition(t, p) for t in consumer.topics() if t.startswith(f"t{unique}")
                 for p in consumer.partitions_for_topic(t) or ()]
        ends = consumer.end_offsets(parts)
        rows = []
        for tp in sorted(parts):
            meta = committed.get(tp)
            rows.append(f"{tp.topic}[{tp.partition}] committed={meta.offset if meta else None} end={ends[tp]}")
        rows.extend(worker.dump_state() for worker in workers)
        return "\n".join(rows)
    finally:
        consumer.close()
        admin.close()


def worker_env(bootstrap: str, unique: str, data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        "NEWSFLOW_KAFKA_BOOTSTRAP": bootstrap,
        "NEWSFLOW_KAFKA_TOPIC_PREFIX": f"t{unique}.",
        "NEWSFLOW_KAFKA_PARTITIONS": "4",
        "NEWSFLOW_PIPELINE_APP_ID": f"t{unique}",
        "NEWSFLOW_DATA_DIR": str(data_dir),
        "NEWSFLOW_LOG_FORMAT": "json",
        "NEWSFLOW_PIPELINE_SESSION_TIMEOUT_S": "8",
        **extra,
    }


SEED_ENTITIES = {"NATO", "Mark Rutte", "Dmitry Peskov", "Vitaly Kim", "Donald Trump", "Kiev", "Abu Dhabi", "Ukraine",
                 "Russia"}
BOILERPLATE = ["Article Word Jumble", "Play The Word Game", "Most Popular Articles", "21.1 C"]


def _by_url(messages: list[dict]) -> dict[str, set[str]]:
    ids: dict[str, set[str]] = {}
    for m in messages:
        ids.setdefault(m["canonical_url"], set()).add(m["id"])
    return ids


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
    finally:
        worker.stop()
        enriched.close()
        dlq.close()
        for index in es.indices.get(index=f"t{unique}-*", allow_no_indices=True):
            es.indices.delete(index=index)
        es.options(ignore_status=404).indices.delete_index_template(name=f"t{unique}-template")
        es.close()
        delete_topics(bootstrap, unique)


def _filler_items(count: int) -> list[RawItem]:
    """Distinct plain articles (summary-only feed items) that no dedupe rule would merge."""
    words = ["harbour", "council", "budget", "rail", "vote", "energy", "grid", "river", "festival", "school",
             "museum", "tariff", "drought", "election", "bridge", "hospital", "airport", "mayor", "union", "strike",
             "league", "court", "vaccine", "orchestra"]
    items = []
    for i in range(count):
        sentences = [f"Report {i} sentence {j}: the {words[(i * 7 + j) % len(words)]} "
                     f"{words[(i * 3 + j * 5) % len(words)]} story number {i * 100 + j} continues "
                     f"with {words[(i + j * 11) % len(words)]} details for readers in district {i}." for j in range(12)]
        url = f"https://filler.example.com/news/{i}-story"
        items.append(RawItem(feed_url="https://filler.example.com/rss", link=url, canonical_link=canonical_url(url),
                             title=f"Filler story {i}", summary=" ".join(sentences), language="en"))
    return items


def _has_rocksdict() -> bool:
    try:
        import rocksdict  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.xfail(reason="known defect: a two-worker group sometimes stalls (no agent progresses) after a "
                          "kill -9 and restart; cause in Faust table recovery not found yet (note 2026-12-02)",
                   strict=False)
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
