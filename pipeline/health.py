"""`/health`, `/ready` and `/metrics` of one process (worker or connector), served off the hot path.

A small threaded HTTP server in a daemon thread: probes never wait for the event loop, and a busy or
stuck loop cannot make a live process look dead (nor the other way round: `/health` answers from the
process itself). ``/ready`` is 200 only when every check passes, else 503 with a JSON body naming what is
missing::

    GET /health   200 {"status": "alive", "pid": 1234}
    GET /ready    200 {"ready": true, ...} | 503 {"ready": false, "reason": "kafka unreachable at ..."}
    GET /metrics  Prometheus text (every newsflow_* collector of this process)

Checks that need the network (Kafka's TCP port, an Elasticsearch ping) are cached for a few seconds so a
probe every second costs nothing.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from pipeline.logs import get_logger
from pipeline.settings import Settings

__all__ = ["Check", "HealthServer", "cached", "elasticsearch_check", "kafka_check"]

log = get_logger(__name__)

# A check returns None when fine, else the reason it is not ready.
Check = Callable[[], str | None]


def cached(check: Check, ttl_s: float = 3.0) -> Check:
    """``check`` evaluated at most once per ``ttl_s`` (probes may come every second)."""
    at = -1e9
    value: str | None = None
    lock = threading.Lock()

    def run() -> str | None:
        nonlocal at, value
        with lock:
            if time.monotonic() - at >= ttl_s:
                try:
                    value = check()
                except Exception as exc:  # a failing probe is a reason, never a crash of the server
                    value = f"{type(exc).__name__}: {exc}"
                at = time.monotonic()
            return value

    return run


def kafka_check(settings: Settings, timeout_s: float = 1.0) -> Check:
    """Some bootstrap server accepts TCP connections (the clients' own state is not readable from a thread)."""

    def check() -> str | None:
        for server in settings.kafka.servers:
            host, _, port = server.rpartition(":")
            try:
                with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
                    return None
            except OSError:
                continue
        return f"kafka unreachable at {settings.kafka.bootstrap}"

    return cached(check)


def elasticsearch_check(settings: Settings) -> Check:
    """Elasticsearch answers ``_cluster/health`` (not ``GET /``: the local integ-test distribution has no root
    handler). The client is built the one way: :func:`pipeline.index.make_client`."""
    from pipeline.index import make_client

    client = make_client(settings.es)

    def check() -> str | None:
        try:
            status = client.options(request_timeout=2.0).cluster.health()["status"]
        except Exception as exc:
            return f"elasticsearch unreachable at {settings.es.url}: {type(exc).__name__}"
        return None if status in ("green", "yellow") else f"elasticsearch cluster is {status}"

    return cached(check)


class HealthServer:
    """``HealthServer(port, checks).start()``; ``checks`` maps a name to a :data:`Check`."""

    def __init__(self, port: int, checks: dict[str, Check], *, host: str = "127.0.0.1") -> None:
        self.checks = checks
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/health":
                    self._send(200, "application/json", json.dumps({"status": "alive", "pid": os.getpid()}))
                elif path == "/ready":
                    ready, body = server.readiness()
                    self._send(200 if ready else 503, "application/json", json.dumps(body))
                elif path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, generate_latest(REGISTRY).decode())
                else:
                    self._send(404, "application/json", json.dumps({"error": "not found", "paths": [
                        "/health", "/ready", "/metrics"]}))

            def _send(self, code: int, ctype: str, body: str) -> None:
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        reasons = {name: reason for name, check in self.checks.items() if (reason := check()) is not None}
        if reasons:
            return False, {"ready": False, "reason": "; ".join(reasons.values()), "failing": sorted(reasons)}
        return True, {"ready": True, "checks": sorted(self.checks)}

    def start(self) -> HealthServer:
        threading.Thread(target=self._httpd.serve_forever, name="newsflow-health", daemon=True).start()
        log.info("health endpoints up", port=self.port, paths=["/health", "/ready", "/metrics"])
        return self

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
