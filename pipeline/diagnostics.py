"""A state dump of a running worker on ``SIGUSR1``: what every task awaits and where each partition stands.

A worker that is alive but makes no progress leaves no error to read; this dump is what an operator (or a
test that timed out) needs to say where it stopped: ``kill -USR1 <pid>`` writes one ``worker state dump`` log
record with the event loop's tasks and their stacks, the consumer thread's tasks, Faust's flow control and, per
assigned partition, the fetch position, the highwater, the paused flag and Faust's read and committed offsets.
It only reads; the worker carries on.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from pipeline.logs import get_logger

__all__ = ["install_state_dump", "worker_state"]

log = get_logger(__name__)


def _task_stacks(loop: asyncio.AbstractEventLoop | None) -> list[str]:
    if loop is None or loop.is_closed():
        return []
    try:
        tasks = asyncio.all_tasks(loop)
    except RuntimeError:  # the set changed size while another thread ran: a diagnostic, try once more
        tasks = asyncio.all_tasks(loop)
    out = []
    for task in sorted(tasks, key=lambda t: t.get_name()):
        # Task.get_stack() gives one frame for a suspended task; following cr_await gives where it really waits.
        frames: list[str] = []
        coro: Any = task.get_coro()
        depth = 0
        while coro is not None and depth < 12:
            frame = (getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
                     or getattr(coro, "ag_frame", None))
            if frame is not None:
                frames.append(f"{frame.f_code.co_name}@{frame.f_code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno}")
            coro = (getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
                    or getattr(coro, "ag_await", None))
            depth += 1
        out.append(f"{task.get_name()}: {' -> '.join(frames) or repr(task.get_coro())}")
    return out


def worker_state(app: Any) -> dict[str, Any]:
    """A snapshot of ``app``'s consumer and tasks (read without locks: a diagnostic, not an API)."""
    consumer = app.consumer
    state: dict[str, Any] = {
        "generation": getattr(app, "consumer_generation_id", None),
        "flow_control_active": app.flow_control.is_active(),
        "consumer_flow_active": getattr(consumer, "flow_active", None),
        "rebalancing": app.rebalancing,
        "in_recovery": app.in_recovery,
        "recovery_completed": app.tables.recovery.completed.is_set(),
        "in_flight": sorted(f"{m.tp.topic}:{m.tp.partition}@{m.offset}" for m in list(consumer._unacked_messages))[:50],
        "recovery_active_remaining": {str(tp): n for tp, n in app.tables.recovery.active_remaining().items()},
        "tasks": _task_stacks(asyncio.get_running_loop()),
    }
    thread = getattr(consumer, "_thread", None)
    client = getattr(thread, "_consumer", None)
    state["consumer_thread_tasks"] = _task_stacks(getattr(thread, "thread_loop", None))
    if client is None:
        return state
    paused = client.paused()
    partitions = {}
    for tp in sorted(client.assignment()):
        try:
            position = client._subscription.subscription.assignment.state_value(tp).position
        except Exception:  # not yet reset, or revoked meanwhile
            position = None
        partitions[f"{tp.topic}:{tp.partition}"] = {
            "position": position,
            "highwater": client.highwater(tp),
            "paused": tp in paused,
            "faust_active": tp in (consumer._active_partitions or set()),
            "read": consumer._read_offset.get(tp),
            "committed": consumer._committed_offset.get(tp),
            "acked_pending": len(consumer._acked.get(tp, ())),
        }
    state["partitions"] = partitions
    return state


def install_state_dump(app: Any) -> None:
    """Log :func:`worker_state` on every SIGUSR1 received by this process (call from the app's event loop)."""
    loop = asyncio.get_running_loop()

    def dump() -> None:
        try:
            log.warning("worker state dump", **worker_state(app))
        except Exception as exc:  # a diagnostic must never take the worker down
            log.warning("worker state dump failed", error=repr(exc))

    loop.add_signal_handler(signal.SIGUSR1, dump)
