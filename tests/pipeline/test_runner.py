"""pipeline.runner: the parts of ``newsflow run`` that need no child process, broker or index: whether the settings
point at the local stack, pid files, the median lag, and a console whose reader went away. Running the pipeline
is an integration test (tests/integration/test_run.py)."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest

from pipeline import runner
from pipeline.settings import load_settings
from pipeline.stack.process import cmdline


def test_local_means_the_stacks_own_ports_on_loopback() -> None:
    assert runner._is_local(load_settings(environ={}))
    assert runner._is_local(load_settings(environ={"NEWSFLOW_KAFKA_BOOTSTRAP": "localhost:9092",
                                                   "NEWSFLOW_ES_URL": "http://localhost:9200"}))
    assert not runner._is_local(load_settings(environ={"NEWSFLOW_KAFKA_BOOTSTRAP": "kafka.example:9092"}))
    assert not runner._is_local(load_settings(environ={"NEWSFLOW_ES_URL": "http://127.0.0.1:9201"}))


def test_a_pid_file_names_a_live_process_only_when_its_command_line_matches(tmp_path: Path) -> None:
    pid_file = tmp_path / "worker.pid"
    parent = os.getppid()
    if not cmdline(parent):
        pytest.skip("the parent process's command line cannot be read")
    marker = cmdline(parent).split()[0]
    pid_file.write_text(f"{parent}\n")
    assert runner._pid_in(pid_file, marker) == parent
    assert runner._pid_in(pid_file, marker, "no-such-marker-in-a-command-line") is None  # a reused pid
    pid_file.write_text(f"{os.getpid()}\n")
    assert runner._pid_in(pid_file) is None  # never this process
    pid_file.write_text("not a pid\n")
    assert runner._pid_in(pid_file) is None
    assert runner._pid_in(tmp_path / "missing.pid") is None


def test_median_lag_is_indexed_minus_ingested_of_the_middle_document() -> None:
    sources = [
        {"ingested_at": "2026-02-04T12:00:00+00:00", "indexed_at": "2026-02-04T12:00:01+00:00"},
        {"ingested_at": "2026-02-04T12:00:00+00:00", "indexed_at": "2026-02-04T12:00:05+00:00"},
        {"ingested_at": "2026-02-04T12:00:00+00:00", "indexed_at": "2026-02-04T12:00:03+00:00"},
        {"ingested_at": "2026-02-04T12:00:00+00:00"},  # not indexed yet: left out
    ]
    assert runner._median_lag(sources) == 3.0
    assert runner._median_lag([]) is None
    assert runner.Progress().lag_s is None and runner.Progress().items_published == 0


def test_a_closed_console_stops_the_run_instead_of_aborting_it(monkeypatch: pytest.MonkeyPatch) -> None:
    silenced: list[bool] = []
    monkeypatch.setattr(runner, "_silence_stdout", lambda: silenced.append(True))  # fd 1 is pytest's here
    lines: list[str] = []

    def echo(line: str) -> None:
        if line == "closed":
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")
        lines.append(line)

    output = runner._Output(echo, threading.Event())
    output("first")
    output("closed")
    output("after")
    assert lines == ["first"] and output.closed and output.stop.is_set() and silenced == [True]


def test_other_console_errors_are_raised() -> None:
    def echo(line: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    output = runner._Output(echo, threading.Event())
    with pytest.raises(OSError, match="No space"):
        output("line")
    assert not output.closed and not output.stop.is_set()
