"""``<data_dir>/run/state.json``: what a running ``newsflow run`` supervises, for ``newsflow status`` to read.

``newsflow run`` writes it at start and whenever a child changes state, and removes it at exit; a file whose
``pid`` is not alive is stale (the run was killed) and means "down". Each child serves ``GET /health``,
``GET /ready`` (200/503 JSON) and ``GET /metrics`` on its ``port``.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from pipeline.errors import RunStateUnreadable
from pipeline.procs import pid_alive
from pipeline.settings import Settings

__all__ = ["ChildState", "RunState", "RunStateUnreadable", "pid_alive", "read_run_state", "remove_run_state",
           "run_state_path", "uptime_s", "write_run_state"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ChildState(_Model):
    name: str  # worker-1, worker-2, connector ...
    pid: int
    port: int  # its /health, /ready, /metrics
    started_at: AwareDatetime
    restarts: int = 0
    log: str
    state: Literal["running", "restarting", "failed", "stopped"] = "running"
    last_error: str | None = None


class RunState(_Model):
    pid: int  # the `newsflow run` process
    started_at: AwareDatetime
    children: list[ChildState] = Field(default_factory=list)


def run_state_path(settings: Settings) -> Path:
    return settings.data_path / "run" / "state.json"


def read_run_state(settings: Settings) -> RunState | None:
    """The state of the current run, None when no run wrote one.

    Raises:
        RunStateUnreadable: the file exists but is not a valid state (named in the message).
    """
    path = run_state_path(settings)
    try:
        return RunState.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValidationError, ValueError) as exc:
        raise RunStateUnreadable(f"{path}: not a valid run state: {str(exc)[:300]}") from exc


def write_run_state(settings: Settings, state: RunState) -> Path:
    """Write atomically (temp file + rename): a reader never sees half a file."""
    path = run_state_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(state.model_dump_json(indent=2), encoding="utf-8")
    os.replace(tmp, path)
    return path


def remove_run_state(settings: Settings) -> None:
    run_state_path(settings).unlink(missing_ok=True)


def uptime_s(started_at: datetime, now: datetime) -> float:
    return max(0.0, (now - started_at).total_seconds())
