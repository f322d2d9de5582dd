"""Connector throughput: N feeds x M items from the local feed server (own process) into the real Kafka.

    python bench/connector_throughput.py [--feeds 1000] [--items 50] [--concurrency 100]

Three rounds against one server, one Connector, one topic (unique prefix):
  1. cold:  every feed is new -> fetch, parse, publish every item, wait for acks, save state;
  2. 304:   nothing changed -> conditional GET answered 304 (no parse, no publish);
  3. new:   every feed gained 2 items -> fetch, parse, skip 50 seen, publish 2.
The server runs in a child process (it is Python too and would otherwise share the event loop's core).
All feeds are on one host (127.0.0.1), so poll.per_host is raised (--per-host, default 8) for the run:
more connections to one host cost more CPU in httpcore's pool than they gain on a local server.
Prints one JSON object on its last line. Needs the local stack (`newsflow stack up`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kafka import KafkaConsumer, TopicPartition  # noqa: E402

from connectors import Connector, FeedSpec  # noqa: E402
from pipeline.present import poll_summary  # noqa: E402
from pipeline.schemas import RAW_TOPIC  # noqa: E402
from pipeline.settings import load_settings  # noqa: E402


def serve(n_feeds: int, n_items: int, ready: mp.Queue, commands: mp.Queue) -> None:
    from testkit.feedserver import FeedServer, make_items

    with FeedServer() as server:
        for f in range(n_feeds):
            server.set_feed(f"/feed/{f}.xml", make_items(n_items, prefix=f"f{f}"), title=f"Feed {f}")
        ready.put(server.base_url)
        while True:
            cmd = commands.get()
            if cmd == "stop":
                break
            if cmd == "append":
                for f in range(n_feeds):
                    server.append_items(f"/feed/{f}.xml", make_items(2, start=n_items, prefix=f"f{f}"))
                ready.put(server.total_hits())


def topic_size(bootstrap: list[str], topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        return sum(consumer.end_offsets(parts).values())
    finally:
        consumer.close()


async def main() -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--feeds", type=int, default=1000)
    ap.add_argument("--items", type=int, default=50)
    ap.add_argument("--concurrency", type=int, default=100)
    ap.add_argument("--per-host", type=int, default=8, help="all feeds share one host; see the module docstring")
    ap.add_argument("--parse-processes", type=int, default=1, help="poll.parse_processes (0: parse in a thread)")
    args = ap.parse_args()

    ready: mp.Queue = mp.Queue()
    commands: mp.Queue = mp.Queue()
    proc = mp.get_context("fork").Process(target=serve, args=(args.feeds, args.items, ready, commands), daemon=True)
    proc.start()
    base = ready.get(timeout=120)
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    data_dir = tempfile.mkdtemp(prefix="newsflow-bench-")
    settings = load_settings(environ={
        "NEWSFLOW_DATA_DIR": data_dir, "NEWSFLOW_KAFKA_TOPIC_PREFIX": prefix, "NEWSFLOW_ALLOW_PRIVATE_HOSTS": "1",
        "NEWSFLOW_POLL_CONCURRENCY": str(args.concurrency), "NEWSFLOW_POLL_PER_HOST": str(args.per_host),
        "NEWSFLOW_POLL_PARSE_PROCESSES": str(args.parse_processes),
        "NEWSFLOW_POLL_FETCH_ARTICLE": "0", "NEWSFLOW_POLL_TIMEOUT_S": "30",
        **{k: v for k, v in os.environ.items() if k in ("NEWSFLOW_KAFKA_BOOTSTRAP",)},
    })
    specs = [FeedSpec(url=f"{base}/feed/{f}.xml") for f in range(args.feeds)]
    rounds = {}
    try:
        async with Connector(settings, specs=specs) as connector:
            for name in ("cold", "not_modified", "new_items"):
                if name == "new_items":
                    commands.put("append")
                    ready.get(timeout=120)
                started, cpu = time.perf_counter(), time.process_time()
                summary = await connector.poll_once()
                took, cpu = time.perf_counter() - started, time.process_time() - cpu
                rounds[name] = {
                    "took_s": round(took, 2),
                    "polls_per_s": round(args.feeds / took, 1),
                    "items_published": summary.items_published,
                    "items_per_s": round(summary.items_published / took, 1),
                    "feeds_failed": summary.feeds_failed,
                    "not_modified": summary.feeds_not_modified,
                    # CPU of the connector process alone (not the parse worker, broker or feed server):
                    # what one core could sustain if nothing else ran on it.
                    "connector_cpu_s": round(cpu, 2),
                }
                print(f"{name}: {poll_summary(summary)}", file=sys.stderr)
    finally:
        commands.put("stop")
        proc.join(timeout=10)
    on_topic = topic_size(settings.kafka.servers, settings.kafka.topic(RAW_TOPIC))
    expected = args.feeds * (args.items + 2)
    return {
        "bench": "connector_throughput",
        "feeds": args.feeds,
        "items_per_feed": args.items,
        "concurrency": args.concurrency,
        "per_host": args.per_host,
        "parse_processes": args.parse_processes,
        "cores": os.cpu_count(),
        "cold_polls_per_s": rounds["cold"]["polls_per_s"],
        "cold_items_per_s": rounds["cold"]["items_per_s"],
        "not_modified_polls_per_s": rounds["not_modified"]["polls_per_s"],
        "new_items_polls_per_s": rounds["new_items"]["polls_per_s"],
        "messages_on_topic": on_topic,
        "exactly_once": on_topic == expected,
        "rounds": rounds,
        "note": "2 shared cores: Kafka broker, Elasticsearch, the feed server process and other work run alongside",
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
