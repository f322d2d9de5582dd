"""The process pool that keeps blocking work (HTML parsing, MinHash, NLP) off the asyncio event loop.

One pool per worker process, created lazily on first use. ``processes=0`` runs the work in a single
thread instead (tests, debugging). Pool processes are started with ``spawn`` rather than ``fork``: the
worker process holds a running event loop and Kafka client threads that must not be copied. Modules
that load a model (spaCy) cache it at module level, so each pool process loads it once.

    >>> offload = Offload(processes=1)
    >>> article = await offload.run(clean_article, item, min_words=20)
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from pipeline.errors import OffloadedError, PoolProcessDied
from pipeline.logs import get_logger
from pipeline.metrics import OFFLOAD_POOL_RESTARTS
from pipeline.procs import pool_process_init

__all__ = ["Offload"]

log = get_logger(__name__)
T = TypeVar("T")


def _call(fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        kind = getattr(exc, "kind", None)
        raise OffloadedError(kind if isinstance(kind, str) else type(exc).__name__, str(exc)) from None


class Offload:
    """A lazily created executor; ``await offload.run(fn, *args, **kwargs)`` runs ``fn`` in it."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._executor: Executor | None = None

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            if self.processes == 0:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="newsflow-offload")
            else:
                # Pool processes die with the worker, even when it is killed with SIGKILL, and leave stop
                # signals to it.
                self._executor = ProcessPoolExecutor(
                    max_workers=self.processes, mp_context=multiprocessing.get_context("spawn"),
                    initializer=pool_process_init, initargs=(os.getpid(),),
                )
            log.info("offload pool started", processes=self.processes)
        return self._executor

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` in the pool and return its result (exceptions propagate).

        ``fn`` and its arguments must be picklable: module-level functions and pydantic models are.

        A pool process that dies under the call (OOM killer, a crash in a native library, a stray kill) breaks
        the pool: it is replaced and the call runs once more on the fresh one. The death may have nothing to do
        with this call, so failing it at once would dead-letter a good message.

        Raises:
            OffloadedError: ``fn`` raised; ``kind`` is the original error's kind (or class name).
            PoolProcessDied: the call broke the pool twice: the input itself kills the process.
        """
        loop = asyncio.get_running_loop()
        call = functools.partial(_call, fn, args, kwargs)
        for attempt in (1, 2):
            executor = self.executor
            try:
                return await loop.run_in_executor(executor, call)
            except BrokenProcessPool as exc:
                OFFLOAD_POOL_RESTARTS.inc()
                log.error("offload pool broken, restarting it", processes=self.processes, attempt=attempt,
                          call=getattr(fn, "__name__", repr(fn)))
                if self._executor is executor:  # concurrent calls saw the same break: replace it once
                    self.shutdown(wait=False)
                if attempt == 2:
                    raise PoolProcessDied(f"the pool process died twice running {getattr(fn, '__name__', fn)}; "
                                          "the message is taken to cause it") from exc
        raise AssertionError("unreachable")

    def shutdown(self, wait: bool = True) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=wait, cancel_futures=True)
            self._executor = None
