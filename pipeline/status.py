"""``newsflow status``: one look at every part of the pipeline, from settings only (local or remote servers).

Parts and where each figure comes from:

* ``kafka``, ``elasticsearch``: asked directly at ``kafka.bootstrap`` / ``es.url``; ``stack``: the local
  servers' pid files, reported only when the settings point at the local stack.
* ``run``: ``<data_dir>/run/state.json`` (:mod:`pipeline.runstate`); each child's ``/ready`` is probed and the
  ``newsflow_*_total`` counters of its ``/metrics`` summed.
* ``consumer_lag``: committed offsets of the group ``pipeline.app_id`` against the end offsets, per partition of
  each topic the workers consume (a partition never committed counts from its first record).
* ``throughput``: articles per minute per stage, the records each stage appended to its output topic in the
  last 60 s (end offset minus ``offsets_for_times(now - 60 s)``); ``index``: documents whose ``indexed_at`` is
  in the last 60 s.
* ``feeds``: the connector's feed state (:mod:`connectors.state`) in ``<data_dir>/feeds``.
* ``index``: documents behind the read alias; ``dead_letters``: news.dlq by stage and kind; ``alerts``: entries of the
  ``alerts-sent`` changelog (every rule, every channel) and records on news.alerts.

Down (exit 1): Kafka or Elasticsearch unreachable, a stale run state (its
``newsflow run`` is gone), or a child of the run that is dead, failed or not ready. No run state at all is
reported as ``absent`` and is not "down": the workers may be deployed elsewhere. Failing feeds are reported,
not counted as down (a feed's outage is not the pipeline's).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from elasticsearch import ApiError, NotFoundError, TransportError
from kafka.admin import KafkaAdminClient
from kafka.errors import CoordinatorNotAvailableError, KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from connectors.state import StateStore
from pipeline.errors import NewsflowError
from pipeline.index import make_client
from pipeline.logs import get_logger
from pipeline.runstate import pid_alive, read_run_state, uptime_s
from pipeline.schemas import ALERTS_TOPIC, CLEAN_TOPIC, DEDUPED_TOPIC, ENRICHED_TOPIC, RAW_TOPIC
from pipeline.security import kafka_security_config
from pipeline.settings import Settings
from pipeline.topic_reader import TopicReader

__all__ = ["WINDOW_S", "Status", "collect_status"]

log = get_logger(__name__)

WINDOW_S = 60  # "articles per minute": the records of the last minute
_PROBE_TIMEOUT_S = 2.0
# A status answers in seconds: a broker that has not answered in this long is reported down (clients default to 30 s).
_CONNECT_TIMEOUT_MS = 8_000

# stage -> the topic it writes (index writes Elasticsearch, counted there)
STAGE_OUTPUTS = {"connector": RAW_TOPIC, "clean": CLEAN_TOPIC, "dedupe": DEDUPED_TOPIC, "enrich": ENRICHED_TOPIC}
# The topics the workers consume as the group pipeline.app_id.
CONSUMED = (RAW_TOPIC, CLEAN_TOPIC, DEDUPED_TOPIC, ENRICHED_TOPIC)


@dataclass
class Status:
    checked_at: datetime
    parts: dict[str, dict[str, Any]] = field(default_factory=dict)
    down: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.down

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "down": self.down, "checked_at": self.checked_at.isoformat(), **self.parts}


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def _guard(status: Status, name: str, fn: Callable[[], dict[str, Any]], *, down_on_error: bool = True) -> None:
    """One part: its figures, or its error (then it is down when it needs a server that did not answer)."""
    try:
        status.parts[name] = fn()
    except (NewsflowError, KafkaError, ApiError, TransportError, OSError) as exc:
        log.debug("status part failed", part=name, error=str(exc)[:300])
        status.parts[name] = {"error": _error(exc)}
        if down_on_error:
            status.down.append(name)


# -- parts ----------------------------------------------------------------------------------------------
def _stack(settings: Settings) -> dict[str, Any]:
    from pipeline.runner import _is_local
    from pipeline.stack import services

    if not _is_local(settings):
        return {"local": False}
    return {"local": True, **{s.name: s.as_dict() for s in (svc.status() for svc in services(settings))}}


def _kafka(settings: Settings) -> dict[str, Any]:
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka.servers, client_id=f"{settings.kafka.client_id}-status",
                             request_timeout_ms=10_000,
                             bootstrap_timeout_ms=_CONNECT_TIMEOUT_MS, **kafka_security_config(settings.kafka))
    try:
        cluster = admin.describe_cluster()
        brokers = len(cluster.get("brokers", [])) if isinstance(cluster, dict) else None
    finally:
        admin.close()
    return {"bootstrap": settings.kafka.bootstrap, "up": True, "brokers": brokers}


def _elasticsearch(settings: Settings) -> dict[str, Any]:
    es = make_client(settings.es)
    try:
        health = es.cluster.health()
        try:
            documents: int | None = int(es.count(index=settings.es.alias)["count"])
        except NotFoundError:  # no alias yet: nothing indexed
            documents = None
        since = f"now-{WINDOW_S}s"
        indexed = (int(es.count(index=settings.es.alias, query={"range": {"indexed_at": {"gte": since}}})["count"])
                   if documents is not None else 0)
    finally:
        es.close()
    return {"url": settings.es.url, "up": True, "cluster_status": health["status"], "alias": settings.es.alias,
            "documents": documents, "indexed_last_minute": indexed}


def _probe(http: httpx.Client, port: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        resp = http.get(f"http://127.0.0.1:{port}/ready")
        out["ready"] = resp.status_code == 200
        try:
            out["ready_detail"] = resp.json()
        except ValueError:
            out["ready_detail"] = resp.text[:200]
    except httpx.HTTPError as exc:
        out["ready"] = False
        out["ready_detail"] = _error(exc)
        return out
    try:
        resp = http.get(f"http://127.0.0.1:{port}/metrics")
        if resp.status_code == 200:
            out["metrics"] = _metric_totals(resp.text)
    except httpx.HTTPError:
        pass  # figures are a bonus; readiness above says whether the child is down
    return out


def _metric_totals(text: str) -> dict[str, float]:
    """The ``newsflow_*_total`` counters of a /metrics page, summed over their labels."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("newsflow_") and sample.name.endswith("_total"):
                totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


def _run(settings: Settings, now: datetime) -> tuple[dict[str, Any], bool]:
    """The run's processes; second value True when a part of it is down."""
    state = read_run_state(settings)
    if state is None:
        return {"state": "absent"}, False
    if not pid_alive(state.pid):
        return {"state": "stale", "pid": state.pid,
                "note": f"newsflow run (pid {state.pid}) is gone; its state file is stale"}, True
    children = []
    down = False
    with httpx.Client(timeout=_PROBE_TIMEOUT_S) as http:
        for child in state.children:
            alive = pid_alive(child.pid)
            row: dict[str, Any] = {"name": child.name, "pid": child.pid, "alive": alive, "port": child.port,
                                   "state": child.state, "uptime_s": round(uptime_s(child.started_at, now), 1),
                                   "restarts": child.restarts, "last_error": child.last_error, "log": child.log}
            row.update(_probe(http, child.port) if alive else {"ready": False, "ready_detail": "process not alive"})
            down = down or not row["ready"] or child.state == "failed"
            children.append(row)
    return {"state": "running", "pid": state.pid, "started_at": state.started_at.isoformat(),
            "uptime_s": round(uptime_s(state.started_at, now), 1), "children": children}, down


def _lag(settings: Settings, reader: TopicReader) -> dict[str, Any]:
    group = settings.pipeline.app_id
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka.servers, client_id=f"{settings.kafka.client_id}-status",
                             request_timeout_ms=10_000,
                             bootstrap_timeout_ms=_CONNECT_TIMEOUT_MS, **kafka_security_config(settings.kafka))
    try:
        for attempt in range(3):
            try:
                committed: dict[TopicPartition, OffsetAndMetadata] = admin.list_group_offsets(group).get(group, {})
                break
            except CoordinatorNotAvailableError:
                # Kafka creates __consumer_offsets on first use: the coordinator is found a moment later.
                if attempt == 2:
                    raise
                time.sleep(1.0)
    finally:
        admin.close()
    topics: dict[str, Any] = {}
    total = 0
    for name in CONSUMED:
        topic = settings.kafka.topic(name)
        tps = reader.partitions(topic)
        if not tps:
            continue
        ends, starts = reader.end_offsets(tps), reader.beginning_offsets(tps)
        rows = []
        topic_lag = 0
        for tp in tps:
            meta = committed.get(tp)
            offset = meta.offset if meta is not None else None  # None or -1: never committed
            offset = offset if offset is not None and offset >= 0 else None
            lag = ends[tp] - max(offset if offset is not None else starts[tp], starts[tp])
            rows.append({"partition": tp.partition, "committed": offset, "end": ends[tp], "lag": lag})
            topic_lag += lag
        total += topic_lag
        topics[topic] = {"lag": topic_lag, "partitions": rows}
    return {"group": group, "total": total, "topics": topics}


def _throughput(settings: Settings, reader: TopicReader, now: datetime, es_part: dict[str, Any]) -> dict[str, Any]:
    since = now - timedelta(seconds=WINDOW_S)
    per_minute: dict[str, int | None] = {
        stage: reader.count_since(settings.kafka.topic(topic), since) for stage, topic in STAGE_OUTPUTS.items()
    }
    per_minute["index"] = es_part.get("indexed_last_minute")
    return {"window_s": WINDOW_S, "per_minute": per_minute}


def _feeds(settings: Settings) -> dict[str, Any]:
    directory = settings.data_path / "feeds"
    states = StateStore(directory).all() if directory.exists() else []
    rows = []
    for st in states:
        rows.append({"url": st.url, "title": st.title, "health": st.health, "error_count": st.error_count,
                     "last_error": st.last_error, "last_error_kind": st.last_error_kind,
                     "last_error_at": st.last_error_at and st.last_error_at.isoformat(),
                     "last_success_at": st.last_success_at and st.last_success_at.isoformat(),
                     "items_published": st.items_published})
    return {"total": len(rows), "ok": sum(r["health"] == "ok" for r in rows),
            "failing": sum(r["health"] == "failing" for r in rows), "feeds": rows}


def collect_status(settings: Settings, *, now: datetime | None = None) -> Status:
    """Every part's figures; parts that need a server that does not answer carry ``error`` and are down."""
    from pipeline.dlq_tools import dead_letter_counts

    now = now or datetime.now(UTC)
    status = Status(checked_at=now)
    # Informative: whether Kafka and Elasticsearch are down is decided by asking them, below (a local server
    # started by other means, or from another data dir, serves just as well).
    _guard(status, "stack", lambda: _stack(settings), down_on_error=False)
    _guard(status, "kafka", lambda: _kafka(settings))
    _guard(status, "elasticsearch", lambda: _elasticsearch(settings))

    def run() -> dict[str, Any]:
        part, down = _run(settings, now)
        if down:
            status.down.append("run")
        return part

    _guard(status, "run", run)
    if "error" in status.parts["kafka"]:
        for name in ("consumer_lag", "throughput", "dead_letters", "alerts"):
            status.parts[name] = {"error": "Kafka unreachable"}
    else:
        with TopicReader(settings, "status") as reader:
            _guard(status, "consumer_lag", lambda: _lag(settings, reader))
            _guard(status, "throughput", lambda: _throughput(settings, reader, now, status.parts["elasticsearch"]))
            _guard(status, "dead_letters", lambda: dead_letter_counts(reader, settings))
            _guard(status, "alerts", lambda: _alerts(settings, reader))
    _guard(status, "feeds", lambda: _feeds(settings), down_on_error=False)
    return status


def _alerts(settings: Settings, reader: TopicReader) -> dict[str, int]:
    """Alerts fired by every rule on every channel: one ``alerts-sent`` entry per (rule, story), on the broker
    (what ``newsflow alerts list`` reads); ``on_topic``: AlertEvents on news.alerts (rules with the topic channel)."""
    from pipeline.alerts.stats import sent_changelog

    return {"sent": reader.count(sent_changelog(settings)) or 0,
            "on_topic": reader.count(settings.kafka.topic(ALERTS_TOPIC)) or 0}
