"""`newsflow stack` lifecycle on a second, private stack (own ports and data dir); the shared one keeps running."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.errors import StackError
from pipeline.settings import Settings, load_settings
from pipeline.stack import ElasticsearchService, KafkaService, stack_down, stack_up

pytestmark = pytest.mark.integration

PORTS = {"NEWSFLOW_STACK_KAFKA_PORT": "19092", "NEWSFLOW_STACK_KAFKA_CONTROLLER_PORT": "19093",
         "NEWSFLOW_STACK_ES_PORT": "19200", "NEWSFLOW_STACK_ES_TRANSPORT_PORT": "19300"}


def _env(data_dir: Path, shared: Settings, **extra: str) -> dict[str, str]:
    return {
        "NEWSFLOW_DATA_DIR": str(data_dir),
        # Reuse what the session's stack already resolved from Maven Central.
        "NEWSFLOW_STACK_CACHE_DIR": str(shared.cache_path),
        "NEWSFLOW_STACK_ES_HEAP": "512m",
        "NEWSFLOW_STACK_KAFKA_HEAP": "256m",
        **PORTS,
        **extra,
    }


@pytest.fixture(scope="module")
def private_env(stack: Settings) -> Iterator[dict[str, str]]:
    # Under the project (not /tmp of the test user, not /root): the Elasticsearch user must reach it.
    data_dir = stack.data_path / f"test-stack-{os.getpid()}"
    env = _env(data_dir, stack)
    yield env
    stack_down(load_settings(environ=env))
    shutil.rmtree(data_dir, ignore_errors=True)


def _kill9(pid: int | None) -> None:
    assert pid is not None
    os.kill(pid, signal.SIGKILL)


def test_up_twice_kill9_and_down_twice(private_env: dict[str, str]) -> None:
    settings = load_settings(environ=private_env)
    first = stack_up(settings)
    assert first["kafka"].startswith("started") and first["elasticsearch"].startswith("started")
    assert stack_up(settings) == {"kafka": "already running", "elasticsearch": "already running"}

    # status --json through the CLI, as an operator would call it
    result = CliRunner().invoke(app, ["stack", "status", "--json"], env=private_env)
    assert result.exit_code == 0, result.output
    status = json.loads(result.output.strip().splitlines()[-1])
    assert status["kafka"]["state"] == "running" and status["kafka"]["version"].startswith("4.")
    assert status["elasticsearch"]["state"] == "running"
    assert status["elasticsearch"]["version"] == settings.stack.elasticsearch_version
    assert status["kafka"]["port"] == 19092 and status["kafka"]["data_bytes"] > 0

    # kill -9 either server: the stale pid file is noticed and `up` starts only that one again
    _kill9(KafkaService(settings).pid())
    again = stack_up(settings)
    assert again["kafka"].startswith("started") and again["elasticsearch"] == "already running"
    _kill9(ElasticsearchService(settings).pid())
    again = stack_up(settings)
    assert again["elasticsearch"].startswith("started") and again["kafka"] == "already running"

    assert stack_down(settings) == {"kafka": "stopped", "elasticsearch": "stopped"}
    assert stack_down(settings) == {"kafka": "not running", "elasticsearch": "not running"}
    result = CliRunner().invoke(app, ["stack", "status"], env=private_env)
    assert result.exit_code == 1 and "stopped" in result.output


def test_port_in_use_is_one_clear_error(private_env: dict[str, str]) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()  # held for the whole check: not a dying server
        port = squatter.getsockname()[1]
        settings = load_settings(environ={**private_env, "NEWSFLOW_STACK_KAFKA_PORT": str(port)})
        with pytest.raises(StackError, match=f"port {port} is in use"):
            KafkaService(settings).up()


def test_missing_mvn_and_java_are_named(tmp_path: Path, private_env: dict[str, str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = load_settings(environ={**private_env, "NEWSFLOW_STACK_CACHE_DIR": str(tmp_path / "cache")})
    monkeypatch.setenv("PATH", str(tmp_path))  # neither mvn nor java
    with pytest.raises(StackError, match="mvn not found"):
        KafkaService(fresh).resolve()
    no_java = load_settings(environ={**private_env, "NEWSFLOW_STACK_JAVA_HOME": str(tmp_path / "nojdk")})
    with pytest.raises(StackError, match="java not found"):
        KafkaService(no_java).launch()
