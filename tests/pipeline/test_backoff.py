import asyncio
import threading
from typing import Any

import pytest

from pipeline.backoff import kafka_start_delay, wait_for_kafka, wait_for_kafka_async
from pipeline.errors import KafkaUnavailable


def test_kafka_start_delay_doubles_from_one_second_to_thirty_without_jitter() -> None:
    assert [kafka_start_delay(n) for n in range(7)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


class _Log:
    def __init__(self) -> None:
        self.warnings: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **kw: Any) -> None:
        self.warnings.append((event, kw))


class _Stop(threading.Event):
    """A stop event whose waits are recorded instead of slept; set after ``set_after`` waits."""

    def __init__(self, set_after: int | None = None) -> None:
        super().__init__()
        self.waits: list[float] = []
        self.set_after = set_after

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None
        self.waits.append(timeout)
        if self.set_after is not None and len(self.waits) >= self.set_after:
            self.set()
        return self.is_set()


def _failing(times: int, result: Any = "ok") -> Any:
    calls = {"n": 0}

    def step() -> Any:
        calls["n"] += 1
        if calls["n"] <= times:
            raise KafkaUnavailable(f"down {calls['n']}")
        return result

    step.calls = calls
    return step


def test_wait_for_kafka_retries_on_the_start_schedule_and_logs_each_failure() -> None:
    log, stop, step = _Log(), _Stop(), _failing(3, result={"news.raw": 4})
    assert wait_for_kafka(step, stop=stop, log=log) == {"news.raw": 4}
    assert stop.waits == [1.0, 2.0, 4.0]
    assert log.warnings == [("kafka not reachable yet; retrying", {"error": f"down {n}", "retry_in_s": d})
                            for n, d in ((1, 1.0), (2, 2.0), (3, 4.0))]


def test_wait_for_kafka_returns_none_once_stopped_during_a_wait() -> None:
    log, stop, step = _Log(), _Stop(set_after=2), _failing(10)
    assert wait_for_kafka(step, stop=stop, log=log) is None
    assert step.calls["n"] == 2 and stop.waits == [1.0, 2.0]


def test_wait_for_kafka_does_not_try_when_already_stopped_and_lets_other_errors_through() -> None:
    stop, step = _Stop(), _failing(0)
    stop.set()
    assert wait_for_kafka(step, stop=stop, log=_Log()) is None
    assert step.calls["n"] == 0

    def broken() -> None:
        raise ValueError("not a Kafka outage")

    with pytest.raises(ValueError):
        wait_for_kafka(broken, stop=_Stop(), log=_Log())


async def test_wait_for_kafka_async_retries_on_the_same_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(delay: float) -> None:
        slept.append(delay)
        await real_sleep(0)

    monkeypatch.setattr("pipeline.backoff.asyncio.sleep", fake_sleep)
    log, sync_step = _Log(), _failing(6)

    async def step() -> Any:
        return sync_step()

    assert await wait_for_kafka_async(step, log=log) == "ok"
    assert slept == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0]
    assert [kw["retry_in_s"] for _, kw in log.warnings] == slept


async def test_wait_for_kafka_async_ends_when_cancelled() -> None:
    started = asyncio.Event()

    async def step() -> None:
        started.set()
        raise KafkaUnavailable("down")

    task = asyncio.create_task(wait_for_kafka_async(step, log=_Log()))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
