"""Fault suite (marker ``fault``): a known set of items goes through the real worker while a fault strikes,
and at the end every item is on ``news.enriched`` (and, where the worker indexes, in Elasticsearch) exactly once
by canonical URL, under one id, with the dedupe state intact. The faults here: the Kafka broker stopped and
started mid-stream; a rebalance (a worker added, another removed) while articles flow; ``kill -9`` of the
connector mid-publish, then a restart; ``kill -9`` of a worker while its bulk request to Elasticsearch is in
flight (held by a proxy: Elasticsearch indexed it, the worker never saw the answer). Others live beside the code
they hit: kill -9 of a worker (test_pipeline.py), kill -9 of ``newsflow run`` (test_service.py), Elasticsearch
down for 60 s (test_sink_es_down.py); docs/guarantees.md lists them all.
"""

from __future__ import annotations

import contextlib
import re
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from elasticsearch import Elasticsearch
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient

from connectors.state import StateStore, item_id
from pipeline.canonical import canonical_url, stable_id
from pipeline.schemas import CLEAN_TOPIC, DEDUPED_TOPIC, ENRICHED_TOPIC, RAW_TOPIC, RawItem
from pipeline.settings import Settings
from testkit.es_index import remove_test_data
from testkit.faults import (
    assert_no_dead_letters,
    assert_one_article_per_url,
    index_env,
    read_to_end,
    serve_feeds,
    wait_indexed,
)
from testkit.feedserver import FeedServer
from testkit.raw_items import _filler_items, page_item, raw_message
from testkit.topics import TopicReader, _by_url, create_topics, produce, trace_missing
from testkit.worker import WorkerProcess, group_progress, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.fault]


def test_broker_stopped_and_started_mid_stream_loses_nothing(
    private_kafka: Settings, unique: str, tmp_path: Path
) -> None:
    from pipeline.stack.kafka import KafkaService

    bootstrap = private_kafka.kafka.bootstrap
    prefix = f"t{unique}."
    env = worker_env(bootstrap, unique, tmp_path / "data", **index_env(unique))
    create_topics(private_kafka, unique)
    worker = WorkerProcess(env, "a", tmp_path).start()
    enriched = TopicReader(bootstrap, prefix + ENRICHED_TOPIC)
    es = Elasticsearch(private_kafka.es.url)
    try:
        first, later = _filler_items(40), _filler_items(50)[40:]
        produce(bootstrap, prefix + RAW_TOPIC, [raw_message(i) for i in first])
        enriched.wait_for(lambda ms: len(ms) >= 3, 120, "the first articles", worker.check_alive)

        broker = KafkaService(private_kafka)
        broker.down()  # mid-stream: the worker keeps running without its broker
        decided = {m["canonical_url"]: (m["id"], m["story_id"]) for m in enriched.poll()}
        time.sleep(10)
        worker.check_alive()
        broker.up()
        produce(bootstrap, prefix + RAW_TOPIC, [raw_message(i) for i in later])

        expected = {i.canonical_link for i in first + later}
        enriched.wait_for(lambda ms: set(_by_url(ms)) >= expected, 180, "every article", worker.check_alive,
                          lambda: trace_missing(bootstrap, unique, expected, enriched.messages) + "\n"
                          + group_progress(bootstrap, unique, worker))
        hits = wait_indexed(es, f"t{unique}", expected, worker.check_alive)
        assert_one_article_per_url(enriched.poll(), hits, expected, decided)
        assert_no_dead_letters(bootstrap, prefix)  # an outage is not bad input
    finally:
        worker.stop()
        enriched.close()
        es.close()
        remove_test_data(private_kafka, unique)


def test_a_worker_added_and_another_removed_while_articles_flow(stack: Settings, unique: str, tmp_path: Path) -> None:
    bootstrap = stack.kafka.bootstrap
    prefix = f"t{unique}."
    env = worker_env(bootstrap, unique, tmp_path / "data", **index_env(unique))
    create_topics(stack, unique)
    first, second = WorkerProcess(env, "a", tmp_path).start(), WorkerProcess(env, "b", tmp_path)
    enriched = TopicReader(bootstrap, prefix + ENRICHED_TOPIC)
    es = Elasticsearch(stack.es.url)
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
        decided = {m["canonical_url"]: (m["id"], m["story_id"]) for m in enriched.poll()}
        first.stop()  # leaves: the single-partition dedupe and its tables move to the second worker
        produce(bootstrap, prefix + RAW_TOPIC, [raw_message(i) for i in fillers[45:]] + [raw_message(syndicated)])

        expected = {seed.canonical_link, syndicated.canonical_link, *(i.canonical_link for i in fillers)}
        enriched.wait_for(lambda ms: set(_by_url(ms)) >= expected, 180, "every article", second.check_alive,
                          lambda: trace_missing(bootstrap, unique, expected, enriched.messages) + "\n"
                          + group_progress(bootstrap, unique, first, second))
        hits = wait_indexed(es, f"t{unique}", expected, second.check_alive)
        # The copy decided after the move joined the story decided before it: the tables moved with dedupe.
        assert_one_article_per_url(enriched.poll(), hits, expected, decided,
                                   joined={syndicated.canonical_link: seed.canonical_link})
        assert_no_dead_letters(bootstrap, prefix)
    finally:
        first.stop()
        second.stop()
        enriched.close()
        es.close()
        remove_test_data(stack, unique)


# -- shared by the two kill -9 tests below --------------------------------------------------------------------------


def _committed(bootstrap: str, group: str, topics: list[str]) -> tuple[dict[TopicPartition, int | None],
                                                                        dict[TopicPartition, int]]:
    """The group's committed offset (None: nothing committed) and the end offset of each partition of ``topics``."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
        parts = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
        ends = consumer.end_offsets(parts)
        return {tp: offsets[tp].offset if tp in offsets else None for tp in parts}, ends
    finally:
        consumer.close()
        admin.close()


def _wait_settled(bootstrap: str, unique: str, worker: WorkerProcess, timeout_s: float = 120) -> None:
    """Until the worker's group has committed every message of the four pipeline topics: nothing is left to replay,
    so no late re-emission can change the index after the checks."""
    topics = [f"t{unique}.{t}" for t in (RAW_TOPIC, CLEAN_TOPIC, DEDUPED_TOPIC, ENRICHED_TOPIC)]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        worker.check_alive()
        committed, ends = _committed(bootstrap, f"t{unique}", topics)
        if all(ends[tp] == 0 or (committed[tp] or 0) >= ends[tp] for tp in ends):
            return
        time.sleep(1)
    raise AssertionError(f"the group did not commit every message within {timeout_s:.0f}s\n"
                         f"{group_progress(bootstrap, unique, worker)}")


# -- kill -9 of the connector mid-publish -----------------------------------------------------------------------------

FEEDS, PER_FEED = 24, 5
FEED_DELAY_S = 0.6  # per answer; 2 feeds at a time (poll.per_host): the first run publishes for ~7 s


class ConnectorProcess(WorkerProcess):
    """`newsflow connector --feeds FILE` in a subprocess of its own session (kill9 takes it whole)."""

    def __init__(self, env: dict[str, str], feeds_file: Path, log_dir: Path) -> None:
        super().__init__(env, "connector", log_dir)
        self.log_path = log_dir / "connector.log"
        self.feeds_file = feeds_file

    def command(self) -> list[str]:
        return [sys.executable, "-m", "pipeline.cli", "connector", "--feeds", str(self.feeds_file)]


def test_connector_killed_mid_publish_and_restarted_misses_nothing(stack: Settings, unique: str,
                                                                     tmp_path: Path) -> None:
    """What the test asserts about duplicates on news.raw: the connector marks an item seen only after Kafka
    acknowledged it, and saves a feed's state after the feed's whole publish. So after the kill, every item the saved
    states call seen is on news.raw; the restart publishes again exactly the items of the feeds whose state was not
    saved; an item of such a feed that was already on news.raw at the kill (acknowledged, then the kill before the
    save) is on news.raw twice, every other item once. The duplicates are absorbed downstream (dedupe re-emits the
    same ids, the index writes ``_id`` = id): one article and one document per canonical URL in the end."""
    bootstrap = stack.kafka.bootstrap
    prefix = f"t{unique}."
    alias = f"t{unique}"
    create_topics(stack, unique)
    worker = WorkerProcess(worker_env(bootstrap, unique, tmp_path / "data", **index_env(unique)), "a", tmp_path)
    connector_data = tmp_path / "connector"
    connector_env = {
        "NEWSFLOW_KAFKA_BOOTSTRAP": bootstrap, "NEWSFLOW_KAFKA_TOPIC_PREFIX": prefix, "NEWSFLOW_KAFKA_PARTITIONS": "4",
        "NEWSFLOW_DATA_DIR": str(connector_data), "NEWSFLOW_ALLOW_PRIVATE_HOSTS": "1",
        "NEWSFLOW_POLL_FETCH_ARTICLE": "false", "NEWSFLOW_POLL_PER_HOST": "2", "NEWSFLOW_LOG_FORMAT": "json",
    }
    raw = TopicReader(bootstrap, prefix + RAW_TOPIC)
    enriched = TopicReader(bootstrap, prefix + ENRICHED_TOPIC)
    es = Elasticsearch(stack.es.url)
    server = FeedServer().start()
    connector = ConnectorProcess(connector_env, tmp_path / "feeds.yaml", tmp_path)
    try:
        feed_items = serve_feeds(server, connector.feeds_file, FEEDS, PER_FEED, FEED_DELAY_S)
        guids = {item["guid"] for item in feed_items}
        # The worker first, warmed up by one article, so the feed items flow through it while the connector runs.
        warmup = _filler_items(FEEDS * PER_FEED + 1)[-1]
        worker.start()
        produce(bootstrap, prefix + RAW_TOPIC, [raw_message(warmup)])
        enriched.wait_for(lambda ms: len(ms) >= 1, 120, "the warm-up article", worker.check_alive)
        raw.poll()

        def feed_messages() -> list[dict]:
            """The feed items on news.raw now, every copy."""
            return [m for _p, _o, m in read_to_end(bootstrap, prefix + RAW_TOPIC) if m.get("guid") in guids]

        connector.start()
        raw.wait_for(lambda ms: sum(m.get("guid") in guids for m in ms) >= len(guids) // 3, 90,
                     "a third of the feed items on news.raw", connector.check_alive)
        connector.kill9()
        time.sleep(1)  # a produce request sent just before the kill is still answered by the broker: let it land
        on_raw = feed_messages()
        at_kill = Counter(m["guid"] for m in on_raw)
        item_ids = {m["guid"]: item_id(RawItem.model_validate(m)) for m in on_raw}
        saved = {i for state in StateStore(connector_data / "feeds").all() for i in state.seen}
        before = {m["canonical_url"]: (m["id"], m["story_id"]) for m in enriched.poll()}
        assert len(at_kill) < len(guids), "the connector published everything before the kill: slow the feeds down"
        assert set(at_kill.values()) == {1}, "the first run published an item twice"
        # Acknowledged before saved: what a saved state calls seen is on news.raw.
        assert saved <= set(item_ids.values()), "a feed state marks items seen that are not on news.raw"

        connector.start()  # same data dir: the saved states, the unsaved feeds polled afresh
        raw.wait_for(lambda ms: {m.get("guid") for m in ms} >= guids, 90, "every feed item on news.raw",
                     connector.check_alive)
        connector.stop()
        assert connector.proc is not None and connector.proc.returncode == 0, connector.tail()
        assert f"items published {len(guids) - len(saved)}," in connector.log_path.read_text(), connector.tail()

        counts = Counter(m["guid"] for m in feed_messages())
        republished = {g for g in at_kill if item_ids[g] not in saved}
        assert counts == {g: 1 + (g in republished) for g in guids}, \
            {g: n for g, n in counts.items() if n != 1 + (g in republished)}
        duplicates = sum(counts.values()) - len(guids)
        print(f"\nnews.raw: {len(guids)} feed items, {len(at_kill)} on news.raw at the kill, {len(saved)} saved as "
              f"seen; {duplicates} published twice (acknowledged, then killed before the state save)")

        expected = {canonical_url(item["link"]) for item in feed_items} | {warmup.canonical_link}
        enriched.wait_for(lambda ms: set(_by_url(ms)) >= expected, 180, "every article", worker.check_alive,
                          lambda: group_progress(bootstrap, unique, worker))
        _wait_settled(bootstrap, unique, worker)
        hits = wait_indexed(es, alias, expected, worker.check_alive)
        assert_one_article_per_url(enriched.poll(), hits, expected, before)
        assert_no_dead_letters(bootstrap, prefix)
    finally:
        if connector.proc is not None and connector.proc.poll() is None:
            connector.kill9()
        worker.stop()
        server.stop()
        raw.close()
        enriched.close()
        es.close()
        remove_test_data(stack, unique)


# -- kill -9 of a worker during a bulk request to Elasticsearch --------------------------------------------------

_BULK_REQUEST = re.compile(rb"(?:POST|PUT) /[^ \r\n]*_bulk[^ \r\n]* HTTP/1\.[01]\r\n")
_BULK_ID = re.compile(rb'"_id"\s*:\s*"([^"]+)"')


@dataclass
class _Connection:
    in_bulk: bool = False  # the next bytes from Elasticsearch answer a bulk request sent while armed
    request: bytearray = field(default_factory=bytearray)  # that bulk request


class BulkHoldingProxy:
    """A TCP proxy on loopback in front of Elasticsearch that can hold back the answer to one ``_bulk`` request.

    Armed (:meth:`hold_next_bulk`), it forwards bulk requests untouched, so Elasticsearch indexes them, and keeps back
    the answer to the first one that carries at least ``min_documents`` documents, until :meth:`release`: the client
    is then provably inside a bulk request whose documents are already indexed. Everything else passes through.
    No HTTP parsing is needed beyond spotting the request line: a keep-alive HTTP/1.1 client sends its next request
    only after the whole answer, so a connection's next bytes from upstream are the answer to its last request.
    """

    def __init__(self, upstream_url: str) -> None:
        parts = urlsplit(upstream_url)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 9200)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._lock = threading.Lock()
        self._armed = 0  # hold the answer to the next bulk of at least this many documents (0: hold nothing)
        self._held = threading.Event()
        self._release = threading.Event()
        self._held_request = b""
        self._sockets: list[socket.socket] = []

    def start(self) -> BulkHoldingProxy:
        threading.Thread(target=self._accept, name="es-proxy", daemon=True).start()
        return self

    def hold_next_bulk(self, min_documents: int = 1) -> None:
        with self._lock:
            self._armed = min_documents

    def wait_held(self, timeout_s: float, alive: Callable[[], None]) -> list[str]:
        """The ids in the held bulk request, once Elasticsearch has answered it and the answer is held."""
        deadline = time.monotonic() + timeout_s
        while not self._held.wait(0.5):
            alive()
            if time.monotonic() > deadline:
                raise AssertionError(f"no bulk request within {timeout_s:.0f}s")
        return [m.decode() for m in _BULK_ID.findall(self._held_request)]

    def release(self) -> None:
        self._release.set()

    def close(self) -> None:
        self._release.set()
        with self._lock:
            for sock in [self._listener, *self._sockets]:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            try:
                upstream = socket.create_connection(self._upstream, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            conn = _Connection()
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._requests, args=(client, upstream, conn), daemon=True).start()
            threading.Thread(target=self._answers, args=(upstream, client, conn), daemon=True).start()

    def _requests(self, client: socket.socket, upstream: socket.socket, conn: _Connection) -> None:
        try:
            while data := client.recv(65536):
                if self._armed and _BULK_REQUEST.search(data):
                    conn.in_bulk, conn.request = True, bytearray()
                if conn.in_bulk:
                    conn.request += data
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                upstream.shutdown(socket.SHUT_WR)

    def _answers(self, upstream: socket.socket, client: socket.socket, conn: _Connection) -> None:
        try:
            while data := upstream.recv(65536):
                if conn.in_bulk:  # Elasticsearch answered the bulk: it is indexed, the client waits for this answer
                    conn.in_bulk = False
                    with self._lock:
                        hold = 0 < self._armed <= len(_BULK_ID.findall(conn.request))
                        if hold:
                            self._armed = 0
                    if hold:
                        self._held_request = bytes(conn.request)
                        self._held.set()
                        self._release.wait()
                client.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)


def _enriched_offsets(bootstrap: str, topic: str) -> dict[str, list[tuple[int, int]]]:
    """Article id -> where its messages are on news.enriched (partition, offset)."""
    where: dict[str, list[tuple[int, int]]] = {}
    for partition, offset, value in read_to_end(bootstrap, topic):
        where.setdefault(value["id"], []).append((partition, offset))
    return where


def test_worker_killed_during_a_bulk_request_indexes_every_item_once(stack: Settings, unique: str,
                                                                       tmp_path: Path) -> None:
    """The kill lands while the worker waits for the answer to a bulk request Elasticsearch has already executed (a
    proxy holds the answer back): those documents are in the index, but their offsets on news.enriched were never
    committed, so the restarted worker indexes them again. ``_id`` = id makes that an overwrite: one document per
    canonical URL, each item's count exactly one, ids and story ids as before the kill."""
    bootstrap = stack.kafka.bootstrap
    prefix = f"t{unique}."
    alias = f"t{unique}"
    create_topics(stack, unique)
    proxy = BulkHoldingProxy(stack.es.url).start()
    env = worker_env(bootstrap, unique, tmp_path / "data", NEWSFLOW_ES_URL=proxy.url, **index_env(unique))
    worker = WorkerProcess(env, "a", tmp_path)
    enriched = TopicReader(bootstrap, prefix + ENRICHED_TOPIC)
    es = Elasticsearch(stack.es.url)  # the test itself reads Elasticsearch directly, never through the proxy
    try:
        fillers = _filler_items(80)
        first, second = fillers[:20], fillers[20:]
        worker.start()
        produce(bootstrap, prefix + RAW_TOPIC, [raw_message(i) for i in first])
        hits = wait_indexed(es, alias, {i.canonical_link for i in first if i.canonical_link}, worker.check_alive)
        before = {h["_source"]["canonical_url"]: (h["_id"], h["_source"]["story_id"]) for h in hits}

        proxy.hold_next_bulk(min_documents=8)
        produce(bootstrap, prefix + RAW_TOPIC, [raw_message(i) for i in second])
        held = proxy.wait_held(120, worker.check_alive)
        assert held and set(held) <= {stable_id(i.canonical_link or "") for i in second}, held
        es.indices.refresh(index=alias)
        assert es.count(index=alias, query={"ids": {"values": held}})["count"] == len(held), \
            "the held bulk is not in the index: the kill would not land after Elasticsearch executed it"
        worker.kill9()
        proxy.release()  # its reader is dead: the answer goes nowhere

        # Nothing of the held bulk was acknowledged to Kafka: none of its offsets on news.enriched is committed.
        enriched_topic = prefix + ENRICHED_TOPIC
        committed, _ends = _committed(bootstrap, f"t{unique}", [enriched_topic])
        where = _enriched_offsets(bootstrap, enriched_topic)
        acked = [(i, p, o) for i in held for p, o in where[i]
                 if (committed[TopicPartition(enriched_topic, p)] or 0) > o]
        assert not acked, f"offsets committed for documents whose bulk never answered: {acked[:5]}"
        print(f"\nheld bulk: {len(held)} documents indexed by Elasticsearch, not acknowledged to the worker, "
              f"offsets not committed (committed: {sorted((tp.partition, o) for tp, o in committed.items())})")

        worker.start()
        expected = {i.canonical_link for i in fillers if i.canonical_link}
        enriched.wait_for(lambda ms: set(_by_url(ms)) >= expected, 180, "every article", worker.check_alive,
                          lambda: group_progress(bootstrap, unique, worker))
        _wait_settled(bootstrap, unique, worker)
        hits = wait_indexed(es, alias, expected, worker.check_alive)
        assert_one_article_per_url(enriched.poll(), hits, expected, before)
        # The held documents were indexed a second time after the restart (replayed), into the same documents.
        versions = {h["_id"]: h["_version"] for h in hits}
        assert all(versions[i] >= 2 for i in held), {i: versions[i] for i in held}
        assert_no_dead_letters(bootstrap, prefix)
    finally:
        worker.stop()
        proxy.close()
        enriched.close()
        es.close()
        remove_test_data(stack, unique)
