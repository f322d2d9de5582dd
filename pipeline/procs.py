"""Process hygiene for a supervised service: die with the parent, bounded shutdown, pid files, run state.

- :func:`die_with_parent` asks Linux to kill this process when its parent dies (``prctl(PR_SET_PDEATHSIG)``).
  `newsflow run` passes its pid to each child in ``_NEWSFLOW_RUN_PID``; every child (worker, connector) and every
  pool process they start calls it, so a ``kill -9`` of `run` (OOM killer, closed SSH session) leaves nothing.
- :func:`arm_shutdown_deadline` bounds a graceful stop: after ``shutdown_timeout_s`` the process exits hard.
  That is safe because offsets are only committed for acknowledged work (at-least-once): whatever was in
  flight is redone by the next worker.
- :func:`pid_alive` and :func:`last_error_line` serve `newsflow run`'s supervision and `newsflow status`.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import sys
import threading
from pathlib import Path

from pipeline.logs import get_logger

__all__ = [
    "RUN_PID_ENV",
    "arm_shutdown_deadline",
    "die_with_parent",
    "die_with_run",
    "last_error_line",
    "pid_alive",
    "pool_process_init",
]

log = get_logger(__name__)

# Set by `newsflow run` for its children. Not NEWSFLOW_*: it is an internal handshake, not a setting.
RUN_PID_ENV = "_NEWSFLOW_RUN_PID"
_PR_SET_PDEATHSIG = 1
# SIGKILL, not SIGTERM: the supervisor is gone, so nobody would bound a graceful stop; a kill loses nothing
# because no offset is committed and no feed item is marked seen before it was acknowledged.
_DEATH_SIGNAL = signal.SIGKILL


def die_with_parent(owner_pid: int | None = None) -> bool:
    """Get SIGKILL when the parent process dies (Linux). Call it in the child, as early as possible.

    Args:
        owner_pid: the process this one must not outlive. When the parent already changed (the owner died
            before the prctl call, a race PDEATHSIG alone cannot see), this process exits at once. For a
            forkserver pool process the parent is the fork server, itself a child of the owner: then the
            owner's liveness is what is checked.

    Returns:
        False where prctl is not available (not Linux): nothing is armed.
    """
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(_DEATH_SIGNAL), 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed", errno=ctypes.get_errno())
        return False
    if owner_pid is not None and os.getppid() != owner_pid and not pid_alive(owner_pid):
        os._exit(1)  # the owner died before the signal was armed
    return True


def pool_process_init(owner_pid: int) -> None:
    """Initializer of every pool process (the worker's offload pool, the connector's parse pool).

    It dies with its owner (:func:`die_with_parent`), and it ignores SIGINT and SIGTERM: a stop signal sent to the
    whole process group (Ctrl-C in a terminal, systemd, ``kill -- -PGID``) must let the owner stop it in order. A
    pool process killed by it mid-task would break the pool under a message that did nothing wrong.
    """
    die_with_parent(owner_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def die_with_run() -> None:
    """In a child of `newsflow run` (``_NEWSFLOW_RUN_PID`` set): die with it. Elsewhere: nothing."""
    value = os.environ.get(RUN_PID_ENV)
    if value and value.isdigit():
        die_with_parent(int(value))


def arm_shutdown_deadline(timeout_s: float, what: str) -> None:
    """From now on, exit hard after ``timeout_s`` unless the process ended by itself (idempotent).

    Called when a stop is requested (SIGTERM/SIGINT). The graceful path (flush, commit acknowledged
    offsets, leave the group) usually takes a second or two; with Kafka or Elasticsearch unreachable, client
    libraries retry for minutes, so the deadline is what keeps the promise to the supervisor.
    """
    global _deadline
    with _deadline_lock:
        if _deadline is not None:
            return

        def expire() -> None:
            with contextlib.suppress(Exception):
                log.error("shutdown deadline passed; exiting now", component=what, shutdown_timeout_s=timeout_s)
            os._exit(3)

        _deadline = threading.Timer(timeout_s, expire)
        _deadline.daemon = True
        _deadline.name = "newsflow-shutdown-deadline"
        _deadline.start()


_deadline: threading.Timer | None = None
_deadline_lock = threading.Lock()


_ERROR_LINE = re.compile(r'"level":\s*"(error|critical|exception)"|\b(ERROR|CRITICAL)\b|^\w+(\.\w+)*(Error|Exception)\b'
                         r"|\berror: ")


def last_error_line(log_path: Path, max_len: int = 300) -> str | None:
    """The last line of a child's log that reports an error (else the last non-empty line), shortened."""
    from pipeline.stack.process import tail

    lines = [line.strip() for line in tail(log_path, 400).splitlines() if line.strip()]
    if not lines:
        return None
    for line in reversed(lines):
        if _ERROR_LINE.search(line):
            return line[:max_len]
    return lines[-1][:max_len]


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists and is not a zombie (exited, not yet reaped by its parent)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no procfs (not Linux): the signal test is all we have
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"
