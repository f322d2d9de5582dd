"""The connector against the local feed server (real sockets) and the real Kafka: what lands in news.raw."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition
from prometheus_client import REGISTRY

from connectors import Connector, FeedSpec, run_connector
from pipeline.schemas import RAW_TOPIC, RawItem
from pipeline.settings import PROJECT_ROOT, Settings
from testkit.feedserver import FeedServer, make_items

pytestmark = pytest.mark.integration


@pytest.fixture()
def feed_server() -> Iterator[FeedServer]:
    with FeedServer() as server:
        yield server


@pytest.fixture()
def settings_(stack: Settings, unique: str, tmp_path: Path) -> Settings:
    """Per-test settings: own topic prefix, own data dir, loopback allowed, short timeouts."""
    return stack.model_copy(update={
        "data_dir": tmp_path / "data",
        "kafka": stack.kafka.model_copy(update={"topic_prefix": f"t{unique}.", "partitions": 2}),
        "poll": stack.poll.model_copy(update={"allow_private_hosts": True, "timeout_s": 2.0, "max_body_bytes": 100_000,
                                              "fetch_article": False}),
    })


def read_topic(settings: Settings) -> list[tuple[str, RawItem]]:
    """Everything on <prefix>news.raw now (reads to the end offsets, so an empty topic returns at once)."""
    topic = settings.kafka.topic(RAW_TOPIC)
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka.servers, enable_auto_commit=False,
                             consumer_timeout_ms=3000)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        end = consumer.end_offsets(parts)
        out: list[tuple[str, RawItem]] = []
        while any(consumer.position(tp) < end[tp] for tp in parts):
            for records in consumer.poll(timeout_ms=1000).values():
                out += [(r.key.decode(), RawItem.model_validate_json(r.value)) for r in records]
        return out
    finally:
        consumer.close()


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_each_new_item_lands_exactly_once_across_restarts(
    settings_: Settings, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/rss.xml", make_items(4, prefix="rss"))
    feed_server.set_feed("/atom.xml", make_items(3, prefix="atom"), fmt="atom")
    feed_server.set_feed("/feed.json", make_items(3, prefix="json"), fmt="json", gzip=True)
    specs = [FeedSpec(url=feed_server.url(p), name=p) for p in ("/rss.xml", "/atom.xml", "/feed.json")]
    published_before = metric("newsflow_feed_items_published_total")
    not_modified_before = metric("newsflow_feed_fetches_total", status="not_modified", kind="none")

    async with Connector(settings_, specs=specs) as first:
        one = await first.poll_once()
    assert (one.feeds_ok, one.feeds_failed, one.items_published, one.items_skipped) == (3, 0, 10, 0)

    # A restart: a new Connector reads the persisted state; unchanged feeds answer 304.
    async with Connector(settings_, specs=specs) as second:
        two = await second.poll_once()
        assert (two.feeds_not_modified, two.items_published) == (3, 0)
        feed_server.append_items("/rss.xml", make_items(2, start=4, prefix="rss"))
        feed_server.append_items("/feed.json", make_items(1, start=3, prefix="json"))
        three = await second.poll_once()
    assert (three.items_published, three.items_skipped, three.feeds_not_modified) == (3, 7, 1)
    async with Connector(settings_, specs=specs) as third:
        four = await third.poll_once()
    assert four.items_published == 0

    got = read_topic(settings_)
    guids = [item.guid for _key, item in got]
    assert len(guids) == 13 and len(set(guids)) == 13
    for key, item in got:
        assert key == item.canonical_link and "utm_source" not in key
        assert item.feed_url in {s.url for s in specs} and item.content
    assert metric("newsflow_feed_items_published_total") - published_before == 13
    assert metric("newsflow_feed_fetches_total", status="not_modified", kind="none") - not_modified_before >= 5
    for path in ("/rss.xml", "/atom.xml"):
        stats = feed_server.stats(path)
        assert stats.conditional == 3 and stats.not_modified >= 2


async def test_failing_feeds_are_counted_and_publish_nothing(settings_: Settings, feed_server: FeedServer) -> None:
    feed_server.set_feed("/good.xml", make_items(2, prefix="good"))
    feed_server.redirect("/moved.xml", "/good2.xml", status=301)
    feed_server.set_feed("/good2.xml", make_items(1, prefix="moved"))
    feed_server.redirect("/temp.xml", "/good3.xml", status=302)
    feed_server.set_feed("/good3.xml", make_items(1, prefix="temp"))
    feed_server.set_status("/gone.xml", 410)
    feed_server.set_status("/busy.xml", 429, headers={"Retry-After": "3600"})
    feed_server.set_status("/broken.xml", 500)
    feed_server.set_feed("/slow.xml", make_items(1, prefix="slow"), delay_s=6)
    feed_server.set_raw("/huge.xml", b"<rss>" + b" " * 200_000 + b"</rss>")
    feed_server.set_bomb("/bomb.xml", inflated_bytes=5_000_000)
    feed_server.set_raw("/laughs.xml", b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
                                       b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><rss><channel>'
                                       b"<title>&b;</title></channel></rss>")
    feed_server.set_raw("/page.html", b"<!doctype html><html><head><title>News</title></head><body>Hi</body></html>",
                        content_type="text/html; charset=utf-8")
    paths = ["/good.xml", "/moved.xml", "/temp.xml", "/gone.xml", "/busy.xml", "/broken.xml", "/slow.xml",
             "/huge.xml", "/bomb.xml", "/laughs.xml", "/page.html"]
    specs = [FeedSpec(url=feed_server.url(p)) for p in paths]
    kinds = {"http_status": 3, "timeout": 1, "body_too_large": 2, "hostile_xml": 1, "not_a_feed": 1}
    before = {k: metric("newsflow_feed_fetches_total", status="error", kind=k) for k in kinds}
    parse_before = metric("newsflow_feed_parse_errors_total", kind="hostile_xml")

    async with Connector(settings_, specs=specs) as connector:
        summary = await connector.poll_once()
        states = {p: connector.state(feed_server.url(p)) for p in paths}
    assert (summary.feeds_ok, summary.feeds_failed, summary.items_published) == (3, 8, 4)
    for kind, n in kinds.items():
        assert metric("newsflow_feed_fetches_total", status="error", kind=kind) - before[kind] == n, kind
    assert metric("newsflow_feed_parse_errors_total", kind="hostile_xml") - parse_before == 1
    assert states["/gone.xml"].last_error_kind == "http_status" and "410" in (states["/gone.xml"].last_error or "")
    assert states["/broken.xml"].last_error_kind == "http_status"
    assert "500" in (states["/broken.xml"].last_error or "")
    busy = states["/busy.xml"]
    assert busy.last_error_kind == "http_status" and "429" in (busy.last_error or "")
    assert busy.next_check_at and busy.last_checked_at
    assert (busy.next_check_at - busy.last_checked_at).total_seconds() >= 3600  # Retry-After honoured
    assert "HTML page" in (states["/page.html"].last_error or "")
    assert states["/moved.xml"].moved_to == feed_server.url("/good2.xml")
    assert states["/temp.xml"].moved_to is None
    assert all(s.error_count == 1 for p, s in states.items() if p not in ("/good.xml", "/moved.xml", "/temp.xml"))

    got = read_topic(settings_)
    assert sorted(item.guid or "" for _k, item in got) == sorted(
        [f"https://news.example.com/good/{i}" for i in range(2)]
        + ["https://news.example.com/moved/0", "https://news.example.com/temp/0"])


async def test_run_connector_stops_on_event_and_saves_state(settings_: Settings, feed_server: FeedServer,
                                                            tmp_path: Path) -> None:
    feed_server.set_feed("/a.xml", make_items(3, prefix="a"))
    feeds_file = tmp_path / "feeds.yaml"
    feeds_file.write_text(f"feeds:\n  - url: {feed_server.url('/a.xml')}\n    name: A\n")
    stop = asyncio.Event()
    task = asyncio.create_task(run_connector(settings_, feeds_file, stop_event=stop))
    for _ in range(100):
        if feed_server.stats("/a.xml").hits:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)
    stop.set()
    summary = await asyncio.wait_for(task, timeout=20)
    assert summary.items_published == 3
    saved = list((settings_.data_path / "feeds").glob("*.json"))
    assert len(saved) == 1 and json.loads(saved[0].read_text())["items_published"] == 3
    assert len(read_topic(settings_)) == 3


def _cli(settings: Settings, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NEWSFLOW_DATA_DIR": str(settings.data_path), "NEWSFLOW_KAFKA_TOPIC_PREFIX":
           settings.kafka.topic_prefix, "NEWSFLOW_KAFKA_BOOTSTRAP": settings.kafka.bootstrap,
           "NEWSFLOW_ALLOW_PRIVATE_HOSTS": "1", "NEWSFLOW_POLL_TIMEOUT_S": "2", **(extra_env or {})}
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], env=env, capture_output=True, text=True,
                          timeout=60, cwd=PROJECT_ROOT)


def test_cli_ingest_once_feeds_list_and_sigterm(settings_: Settings, feed_server: FeedServer, tmp_path: Path) -> None:
    feed_server.set_feed("/a.xml", make_items(2, prefix="cli"))
    feed_server.set_status("/down.xml", 500)
    feeds_file = tmp_path / "feeds.yaml"
    assert _cli(settings_, "feeds", "add", feed_server.url("/a.xml"), "--name", "CLI feed", "--feeds",
                str(feeds_file)).returncode == 0
    assert _cli(settings_, "feeds", "add", feed_server.url("/down.xml"), "--feeds", str(feeds_file)).returncode == 0

    run = _cli(settings_, "ingest", "--once", "--feeds", str(feeds_file))
    assert run.returncode == 0, run.stderr  # a failing feed is not a setup error
    assert "feeds ok 1 (not modified 0), feeds failed 1, items published 2, items skipped as already seen 0" \
        in run.stdout
    again = _cli(settings_, "ingest", "--once", "--feeds", str(feeds_file))
    assert "items published 0" in again.stdout

    listing = _cli(settings_, "feeds", "list", "--feeds", str(feeds_file), "--json")
    rows = {r["url"]: r for r in map(json.loads, listing.stdout.splitlines())}
    assert rows[feed_server.url("/a.xml")]["items_published"] == 2
    assert rows[feed_server.url("/a.xml")]["status"] == "not_modified"
    down = rows[feed_server.url("/down.xml")]
    assert down["status"] == "error" and down["error_count"] == 2 and down["last_error_kind"] == "http_status"
    assert "500" in down["last_error"]

    missing = _cli(settings_, "ingest", "--once", "--feeds", str(tmp_path / "nope.yaml"))
    assert missing.returncode != 0 and "not found" in missing.stderr

    # `newsflow connector` runs until SIGTERM, then flushes and saves state.
    feed_server.append_items("/a.xml", make_items(1, start=2, prefix="cli"))
    env = {**os.environ, "NEWSFLOW_DATA_DIR": str(settings_.data_path),
           "NEWSFLOW_KAFKA_TOPIC_PREFIX": settings_.kafka.topic_prefix, "NEWSFLOW_ALLOW_PRIVATE_HOSTS": "1",
           "NEWSFLOW_POLL_MIN_INTERVAL_S": "1"}
    # The states say "next check in 15 min": remove them so the running connector polls at once.
    for path in (settings_.data_path / "feeds").glob("*.json"):
        data = json.loads(path.read_text())
        data["next_check_at"] = None
        path.write_text(json.dumps(data))
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "connector", "--feeds", str(feeds_file)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=PROJECT_ROOT)
    try:
        import time

        deadline = time.monotonic() + 30
        while feed_server.stats("/a.xml").hits < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "items published 1" in out
    guids = sorted(item.guid or "" for _k, item in read_topic(settings_))
    assert guids == [f"https://news.example.com/cli/{i}" for i in range(3)]


async def test_parsing_in_a_worker_process(settings_: Settings, feed_server: FeedServer) -> None:
    """poll.parse_processes=1: items and typed parse errors come back from the worker process."""
    settings = settings_.model_copy(update={"poll": settings_.poll.model_copy(update={"parse_processes": 1})})
    feed_server.set_feed("/w.xml", make_items(3, prefix="worker"), fmt="atom")
    feed_server.set_raw("/evil.xml", b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                                     b"<rss><channel><title>&x;</title></channel></rss>")
    specs = [FeedSpec(url=feed_server.url("/w.xml")), FeedSpec(url=feed_server.url("/evil.xml"))]
    async with Connector(settings, specs=specs) as connector:
        summary = await connector.poll_once()
        assert connector.state(feed_server.url("/evil.xml")).last_error_kind == "hostile_xml"
    assert (summary.items_published, summary.feeds_failed) == (3, 1)
    assert sorted(i.guid or "" for _k, i in read_topic(settings)) == [
        f"https://news.example.com/worker/{n}" for n in range(3)]
