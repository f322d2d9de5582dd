"""`newsflow connector` as a service process: health endpoints, parent-death signal, bounded shutdown."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from connectors.service import Connector, PollSummary
from pipeline.backoff import wait_for_kafka_async
from pipeline.health import HealthServer, elasticsearch_check, kafka_check
from pipeline.logs import get_logger
from pipeline.metrics import serve_metrics
from pipeline.procs import arm_shutdown_deadline, die_with_run
from pipeline.settings import Settings

__all__ = ["run_connector_process"]

log = get_logger(__name__)


def run_connector_process(settings: Settings, feeds_file: str | Path | None = None, *,
                          port: int | None = None) -> PollSummary:
    """Poll until SIGTERM/SIGINT; the process ends within ``shutdown_timeout_s`` of the signal.

    Args:
        port: serve ``/health``, ``/ready`` (Kafka and Elasticsearch reachable, producer connected) and
            ``/metrics`` there, from a thread (never on the polling loop); None or 0: no server.
    """
    die_with_run()
    connected = {"producer": False}
    health: HealthServer | None = None
    if port:
        health = HealthServer(port, {
            "kafka": kafka_check(settings),
            "elasticsearch": elasticsearch_check(settings),
            "producer": lambda: None if connected["producer"] else "producer not connected yet (creating news.raw)",
        }, host=settings.pipeline.web_host).start()
    serve_metrics(settings.metrics_port)

    async def main() -> PollSummary:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            # Running refreshes finish, the producer flushes, feed state is saved: all under this deadline.
            arm_shutdown_deadline(settings.shutdown_timeout_s, "connector")
            stop.set()
            if not connected["producer"] and main_task is not None:
                main_task.cancel()

        main_task = asyncio.current_task()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        connector = Connector(settings, feeds_file)
        try:
            # Started before Kafka (or during an outage): wait for it rather than crash-loop.
            await wait_for_kafka_async(connector.__aenter__, log=log)
            connected["producer"] = True
            return await connector.run(stop)
        except asyncio.CancelledError:  # stopped while still connecting to Kafka
            log.info("connector stopped before kafka answered")
            return PollSummary()
        finally:
            await connector.close()

    try:
        return asyncio.run(main())
    finally:
        if health is not None:
            health.close()
