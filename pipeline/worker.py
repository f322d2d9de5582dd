"""Start one Faust worker programmatically: topics ensured, app built, agents registered, run until signalled.

Several workers with the same ``pipeline.app_id`` (on one host or many) form one consumer group and share the
partitions; give each worker on one host its own ``name`` (its local state directory).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import faust

from pipeline import commit_guard
from pipeline.agents import register_agents
from pipeline.app import NewsflowApp, create_app
from pipeline.backoff import wait_for_kafka
from pipeline.diagnostics import install_state_dump
from pipeline.health import HealthServer, elasticsearch_check, kafka_check
from pipeline.logs import get_logger
from pipeline.malloc import fix_mmap_threshold
from pipeline.metrics import serve_metrics
from pipeline.offload import Offload
from pipeline.procs import arm_shutdown_deadline, die_with_run
from pipeline.settings import Settings
from pipeline.stall_guard import StallGuard
from pipeline.table_store import report_table_memory
from pipeline.topics import ensure_topics

__all__ = ["build_worker_app", "run_worker"]

log = get_logger(__name__)


def build_worker_app(settings: Settings, *, name: str = "worker", web_port: int = 0) -> NewsflowApp:
    """The app with every agent registered (topics must exist: :func:`pipeline.topics.ensure_topics`).

    ``web_port``: Faust's own web server, off by default (the worker's endpoints are :mod:`pipeline.health`'s).
    """
    app = create_app(settings, worker_name=name, web_port=web_port)
    offload = Offload(settings.pipeline.offload_processes)
    register_agents(app, settings, offload)

    report_table_memory(app)  # newsflow_table_*_bytes: the tables' share of the worker's memory
    commit_guard.install(app.consumer)  # Faust's commit arithmetic can skip an unprocessed offset
    if settings.pipeline.stall_check_interval_s:
        guard = StallGuard()

        async def stall_guard() -> None:
            await guard.check(app)

        app.timer(settings.pipeline.stall_check_interval_s, name="stall-guard")(stall_guard)

    @app.on_before_shutdown.connect  # type: ignore[arg-type]  # mode types async receivers too narrowly
    async def _stop_pool(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        offload.shutdown(wait=False)

    return app


class _BoundedWorker(faust.Worker):
    """A Faust worker whose stop on SIGTERM/SIGINT ends within ``shutdown_timeout_s``, whatever Kafka does."""

    shutdown_timeout_s: float  # set from the settings before the worker starts

    async def on_first_start(self) -> None:
        await super().on_first_start()
        install_state_dump(self.app)  # kill -USR1 <pid>: pipeline/diagnostics.py

    def _on_sigterm(self) -> None:
        arm_shutdown_deadline(self.shutdown_timeout_s, "worker")
        super()._on_sigterm()

    def _on_sigint(self) -> None:
        arm_shutdown_deadline(self.shutdown_timeout_s, "worker")
        super()._on_sigint()


def _assignment_check(app: NewsflowApp) -> Any:
    """/ready's partition check, fed by the app's rebalance signals (never reads the consumer from a thread)."""
    state = {"assigned": 0, "rebalancing": True}

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # mode types async receivers too narrowly
    async def _revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        state["rebalancing"] = True

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # mode types async receivers too narrowly
    async def _assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        state["assigned"] = len(assigned)

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]  # mode types async receivers too narrowly
    async def _complete(sender: Any, *args: Any, **kwargs: Any) -> None:
        state["rebalancing"] = False

    def check() -> str | None:
        if state["rebalancing"]:
            return "waiting for a partition assignment (joining the group or rebalancing)"
        return None if state["assigned"] else "no partitions assigned to this worker"

    return check


def _wait_for_topics(settings: Settings) -> dict[str, int] | None:
    """ensure_topics, retried while Kafka is unreachable; None when SIGTERM/SIGINT came first."""
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        arm_shutdown_deadline(settings.shutdown_timeout_s, "worker")
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        # A worker started before Kafka (or during an outage) waits for it.
        return wait_for_kafka(lambda: ensure_topics(settings), stop=stop, log=log)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_worker(settings: Settings, *, name: str | None = None, port: int | None = None,
               metrics_port: int | None = None, clean_concurrency: int | None = None,
               offload_processes: int | None = None) -> None:
    """Run one worker in this process until SIGTERM/SIGINT (then it commits and leaves the group cleanly).

    Args:
        name: the worker's name, its local state directory (default ``w<port>``, or ``w<pid>`` without a port).
        port: where ``/health``, ``/ready`` and ``/metrics`` are served (default ``pipeline.web_port``; 0: off).
        metrics_port: an extra Prometheus-only port (default ``metrics_port``; 0: none).
        clean_concurrency, offload_processes: this worker's ``pipeline.*`` values, when not the configured ones.
    """
    die_with_run()
    fix_mmap_threshold()  # the dedupe index's arrays: see pipeline/malloc.py
    overrides = {key: value for key, value in (("clean_concurrency", clean_concurrency),
                                               ("offload_processes", offload_processes)) if value is not None}
    if overrides:
        settings = settings.model_copy(update={"pipeline": settings.pipeline.model_copy(update=overrides)})
    port = settings.pipeline.web_port if port is None else port
    name = name or (f"w{port}" if port else f"w{os.getpid()}")
    health: HealthServer | None = None
    started = time.monotonic()
    if port:
        # Up before Kafka is: an orchestrator sees a live, not-ready worker while it waits for the broker.
        health = HealthServer(port, {"kafka": kafka_check(settings), "elasticsearch": elasticsearch_check(settings),
                                     "partitions": lambda: "worker starting (no consumer yet)"},
                              host=settings.pipeline.web_host)
        health.start()
    topics = _wait_for_topics(settings)
    if topics is None:
        log.info("worker stopped before kafka answered", waited_s=round(time.monotonic() - started, 1))
        return
    extra = settings.metrics_port if metrics_port is None else metrics_port
    if extra:
        try:
            serve_metrics(extra)
        except OSError as exc:  # another worker on this host has the port: /metrics is on `port` anyway
            log.warning("metrics port unavailable", port=extra, error=str(exc))
    app = build_worker_app(settings, name=name)
    if health is not None:
        health.checks["partitions"] = _assignment_check(app)
    log.info("worker starting", app_id=settings.pipeline.app_id, worker=name, topics=topics,
             store=settings.pipeline.store, guarantee=settings.pipeline.processing_guarantee, port=port)
    worker = _BoundedWorker(
        app,
        loglevel=settings.log_level.upper(),
        # Logging is already set up by the CLI (structlog); Faust must not replace the handlers.
        override_logging=False,
        redirect_stdouts=False,
        quiet=True,
    )
    worker.shutdown_timeout_s = settings.shutdown_timeout_s
    worker.execute_from_commandline()
