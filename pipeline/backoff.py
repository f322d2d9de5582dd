"""The one exponential-backoff formula of the pipeline's stages (doubling, capped, jittered), and the one start-up
wait for Kafka that a worker and the connector share."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from pipeline.errors import KafkaUnavailable

if TYPE_CHECKING:
    from structlog.stdlib import BoundLogger

__all__ = ["backoff_delay", "kafka_start_delay", "wait_for_kafka", "wait_for_kafka_async"]

T = TypeVar("T")


def backoff_delay(attempt: int, *, initial_s: float, max_s: float, min_fraction: float = 0.8,
                  rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number ``attempt + 1`` (``attempt`` counts from 0).

    ``initial_s * 2**attempt`` capped at ``max_s``, times a random ``min_fraction``..1.0 so that several
    workers, channels or feeds failing together do not retry in lockstep. The feed schedule uses 0.5
    ("equal jitter": its delays are long and many feeds can fail at once); the stages keep close to the cap.
    """
    delay = min(max_s, initial_s * (2.0 ** min(max(attempt, 0), 30)))
    return delay * (rng or random).uniform(min_fraction, 1.0)


def kafka_start_delay(attempt: int) -> float:
    """Seconds a worker or connector started before Kafka (or during an outage) waits before start-up attempt
    ``attempt + 2``: 1 s doubling up to 30 s. Without jitter: each process waits alone, and this is the schedule
    both start-up loops always had."""
    return backoff_delay(attempt, initial_s=1.0, max_s=30.0, min_fraction=1.0)


# -- the start-up wait for Kafka -------------------------------------------------------------------------------
# A worker or the connector started before Kafka (or during an outage) waits for it rather than crash-loop: its
# first Kafka step is retried on the kafka_start_delay schedule while it raises KafkaUnavailable, each failure
# logged once as "kafka not reachable yet; retrying" on the caller's logger. Two entry points, one schedule and
# one log line: the worker waits before any event loop exists and a signal ends the wait (not an attempt in
# flight) through ``stop``; the connector waits on its event loop, where a signal cancels the task, the attempt in
# flight included.

def _retry_in(log: BoundLogger, attempt: int, exc: KafkaUnavailable) -> float:
    """The wait after failed attempt number ``attempt`` (from 0), logged."""
    delay = kafka_start_delay(attempt)
    log.warning("kafka not reachable yet; retrying", error=str(exc), retry_in_s=delay)
    return delay


def wait_for_kafka(step: Callable[[], T], *, stop: threading.Event, log: BoundLogger) -> T | None:
    """``step()``, retried while it raises KafkaUnavailable; None when ``stop`` was set first (checked before each
    attempt; setting it ends a wait at once).

    Raises:
        what ``step`` raises, other than KafkaUnavailable.
    """
    attempt = 0
    while not stop.is_set():
        try:
            return step()
        except KafkaUnavailable as exc:
            stop.wait(_retry_in(log, attempt, exc))
        attempt += 1
    return None


async def wait_for_kafka_async(step: Callable[[], Awaitable[T]], *, log: BoundLogger) -> T:
    """``await step()``, retried while it raises KafkaUnavailable; it ends when the task is cancelled.

    Raises:
        what ``step`` raises, other than KafkaUnavailable; CancelledError when cancelled.
    """
    attempt = 0
    while True:
        try:
            return await step()
        except KafkaUnavailable as exc:
            await asyncio.sleep(_retry_in(log, attempt, exc))
        attempt += 1
