"""The corrected commit arithmetic against Faust's own, on Faust's real consumer bookkeeping (no broker)."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace
from typing import Any

from faust.types import TP
from intervaltree import IntervalTree

from pipeline import commit_guard

RAW = TP("news.raw", 0)


class _Message:  # what the guard reads of a Faust message in flight (hashable, like Faust's, for its WeakSet)
    def __init__(self, offset: int) -> None:
        self.tp, self.offset = RAW, offset


def _consumer(acked: list[int], committed: int | None, in_flight: tuple[int, ...] = ()) -> Any:
    consumer = SimpleNamespace(
        _acked=defaultdict(list, {RAW: list(acked)}), _acked_index=defaultdict(set, {RAW: set(acked)}),
        _gap=defaultdict(IntervalTree), _committed_offset=defaultdict(lambda: None, {RAW: committed}),
        _unacked_messages={_Message(o) for o in in_flight},
    )
    commit_guard.install(consumer)
    return consumer


def test_faust_commits_past_an_offset_still_in_flight_and_the_guard_does_not() -> None:
    from faust.transport.consumer import Consumer

    # Next to process: 36. 37 and 38 are done (a second agent instance was faster); 36 is still running.
    faust = _consumer([37, 38], committed=36, in_flight=(36,))
    assert Consumer._new_offset(faust, RAW) == 39  # Faust's own: a crash now loses offset 36
    guarded = _consumer([37, 38], committed=36, in_flight=(36,))
    assert guarded._new_offset(RAW) is None
    # 36 finishes: now all three commit at once.
    guarded._acked[RAW].append(36)
    guarded._unacked_messages.clear()
    assert guarded._new_offset(RAW) == 39 and guarded._acked[RAW] == []


def test_a_dropped_message_at_the_committed_offset_holds_the_commit_back() -> None:
    # 36 never reached the stream (nothing in flight for it), 37 was processed: committing 38 would skip 36.
    assert _consumer([37], committed=36)._new_offset(RAW) is None


def test_nothing_committed_yet_never_passes_a_message_in_flight() -> None:
    # Faust skips its check when nothing was committed: offsets 0 and 1 running, 2..4 done.
    consumer = _consumer([2, 3, 4], committed=None, in_flight=(0, 1))
    assert consumer._new_offset(RAW) is None
    consumer = _consumer([0, 1, 2, 5], committed=None, in_flight=(4,))
    assert consumer._new_offset(RAW) == 3  # the run 0..2; 5 waits for 4
    assert consumer._acked[RAW] == [5]


def test_the_ordinary_case_is_unchanged() -> None:
    assert _consumer([10, 11, 12, 14], committed=10)._new_offset(RAW) == 13
    assert _consumer([], committed=10)._new_offset(RAW) is None


def test_offsets_the_fetch_loop_skipped_are_not_counted_as_processed() -> None:
    from faust.transport.consumer import Consumer

    from pipeline.metrics import FETCH_GAPS

    # Faust's fetch loop read 10, then 13: 11 and 12 were fetched but dropped on the way to the stream (a fetch
    # cut short by a rebalance), so it recorded the gap 11..13 and counts it as processed. 10 and 14 are done,
    # 13 is still being processed.
    faust = _consumer([10, 14], committed=10)
    faust._gap[RAW].addi(11, 14)
    assert Consumer._new_offset(faust, RAW) == 15  # 11 and 12 lost, 13 committed before it was processed
    before = FETCH_GAPS.labels(RAW.topic)._value.get()
    guarded = _consumer([10, 14], committed=10)
    guarded._gap[RAW].addi(11, 14)
    assert guarded._new_offset(RAW) == 11 and not guarded._gap[RAW]  # the gap is a hole: the stall guard refetches
    assert FETCH_GAPS.labels(RAW.topic)._value.get() == before + 1
    guarded._committed_offset[RAW] = 11
    assert guarded._new_offset(RAW) is None  # 11..13 not done: 14 waits
    guarded._acked[RAW] += [11, 12, 13]  # fetched again and processed
    assert guarded._new_offset(RAW) == 15


def test_a_second_copy_of_a_done_message_does_not_hold_the_commit() -> None:
    # Offset 18 was delivered twice (once more after a seek); the first copy was acked, the second never is.
    assert _consumer([18], committed=18, in_flight=(18,))._new_offset(RAW) == 19


def test_an_offset_abandoned_by_an_interrupted_agent_holds_the_commit_until_a_copy_is_done() -> None:
    from faust.types.tuples import ConsumerMessage

    from pipeline import acks

    # Nothing committed yet (a new group), offsets 0 and 2 done, 1 abandoned half-way by a crashing agent: its
    # message left Faust's in-flight set (pipeline/acks.py), so only the abandoned record holds the commit.
    message = ConsumerMessage(RAW.topic, RAW.partition, 1, 0.0, 0, [], b"k", b"v", None)
    event = SimpleNamespace(message=message, app=SimpleNamespace(consumer=SimpleNamespace(_unacked_messages=set())))
    event.app.consumer._unacked_messages.add(message)
    try:
        try:
            with acks.held(event):
                raise RuntimeError("the agent crashed")
        except RuntimeError:
            pass
        assert not message.acked and message.refcount == 1 and not event.app.consumer._unacked_messages
        consumer = _consumer([0, 2], committed=None)
        assert consumer._new_offset(RAW) == 1  # offset 0 only
        assert consumer._new_offset(RAW) is None  # 1 is not done: 2 waits
        consumer._acked[RAW].append(1)  # a later copy of 1 (re-read after a seek back) is done
        consumer._acked_index[RAW].add(1)
        assert consumer._new_offset(RAW) == 3 and not acks.abandoned[RAW]
    finally:
        acks.abandoned.clear()


def test_a_stale_message_below_the_committed_offset_does_not_hold_the_commit() -> None:
    # A message object left over from before a rebalance, its offset long committed: it is done by definition.
    assert _consumer([40, 41], committed=40, in_flight=(12,))._new_offset(RAW) == 42
