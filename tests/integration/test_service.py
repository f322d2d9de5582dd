"""`newsflow run` as a service (issue 9): no orphans, bounded shutdown, health endpoints, pid files, state.json.

Orphans are found by their environment: every process `run` starts (workers, connector, their pool and fork
server processes) inherits ``NEWSFLOW_DATA_DIR``, which is unique per test.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from elasticsearch import Elasticsearch, NotFoundError

from pipeline.canonical import canonical_url
from pipeline.schemas import ENRICHED_TOPIC
from pipeline.settings import PROJECT_ROOT, Settings
from testkit.faults import assert_no_dead_letters, assert_one_article_per_url, read_to_end, serve_feeds, wait_indexed
from testkit.feedserver import FeedServer
from testkit.worker import isolated_env

pytestmark = pytest.mark.integration

# Ports of this suite (the range 7000..7020 reserved for these tests). From "dead-kafka": +0 worker, +1 connector,
# +2 es-cut, +3..4 fail, +5..6 kafka-stop; test_run.py uses 7016..7018.
_PORTS = {"kill": 7000, "restart": 7003, "head": 7006, "dead-kafka": 7009}


def _env(tmp_path: Path, unique: str, tag: str, port: int, **extra: str) -> dict[str, str]:
    return isolated_env(f"svc-{tag}-{unique}", tmp_path / "data", NEWSFLOW_PIPELINE_WEB_PORT=str(port),
                        NEWSFLOW_SHUTDOWN_TIMEOUT_S="10", **extra)


def _processes_of(data_dir: Path) -> list[int]:
    """Live (non-zombie) processes whose environment names ``data_dir``."""
    needle = f"NEWSFLOW_DATA_DIR={data_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if needle in environ.split(b"\0") and stat.rsplit(")", 1)[1].split()[0] != "Z":
            found.append(int(entry.name))
    return found


def _wait_none_left(data_dir: Path, within_s: float) -> list[int]:
    deadline = time.monotonic() + within_s
    while (left := _processes_of(data_dir)) and time.monotonic() < deadline:
        time.sleep(0.25)
    return left


def _describe(pids: list[int]) -> str:
    from pipeline.stack.process import cmdline

    return "; ".join(f"{p}: {cmdline(p)}" for p in pids)


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _wait_first_indexed(es: Elasticsearch, alias: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 240  # 2 shared cores: the first article is searchable in ~20 s on an idle machine
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(NotFoundError):
            if es.count(index=alias)["count"]:
                return
        time.sleep(0.5)
    pytest.fail(f"no article indexed; run log:\n{log.read_text()[-3000:]}")


def _state(data_dir: Path) -> dict | None:
    try:
        return json.loads((data_dir / "run" / "state.json").read_text())
    except (OSError, ValueError):
        return None


def _start_run(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "pipeline.cli", "run", "--progress-every", "2"],
                                cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def _wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 120) -> None:
    """Until the process's /ready answers 200; fails the test when it exits or the time is up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5).status_code == 200:
                return
        time.sleep(1)
    pytest.fail(f"{proc.args} never ready:\n{log.read_text()[-3000:]}")


def _cleanup_es(stack: Settings, env: dict[str, str]) -> None:
    httpx.delete(f"{stack.es.url}/{env['NEWSFLOW_ES_INDEX_PREFIX']}-*", timeout=30)


# The feeds of the kill -9 test: 60 slow feeds of 5 items, 2 answered at a time (poll.per_host), so the connector
# publishes for ~18 s and the workers still have most of the 300 articles ahead of them when run is killed.
KILL_FEEDS, KILL_PER_FEED, KILL_FEED_DELAY_S = 60, 5, 0.6


@pytest.mark.fault
def test_kill9_of_run_leaves_no_child_and_a_new_run_indexes_every_item_once(
    stack: Settings, unique: str, tmp_path: Path
) -> None:
    """kill -9 of `newsflow run` mid-stream (as the OOM killer or a lost SSH session would): no child survives it;
    a new run on the same data dir takes over (stale pid files, a leftover child of an older run) and in the end
    every feed item is indexed exactly once, under the ids and story ids it had before the kill, with nothing
    dead-lettered."""
    data = tmp_path / "data"
    tag = f"svc-kill-{unique}"
    server = FeedServer().start()
    items = serve_feeds(server, tmp_path / "feeds.yaml", KILL_FEEDS, KILL_PER_FEED, KILL_FEED_DELAY_S)
    expected = {canonical_url(item["link"]) for item in items}
    env = _env(tmp_path, unique, "kill", _PORTS["kill"], NEWSFLOW_FEEDS=str(tmp_path / "feeds.yaml"),
               NEWSFLOW_ALLOW_PRIVATE_HOSTS="1", NEWSFLOW_POLL_FETCH_ARTICLE="false",
               NEWSFLOW_SINK_BATCH_TIMEOUT_S="0.5")
    es = Elasticsearch(stack.es.url)
    log = tmp_path / "run1.log"
    first = _start_run(env, log)
    try:
        # state.json (the contract with `newsflow status`) lists every child with its own port.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not ((st := _state(data)) and len(st["children"]) == 3):
            time.sleep(0.5)
        assert st is not None and st["pid"] == first.pid, log.read_text()[-3000:]
        assert [c["name"] for c in st["children"]] == ["worker-1", "worker-2", "connector"]
        assert [c["port"] for c in st["children"]] == [7000, 7001, 7002]
        assert all(c["state"] == "running" and c["restarts"] == 0 and c["last_error"] is None
                   for c in st["children"]), st

        # Every child: alive, ready (Kafka + Elasticsearch, and partitions for workers), metrics.
        for child in st["children"]:
            base = f"http://127.0.0.1:{child['port']}"
            deadline = time.monotonic() + 120
            ready: httpx.Response | None = None
            while (ready is None or ready.status_code != 200) and time.monotonic() < deadline:
                with contextlib.suppress(httpx.TransportError):  # its web server is not up yet
                    ready = httpx.get(f"{base}/ready", timeout=10)
                time.sleep(0.5)
            assert ready is not None and ready.status_code == 200, (child["name"], ready and ready.text)
            assert httpx.get(f"{base}/health", timeout=5).json()["pid"] == child["pid"]
            metrics = httpx.get(f"{base}/metrics", timeout=5).text
            assert "newsflow_stage_messages_total" in metrics and "newsflow_feed_fetches_total" in metrics

        # A second run on the same data dir refuses with one clear line.
        again = subprocess.run([sys.executable, "-m", "pipeline.cli", "run"], env=env, capture_output=True,
                               text=True, timeout=60, check=False)
        assert again.returncode == 1
        assert again.stderr.strip().splitlines() == [
            f"newsflow: error: newsflow run is already running (pid {first.pid}, pid file "
            f"{data / 'run' / 'run.pid'}); stop it first (kill {first.pid})"]

        _wait_first_indexed(es, tag, first, log)
        worker_metrics = httpx.get("http://127.0.0.1:7000/metrics", timeout=5).text + \
            httpx.get("http://127.0.0.1:7001/metrics", timeout=5).text
        assert 'newsflow_stage_messages_total{stage="clean",status="ok"}' in worker_metrics
        assert "newsflow_feed_items_published_total " in httpx.get("http://127.0.0.1:7002/metrics", timeout=5).text
        family = _processes_of(data)
        # run, 2 workers (+ their pool process and spawn resource tracker), connector: all must go.
        assert len(family) >= 6, _describe(family)
        first.kill()  # kill -9 mid-stream
        first.wait()
        left = _wait_none_left(data, 10)
        assert not left, f"still alive 10 s after kill -9 of run: {_describe(left)}"
    finally:
        if first.poll() is None:
            first.kill()
        _kill_all(_processes_of(data))

    before = {m["canonical_url"]: (m["id"], m["story_id"])
              for _p, _o, m in read_to_end(stack.kafka.bootstrap, f"{tag}.{ENRICHED_TOPIC}")}
    assert len(before) < len(expected), "every article was enriched before the kill: slow the feeds down"
    print(f"\nkill -9 of run: {len(before)} of {len(expected)} articles enriched before the kill")

    # A new run after the crash, on the same data dir, topics, group and index: the stale state.json and pid files do
    # not stop it, a leftover child of an older run (a process that never had the parent-death signal) is stopped,
    # and it finishes the work: the connector publishes the feeds whose state the kill left unsaved, the workers
    # resume from the committed offsets.
    assert _state(data) is not None  # left by the killed run
    leftover = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "pipeline.cli", "worker"],
                                start_new_session=True)
    (data / "run" / "worker-1.pid").write_text(f"{leftover.pid}\n")
    env2 = {**env, "NEWSFLOW_PIPELINE_WEB_PORT": str(_PORTS["restart"])}
    log2 = tmp_path / "run2.log"
    second = _start_run(env2, log2)
    try:
        def alive() -> None:
            assert second.poll() is None, log2.read_text()[-3000:]

        hits = wait_indexed(es, tag, expected, alive, timeout_s=300)
        assert leftover.wait(timeout=30) is not None
        assert f"worker-1: stopped pid {leftover.pid} left by an earlier run" in log2.read_text()
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0, log2.read_text()[-3000:]
        assert _state(data) is None  # removed on a clean exit
        assert not list((data / "run").glob("*.pid"))
        assert not _wait_none_left(data, 5)

        enriched = [m for _p, _o, m in read_to_end(stack.kafka.bootstrap, f"{tag}.{ENRICHED_TOPIC}")]
        assert_one_article_per_url(enriched, hits, expected, before)
        assert_no_dead_letters(stack.kafka.bootstrap, f"{tag}.")
    finally:
        if second.poll() is None:
            second.kill()
        if leftover.poll() is None:
            leftover.kill()
        _kill_all(_processes_of(data))
        server.stop()
        _cleanup_es(stack, env)


def test_run_piped_into_head_ends_and_leaves_nothing(stack: Settings, unique: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = _env(tmp_path, unique, "head", _PORTS["head"])
    try:
        out = subprocess.run(
            ["bash", "-c", f"{sys.executable} -m pipeline.cli run 2>{tmp_path / 'run.err'} | head -n 3; "
                           "echo \"rc=${PIPESTATUS[0]}\""],
            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
        lines = out.stdout.splitlines()
        assert len(lines) == 4 and lines[0].startswith("worker-1: started"), out.stdout
        assert lines[-1] == "rc=0", (out.stdout, (tmp_path / "run.err").read_text()[-3000:])
        left = _wait_none_left(data, 5)
        assert not left, f"left behind by `newsflow run | head -n 3`: {_describe(left)}"
        assert _state(data) is None
    finally:
        _kill_all(_processes_of(data))
        _cleanup_es(stack, env)


def test_run_whose_tee_died_still_stops_in_order_on_ctrl_c(stack: Settings, unique: str, tmp_path: Path) -> None:
    # `make run 2>&1 | tee run.log`, then Ctrl-C: tee exits first, run then writes into a closed pipe.
    data = tmp_path / "data"
    env = _env(tmp_path, unique, "tee", _PORTS["head"])
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "run", "--progress-every", "1"], cwd=PROJECT_ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        proc.stdout.close()  # tee is gone
        time.sleep(1)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0
        left = _wait_none_left(data, 5)
        assert not left, f"left behind: {_describe(left)}"
        assert _state(data) is None
    finally:
        if proc.poll() is None:
            proc.kill()
        _kill_all(_processes_of(data))
        _cleanup_es(stack, env)


@pytest.mark.fault
@pytest.mark.parametrize("command", ["worker", "connector"])
def test_sigterm_with_kafka_unreachable_ends_within_shutdown_timeout(
    stack: Settings, unique: str, tmp_path: Path, command: str
) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on: Kafka "stopped" without touching the shared one
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    port = _PORTS["dead-kafka"] + (command == "connector")
    env = {**_env(tmp_path, unique, "dead", port), "NEWSFLOW_KAFKA_BOOTSTRAP": f"127.0.0.1:{dead}",
           "NEWSFLOW_SHUTDOWN_TIMEOUT_S": "5"}
    log = tmp_path / f"{command}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", command, "--port", str(port)],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.5)
        assert health is not None and health.status_code == 200, log.read_text()[-2000:]
        ready = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=10)
        assert ready.status_code == 503
        assert ready.json()["ready"] is False and f"kafka unreachable at 127.0.0.1:{dead}" in ready.json()["reason"]
        time.sleep(3)  # well into its retries against the dead broker
        assert proc.poll() is None, log.read_text()[-2000:]
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        took = time.monotonic() - started
        assert took <= 5 + 1.5, f"{command} took {took:.1f}s to stop (shutdown_timeout_s 5)"
    finally:
        if proc.poll() is None:
            proc.kill()
        _kill_all(_processes_of(tmp_path / "data"))


class _Cuttable:
    """A TCP relay to the real Elasticsearch that the test can cut: Elasticsearch "unreachable" without
    stopping the shared node (after :meth:`cut`, connections are refused)."""

    def __init__(self, target: tuple[str, int]) -> None:
        import socket
        import threading

        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.is_cut = False
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.is_cut:
                client.close()
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: object, dst: object) -> None:
        import socket

        assert isinstance(src, socket.socket) and isinstance(dst, socket.socket)
        try:
            while (data := src.recv(65536)) and not self.is_cut:
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def cut(self) -> None:
        import socket

        self.is_cut = True
        self.listener.close()
        with self._lock:
            for conn in self.conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()


def _committed(settings: Settings, topic: str, group: str) -> int:
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=settings.kafka.bootstrap)
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        committed = admin.list_group_offsets({group: parts}).get(group, {})
        return sum(committed[tp].offset for tp in parts if committed.get(tp) is not None and committed[tp].offset > 0)
    finally:
        consumer.close()
        admin.close()


@pytest.mark.fault
def test_sigterm_with_elasticsearch_cut_ends_worker_in_time_committing_only_indexed(
    stack: Settings, unique: str, tmp_path: Path
) -> None:
    from urllib.parse import urlsplit

    from pipeline.schemas import ENRICHED_TOPIC
    from pipeline.settings import load_settings
    from testkit.sink_worker import make_article

    es = urlsplit(stack.es.url)
    relay = _Cuttable((es.hostname or "127.0.0.1", es.port or 9200))
    port = _PORTS["dead-kafka"] + 2
    env = {**_env(tmp_path, unique, "es-cut", port), "NEWSFLOW_ES_URL": f"http://127.0.0.1:{relay.port}",
           "NEWSFLOW_SHUTDOWN_TIMEOUT_S": "8", "NEWSFLOW_KAFKA_PARTITIONS": "2",
           "NEWSFLOW_PIPELINE_OFFLOAD_PROCESSES": "0", "NEWSFLOW_PIPELINE_COMMIT_INTERVAL_S": "0.5",
           "NEWSFLOW_SINK_BATCH_TIMEOUT_S": "0.2", "NEWSFLOW_SINK_INITIAL_BACKOFF_S": "0.2",
           "NEWSFLOW_SINK_MAX_BACKOFF_S": "1"}
    settings = load_settings(environ={k: v for k, v in env.items() if k.startswith("NEWSFLOW_")})
    topic, group = settings.kafka.topic(ENRICHED_TOPIC), settings.pipeline.app_id
    real = settings.model_copy(update={"es": settings.es.model_copy(update={"url": stack.es.url})})
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "worker", "--port", str(port)],
                                env=env, stdout=out, stderr=subprocess.STDOUT)

    def produce(first: int) -> None:
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all")
        for n in range(first, first + 5):
            article = make_article(n)
            producer.send(topic, key=article.id.encode(), value=article.model_dump_json().encode())
        producer.flush(timeout=30)
        producer.close()

    def count() -> int:
        r = httpx.get(f"{stack.es.url}/{settings.es.alias}/_count", timeout=10)
        return int(r.json()["count"]) if r.status_code == 200 else -1

    try:
        _wait_ready(port, proc, log)
        produce(0)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (count() < 5 or _committed(real, topic, group) < 5):
            httpx.post(f"{stack.es.url}/{settings.es.alias}/_refresh", timeout=10)
            time.sleep(1)
        assert count() == 5 and _committed(real, topic, group) == 5, log.read_text()[-3000:]

        relay.cut()  # Elasticsearch unreachable from the worker from now on
        produce(5)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and \
                "newsflow_sink_elastic_waiting 1.0" not in httpx.get(f"http://127.0.0.1:{port}/metrics").text:
            time.sleep(0.5)
        # /ready caches each check for a few seconds (pipeline.health.cached): it turns 503 within that time.
        deadline = time.monotonic() + 30
        while (ready := httpx.get(f"http://127.0.0.1:{port}/ready", timeout=10)).status_code != 503 and \
                time.monotonic() < deadline:
            time.sleep(0.5)
        assert ready.status_code == 503 and "elasticsearch unreachable" in ready.json()["reason"]
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        took = time.monotonic() - started
        assert took <= 8 + 1.5, f"worker took {took:.1f}s to stop (shutdown_timeout_s 8)"
        # Nothing Elasticsearch did not acknowledge was committed: the 5 new messages wait for the next worker.
        assert count() == 5
        assert _committed(real, topic, group) == 5
    finally:
        if proc.poll() is None:
            proc.kill()
        relay.cut()
        _kill_all(_processes_of(tmp_path / "data"))
        httpx.delete(f"{stack.es.url}/{settings.es.index_prefix}-*", timeout=30)


def test_a_child_that_keeps_failing_is_reported_with_its_last_error_line(
    stack: Settings, unique: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    env = _env(tmp_path, unique, "fail", _PORTS["dead-kafka"] + 3)
    missing = tmp_path / "no-such-feeds.yaml"
    try:
        out = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--workers", "1", "--progress-every", "1",
                              "--feeds", str(missing)], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                             timeout=240, check=False)
        assert out.returncode == 1, out.stdout[-3000:]
        assert (f"connector keeps exiting (rc 1); giving up. Last error: newsflow: error: {missing}: feed list not "
                f"found (log {data / 'logs' / 'connector.log'})") in out.stdout.splitlines(), out.stdout[-3000:]
        assert _state(data) is None
        assert not _wait_none_left(data, 5)
    finally:
        _kill_all(_processes_of(data))
        _cleanup_es(stack, env)


@pytest.mark.fault
def test_sigterm_after_kafka_stopped_ends_worker_and_connector_within_timeout(
    private_kafka: Settings, unique: str, tmp_path: Path
) -> None:
    from pipeline.stack.kafka import KafkaService

    port = _PORTS["dead-kafka"] + 5
    env = {**_env(tmp_path, unique, "kafka-stop", port), "NEWSFLOW_KAFKA_BOOTSTRAP": private_kafka.kafka.bootstrap,
           "NEWSFLOW_SHUTDOWN_TIMEOUT_S": "8", "NEWSFLOW_KAFKA_PARTITIONS": "2",
           "NEWSFLOW_PIPELINE_OFFLOAD_PROCESSES": "0"}
    procs = {}
    for command, p in (("worker", port), ("connector", port + 1)):
        with (tmp_path / f"{command}.log").open("wb") as out:
            procs[command] = subprocess.Popen([sys.executable, "-m", "pipeline.cli", command, "--port", str(p)],
                                              env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        for command, p in (("worker", port), ("connector", port + 1)):
            _wait_ready(p, procs[command], tmp_path / f"{command}.log")

        KafkaService(private_kafka).down()  # Kafka stops under a running worker and connector
        time.sleep(3)
        assert all(p.poll() is None for p in procs.values())
        started = time.monotonic()
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for command, proc in procs.items():
            proc.wait(timeout=60)
            took = time.monotonic() - started
            assert took <= 8 + 1.5, f"{command} took {took:.1f}s to stop with Kafka stopped (shutdown_timeout_s 8)"
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
        _kill_all(_processes_of(tmp_path / "data"))
