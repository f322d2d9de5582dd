"""Ack an event only when its work is done: a hold on each message for the length of the agent's block.

Faust acks an event when the stream moves past it, in a ``finally`` (faust-streaming 0.15.3: the Cython stream
iterator's ``after`` for ``stream.events()``, the generator's ``finally`` in ``Stream.take_events``). That
``finally`` also runs when the agent is cancelled or crashes half-way, for instance while a worker stops
(SIGTERM: agents are cancelled, then the consumer commits what was acked): the message being cleaned, enriched
or matched was marked done and its offset committed, and the article was lost without a dead letter. The
fault suite's worker-removed-while-articles-flow test found it.

:func:`held` gives each message one more reference (``message.incref()``) for the length of a ``with`` block and
releases it (``event.ack()``) only when the block ends normally. Faust's own ack then only drops its
reference; the message is acked by whichever release comes last. When the block is left by an exception
(cancellation, a crash), the hold stays: the message is never acked and its offset is recorded as abandoned,
which :mod:`pipeline.commit_guard` never commits past until a later copy of it is done (the stall guard seeks
back to it when the worker is idle; a restart or rebalance reads it again from the committed offset). It is
also taken out of Faust's in-flight set, whose ``wait_empty`` would otherwise wait for it at every rebalance.

A block that dead-letters a message has finished with it: :func:`pipeline.dlq.stage_guard` inside the hold
turns a failure into a delivered dead letter, and the hold is released.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["abandoned", "delivered", "held"]

# Offsets whose processing was interrupted, per topic-partition (one Faust consumer per worker process).
abandoned: defaultdict[Any, set[int]] = defaultdict(set)


@contextmanager
def held(*events: Any) -> Iterator[None]:
    """Hold ``events`` (Faust events) unacked until the block completes; an exception leaves them unacked."""
    for event in events:
        event.message.incref()
    try:
        yield
    except BaseException:
        for event in events:
            _abandon(event)
        raise
    for event in events:
        event.ack()


def _abandon(event: Any) -> None:
    message = event.message
    tp = getattr(message, "tp", None)
    if tp is not None:
        abandoned[tp].add(message.offset)
    consumer = getattr(getattr(event, "app", None), "consumer", None)
    unacked = getattr(consumer, "_unacked_messages", None)
    if unacked is not None:
        unacked.discard(message)


async def delivered(pending: Iterable[Awaitable[Any]]) -> None:
    """Wait until the broker acknowledged these sends (before the source event is acked)."""
    await asyncio.gather(*pending)
