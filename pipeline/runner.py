"""`newsflow run`: the whole pipeline on one machine, supervised, with a progress line.

Steps, in order:
 1. bring the local stack up when the settings point at it (and remember whether this run started it);
 2. create the topics and the index template;
 3. start N workers (`newsflow worker`) and one connector (`newsflow connector`) as child processes;
 4. every few seconds print progress: items published on news.raw, articles on news.enriched, documents
    searchable in Elasticsearch, and the ingest-to-index lag of the latest documents;
 5. on Ctrl-C / SIGTERM / SIGHUP, or when the reader of its output goes away (``newsflow run | head``), stop
    the connector first (it flushes its producer and saves feed state), then the workers (they commit
    offsets), each within ``shutdown_timeout_s``, then the stack if step 1 started it.

Supervision (docs/operations.md): children die with `run` (``prctl(PR_SET_PDEATHSIG)``, see
:mod:`pipeline.procs`); pid files under ``<data_dir>/run/`` let the next `run` stop what a crashed one left;
``<data_dir>/run/state.json`` describes the children (pid, port, restarts, state, last error) for
`newsflow status`; each child serves ``/health``, ``/ready`` and ``/metrics`` on its own port.

Children are separate processes so that a crash in one is visible (it is restarted, with a log line) and so
that each worker has its own event loop and process pool, as it would in production.

Every line `run` prints is built by :mod:`pipeline.present`; this module decides when to print it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from elastic_transport import TransportError
from elasticsearch import ApiError, Elasticsearch
from kafka import KafkaConsumer
from kafka.errors import KafkaError

from pipeline import present
from pipeline.errors import NewsflowError
from pipeline.index import make_client
from pipeline.logs import get_logger
from pipeline.procs import RUN_PID_ENV, last_error_line
from pipeline.runstate import ChildState, RunState, remove_run_state, write_run_state
from pipeline.schemas import ALERTS_TOPIC, ENRICHED_TOPIC, RAW_TOPIC
from pipeline.security import kafka_security_config
from pipeline.settings import Settings
from pipeline.stack.process import cmdline

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


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class _Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    pid_file: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: str | None = None
    state: str = "stopped"
    last_error: str | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        out = self.log_path.open("ab")
        # Own session: a Ctrl-C in the terminal reaches `run` only, which stops the children in order.
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        self.pid_file.write_text(f"{self.proc.pid}\n")
        self.started_at = _now()
        self.state = "running"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self) -> None:
        if self.alive():
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)

    def wait_stopped(self, timeout_s: float) -> None:
        """After :meth:`terminate`: wait, then SIGKILL (the child's own deadline should have ended it)."""
        if self.proc is not None:
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("child did not stop in time; killing it", child=self.name, timeout_s=timeout_s)
                self.proc.kill()
                self.proc.wait()
        self.state = "stopped"
        with contextlib.suppress(OSError):
            self.pid_file.unlink()

    def as_state(self) -> ChildState:
        assert self.proc is not None and self.started_at is not None
        return ChildState.model_validate({
            "name": self.name, "pid": self.proc.pid, "port": self.port, "started_at": self.started_at,
            "restarts": self.restarts, "log": str(self.log_path), "state": self.state, "last_error": self.last_error,
        })


@dataclass
class _Output:
    """The console of `run`: a closed stdout (``| head``, a dead ``tee``) stops the run, never aborts it."""

    echo: Callable[[str], None]
    stop: threading.Event
    closed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, line: str) -> None:
        with self._lock:
            if self.closed:
                return
            try:
                self.echo(line)
            except OSError as exc:
                if not isinstance(exc, BrokenPipeError) and exc.errno not in (errno.EPIPE, errno.EBADF, errno.EIO):
                    raise
                self.closed = True
                self.stop.set()
                _silence_stdout()
                log.info("output closed by its reader; stopping")


def _silence_stdout() -> None:
    """Point fd 1 (and fd 2 when it is the same pipe) at /dev/null, so later writes and exit flushes succeed."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        try:
            same = os.path.samestat(os.fstat(1), os.fstat(2))
        except OSError:
            same = False
        os.dup2(devnull, 1)
        if same:
            os.dup2(devnull, 2)
    finally:
        os.close(devnull)


def _pid_in(pid_file: Path, *markers: str) -> int | None:
    """The live pid in ``pid_file`` whose command line has every marker (a reused pid is not ours)."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    command = cmdline(pid)
    return pid if command and all(m in command for m in markers) and pid != os.getpid() else None


def _take_over(run_dir: Path, echo: Callable[[str], None], timeout_s: float) -> None:
    """Refuse when another `run` owns ``run_dir``; stop children an earlier, crashed run left behind."""
    from pipeline.stack.process import stop_pid

    run_dir.mkdir(parents=True, exist_ok=True)
    other = _pid_in(run_dir / "run.pid", " run")
    if other is not None and ("newsflow" in cmdline(other) or "pipeline.cli" in cmdline(other)):
        raise NewsflowError(f"newsflow run is already running (pid {other}, pid file {run_dir / 'run.pid'}); "
                            f"stop it first (kill {other})")
    for pid_file in sorted(run_dir.glob("*.pid")):
        if pid_file.name == "run.pid":
            continue
        kind = "connector" if pid_file.stem == "connector" else "worker"
        pid = _pid_in(pid_file, "pipeline.cli", kind)
        if pid is not None:
            killed = stop_pid(pid, timeout_s)
            echo(present.run_left_over_stopped(pid_file.stem, pid, killed=killed))
        with contextlib.suppress(OSError):
            pid_file.unlink()
    (run_dir / "run.pid").write_text(f"{os.getpid()}\n")


def _check_ports(children: list[_Child]) -> None:
    from pipeline.stack.process import port_open

    taken = [f"{c.name} port {c.port}" for c in children if c.port and port_open(c.port)]
    if taken:
        raise NewsflowError(f"ports in use by another program: {', '.join(taken)}; "
                            f"set pipeline.web_port (NEWSFLOW_PIPELINE_WEB_PORT) to a free range")


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


def read_progress(settings: Settings, consumer: KafkaConsumer, es: Elasticsearch) -> Progress:
    """What the pipeline has done so far, from the topics' end offsets and the index itself."""
    progress = Progress()
    try:
        progress.items_published = _topic_total(consumer, settings.kafka.topic(RAW_TOPIC))
        progress.articles_enriched = _topic_total(consumer, settings.kafka.topic(ENRICHED_TOPIC))
        progress.alerts = _topic_total(consumer, settings.kafka.topic(ALERTS_TOPIC))
    except KafkaError as exc:
        log.debug("progress: kafka not answering", error=str(exc))
    try:
        progress.documents_indexed = int(es.count(index=settings.es.alias)["count"])
        latest = es.search(index=settings.es.alias, size=20, sort=[{"indexed_at": "desc"}],
                           source={"includes": ["ingested_at", "indexed_at"]})
        progress.lag_s = _median_lag([h["_source"] for h in latest["hits"]["hits"]])
    except (TransportError, ApiError, ValueError, KeyError) as exc:  # not up yet, or no index yet
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
    workers: int,
    echo: Callable[[str], None],
    progress_every_s: float,
    stop_event: threading.Event | None = None,
) -> int:
    """Run stack + connector + workers until SIGINT/SIGTERM/SIGHUP (or ``stop_event``); return an exit code."""
    from pipeline.index import ensure_index_template, run_with_client
    from pipeline.stack import services, stack_down, stack_up
    from pipeline.topics import ensure_topics

    stop = stop_event or threading.Event()
    out = _Output(echo, stop)
    run_dir = settings.data_path / "run"
    grace_s = settings.shutdown_timeout_s + 5  # the children's own deadline, plus time to exit
    _take_over(run_dir, out, grace_s)
    started_at = _now()
    children: list[_Child] = []
    started_stack = False
    stop_signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # SIGHUP: the terminal or SSH session closed
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in stop_signals}

    def save_state() -> None:
        write_run_state(settings, RunState.model_validate({
            "pid": os.getpid(), "started_at": started_at,
            "children": [c.as_state() for c in children if c.proc is not None],
        }))

    code = 0
    consumer: KafkaConsumer | None = None
    es: Elasticsearch | None = None
    try:
        # Servers that already answer are used as they are, whoever started them.
        if _is_local(settings) and not all(svc.ready() for svc in services(settings)):
            result = stack_up(settings)
            started_stack = any(v.startswith("started") for v in result.values())
            for line in present.stack_action_lines(result):
                out(line)
        ensure_topics(settings)
        run_with_client(settings.es, lambda es: ensure_index_template(es, settings))

        exe = [sys.executable, "-m", "pipeline.cli"]
        # The children check this pid after arming their parent-death signal (pipeline.procs.die_with_run).
        env = {**os.environ, "PYTHONUNBUFFERED": "1", RUN_PID_ENV: str(os.getpid())}
        logs = settings.data_path / "logs"
        base = settings.pipeline.web_port

        def port(i: int) -> int:
            return base + i if base else 0

        for i in range(workers):
            name = f"worker-{i + 1}"
            argv = [*exe, "worker", "--name", f"w{port(i) or i + 1}", "--port", str(port(i))]
            children.append(_Child(name, argv, env, logs / f"{name}.log", run_dir / f"{name}.pid", port=port(i)))
        connector_argv = [*exe, "connector", "--port", str(port(workers))]
        connector_argv += ["--feeds", str(feeds_file)] if feeds_file else []
        children.append(_Child("connector", connector_argv, env, logs / "connector.log", run_dir / "connector.pid",
                               port=port(workers)))
        _check_ports(children)
        for child in children:
            if stop.is_set():
                break
            child.start()
            save_state()
            out(present.run_child_started(child.name, child.proc.pid if child.proc else None, child.port,
                                          child.log_path))
        for line in present.run_ready_lines(settings.es.alias, settings.es.url, started_stack=started_stack):
            out(line)
        consumer = KafkaConsumer(bootstrap_servers=settings.kafka.servers, client_id="newsflow-run-progress",
                                 **kafka_security_config(settings.kafka))
        es = make_client(settings.es)  # the cluster's TLS and credentials, like every other client
        while not stop.wait(progress_every_s):
            for child in children:
                if child.alive() or child.state == "failed":
                    continue
                rc = child.proc.returncode if child.proc else None
                child.last_error = last_error_line(child.log_path)
                if child.restarts >= _RESTART_LIMIT:
                    child.state = "failed"
                    out(present.run_child_gave_up(child.name, rc, child.last_error, child.log_path))
                    stop.set()
                    code = 1
                    break
                child.restarts += 1
                child.state = "restarting"
                log.warning("child exited; restarting", child=child.name, rc=rc, last_error=child.last_error,
                            log_file=str(child.log_path))
                child.start()
            save_state()
            if not stop.is_set():
                out(present.run_progress(read_progress(settings, consumer, es)))
    finally:
        out(present.RUN_STOPPING)
        connector = [c for c in children if c.name == "connector"]
        for group in (connector, [c for c in children if c.name != "connector"]):
            for child in group:  # the workers stop in parallel: each within shutdown_timeout_s
                child.terminate()
            for child in group:
                child.wait_stopped(grace_s)
            if children:
                save_state()
        if consumer is not None:
            consumer.close()
        if es is not None:
            es.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if started_stack:
            for line in present.stack_action_lines(stack_down(settings)):
                out(line)
        remove_run_state(settings)
        with contextlib.suppress(OSError):
            (run_dir / "run.pid").unlink()
    return code
