"""The offload pool: a pool process that dies is replaced and the call retried; one that dies on the same call
twice fails it as the message's fault; stop signals sent to the whole process group leave pool processes alone."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from pipeline.errors import PoolProcessDied
from pipeline.metrics import OFFLOAD_POOL_RESTARTS
from pipeline.offload import Offload


def _die_once(marker: str) -> str:
    """Kill this pool process the first time (as the OOM killer would), answer the second time."""
    if not os.path.exists(marker):
        Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return f"answered by {os.getpid()}"


def _always_die() -> str:
    os.kill(os.getpid(), signal.SIGKILL)
    return "never"


def _signalled(signum: int) -> int:
    """Send a stop signal to this pool process, as `kill -TERM -- -PGID` or Ctrl-C would, and carry on."""
    os.kill(os.getpid(), signum)
    return os.getpid()


async def test_a_pool_process_that_dies_is_replaced_and_the_call_retried(tmp_path: Path) -> None:
    offload = Offload(processes=1)
    restarts = OFFLOAD_POOL_RESTARTS._value.get()
    try:
        answer = await offload.run(_die_once, str(tmp_path / "died"))
        assert answer.startswith("answered by")
        assert (tmp_path / "died").exists()  # it did die once
        assert OFFLOAD_POOL_RESTARTS._value.get() == restarts + 1
        # The fresh pool keeps serving.
        assert (await offload.run(_die_once, str(tmp_path / "died"))).startswith("answered by")
    finally:
        offload.shutdown()


async def test_a_call_that_kills_its_process_twice_is_failed_as_the_messages_fault() -> None:
    offload = Offload(processes=1)
    try:
        with pytest.raises(PoolProcessDied) as raised:
            await offload.run(_always_die)
        assert raised.value.kind == "pool_process_died"
        assert "_always_die" in str(raised.value)
        # The pool was replaced after the second break too: the next message is served.
        assert await offload.run(_signalled, 0) > 0  # signal 0: only a liveness probe
    finally:
        offload.shutdown()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_pool_processes_leave_stop_signals_to_their_owner(signum: int) -> None:
    offload = Offload(processes=1)
    restarts = OFFLOAD_POOL_RESTARTS._value.get()
    try:
        first = await offload.run(_signalled, signum)
        second = await offload.run(_signalled, 0)
        assert first == second  # the same process: it survived the signal
        assert OFFLOAD_POOL_RESTARTS._value.get() == restarts
    finally:
        offload.shutdown()
