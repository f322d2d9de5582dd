"""Resolve the servers' artifacts from Maven Central with the project's own descriptors in deploy/local/."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from pipeline.errors import StackError
from pipeline.logs import get_logger

__all__ = ["resolve"]

log = get_logger(__name__)


def resolve(pom: Path, goal: str, properties: dict[str, str], done: Path, log_file: Path) -> float:
    """Run ``mvn -f pom goal`` once; ``done`` is the marker that the output is complete.

    Returns the seconds it took (0 when already resolved).

    Raises:
        StackError: mvn missing, or the resolution failed (the message names the log file).
    """
    if done.exists():
        return 0.0
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("mvn not found on PATH: install Maven (e.g. apt-get install maven) to resolve the stack")
    log_file.parent.mkdir(parents=True, exist_ok=True)
    cmd = [mvn, "-B", "-q", "-f", str(pom), *(f"-D{k}={v}" for k, v in properties.items()), goal]
    started = time.monotonic()
    log.info("resolving from Maven Central", pom=str(pom), log_file=str(log_file))
    with log_file.open("ab") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
    took = time.monotonic() - started
    if proc.returncode != 0:
        raise StackError(f"Maven could not resolve {pom.parent.name} (exit {proc.returncode}); see {log_file}")
    done.parent.mkdir(parents=True, exist_ok=True)
    done.write_text(f"{took:.1f}\n")
    log.info("resolved", pom=str(pom), took_s=round(took, 1))
    return took
