"""pipeline.acks: a message held by an agent is acked when its block completes, never when the block is left by
an exception (cancellation, a crash): its offset is then recorded as abandoned.

The events are stand-ins with the two methods ``held`` uses (``message.incref``, ``ack``), counting references as
Faust's Message does: the last release acks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from pipeline import acks


@dataclass(eq=False)  # hashed by identity, as Faust's messages in the consumer's in-flight set
class _Message:
    tp: str
    offset: int
    refcount: int = 1  # Faust's own reference, released when the stream moves on
    acked: bool = False

    def incref(self) -> None:
        self.refcount += 1

    def decref(self) -> None:
        self.refcount -= 1
        self.acked = self.refcount == 0


@dataclass
class _Consumer:
    _unacked_messages: set[_Message] = field(default_factory=set)


@dataclass
class _App:
    consumer: _Consumer


@dataclass
class _Event:
    message: _Message
    app: _App

    def ack(self) -> None:
        self.message.decref()


def _event(offset: int, consumer: _Consumer) -> _Event:
    message = _Message("news.raw-0", offset)
    consumer._unacked_messages.add(message)
    return _Event(message, _App(consumer))


@pytest.fixture(autouse=True)
def _no_abandoned() -> Iterator[None]:
    acks.abandoned.clear()
    yield
    acks.abandoned.clear()


def test_a_completed_block_releases_its_hold_and_the_streams_release_acks() -> None:
    consumer = _Consumer()
    first, second = _event(0, consumer), _event(1, consumer)
    with acks.held(first, second):
        assert first.message.refcount == second.message.refcount == 2
    assert not first.message.acked  # the stream's own reference is still there
    first.ack()
    assert first.message.acked and not acks.abandoned
    assert first.message in consumer._unacked_messages  # Faust's own bookkeeping, untouched


def test_a_block_left_by_an_exception_never_acks_and_records_the_offset() -> None:
    consumer = _Consumer()
    event = _event(7, consumer)
    with pytest.raises(asyncio.CancelledError), acks.held(event):
        raise asyncio.CancelledError
    event.ack()  # Faust's finally releases its reference: the hold is still there
    assert not event.message.acked
    assert acks.abandoned["news.raw-0"] == {7}
    assert event.message not in consumer._unacked_messages  # not waited for at the next rebalance


async def test_delivered_waits_for_every_send() -> None:
    sent: list[int] = []

    async def send(n: int) -> None:
        await asyncio.sleep(0)
        sent.append(n)

    await acks.delivered([send(1), send(2)])
    assert sorted(sent) == [1, 2]
