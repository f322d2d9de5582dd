"""Start one Faust worker programmatically: topics ensured, app built, agents registered, run until signalled.

Several workers with the same ``pipeline.app_id`` (on one host or many) form one consumer group and share the
partitions; give each worker on one host its own ``name`` (its local state directory).
"""

from __future__ import annotations

from typing import Any

import faust

from pipeline.agents import register_agents
from pipeline.app import NewsflowApp, create_app
from pipeline.logs import get_logger
from pipeline.metrics import serve_metrics
from pipeline.offload import Offload
from pipeline.settings import Settings
from pipeline.topics import ensure_topics

__all__ = ["build_worker_app", "run_worker"]

log = get_logger(__name__)


def build_worker_app(settings: Settings, *, name: str = "worker", web_port: int | None = None) -> NewsflowApp:
    """The app with every agent registered (topics must exist: :func:`pipeline.topics.ensure_topics`)."""
    app = create_app(settings, worker_name=name, web_port=web_port)
    offload = Offload(settings.pipeline.offload_processes)
    register_agents(app, offload)

    @app.on_before_shutdown.connect  # type: ignore[arg-type]  # mode types async receivers too narrowly
    async def _stop_pool(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        offload.shutdown(wait=False)

    return app


def run_worker(settings: Settings, *, name: str = "worker", web_port: int | None = None,
               metrics_port: int | None = None) -> None:
    """Run one worker in this process until SIGTERM/SIGINT (then it commits and leaves the group cleanly)."""
    topics = ensure_topics(settings)
    port = settings.metrics_port if metrics_port is None else metrics_port
    if port:
        try:
            serve_metrics(port)
        except OSError as exc:  # another worker on this host has the port: keep running without /metrics
            log.warning("metrics port unavailable", port=port, error=str(exc))
    app = build_worker_app(settings, name=name, web_port=web_port)
    log.info("worker starting", app_id=settings.pipeline.app_id, worker=name, topics=topics,
             store=settings.pipeline.store, guarantee=settings.pipeline.processing_guarantee)
    worker = faust.Worker(
        app,
        loglevel=settings.log_level.upper(),
        # Logging is already set up by the CLI (structlog); Faust must not replace the handlers.
        override_logging=False,
        redirect_stdouts=False,
        quiet=True,
    )
    worker.execute_from_commandline()
