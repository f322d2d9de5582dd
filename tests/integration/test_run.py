"""`newsflow run`, the README's main command, over the shipped demo feeds on the real stack."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.settings import PROJECT_ROOT, Settings

pytestmark = pytest.mark.integration


def _search(env: dict[str, str], query: str) -> list[dict]:
    out = subprocess.run([sys.executable, "-m", "pipeline.cli", "search", query, "--json", "--since", "3650d"],
                         env=env, capture_output=True, text=True, timeout=60, check=False)
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def test_run_brings_the_pipeline_up_over_the_demo_feeds(stack: Settings, unique: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "NEWSFLOW_DATA_DIR": str(tmp_path / "data"),
        "NEWSFLOW_KAFKA_TOPIC_PREFIX": f"run-{unique}.",
        "NEWSFLOW_PIPELINE_APP_ID": f"run-{unique}",
        "NEWSFLOW_ES_INDEX_PREFIX": f"run-{unique}",
        "NEWSFLOW_ES_ALIAS": f"run-{unique}",
        "NEWSFLOW_LOG_FORMAT": "json",
    }
    log_path = tmp_path / "run.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "run", "--progress-every", "2"],
                                cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        hits: list[dict] = []
        deadline = time.monotonic() + 180  # the issue asks for a minute on an idle machine; CI shares 2 cores
        while time.monotonic() < deadline and proc.poll() is None:
            hits = _search(env, "Rutte")
            if hits:
                break
            time.sleep(2)
        assert hits, f"no demo article searchable; newsflow run log:\n{log_path.read_text()[-4000:]}"
        # The seed story is carried by two demo outlets: collapsed on story_id, it is one hit.
        stories = [h["story_id"] for h in hits]
        assert len(stories) == len(set(stories)), hits
        # The demo rule (config/alerts.yaml) alerts on the seed story: counted in the progress line.
        while time.monotonic() < deadline + 60 and not re.search(r"\| alerts [1-9]", log_path.read_text()):
            time.sleep(1)
        assert re.search(r"\| alerts [1-9]", log_path.read_text()), log_path.read_text()[-4000:]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        subprocess.run(["curl", "-s", "-XDELETE", f"{stack.es.url}/run-{unique}-*"], capture_output=True, check=False)
    output = log_path.read_text()
    assert rc == 0, output[-4000:]
    assert "items published" in output and "stopping: connector first" in output
