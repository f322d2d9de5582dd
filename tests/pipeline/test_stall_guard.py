"""The stall guard over a stand-in for Faust's consumer: it seeks back a partition whose records were fetched but
never delivered, only when the worker is idle and only after two checks agree, and leaves everything else alone."""

from __future__ import annotations

from collections import namedtuple
from types import SimpleNamespace
from typing import Any

from pipeline.metrics import STALL_REPAIRS
from pipeline.stall_guard import StallGuard

TP = namedtuple("TP", "topic partition")
RAW0, RAW1, CHANGELOG = TP("news.raw", 0), TP("news.raw", 1), TP("app-dedupe-urls-changelog", 0)


class _InFlight:  # a Faust message delivered to a stream and not acked yet (hashable, as in Faust's WeakSet)
    def __init__(self, tp: TP, offset: int) -> None:
        self.tp, self.offset = tp, offset


class _Flag:
    def __init__(self, value: bool) -> None:
        self.value = value

    def is_set(self) -> bool:
        return self.value

    is_active = is_set


def _app(positions: dict[TP, int], read: dict[TP, int | None], committed: dict[TP, int | None]) -> Any:
    sought: list[tuple[TP, int]] = []

    async def seek(tp: TP, offset: int) -> None:
        sought.append((tp, offset))
        read[tp] = offset  # as Faust's Consumer.seek does

    client = SimpleNamespace(
        paused=lambda: set(),
        assignment=lambda: set(positions),
        _subscription=SimpleNamespace(subscription=SimpleNamespace(assignment=SimpleNamespace(
            state_value=lambda tp: SimpleNamespace(position=positions[tp])))),
    )
    consumer = SimpleNamespace(
        _thread=SimpleNamespace(_consumer=client), _active_partitions=set(positions), _read_offset=read,
        _committed_offset=committed, _unacked_messages=set(), _acked={}, _acked_index={}, flow_active=True,
        _is_changelog_tp=lambda tp: tp.topic.endswith("-changelog"), seek=seek,
    )
    return SimpleNamespace(consumer=consumer, rebalancing=False, in_recovery=False, flow_control=_Flag(True),
                           tables=SimpleNamespace(recovery=SimpleNamespace(
                               completed=_Flag(True), active_remaining=lambda: {}, active_offsets={})),
                           sought=sought)


async def test_a_partition_fetched_but_never_delivered_is_sought_back_after_two_checks() -> None:
    # raw:0: aiokafka returned offsets 1..18 (position 19) but the stream never got them (read None, committed 1);
    # raw:1 is up to date; the changelog is read by table recovery, not by a stream: never judged.
    app = _app({RAW0: 19, RAW1: 21, CHANGELOG: 40}, {RAW0: None, RAW1: 20, CHANGELOG: 3}, {RAW0: 1, RAW1: 21})
    guard = StallGuard()
    repairs = STALL_REPAIRS._value.get()
    assert guard.stalled(app) == {RAW0: (19, 1)}  # raw:1 is at 21, expecting 21
    assert await guard.check(app) == 0  # first sighting: could be a batch on its way
    assert await guard.check(app) == 1
    assert app.sought == [(RAW0, 1)]
    assert STALL_REPAIRS._value.get() == repairs + 1
    # After the seek Faust expects offset 1 again and aiokafka's position is back there: nothing to do.
    app.consumer._thread._consumer._subscription.subscription.assignment.state_value = \
        lambda tp: SimpleNamespace(position={RAW0: 1, RAW1: 21, CHANGELOG: 40}[tp])
    assert await guard.check(app) == 0 and await guard.check(app) == 0


async def test_a_partition_that_progresses_between_checks_is_left_alone() -> None:
    read: dict[TP, int | None] = {RAW0: 5}
    app = _app({RAW0: 19}, read, {RAW0: 1})
    guard = StallGuard()
    assert await guard.check(app) == 0
    read[RAW0] = 9  # the stream received more meanwhile: a batch being delivered, not a stall
    assert await guard.check(app) == 0
    assert app.sought == []


async def test_nothing_is_judged_while_the_worker_is_busy_or_rebalancing() -> None:
    for busy in ("unacked", "rebalancing", "in_recovery", "recovery", "flow"):
        app = _app({RAW0: 19}, {RAW0: None}, {RAW0: 1})
        if busy == "unacked":
            # a message in flight: the fetched batch it came in may still hold raw:0's records
            app.consumer._unacked_messages = {_InFlight(RAW1, 7)}
        elif busy == "recovery":
            app.tables.recovery.completed = _Flag(False)
        elif busy == "flow":
            app.flow_control = _Flag(False)
        else:
            setattr(app, busy, True)
        guard = StallGuard()
        assert [await guard.check(app) for _ in range(3)] == [0, 0, 0], busy
        assert app.sought == [], busy


async def test_a_partition_never_committed_is_judged_from_its_earliest_offset() -> None:
    # Never committed by the group and never read here: the stream starts at the earliest offset the broker keeps.
    app = _app({RAW0: 19, RAW1: 3}, {RAW0: None, RAW1: None}, {RAW0: None, RAW1: None})
    asked: list[tuple[TP, ...]] = []

    async def earliest_offsets(*tps: TP) -> dict[TP, int]:
        asked.append(tps)
        return {RAW0: 0, RAW1: 3}

    app.consumer.earliest_offsets = earliest_offsets
    guard = StallGuard()
    assert await guard.check(app) == 0
    assert await guard.check(app) == 1
    assert app.sought == [(RAW0, 0)]  # raw:1 sits at its earliest offset: nothing was fetched, nothing to redo
    assert sorted(asked[0]) == [RAW0, RAW1]


async def test_a_hole_at_the_committed_offset_is_fetched_again() -> None:
    # raw:0: 12..18 processed and acked, 11 (the committed offset) marked read but never delivered: the commit
    # guard holds the commit at 11, so without a seek the partition never moves on.
    app = _app({RAW0: 19}, {RAW0: 18}, {RAW0: 11})
    app.consumer._acked = {RAW0: [12, 13, 14, 15, 16, 17, 18]}
    app.consumer._unacked_messages = {_InFlight(RAW1, 40)}  # other work in flight does not hide a hole
    guard = StallGuard()
    assert guard.stalled(app) == {RAW0: (19, 11)}
    assert [await guard.check(app), await guard.check(app)] == [0, 1]
    assert app.sought == [(RAW0, 11)]


async def test_a_hole_whose_message_is_still_in_flight_is_left_alone() -> None:
    app = _app({RAW0: 19}, {RAW0: 18}, {RAW0: 11})
    app.consumer._acked = {RAW0: [12, 13]}
    app.consumer._unacked_messages = {_InFlight(RAW0, 11)}  # slow (Elasticsearch down, a long article), not lost
    guard = StallGuard()
    assert [await guard.check(app) for _ in range(3)] == [0, 0, 0]


async def test_a_table_recovery_waiting_on_records_already_fetched_is_fed_again() -> None:
    # Recovery wants offset 0 of the changelog (nothing applied yet: -1), aiokafka's position is already 1: the
    # record was fetched and lost on its way to the recovery queue, which now waits forever.
    app = _app({CHANGELOG: 1, RAW0: 5}, {CHANGELOG: None, RAW0: None}, {CHANGELOG: None, RAW0: 1})
    app.in_recovery = True
    app.tables.recovery.active_remaining = lambda: {CHANGELOG: 1}
    app.tables.recovery.active_offsets = {CHANGELOG: -1}

    async def earliest_offsets(*tps: TP) -> dict[TP, int]:
        return dict.fromkeys(tps, 0)

    app.consumer.earliest_offsets = earliest_offsets
    guard = StallGuard()
    assert [await guard.check(app), await guard.check(app)] == [0, 1]
    assert app.sought == [(CHANGELOG, 0)]  # stream partitions are not judged during a recovery


async def test_a_recovery_that_progresses_is_left_alone() -> None:
    app = _app({CHANGELOG: 900}, {CHANGELOG: None}, {CHANGELOG: None})
    app.in_recovery = True
    applied = {CHANGELOG: 100}
    app.tables.recovery.active_remaining = lambda: {CHANGELOG: 1000 - applied[CHANGELOG]}
    app.tables.recovery.active_offsets = applied
    guard = StallGuard()
    assert await guard.check(app) == 0
    applied[CHANGELOG] = 400  # a big changelog being applied: fetched ahead, but moving
    assert await guard.check(app) == 0
    assert app.sought == []
