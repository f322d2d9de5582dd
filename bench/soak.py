"""Soak: the whole pipeline for a long stretch at a steady feed rate; nothing lost, memory flat.

Runs the real thing, `newsflow run --workers 2` (connector + two workers), against the shared local stack,
isolated by :mod:`bench._live` (own topic prefix, Faust app id, index, alias, data dir). A local feed server
serves ``--feeds`` feeds; every second ``--rate`` new items are added, round-robin over the feeds. Every item
carries a search token, so the bench sees when it becomes searchable.

Reports:
- throughput (items generated, published, indexed per second over the run);
- p50/p99 lag from fetch (``ingested_at``) to found by a search on the alias;
- resident memory (RSS) of every process of the run (`run`, each child, each child's pool processes) once a
  minute, and its least-squares slope in MB/min over the whole run and over its second half; with
  ``--store rocksdb://`` also each worker's RocksDB memtables + block cache (``newsflow_table_*_bytes``) and its RSS
  without them;
- counts that must reconcile exactly: published on news.raw = indexed documents + dedupe `duplicate` and
  `update` decisions (they add no document) + letters on news.dlq; and generated items = found by search.

    python bench/soak.py [--minutes 30] [--feeds 500] [--rate 2] [--workers 2] [--store rocksdb://]

Not in CI. Prints one JSON object on its last line; docs/soak.md holds the reported run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench._live import article, es_http, found, isolated_env, percentile, start_run, stop_run  # noqa: E402
from testkit.feedserver import FeedServer  # noqa: E402

_FEED_WINDOW = 30  # items a feed keeps (a real feed lists its newest items only)
_PAGE = 500  # tokens per search


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return sorted(out)


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def _processes(run_pid: int, state_file: Path) -> dict[str, int]:
    """label -> pid for `run`, its children (named as in state.json) and their own children (pool processes)."""
    names: dict[int, str] = {}
    with contextlib.suppress(OSError, ValueError, KeyError):
        names = {c["pid"]: c["name"] for c in json.loads(state_file.read_text())["children"]}
    out = {"run": run_pid}
    for child in _children(run_pid):
        name = names.get(child, f"child-{child}")
        out[name] = child
        for k, grandchild in enumerate(_children(child), 1):
            out[f"{name}/sub{k}"] = grandchild
    return out


def _slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope (MB per minute) of (minute, MB) points."""
    if len(points) < 3:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    den = sum((x - mx) ** 2 for x, _ in points)
    return round(sum((x - mx) * (y - my) for x, y in points) / den, 3) if den else None


def _scrape(port: int) -> dict[str, float]:
    """Sample name{labels} -> value from a child's /metrics."""
    out: dict[str, float] = {}
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    except httpx.HTTPError:
        return out
    for line in text.splitlines():
        m = re.match(r"^(newsflow_[a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def _topic_total(bootstrap: str, topic: str) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        return sum(consumer.end_offsets([TopicPartition(topic, p) for p in parts]).values()) if parts else 0
    finally:
        consumer.close()


def _drop_topics(bootstrap: str, prefix: str) -> None:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        mine = [t for t in admin.list_topics() if t.startswith(prefix)]
        if mine:
            admin.delete_topics(mine)
    finally:
        admin.close()


class _Watcher(threading.Thread):
    """Searches for pending tokens every half second; records fetch->searchable lag."""

    def __init__(self, http: httpx.Client, alias: str) -> None:
        super().__init__(daemon=True)
        self.http, self.alias = http, alias
        self.pending: dict[str, float] = {}  # token -> when it was added to a feed (monotonic)
        self.lags: list[float] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def add(self, token: str) -> None:
        with self.lock:
            self.pending[token] = time.monotonic()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            with self.lock:
                tokens = list(self.pending)
            for i in range(0, len(tokens), _PAGE):
                now = datetime.now(UTC)
                try:
                    hits = found(self.http, self.alias, set(tokens[i:i + _PAGE]))
                except httpx.HTTPError:
                    continue
                with self.lock:
                    for token, ingested in hits.items():
                        if self.pending.pop(token, None) is not None:
                            self.lags.append((now - datetime.fromisoformat(ingested)).total_seconds())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--feeds", type=int, default=500)
    parser.add_argument("--rate", type=float, default=2.0, help="new items per second, over all feeds")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--interval", type=int, default=10, help="configured poll interval of each feed (s)")
    parser.add_argument("--drain-s", type=float, default=300, help="how long to wait for the last items")
    parser.add_argument("--store", default=None,
                        help="pipeline.store for the workers (default: the settings' own, memory://)")
    args = parser.parse_args()

    run_id = uuid.uuid4().hex[:8]
    work = Path(tempfile.mkdtemp(prefix=f"newsflow-soak-{run_id}-"))
    env = isolated_env("soak", run_id, work, **({"NEWSFLOW_PIPELINE_STORE": args.store} if args.store else {}))
    alias, prefix = env["NEWSFLOW_ES_ALIAS"], env["NEWSFLOW_KAFKA_TOPIC_PREFIX"]
    bootstrap = env.get("NEWSFLOW_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    base_port = int(env.get("NEWSFLOW_PIPELINE_WEB_PORT", "6066"))
    state_file = work / "data" / "run" / "state.json"

    server = FeedServer().start()
    paths = [f"/feed{k}.xml" for k in range(args.feeds)]
    items: dict[str, list[dict[str, Any]]] = {p: [] for p in paths}
    for path in paths:
        server.set_feed(path, [])
    feeds = work / "feeds.yaml"
    feeds.write_text("feeds:\n" + "".join(
        f"  - url: {server.url(p)}\n    name: Soak {k}\n    interval: {args.interval}\n    fetch_article: false\n"
        for k, p in enumerate(paths)))
    run_log = (work / "run.log").open("wb")
    proc = start_run(env, feeds, run_log, workers=args.workers)
    http = es_http(env)
    watcher = _Watcher(http, alias)
    rss: dict[str, list[tuple[float, float]]] = {}
    loads: list[list[float]] = []
    generated = 0
    metrics: dict[str, float] = {}
    restarts: dict[str, int] = {}
    try:
        # Warm-up: workers join their groups and load spaCy before the clock starts.
        warm = article(10**6, run_id)
        server.append_items(paths[0], [warm])
        deadline = time.monotonic() + 300
        while not found(http, alias, {str(warm["token"])}):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"pipeline did not index the warm-up item; see {work / 'run.log'}")
            time.sleep(0.5)
        watcher.start()

        start = time.monotonic()
        end = start + args.minutes * 60
        next_sample = start
        owed = 0.0
        while time.monotonic() < end:
            tick = time.monotonic()
            if tick >= next_sample:  # once a minute: RSS of every process, machine load
                minute = round((tick - start) / 60, 2)
                for label, pid in _processes(proc.pid, state_file).items():
                    mb = _rss_mb(pid)
                    if mb is not None:
                        rss.setdefault(label, []).append((minute, mb))
                for i in range(args.workers):  # the RocksDB tables' share of each worker's RSS (rocksdb:// only)
                    scraped = _scrape(base_port + i)
                    tables = sum(scraped.get(f"newsflow_table_{k}_bytes", 0.0) for k in ("memtable", "block_cache"))
                    worker = f"worker-{i + 1}"
                    if tables and rss.get(worker) and rss[worker][-1][0] == minute:
                        rss.setdefault(f"{worker} tables", []).append((minute, round(tables / 2**20, 1)))
                        rss.setdefault(f"{worker} without tables", []).append(
                            (minute, round(rss[worker][-1][1] - tables / 2**20, 1)))
                loads.append([round(x, 2) for x in os.getloadavg()])
                print(json.dumps({"minute": minute, "generated": generated, "pending": len(watcher.pending),
                                  "found": len(watcher.lags), "load": loads[-1],
                                  "rss_mb": {k: v[-1][1] for k, v in rss.items()}}), flush=True)
                next_sample += 60
            if proc.poll() is not None:
                raise SystemExit(f"newsflow run exited ({proc.returncode}); see {work / 'run.log'}")
            owed += args.rate
            while owed >= 1:
                owed -= 1
                path = paths[generated % len(paths)]
                item = article(generated, run_id)
                items[path] = [*items[path], item][-_FEED_WINDOW:]
                server.set_feed(path, items[path])
                watcher.add(str(item["token"]))
                generated += 1
            time.sleep(max(0.0, tick + 1 - time.monotonic()))
        elapsed = time.monotonic() - start

        drain_end = time.monotonic() + args.drain_s
        while watcher.pending and time.monotonic() < drain_end:
            time.sleep(1)
        time.sleep(5)  # the last bulk's offsets and counters settle
        for child in json.loads(state_file.read_text())["children"]:
            restarts[child["name"]] = child["restarts"]
        for i in range(args.workers):
            for key, value in _scrape(base_port + i).items():
                metrics[key] = metrics.get(key, 0.0) + value
        published = _topic_total(bootstrap, f"{prefix}news.raw")
        dead = _topic_total(bootstrap, f"{prefix}news.dlq")
        http.post(f"/{alias}/_refresh")
        indexed = int(http.get(f"/{alias}/_count").json()["count"])
    finally:
        watcher.stop.set()
        stop_run(proc)
        run_log.close()
        server.stop()

    def decisions(action: str) -> int:
        return int(metrics.get(f'newsflow_dedupe_decisions_total{{decision="{action}"}}', 0))

    duplicates, updates = decisions("duplicate"), decisions("update")
    lags = sorted(watcher.lags)
    found_items = len(lags)
    memory = {
        label: {
            "first_mb": pts[0][1], "last_mb": pts[-1][1], "max_mb": max(y for _, y in pts),
            "slope_mb_per_min": _slope(pts),
            "slope_second_half_mb_per_min": _slope([p for p in pts if p[0] >= args.minutes / 2]),
        }
        for label, pts in sorted(rss.items())
    }
    result = {
        "bench": "soak",
        "minutes": round(elapsed / 60, 2),
        "feeds": args.feeds,
        "rate_items_per_s": args.rate,
        "workers": args.workers,
        "store": args.store or "settings default",
        "generated": generated + 1,  # + the warm-up item
        "found_by_search": found_items + 1,
        "missing": len(watcher.pending),
        "published": published,
        "indexed": indexed,
        "duplicates": duplicates,
        "updates": updates,
        "dead_lettered": dead,
        "reconciled": published == indexed + duplicates + updates + dead and not watcher.pending,
        "throughput_indexed_per_s": round(indexed / elapsed, 2) if elapsed else None,
        "lag_p50_s": percentile(lags, 0.50),
        "lag_p99_s": percentile(lags, 0.99),
        "lag_max_s": round(lags[-1], 3) if lags else None,
        "child_restarts": restarts,
        "load_min_avg_max": [min(x[0] for x in loads), round(sum(x[0] for x in loads) / len(loads), 2),
                             max(x[0] for x in loads)] if loads else None,
        "rss": memory,
        "rss_by_minute": {label: [y for _, y in pts] for label, pts in sorted(rss.items())},
        "work_dir": str(work),
    }
    try:
        http.delete(f"/{alias}-*")
        http.delete(f"/{alias}*")
        _drop_topics(bootstrap, prefix)
    except Exception as exc:  # cleanup only; the figures above stand
        print(f"cleanup failed: {exc}", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
