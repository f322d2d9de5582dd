"""The stall guard: re-fetch records that Faust took from the consumer but never gave to a stream.

Seen here on the real broker (tests/integration: a worker killed with SIGKILL and restarted with a second one, a
worker added and another removed): after a rebalance, aiokafka returned a partition's records to Faust's
consumer, so its fetch position moved to the end, but Faust's fetch loop dropped them on the way to the stream
(its read offset never moved) and nothing seeks back. The partition then stalls for good: no error, no lag on the
other partitions, a worker that reports ready. The worker state dump (pipeline/diagnostics.py) shows it as
``position`` far ahead of ``read``/``committed`` with nothing in flight.

Every ``pipeline.stall_check_interval_s`` the guard looks at the worker; when it is idle (no rebalance, no table
recovery, flow running, no message in flight) and a stream partition's position is ahead of the next offset Faust
expects for it, at two checks in a row with nothing changed, it seeks that partition back to that offset. The
records come again; processing is at-least-once and every stage idempotent, so a rare repeat is harmless.
Counted in ``newsflow_consumer_stall_repairs_total`` and logged with the offsets.
"""

from __future__ import annotations

from typing import Any

from pipeline.logs import get_logger
from pipeline.metrics import STALL_REPAIRS

__all__ = ["StallGuard"]

log = get_logger(__name__)


class StallGuard:
    """Call :meth:`check` periodically (a Faust timer) with the running app."""

    def __init__(self) -> None:
        # tp -> the offset its stream expected at the previous check, for partitions that looked stalled then
        self._suspects: dict[Any, int] = {}

    def _settled(self, app: Any) -> bool:
        """No rebalance or table recovery under way, and the flow running."""
        return bool(
            not app.rebalancing and not app.in_recovery and app.tables.recovery.completed.is_set()
            and app.flow_control.is_active() and app.consumer.flow_active
        )

    def stalled(self, app: Any) -> dict[Any, tuple[int, int | None]]:
        """Stream partitions with records their stream never got: tp -> (position, offset to fetch again from).

        During a table recovery: :meth:`_recovery_stalled`. Otherwise two signs, looked for only while the worker
        is settled:

        - a *hole*: offsets after the committed one were processed, the committed one was not and is not in flight
          (Faust marked it read but never delivered it, e.g. a delivery cut short by a rebalance); the commit guard
          holds the commit there, so the partition would never move on;
        - a partition fetched *ahead*: its position is past the next offset its stream expects and no message at
          all is in flight (so no fetched batch is still being handed over). The offset is None for a partition the
          group never committed and this worker never read: its stream starts at the earliest offset
          (``auto_offset_reset=earliest``), which :meth:`check` asks the broker for.
        """
        consumer = app.consumer
        client = getattr(getattr(consumer, "_thread", None), "_consumer", None)
        if client is None:
            return {}
        if app.in_recovery:
            return self._recovery_stalled(app, client)
        if not self._settled(app):
            return {}
        in_flight = [(m.tp, m.offset) for m in list(consumer._unacked_messages)
                     if m.offset not in consumer._acked_index.get(m.tp, ())]  # not a done message's second copy
        paused = client.paused()
        active = consumer._active_partitions or set()
        found: dict[Any, tuple[int, int | None]] = {}
        for tp in client.assignment():
            if tp in paused or tp not in active or consumer._is_changelog_tp(tp):
                continue
            try:
                position = client._subscription.subscription.assignment.state_value(tp).position
            except Exception:  # no valid position (being reset): nothing to judge
                continue
            if position is None:
                continue
            committed = consumer._committed_offset.get(tp)
            acked = consumer._acked.get(tp) or ()
            if committed is not None and acked and min(acked) > committed and (tp, committed) not in in_flight:
                found[tp] = (position, committed)  # a hole
                continue
            if in_flight:
                continue
            read = consumer._read_offset.get(tp)
            expected = read + 1 if read is not None else committed
            if expected is None or position > expected:
                found[tp] = (position, expected)  # fetched ahead
        return found

    @staticmethod
    def _recovery_stalled(app: Any, client: Any) -> dict[Any, tuple[int, int | None]]:
        """Changelog partitions a table recovery waits on although their records were fetched: the recovery's
        next offset is behind the fetch position (the same drop, on the way to the recovery's queue instead of a
        stream). Recovery then waits forever ("No event received for active tp ... since recovery start")."""
        recovery = app.tables.recovery
        found: dict[Any, tuple[int, int | None]] = {}
        for tp, left in recovery.active_remaining().items():
            if left <= 0:
                continue
            applied = recovery.active_offsets.get(tp)
            expected = applied + 1 if applied is not None and applied >= 0 else None
            try:
                position = client._subscription.subscription.assignment.state_value(tp).position
            except Exception:
                continue
            if position is not None and (expected is None or position > expected):
                found[tp] = (position, expected)
        return found

    async def check(self, app: Any) -> int:
        """Seek back the partitions found stalled at this check and at the previous one, their stream expecting the
        same offset both times (it received nothing meanwhile); returns how many."""
        now = self.stalled(app)
        unknown = [tp for tp, (_, expected) in now.items() if expected is None]
        if unknown:
            earliest = await app.consumer.earliest_offsets(*unknown)
            for tp in unknown:
                now[tp] = (now[tp][0], earliest.get(tp))
        now = {tp: (position, expected) for tp, (position, expected) in now.items()
               if expected is not None and position > expected}
        repaired = 0
        for tp, (position, expected) in now.items():
            if self._suspects.get(tp) != expected:
                continue
            log.warning("partition stalled: records fetched but never delivered to the stream; fetching them again",
                        topic=tp.topic, partition=tp.partition, position=position, next_offset=expected)
            await app.consumer.seek(tp, expected)
            STALL_REPAIRS.inc()
            repaired += 1
        self._suspects = {tp: expected for tp, (_, expected) in now.items()
                          if expected is not None and self._suspects.get(tp) != expected}
        return repaired
