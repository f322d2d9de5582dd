"""One background server of the local stack: resolve, start, wait until ready, stop, report.

Subclasses say how to launch their server and how to ask it whether it is ready; the lifecycle
(pid files, stale pids, ports in use, start timeouts, SIGTERM then SIGKILL) is shared here.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import StackError
from pipeline.logs import get_logger
from pipeline.settings import PROJECT_ROOT, Settings
from pipeline.stack.process import alive_pid, dir_size, port_open, stop_pid, tail

__all__ = ["DEPLOY_DIR", "Service", "ServiceStatus"]

DEPLOY_DIR = PROJECT_ROOT / "deploy" / "local"

log = get_logger(__name__)


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: str  # running | starting | stopped
    port: int
    pid: int | None
    version: str | None
    data_bytes: int
    log_file: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Service(ABC):
    name: str
    marker: str  # a string in the server's command line, to tell our process from a reused pid

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stack = settings.stack
        self.home = settings.data_path / "stack" / self.name
        self.data_dir = self.home / "data"
        self.pid_file = self.home / f"{self.name}.pid"
        self.out_file = self.home / f"{self.name}.out"

    # -- what subclasses provide ---------------------------------------------------------------
    @property
    @abstractmethod
    def port(self) -> int: ...

    @property
    @abstractmethod
    def version(self) -> str: ...

    @abstractmethod
    def resolve(self) -> float:
        """Fetch the server's artifacts if needed; seconds spent."""

    @abstractmethod
    def launch(self) -> None:
        """Start the server in the background and write ``pid_file``."""

    @abstractmethod
    def ready(self) -> bool:
        """Ask the running server whether it serves requests."""

    @property
    def log_file(self) -> Path:
        return self.out_file

    def running_version(self) -> str | None:
        return self.version

    # -- shared lifecycle -------------------------------------------------------------------------
    def pid(self) -> int | None:
        return alive_pid(self.pid_file, self.marker)

    def up(self) -> str:
        """Start the server unless it runs; return what was done ("already running" / "started in Ns")."""
        pid = self.pid()
        if pid is not None and self._wait_ready(pid, time.monotonic()):
            return "already running"
        # Not running, or it died while we looked (a kill -9 a moment ago): start it.
        if self._port_busy():
            raise StackError(
                f"{self.name}: port {self.port} is in use by another process; stop it or change "
                f"stack.{self.name if self.name == 'kafka' else 'es'}_port"
            )
        self.resolve()
        started = time.monotonic()
        self.home.mkdir(parents=True, exist_ok=True)
        self.launch()
        pid = self.pid()
        if pid is None or not self._wait_ready(pid, started):
            raise StackError(f"{self.name} died while starting: {self._last_error()}; see {self.log_file}")
        took = time.monotonic() - started
        log.info("server started", service=self.name, port=self.port, took_s=round(took, 1))
        return f"started in {took:.1f}s"

    def _port_busy(self, grace_s: float = 10.0) -> bool:
        """True when another process holds the port; a server killed a moment ago gets ``grace_s`` to let go."""
        deadline = time.monotonic() + grace_s
        while port_open(self.port):
            if time.monotonic() > deadline:
                return True
            time.sleep(0.25)
        return False

    def _wait_ready(self, pid: int, started: float) -> bool:
        """True once the server answers; False when its process is gone; StackError on timeout."""
        deadline = started + self.stack.start_timeout_s
        while time.monotonic() < deadline:
            if self.ready():
                return True
            if self.pid() is None:
                return False
            time.sleep(0.5)
        raise StackError(
            f"{self.name} (pid {pid}) not ready after {self.stack.start_timeout_s:.0f}s; see {self.log_file}"
        )

    def down(self) -> str:
        pid = self.pid()
        if pid is None:
            return "not running"
        killed = stop_pid(pid, self.stack.stop_timeout_s)
        self.pid_file.unlink(missing_ok=True)
        return "killed after timeout" if killed else "stopped"

    def status(self) -> ServiceStatus:
        pid = self.pid()
        state = "stopped" if pid is None else ("running" if self.ready() else "starting")
        return ServiceStatus(
            name=self.name,
            state=state,
            port=self.port,
            pid=pid,
            version=self.running_version() if state == "running" else self.version,
            data_bytes=dir_size(self.data_dir) if self.data_dir.exists() else 0,
            log_file=str(self.log_file),
        )

    def _last_error(self) -> str:
        lines = [ln for ln in tail(self.log_file, 200).splitlines() if ln.strip()]
        for line in reversed(lines):
            if any(w in line for w in ("ERROR", "Exception", "error:", "FATAL")):
                return line.strip()[:300]
        return lines[-1].strip()[:300] if lines else "no output"
