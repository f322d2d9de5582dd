"""The run state file shared by `newsflow run` (writer) and `newsflow status` (reader)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.runstate import (
    ChildState,
    RunState,
    RunStateUnreadable,
    pid_alive,
    read_run_state,
    remove_run_state,
    run_state_path,
    write_run_state,
)
from pipeline.settings import load_settings


def test_write_read_remove(tmp_path: Path) -> None:
    settings = load_settings(environ={"NEWSFLOW_DATA_DIR": str(tmp_path)})
    assert read_run_state(settings) is None  # no run going
    now = datetime.now(UTC)
    state = RunState(pid=os.getpid(), started_at=now, children=[
        ChildState(name="worker-1", pid=123, port=7001, started_at=now, restarts=1, log="/tmp/w1.log",
                   state="restarting", last_error="KafkaConnectionError: refused")])
    path = write_run_state(settings, state)
    assert path == tmp_path / "run" / "state.json" and run_state_path(settings) == path
    assert read_run_state(settings) == state
    assert not list(path.parent.glob("*.tmp*"))  # written atomically, nothing left behind
    remove_run_state(settings)
    assert read_run_state(settings) is None


def test_a_damaged_file_is_a_clear_error(tmp_path: Path) -> None:
    settings = load_settings(environ={"NEWSFLOW_DATA_DIR": str(tmp_path)})
    run_state_path(settings).parent.mkdir(parents=True)
    run_state_path(settings).write_text('{"pid": "x"}')
    with pytest.raises(RunStateUnreadable, match=r"state\.json: not a valid run state"):
        read_run_state(settings)


def test_pid_alive_sees_exited_and_zombie_processes_as_gone() -> None:
    assert pid_alive(os.getpid())
    assert not pid_alive(0) and not pid_alive(-1)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 10
        while pid_alive(child.pid) and time.monotonic() < deadline:  # exited but not reaped: a zombie
            time.sleep(0.05)
        assert not pid_alive(child.pid)
    finally:
        child.wait()
    assert not pid_alive(child.pid)
