"""Shared helpers for the benchmarks that run the real `newsflow run` on the shared local stack.

Each run isolates itself with its own topic prefix, Faust app id, index prefix, alias and data dir, so it
never touches another run's state; :func:`stop_run` stops it and :func:`drop_index` removes its indices.
Used by ``bench/e2e_latency.py`` and ``bench/soak.py``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import httpx

from testkit.worker import isolated_env as testkit_isolated_env

ROOT = Path(__file__).resolve().parents[1]

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


def isolated_env(name: str, run_id: str, work: Path, **extra: str) -> dict[str, str]:
    """The environment of a `newsflow run` that shares the stack but nothing else (topics, group, index), polling
    the loopback feed server as often as it likes."""
    return testkit_isolated_env(f"{name}-{run_id}", work / "data", **{
        "NEWSFLOW_ALLOW_PRIVATE_HOSTS": "1", "NEWSFLOW_POLL_MIN_INTERVAL_S": "1", **extra})


def article(i: int, run_id: str, *, host: str = "https://bench.example.com") -> dict[str, object]:
    """A distinct 200-500 word item whose title carries a searchable ``token`` (no "-": analyzers split it)."""
    rng = random.Random(f"{run_id}-{i}")
    paragraphs = [
        " ".join(rng.choice(_WORDS) for _ in range(rng.randint(40, 70))).capitalize() + "."
        for _ in range(rng.randint(4, 8))
    ]
    token = f"latency{run_id}x{i}"
    return {
        "guid": f"{host}/{run_id}/{i}",
        "link": f"{host}/{run_id}/{i}",
        "title": f"Bench story {i} {token}",
        "summary": f"Story {i} of the benchmark run.",
        "content": "".join(f"<p>{p}</p>" for p in paragraphs) + f"<p>Reference {token}.</p>",
        "published": datetime.now(UTC) - timedelta(seconds=1),
        "author": "Bench Desk",
        "category": "Bench",
        "token": token,
    }


def es_http(env: dict[str, str]) -> httpx.Client:
    return httpx.Client(base_url=env.get("NEWSFLOW_ES_URL", "http://127.0.0.1:9200"), timeout=10)


def found(http: httpx.Client, alias: str, tokens: set[str]) -> dict[str, str]:
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
        for word in hit["_source"]["title"].split():
            if word in tokens:
                out[word] = hit["_source"]["ingested_at"]
    return out


def start_run(env: dict[str, str], feeds: Path, log: IO[bytes], *, workers: int = 2) -> subprocess.Popen[bytes]:
    """`newsflow run --workers N` in its own session (its children are in that process group)."""
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "run", "--feeds", str(feeds), "--workers", str(workers),
         "--progress-every", "5"],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )


def stop_run(proc: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    """Ctrl-C, as an operator would: `run` stops the connector, then the workers; SIGKILL after ``timeout_s``."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def percentile(sorted_values: list[float], p: float) -> float | None:
    if not sorted_values:
        return None
    return round(sorted_values[min(len(sorted_values) - 1, int(p * len(sorted_values)))], 3)
