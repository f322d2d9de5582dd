"""Never commit an offset past a message that was not processed: a fix of Faust's commit arithmetic.

Faust (faust-streaming 0.15.3, ``Consumer._new_offset``) commits the run of acknowledged offsets that follows
the committed one, but its check that the run starts *at* the committed offset is off by one and skipped when
nothing was committed yet::

    if committed_offset:                                  # None and 0 skip the check
        if min(acked) - committed_offset > 1: return None  # lets min(acked) == committed + 1 through

So with the next offset to process at C (Kafka's committed offset is the next one to read) and C+1, C+2 acked
while C is still in flight (agents with ``concurrency`` > 1 finish out of order) or was dropped on the way to the
stream, Faust commits C+3: a worker stopped or killed before C is done loses C for good. The fault suite caught
it: a worker stopped while articles flowed, one `news.raw` item never reached `news.clean` though its offset
was committed, with nothing dead-lettered.

:func:`install` replaces the method on one consumer with the same arithmetic, corrected: the run must start at
the committed offset, and it never reaches a message of that partition still in flight or abandoned half-way by
an agent (:data:`pipeline.acks.abandoned`) and not done since. Offsets Faust's fetch loop skipped (its *gaps*)
are not counted as processed either (:func:`_forget_gaps`).
"""

from __future__ import annotations

import types
from typing import Any

from faust.utils.functional import consecutive_numbers

from pipeline.acks import abandoned
from pipeline.logs import get_logger
from pipeline.metrics import FETCH_GAPS

__all__ = ["install", "new_offset"]

log = get_logger(__name__)


def new_offset(consumer: Any, tp: Any) -> int | None:
    """The offset to commit for ``tp`` (one past the last of a run of processed messages), or None."""
    acked: list[int] = consumer._acked[tp]
    if not acked:
        return None
    _forget_gaps(consumer, tp)
    acked.sort()
    committed = consumer._committed_offset[tp]
    if committed is not None and acked[0] > committed:
        return None  # the message at the committed offset is not done yet
    batch = list(next(consecutive_numbers(acked)))
    # A message delivered twice (fetched again after a seek) leaves its second copy unacked although its offset
    # is done: only offsets not acknowledged yet hold the commit back.
    done = consumer._acked_index[tp]
    floor = committed if committed is not None else -1  # below the committed offset everything is done
    in_flight = [m.offset for m in list(consumer._unacked_messages)
                 if m.tp == tp and m.offset not in done and m.offset >= floor]
    if tp in abandoned:
        left = abandoned[tp] = {o for o in abandoned[tp] if o not in done and o >= floor}
        in_flight.extend(left)
    if in_flight:
        lowest = min(in_flight)
        batch = [o for o in batch if o < lowest]
        if not batch:
            return None
    acked[: len(batch)] = []
    consumer._acked_index[tp].difference_update(batch)
    return batch[-1] + 1


def _forget_gaps(consumer: Any, tp: Any) -> None:
    """Faust records a *gap* when its fetch loop sees a partition's offsets jump, and counts the missing offsets
    (and the one that jumped) as processed. A jump is legitimate on a compacted or transactional topic; newsflow's
    stream topics are neither, so there a jump means fetched records were dropped on the way to the stream (a
    fetch cut short by a rebalance, a partition paused mid-batch): counting them as processed lost them. Here a
    gap is a hole like any other: the commit stays before it and the stall guard fetches it again."""
    gaps = consumer._gap.get(tp)
    if gaps:
        spans = sorted((g.begin, g.end - 1) for g in gaps)
        log.warning("records dropped before their stream: not counted as processed, fetched again",
                    topic=tp.topic, partition=tp.partition, offsets=spans[:10])
        FETCH_GAPS.labels(tp.topic).inc(len(spans))
        gaps.clear()


def install(consumer: Any) -> None:
    """Use :func:`new_offset` for this consumer's commits (an instance attribute shadows Faust's method)."""
    consumer._new_offset = types.MethodType(new_offset, consumer)
