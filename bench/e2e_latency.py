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
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench._live import article, es_http, found, isolated_env, percentile, start_run, stop_run  # noqa: E402
from testkit.feedserver import FeedServer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--per-round", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    run_id = uuid.uuid4().hex[:8]
    work = Path(tempfile.mkdtemp(prefix=f"newsflow-e2e-{run_id}-"))
    env = isolated_env("e2e", run_id, work)
    alias = env["NEWSFLOW_ES_ALIAS"]
    server = FeedServer().start()
    server.set_feed("/feed.xml", [])
    feeds = work / "feeds.yaml"
    feeds.write_text(f"feeds:\n  - url: {server.url('/feed.xml')}\n    name: Bench\n    interval: 1\n"
                     f"    fetch_article: false\n")
    run_log = (work / "run.log").open("wb")
    proc = start_run(env, feeds, run_log, workers=args.workers)
    http = es_http(env)
    latencies: list[float] = []
    missing: list[str] = []
    try:
        # Warm-up: workers join their groups and load spaCy before the clock starts.
        warm = article(10**6, run_id)  # a token without "-": the analyzer would split it
        server.append_items("/feed.xml", [warm])
        deadline = time.monotonic() + 300
        while not found(http, alias, {str(warm["token"])}):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"pipeline did not index the warm-up item; see {work / 'run.log'}")
            time.sleep(0.5)

        for start in range(0, args.items, args.per_round):
            batch = [article(i, run_id) for i in range(start, min(start + args.per_round, args.items))]
            pending = {str(a["token"]) for a in batch}
            server.append_items("/feed.xml", batch)
            deadline = time.monotonic() + 30
            while pending and time.monotonic() < deadline:
                now = datetime.now(UTC)
                for token, ingested in found(http, alias, pending).items():
                    latencies.append((now - datetime.fromisoformat(ingested)).total_seconds())
                    pending.discard(token)
                time.sleep(0.05)
            missing.extend(sorted(pending))
    finally:
        stop_run(proc)
        run_log.close()
        server.stop()
        http.delete(f"/{alias}-*")

    latencies.sort()

    def pct(p: float) -> float | None:
        return percentile(latencies, p)

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
