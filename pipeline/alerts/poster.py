"""HTTP POSTs of alert webhooks, made by a child process at a lower CPU priority than the stages.

A broad rule set sends dozens of webhooks per article. Made on the worker's event loop, each cost ~0.2 ms of
the worker's CPU, on the same cores as the pool process that cleans and enriches; under load the pipeline slowed
by about a sixth of its rate for that alone. The :class:`Poster` hands each request to one child process
(``python -m pipeline.alerts.poster``, started on first use) over its stdin and reads the answers from its stdout:
the worker pays a pickled frame per request. The child runs aiohttp with ``nice`` raised by
``alerts.delivery_nice``, so when the cores are short, ingestion wins and webhooks wait; when they are not,
the priority changes nothing.

The child dies with the worker (``PR_SET_PDEATHSIG``) and ends when its stdin closes. Should it die, the
requests in flight fail (the deliverer retries them, which starts a new child; each start is counted in
``newsflow_alerts_poster_starts_total``). Redirects are never followed and any answer comes back as (status,
reason): what counts as delivered is decided by the caller. Of an answer's body at most ``MAX_ANSWER_BYTES`` are
read; a receiver sending more has its connection closed, so a hostile one cannot fill the poster's memory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import itertools
import os
import pickle
import signal
import struct
import sys
from collections.abc import Sequence
from typing import Any

from pipeline.logs import configure_logging, get_logger
from pipeline.metrics import ALERT_POSTER_STARTS
from pipeline.procs import die_with_parent

__all__ = ["Poster"]

log = get_logger(__name__)

MAX_ANSWER_BYTES = 64 * 1024  # of a receiver's answer body: nobody reads it, a keep-alive connection needs it drained
_HEADER = struct.Struct("!I")  # frame length, then a pickle: request (id, url, body, headers), answer (id, status,
# reason, error)


def _frame(obj: Any) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


async def _read_frame(reader: asyncio.StreamReader) -> Any | None:
    """The next frame's object; None at the end of the stream."""
    try:
        (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
        return pickle.loads(await reader.readexactly(size))  # our own child's frames
    except asyncio.IncompleteReadError:
        return None


class Poster:
    """POSTs from the child process: ``await post(url, body, headers)`` returns the answer's (status, reason).

    Raises (from :meth:`post`):
        ConnectionError: no answer (connection refused, timeout, the child died); the caller names the channel.
    """

    def __init__(self, *, limit: int, timeout_s: float, nice: int) -> None:
        self.limit = limit
        self.timeout_s = timeout_s
        self.nice = nice
        self._proc: asyncio.subprocess.Process | None = None
        self._reading: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[tuple[int, str]]] = {}
        self._ids = itertools.count()
        self._starting: asyncio.Lock | None = None
        self._outbox: list[bytes] = []  # frames not yet written to the child ``_outbox_proc``
        self._outbox_proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    def _running(self) -> asyncio.subprocess.Process | None:
        """The child, while it runs and its answers are read."""
        if self._proc is None or self._proc.returncode is not None or self._reading is None or self._reading.done():
            return None
        return self._proc

    async def _child(self) -> asyncio.subprocess.Process:
        if (proc := self._running()) is not None:
            return proc
        if self._starting is None:  # created on the running loop
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._running() is None:
                self._proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "pipeline.alerts.poster", "--owner", str(os.getpid()),
                    "--limit", str(self.limit), "--timeout", str(self.timeout_s), "--nice", str(self.nice),
                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=2**20)
                self._reading = asyncio.create_task(self._read_answers(self._proc))
                ALERT_POSTER_STARTS.inc()
                log.info("alert poster started", pid=self._proc.pid, nice=self.nice)
        assert self._proc is not None
        return self._proc

    async def _read_answers(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        try:
            while (answer := await _read_frame(proc.stdout)) is not None:
                rid, status, reason, error = answer
                fut = self._pending.pop(rid, None)
                if fut is None or fut.done():
                    continue  # the caller gave up (timeout)
                if error is not None:
                    fut.set_exception(ConnectionError(error))
                else:
                    fut.set_result((status, reason))
        finally:
            # The child is gone (or stopped): whatever it had not answered fails and will be retried.
            code = await proc.wait()
            pending, self._pending = self._pending, {}
            for fut in pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError(f"the poster process exited ({code})"))
            if pending:
                log.warning("alert poster exited with requests in flight", code=code, requests=len(pending))

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        proc = await self._child()
        rid, fut = self._submit(proc, url, body, headers)
        try:
            return await fut
        finally:
            self._pending.pop(rid, None)

    async def post_many(self, requests: Sequence[tuple[str, bytes, dict[str, str]]], *, timeout_s: float
                        ) -> list[tuple[int, str] | Exception]:
        """Each (url, body, headers) request's answer, or its error; all handed over at once and awaited together
        (no task per request). A request without an answer after ``timeout_s`` gets a :class:`TimeoutError`."""
        if not requests:
            return []
        proc = await self._child()
        submitted = [self._submit(proc, *request) for request in requests]
        try:
            await asyncio.wait([fut for _rid, fut in submitted], timeout=timeout_s)
        finally:
            for rid, _fut in submitted:
                self._pending.pop(rid, None)
        out: list[tuple[int, str] | Exception] = []
        for _rid, fut in submitted:
            error = fut.exception() if fut.done() else TimeoutError(f"no answer within {timeout_s:g} s")
            out.append(fut.result() if error is None else error if isinstance(error, Exception)
                       else ConnectionError(str(error)))
        return out

    def _submit(self, proc: asyncio.subprocess.Process, url: str, body: bytes, headers: dict[str, str]
                ) -> tuple[int, asyncio.Future[tuple[int, str]]]:
        rid = next(self._ids)
        fut: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut  # failed by _read_answers should the child die before answering
        self._send(proc, _frame((rid, url, body, headers)))
        return rid, fut

    def _send(self, proc: asyncio.subprocess.Process, frame: bytes) -> None:
        """Queue a frame for ``proc``; the frames of one turn of the loop go out in one write. A broad rule set posts
        hundreds at once, and a write per frame (a system call and a wake-up of the child each) cost more than the
        pickling. No drain: what is in flight is one batch's first attempts and the retry slots'."""
        if self._outbox and self._outbox_proc is not proc:
            self._flush()  # frames for a child that has since been replaced: never to the new one
        self._outbox_proc = proc
        self._outbox.append(frame)
        if len(self._outbox) == 1:
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        frames, self._outbox = self._outbox, []
        proc = self._outbox_proc
        if frames and proc is not None and proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.write(b"".join(frames))
        # Else the child is gone: _read_answers failed (or will fail) the requests it did not answer.

    async def close(self) -> None:
        """Close the child's stdin (it ends once its requests are answered), then wait for it, briefly."""
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        assert proc.stdin is not None
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), self.timeout_s + 1)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        if self._reading is not None:
            with contextlib.suppress(BaseException):
                await self._reading


# The child process.


@functools.lru_cache(maxsize=1024)
def _env_proxy(origin: Any) -> tuple[Any, Any]:
    """The proxy the environment names for ``origin`` (HTTP(S)_PROXY, NO_PROXY, ~/.netrc), looked up once per origin.

    aiohttp's ``trust_env=True`` looks it up on every request, reading ~/.netrc in a thread each time: a third of the
    worker's CPU under a broad rule set (py-spy). The environment of a running process does not change.
    """
    from aiohttp.helpers import get_env_proxy_for_url

    try:
        return get_env_proxy_for_url(origin)
    except LookupError:  # none, or NO_PROXY excludes it
        return None, None


async def _serve(limit: int, timeout_s: float) -> None:
    import aiohttp
    from yarl import URL

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, sys.stdout.buffer)
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    tasks: set[asyncio.Task[None]] = set()
    answers: list[bytes] = []

    def flush() -> None:
        writer.write(b"".join(answers))
        answers.clear()

    def answer_with(frame: bytes) -> None:  # one write per turn of the loop, as the worker's side
        answers.append(frame)
        if len(answers) == 1:
            loop.call_soon(flush)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s),
                                     connector=aiohttp.TCPConnector(limit=limit)) as http:

        async def one(rid: int, url: str, body: bytes, headers: dict[str, str]) -> None:
            answer: tuple[int, int, str, str | None]
            try:
                proxy, proxy_auth = _env_proxy(URL(url).origin())
                async with http.post(url, data=body, headers=headers, allow_redirects=False, proxy=proxy,
                                     proxy_auth=proxy_auth) as resp:
                    await resp.content.read(MAX_ANSWER_BYTES)
                    if not resp.content.at_eof():
                        resp.close()  # more than anyone reads: drop the connection rather than drain it
                    answer = (rid, resp.status, (resp.reason or "")[:200], None)
            except Exception as exc:  # every failure is an answer: the caller retries or dead-letters
                answer = (rid, 0, "", str(exc)[:300] or type(exc).__name__)
            answer_with(_frame(answer))

        while (request := await _read_frame(reader)) is not None:
            task = asyncio.create_task(one(*request))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks)
    if answers:
        flush()
    with contextlib.suppress(ConnectionError):
        await writer.drain()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.alerts.poster")
    parser.add_argument("--owner", type=int, required=True)
    parser.add_argument("--limit", type=int, required=True)
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--nice", type=int, default=0)
    args = parser.parse_args(argv)
    configure_logging("warning", "auto")  # to stderr: stdout carries the answers
    die_with_parent(args.owner)
    # A stop signal sent to the whole process group must let the worker stop this one in order (closing stdin).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if args.nice:
        os.nice(args.nice)
    asyncio.run(_serve(args.limit, args.timeout))


if __name__ == "__main__":
    main()
