"""Fixtures several integration test files use: loopback alert receivers (webhook, SMTP) and a Kafka broker of
one test's own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller

from pipeline.settings import Settings
from testkit.alerts_corpus import Mailbox, Receiver
from testkit.private_stack import private_settings
from testkit.worker import free_port


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture()
def smtp() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()  # the controller's self-check cannot use port 0
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture()
def private_kafka(stack: Settings) -> Iterator[Settings]:
    """A Kafka broker of this test alone (ports 9192/9193), so that stopping it touches nobody else."""
    from pipeline.stack.kafka import KafkaService

    with private_settings(stack, "kafka", NEWSFLOW_STACK_KAFKA_PORT="9192", NEWSFLOW_STACK_KAFKA_CONTROLLER_PORT="9193",
                          NEWSFLOW_STACK_KAFKA_HEAP="256m", NEWSFLOW_KAFKA_BOOTSTRAP="127.0.0.1:9192") as settings:
        service = KafkaService(settings)
        service.up()
        try:
            yield settings
        finally:
            service.down()
