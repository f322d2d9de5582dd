"""The local development stack: a real Kafka broker and a real Elasticsearch node, run with java.

Both are resolved from Maven Central by the descriptors in ``deploy/local/`` into
``<data_dir>/cache/`` and run in the background with pid and log files under ``<data_dir>/stack/``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from pipeline.settings import Settings
from pipeline.stack.elasticsearch import ElasticsearchService
from pipeline.stack.kafka import KafkaService
from pipeline.stack.service import Service, ServiceStatus

__all__ = ["ElasticsearchService", "KafkaService", "Service", "ServiceStatus", "services", "stack_down", "stack_up"]


def services(settings: Settings) -> list[Service]:
    return [KafkaService(settings), ElasticsearchService(settings)]


def stack_up(settings: Settings) -> dict[str, str]:
    """Start both servers (in parallel) unless they run; wait until both answer.

    Raises:
        StackError: from the first server that failed, naming the cause and its log file.
    """
    svcs = services(settings)
    # Resolve one after the other: two Maven runs would contend for the same local repository.
    for svc in svcs:
        svc.resolve()
    with ThreadPoolExecutor(len(svcs)) as pool:
        futures = {svc.name: pool.submit(svc.up) for svc in svcs}
        return {name: fut.result() for name, fut in futures.items()}


def stack_down(settings: Settings) -> dict[str, str]:
    return {svc.name: svc.down() for svc in services(settings)}
