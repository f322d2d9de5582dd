"""End-to-end latency: from the connector fetching an item to `newsflow search` finding it.

Runs the real thing: `newsflow run --workers 2` (connector + two workers) against the running local stack,
with its own topic prefix, Faust app id, index and data dir, and a local feed server whose feed gains a few
new items every round. For each item it measures ``found - ingested_at``: the moment a search on the read
alias first returns it, minus the time the connector fetched it (``ingested_at``, set at fetch).

    python bench/e2e_latency.py [--items 100] [--per-round 5]

Target (issue 5): p99 <= 3 s, p50 <= 1.5 s. Prints one JSON object on its last line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.feedserver import FeedServer

_WORDS = tuple(
    " ".join([
        "minister parliament talks ceasefire energy market inflation election coalition budget court ruling ",
        "summit delegation sanctions exports harvest drought floods storm rescue hospital vaccine research ",
        "university students strike union wages pension reform border migrants police investigation trial ",
        "verdict company shares profits losses merger startup investors bank rates currency oil ",
        "gas pipeline railway airport tourism festival museum exhibition football league championship coach ",
        "transfer ",
    ]).split()
)


def _article(i: int, run_id: str) -> dict[str, object]:
    rng = random.Random(f"{run_id}-{i}")
    paragraphs = [
        " ".join(rng.choice(_WORDS) for _ in range(rng.randint(40, 70))).capitalize() + "."
        for _ in range(rng.randint(4, 8))
    ]
    token = f"latency{run_id}x{i}"
    return {
        "guid": f"https://bench.example.com/{run_id}/{i}",
        "link": f"https://bench.example.com/{run_id}/{i}",
        "title": f"Bench story {i} {token}",
        "summary": f"Story {i} of the latency run.",
        "content": "".join(f"<p>{p}</p>" for p in paragraphs) + f"<p>Reference {token}.</p>",
        "published": datetime.now(UTC) - timedelta(seconds=1),
        "author": "Bench Desk",
        "category": "Bench",
        "token": token,
    }


def _found(http: httpx.Client, alias: str, tokens: set[str]) -> dict[str, str]:
    """token -> ingested_at, for the tokens a search on the alias finds now."""
    resp = http.post(f"/{alias}/_search", json={
        "size": len(tokens) * 2,
        "query": {"terms": {"title": sorted(tokens)}},
        "_source": ["title", "ingested_at"],
    })
    if resp.status_code != 200:
        return {}
    out = {}
    for hit in resp.json()["hits"]["hits"]:
        for token in tokens:
            if token in hit["_source"]["title"]:
                out[token] = hit["_source"]["ingested_at"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--per-round", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    run_id = uuid.uuid4().hex[:8]
    work = Path(tempfile.mkdtemp(prefix=f"newsflow-e2e-{run_id}-"))
    env = {
        **os.environ,
        "NEWSFLOW_DATA_DIR": str(work / "data"),
        "NEWSFLOW_KAFKA_TOPIC_PREFIX": f"e2e-{run_id}.",
        "NEWSFLOW_PIPELINE_APP_ID": f"e2e-{run_id}",
        "NEWSFLOW_ES_INDEX_PREFIX": f"e2e-{run_id}",
        "NEWSFLOW_ES_ALIAS": f"e2e-{run_id}",
        "NEWSFLOW_ALLOW_PRIVATE_HOSTS": "1",
        "NEWSFLOW_POLL_MIN_INTERVAL_S": "1",
        "NEWSFLOW_LOG_FORMAT": "json",
    }
    alias = env["NEWSFLOW_ES_ALIAS"]
    server = FeedServer().start()
    server.set_feed("/feed.xml", [])
    feeds = work / "feeds.yaml"
    feeds.write_text(f"feeds:\n  - url: {server.url('/feed.xml')}\n    name: Bench\n    interval: 1\n"
                     f"    fetch_article: false\n")
    run_log = (work / "run.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "run", "--feeds", str(feeds), "--workers", str(args.workers),
         "--progress-every", "5"],
        env=env, stdout=run_log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    http = httpx.Client(base_url=env.get("NEWSFLOW_ES_URL", "http://127.0.0.1:9200"), timeout=5)
    latencies: list[float] = []
    missing: list[str] = []
    try:
        # Warm-up: workers join their groups and load spaCy before the clock starts.
        warm = _article(10**6, run_id)  # a token without "-": the analyzer would split it
        server.append_items("/feed.xml", [warm])
        deadline = time.monotonic() + 300
        while not _found(http, alias, {str(warm["token"])}):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"pipeline did not index the warm-up item; see {work / 'run.log'}")
            time.sleep(0.5)

        for start in range(0, args.items, args.per_round):
            batch = [_article(i, run_id) for i in range(start, min(start + args.per_round, args.items))]
            pending = {str(a["token"]) for a in batch}
            server.append_items("/feed.xml", batch)
            deadline = time.monotonic() + 30
            while pending and time.monotonic() < deadline:
                now = datetime.now(UTC)
                for token, ingested in _found(http, alias, pending).items():
                    latencies.append((now - datetime.fromisoformat(ingested)).total_seconds())
                    pending.discard(token)
                time.sleep(0.05)
            missing.extend(sorted(pending))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
        run_log.close()
        server.stop()
        http.delete(f"/{alias}-*")

    latencies.sort()

    def pct(p: float) -> float | None:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 3) if latencies else None

    result = {
        "bench": "e2e_latency",
        "items": args.items,
        "found": len(latencies),
        "missing": len(missing),
        "workers": args.workers,
        "p50_s": pct(0.50),
        "p90_s": pct(0.90),
        "p99_s": pct(0.99),
        "max_s": round(latencies[-1], 3) if latencies else None,
        "target": {"p50_s": 1.5, "p99_s": 3.0},
        "log": str(work / "run.log"),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
