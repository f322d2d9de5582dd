"""What the fault tests check at the end: every item once by canonical URL, on news.enriched and in Elasticsearch,
under the ids it had before the fault, and nothing dead-lettered; and the slow feeds they publish from."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from elasticsearch import Elasticsearch
from kafka import KafkaConsumer, TopicPartition

from pipeline.canonical import stable_id
from pipeline.schemas import DLQ_TOPIC
from testkit.feedserver import FeedServer, make_items
from testkit.raw_items import _filler_items
from testkit.topics import _by_url


def assert_each_once(messages: list[dict], expected: set[str]) -> None:
    ids = _by_url(messages)
    assert set(ids) == expected, f"missing: {sorted(expected - set(ids))[:5]}"
    assert all(len(v) == 1 for v in ids.values()), {u: v for u, v in ids.items() if len(v) > 1}


def index_env(unique: str) -> dict[str, str]:
    """A worker that indexes into the test's own indices (t<unique>-YYYY.MM) behind the alias t<unique>."""
    return {"NEWSFLOW_ES_INDEX_PREFIX": f"t{unique}", "NEWSFLOW_ES_ALIAS": f"t{unique}",
            "NEWSFLOW_SINK_BATCH_TIMEOUT_S": "0.5"}


def read_to_end(bootstrap: str, topic: str) -> list[tuple[int, int, dict]]:
    """Every message on ``topic`` now, as (partition, offset, value): read up to the end offsets taken at the start."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        assert parts, f"no topic {topic}"
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        end = consumer.end_offsets(parts)
        out: list[tuple[int, int, dict]] = []
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < end[tp] for tp in parts):
            assert time.monotonic() < deadline, f"{topic}: not read to its end offsets {end} within 60 s"
            for records in consumer.poll(timeout_ms=500).values():
                out += [(r.partition, r.offset, json.loads(r.value)) for r in records if r.offset < end[
                    TopicPartition(topic, r.partition)]]
        return out
    finally:
        consumer.close()


def wait_indexed(es: Elasticsearch, alias: str, expected: set[str], alive: Callable[[], None],
                  timeout_s: float = 120) -> list[dict[str, Any]]:
    """The documents behind ``alias`` once every canonical URL of ``expected`` is among them (refreshed)."""
    deadline = time.monotonic() + timeout_s
    hits: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        alive()
        if es.indices.exists_alias(name=alias):
            es.indices.refresh(index=alias)
            hits = es.search(index=alias, query={"match_all": {}}, size=1000, version=True,
                             source=["canonical_url", "id", "story_id"])["hits"]["hits"]
            if {h["_source"]["canonical_url"] for h in hits} >= expected:
                return hits
        time.sleep(1)
    got = {h["_source"]["canonical_url"] for h in hits}
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {len(expected)} documents; got {len(got)}, "
                         f"missing: {sorted(expected - got)[:5]}")


def assert_one_article_per_url(messages: list[dict], hits: list[dict[str, Any]], expected: set[str],
                                before: dict[str, tuple[str, str]], joined: dict[str, str] | None = None) -> None:
    """news.enriched and the index agree: each canonical URL of ``expected`` is one article, under the id derived from
    the URL, in its own story (the texts are all distinct) or, for a URL in ``joined``, in the story of the article at
    the URL it maps to (a syndicated copy), with the id and story id it had before the fault; and one Elasticsearch
    document, whose ``_id`` is that id, no more documents than URLs."""
    joined = joined or {}

    def story_of(url: str) -> str:
        return stable_id(joined.get(url, url))

    assert_each_once(messages, expected)
    decided = {(m["canonical_url"], m["id"], m["story_id"]) for m in messages}
    assert len(decided) == len(expected), [d for d in decided if sum(x[0] == d[0] for x in decided) > 1][:5]
    for url, article, story in decided:
        assert article == stable_id(url) and story == story_of(url), (url, article, story)
        assert before.get(url, (article, story)) == (article, story), (url, before[url], (article, story))
    per_url = Counter(h["_source"]["canonical_url"] for h in hits)
    assert len(hits) == len(expected) and set(per_url) == expected, per_url.most_common(3)
    for h in hits:
        url = h["_source"]["canonical_url"]
        assert h["_id"] == h["_source"]["id"] == stable_id(url), h
        assert h["_source"]["story_id"] == story_of(url), h


def assert_no_dead_letters(bootstrap: str, prefix: str) -> None:
    letters = read_to_end(bootstrap, prefix + DLQ_TOPIC)
    assert letters == [], f"a crash is not bad input: nothing may be dead-lettered; got {letters[:3]}"


def serve_feeds(server: FeedServer, feeds_file: Path, feeds: int, per_feed: int,
                delay_s: float) -> list[dict[str, Any]]:
    """``feeds`` slow RSS feeds (each answer ``delay_s`` late) of ``per_feed`` items each, written as a feeds file;
    all texts distinct (filler texts, so no two are one story)."""
    texts = _filler_items(feeds * per_feed)
    items: list[dict[str, Any]] = []
    lines = ["feeds:"]
    for f in range(feeds):
        chunk = make_items(per_feed, start=f * per_feed, prefix=f"feed{f}")
        for n, item in enumerate(chunk, start=f * per_feed):
            item["content"] = f"<p>{texts[n].summary}</p>"
        server.set_feed(f"/feed{f}.xml", chunk, delay_s=delay_s)
        lines += [f"  - url: {server.url(f'/feed{f}.xml')}", f"    name: feed {f}"]
        items += chunk
    feeds_file.write_text("\n".join(lines) + "\n")
    return items
