"""`newsflow run`: the whole pipeline on one machine, supervised, with a progress line.

Steps, in order:
 1. bring the local stack up when the settings point at it (and remember whether this run started it);
 2. create the topics and the index template;
 3. start N workers (`newsflow worker`) and one connector (`newsflow connector`) as child processes;
 4. every few seconds print progress: items published on news.raw, articles on news.enriched, documents
    searchable in Elasticsearch, and the ingest-to-index lag of the latest documents;
 5. on Ctrl-C / SIGTERM, stop the connector first (it flushes its producer and saves feed state), then the
    workers (they commit offsets), then the stack if step 1 started it.

Children are separate processes so that a crash in one is visible (it is restarted, with a log line) and so
that each worker has its own event loop and process pool, as it would in production.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from kafka import KafkaConsumer
from kafka.errors import KafkaError

from pipeline.logs import get_logger
from pipeline.schemas import ALERTS_TOPIC, ENRICHED_TOPIC, RAW_TOPIC
from pipeline.settings import Settings

__all__ = ["Progress", "run_pipeline"]

log = get_logger(__name__)

_RESTART_LIMIT = 5  # a child that keeps dying is a bug to report, not to hide


@dataclass
class Progress:
    items_published: int = 0
    articles_enriched: int = 0
    documents_indexed: int = 0
    lag_s: float | None = None
    alerts: int = 0  # AlertEvents on news.alerts (rules with the topic channel, such as the demo rule)

    def line(self) -> str:
        lag = "-" if self.lag_s is None else f"{self.lag_s:.1f}s"
        return (f"items published {self.items_published} | articles enriched {self.articles_enriched} | "
                f"searchable {self.documents_indexed} | ingest->index lag {lag} | alerts {self.alerts}")


@dataclass
class _Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        out = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("child did not stop in time; killing it", child=self.name, timeout_s=timeout_s)
            self.proc.kill()
            self.proc.wait()


def _is_local(settings: Settings) -> bool:
    """True when Kafka and Elasticsearch are the ones `newsflow stack` runs on this machine."""
    es = urlsplit(settings.es.url)
    local_hosts = {"127.0.0.1", "localhost"}
    return (
        settings.kafka.bootstrap in (f"127.0.0.1:{settings.stack.kafka_port}", f"localhost:{settings.stack.kafka_port}")
        and es.hostname in local_hosts
        and es.port == settings.stack.es_port
    )


def _topic_total(consumer: KafkaConsumer, topic: str) -> int:
    partitions = consumer.partitions_for_topic(topic) or set()
    from kafka import TopicPartition

    tps = [TopicPartition(topic, p) for p in partitions]
    return sum(consumer.end_offsets(tps).values()) if tps else 0


def read_progress(settings: Settings, consumer: KafkaConsumer, http: httpx.Client) -> Progress:
    """What the pipeline has done so far, from the topics' end offsets and the index itself."""
    progress = Progress()
    try:
        progress.items_published = _topic_total(consumer, settings.kafka.topic(RAW_TOPIC))
        progress.articles_enriched = _topic_total(consumer, settings.kafka.topic(ENRICHED_TOPIC))
        progress.alerts = _topic_total(consumer, settings.kafka.topic(ALERTS_TOPIC))
    except KafkaError as exc:
        log.debug("progress: kafka not answering", error=str(exc))
    try:
        resp = http.get(f"/{settings.es.alias}/_count")
        if resp.status_code == 200:
            progress.documents_indexed = int(resp.json()["count"])
        latest = http.post(f"/{settings.es.alias}/_search", json={
            "size": 20, "sort": [{"indexed_at": "desc"}], "_source": ["ingested_at", "indexed_at"],
        })
        if latest.status_code == 200:
            progress.lag_s = _median_lag([h["_source"] for h in latest.json()["hits"]["hits"]])
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        log.debug("progress: elasticsearch not answering", error=str(exc))
    return progress


def _median_lag(sources: list[dict[str, str]]) -> float | None:
    from datetime import datetime

    lags = sorted(
        (datetime.fromisoformat(s["indexed_at"]) - datetime.fromisoformat(s["ingested_at"])).total_seconds()
        for s in sources
        if s.get("indexed_at") and s.get("ingested_at")
    )
    return lags[len(lags) // 2] if lags else None


def run_pipeline(
    settings: Settings,
    *,
    feeds_file: Path | None = None,
    workers: int = 2,
    echo: Callable[[str], None],
    progress_every_s: float = 5.0,
    stop_event: threading.Event | None = None,
) -> int:
    """Run stack + connector + workers until SIGINT/SIGTERM (or ``stop_event``); return an exit code."""
    from pipeline.index import ensure_index_template, run_with_client
    from pipeline.stack import services, stack_down, stack_up
    from pipeline.topics import ensure_topics

    stop = stop_event or threading.Event()
    started_stack = False
    # Servers that already answer are used as they are, whoever started them.
    if _is_local(settings) and not all(svc.ready() for svc in services(settings)):
        result = stack_up(settings)
        started_stack = any(v.startswith("started") for v in result.values())
        for name, what in result.items():
            echo(f"{name}: {what}")
    ensure_topics(settings)
    run_with_client(settings.es, lambda es: ensure_index_template(es, settings))

    exe = [sys.executable, "-m", "pipeline.cli"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    logs = settings.data_path / "logs"
    children = [
        _Child(f"worker-{i + 1}", [*exe, "worker", "--web-port", str(settings.pipeline.web_port + i)], env,
               logs / f"worker-{i + 1}.log")
        for i in range(workers)
    ]
    connector_argv = [*exe, "connector"] + (["--feeds", str(feeds_file)] if feeds_file else [])
    children.append(_Child("connector", connector_argv, env, logs / "connector.log"))

    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    for child in children:
        child.start()
        echo(f"{child.name}: started (pid {child.proc.pid if child.proc else '?'}), log {child.log_path}")
    echo(f"search with:  newsflow search 'NATO'   (Elasticsearch alias '{settings.es.alias}' at {settings.es.url})")
    echo("Ctrl-C stops the connector, then the workers" + (", then the local stack." if started_stack else "."))
    code = 0
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka.servers, client_id="newsflow-run-progress")
    http = httpx.Client(base_url=settings.es.url, timeout=5.0)
    try:
        while not stop.wait(progress_every_s):
            for child in children:
                if not child.alive():
                    rc = child.proc.returncode if child.proc else None
                    if child.restarts >= _RESTART_LIMIT:
                        echo(f"{child.name} keeps exiting (rc {rc}); giving up, see {child.log_path}")
                        stop.set()
                        code = 1
                        break
                    child.restarts += 1
                    log.warning("child exited; restarting", child=child.name, rc=rc, log_file=str(child.log_path))
                    child.start()
            echo(read_progress(settings, consumer, http).line())
    finally:
        echo("stopping: connector first (flush, save feed state), then workers (commit offsets)")
        for child in sorted(children, key=lambda c: c.name != "connector"):
            child.stop(timeout_s=60)
        consumer.close()
        http.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if started_stack:
            for name, what in stack_down(settings).items():
                echo(f"{name}: {what}")
    return code
