"""pipeline.procs: the parent-death signal, the last error line of a log, atomic state files."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from pipeline.procs import last_error_line


def test_die_with_parent_exits_when_the_owner_is_already_gone() -> None:
    # The race PDEATHSIG cannot see: the owner died before the signal was armed.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    code = f"from pipeline.procs import die_with_parent; die_with_parent({dead.pid}); print('survived')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 1 and "survived" not in out.stdout


def test_a_grandchild_dies_with_its_parent(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    grandchild = ("import os, time; from pipeline.procs import die_with_parent; die_with_parent(os.getppid()); "
                  f"open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)")
    parent = ("import subprocess, sys, time; "
              f"subprocess.Popen([sys.executable, '-c', {grandchild!r}]); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", parent])
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline, "grandchild never started"
            time.sleep(0.1)
        pid = int(pid_file.read_text())
        assert Path(f"/proc/{pid}").exists()
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 5
        while Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:3]:
            assert time.monotonic() < deadline, "grandchild outlived its parent"
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_last_error_line_prefers_the_last_error(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    assert last_error_line(log) is None
    log.write_text("\n".join([
        json.dumps({"event": "worker starting", "level": "info"}),
        json.dumps({"event": "cannot reach Kafka", "level": "error"}),
        json.dumps({"event": "retrying", "level": "info"}),
        "",
    ]))
    assert last_error_line(log) == json.dumps({"event": "cannot reach Kafka", "level": "error"})
    log.write_text("Traceback (most recent call last):\n  File x\nValueError: bad value\n")
    assert last_error_line(log) == "ValueError: bad value"
    log.write_text("just a line\n")
    assert last_error_line(log) == "just a line"
