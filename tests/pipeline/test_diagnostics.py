"""The SIGUSR1 state dump: a snapshot of the app and a log record per signal, without disturbing the worker."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
import structlog

from pipeline.app import NewsflowApp, create_app
from pipeline.diagnostics import install_state_dump, worker_state
from pipeline.settings import load_settings


@pytest.fixture
def app(tmp_path: Path) -> NewsflowApp:
    return create_app(load_settings(environ={"NEWSFLOW_DATA_DIR": str(tmp_path)}), web_port=0)


async def test_state_names_the_waiting_tasks_and_the_flow(app: NewsflowApp) -> None:
    parked = asyncio.Event()

    async def parked_agent() -> None:
        await parked.wait()

    task = asyncio.create_task(parked_agent(), name="parked-agent")
    await asyncio.sleep(0)
    try:
        state = worker_state(app)
    finally:
        parked.set()
        await task
    [line] = [t for t in state["tasks"] if t.startswith("parked-agent:")]
    assert "parked_agent@test_diagnostics.py" in line  # the coroutine...
    assert line.index("parked_agent@") < line.index("wait@locks.py")  # ... and, inside it, where it waits
    assert state["flow_control_active"] is False  # an app that never started has not resumed its flow
    assert state["recovery_completed"] is False
    assert "partitions" not in state  # no consumer client yet: nothing assigned to report


async def test_sigusr1_logs_one_dump_and_the_process_carries_on(app: NewsflowApp) -> None:
    install_state_dump(app)
    try:
        with structlog.testing.capture_logs() as logs:
            os.kill(os.getpid(), signal.SIGUSR1)
            await asyncio.sleep(0.1)
    finally:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGUSR1)
    [dump] = [e for e in logs if e["event"] == "worker state dump"]
    assert dump["log_level"] == "warning" and isinstance(dump["tasks"], list) and dump["tasks"]
