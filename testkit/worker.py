"""`newsflow worker` in a child process for the integration tests: its environment (own topics, group, data dir),
its lifecycle (start, SIGKILL, stop), where a stalled group stands, and its /metrics; the isolated environment of
any `newsflow` child process a test or a benchmark starts on the shared stack."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families

from pipeline.settings import Settings

__all__ = ["WorkerProcess", "alerts_worker_env", "free_port", "group_progress", "isolated_env", "scrape",
           "worker_env"]


class WorkerProcess:
    """`newsflow worker` in a subprocess with per-test environment; its log goes to a file in tmp."""

    def __init__(self, env: dict[str, str], name: str, log_dir: Path) -> None:
        self.env = {**os.environ, **env}
        self.name = name
        self.log_path = log_dir / f"worker-{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [sys.executable, "-m", "pipeline.cli", "worker", "--name", self.name, "--web-port", "0"]

    def start(self) -> WorkerProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.command(), env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        return self

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"{self.log_path.stem} exited with {self.proc.returncode}:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill9(self) -> None:
        """SIGKILL the worker and its process pool (its session), as a crash would."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def dump_state(self) -> str:
        """The worker's state dump (SIGUSR1, pipeline/diagnostics.py): where it stands when it makes no progress."""
        if self.proc is None or self.proc.poll() is not None:
            return f"worker {self.name}: not running"
        os.kill(self.proc.pid, signal.SIGUSR1)  # the main process only: the pool's processes die of SIGUSR1
        time.sleep(2)
        dumps = [line for line in self.log_path.read_text(errors="replace").splitlines() if "worker state dump" in line]
        return f"worker {self.name}: {dumps[-1] if dumps else 'no dump written'}"

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


def group_progress(bootstrap: str, unique: str, *workers: WorkerProcess) -> str:
    """Where a stalled group stands: per topic partition, the group's committed offset against the end offset, and
    each worker's own state dump."""
    from kafka import TopicPartition

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        committed = admin.list_group_offsets(f"t{unique}").get(f"t{unique}", {})
        parts = [TopicPartition(t, p) for t in consumer.topics() if t.startswith(f"t{unique}")
                 for p in consumer.partitions_for_topic(t) or ()]
        ends = consumer.end_offsets(parts)
        rows = []
        for tp in sorted(parts):
            meta = committed.get(tp)
            rows.append(f"{tp.topic}[{tp.partition}] committed={meta.offset if meta else None} end={ends[tp]}")
        rows.extend(worker.dump_state() for worker in workers)
        return "\n".join(rows)
    finally:
        consumer.close()
        admin.close()


def isolated_env(tag: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a `newsflow` process that shares the stack but nothing else: topics, consumer group, index
    and alias named after ``tag``, its own data dir; JSON logs."""
    return {
        **os.environ,
        "NEWSFLOW_DATA_DIR": str(data_dir),
        "NEWSFLOW_KAFKA_TOPIC_PREFIX": f"{tag}.",
        "NEWSFLOW_PIPELINE_APP_ID": tag,
        "NEWSFLOW_ES_INDEX_PREFIX": tag,
        "NEWSFLOW_ES_ALIAS": tag,
        "NEWSFLOW_LOG_FORMAT": "json",
        **extra,
    }


def worker_env(bootstrap: str, unique: str, data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        "NEWSFLOW_KAFKA_BOOTSTRAP": bootstrap,
        "NEWSFLOW_KAFKA_TOPIC_PREFIX": f"t{unique}.",
        "NEWSFLOW_KAFKA_PARTITIONS": "4",
        "NEWSFLOW_PIPELINE_APP_ID": f"t{unique}",
        "NEWSFLOW_DATA_DIR": str(data_dir),
        "NEWSFLOW_LOG_FORMAT": "json",
        "NEWSFLOW_PIPELINE_SESSION_TIMEOUT_S": "8",
        **extra,
    }


def alerts_worker_env(stack: Settings, unique: str, tmp_path: Path, rules: Path, **extra: str) -> dict[str, str]:
    """A worker's environment for an alerts test: its own topics, index, alias and rules file; quick retries."""
    return worker_env(stack.kafka.bootstrap, unique, tmp_path / "data", NEWSFLOW_ES_INDEX_PREFIX=f"t{unique}",
                      NEWSFLOW_ES_ALIAS=f"t{unique}", NEWSFLOW_SINK_BATCH_TIMEOUT_S="0.3",
                      NEWSFLOW_ALERTS_RULES_FILE=str(rules), NEWSFLOW_ALERTS_INITIAL_BACKOFF_S="0.2", **extra)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The worker's /metrics as (sample name, labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode("utf-8")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}
