"""pipeline.health: the readiness checks' cache and the Kafka check (a TCP connect), without a broker.

The HTTP server (``/health``, ``/ready``, ``/metrics`` of a running worker or connector) and the Elasticsearch
check are integration tests (tests/integration/test_ops_status.py, test_service.py, test_smoke.py).
"""

from __future__ import annotations

import socket

from pipeline.health import cached, kafka_check
from pipeline.settings import load_settings


def test_a_cached_check_runs_at_most_once_per_ttl_and_a_crash_is_a_reason() -> None:
    calls: list[int] = []

    def check() -> str | None:
        calls.append(1)
        return None if len(calls) == 1 else "second call"

    once = cached(check, ttl_s=3600)
    assert once() is None and once() is None and len(calls) == 1
    every_time = cached(check, ttl_s=0)
    assert every_time() == "second call" and every_time() == "second call" and len(calls) == 3

    def crashes() -> str | None:
        raise ValueError("bad answer")

    assert cached(crashes)() == "ValueError: bad answer"


def test_kafka_check_is_ready_when_a_bootstrap_server_accepts_connections() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        # The first server refuses (nothing on port 9); the second accepts.
        settings = load_settings(environ={"NEWSFLOW_KAFKA_BOOTSTRAP": f"127.0.0.1:9,127.0.0.1:{port}"})
        assert kafka_check(settings)() is None
    closed = load_settings(environ={"NEWSFLOW_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}"})
    assert kafka_check(closed)() == f"kafka unreachable at 127.0.0.1:{port}"
