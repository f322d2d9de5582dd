"""The webhook poster (pipeline.alerts.poster): a real child process posting to a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from pipeline.alerts.poster import Poster
from pipeline.metrics import ALERT_POSTER_STARTS


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[tuple[str, bytes, dict[str, str]]], asyncio.Event]]:
    """A loopback server: /ok answers 200, /fail 500, /moved 302, /huge 200 with 20 MB, /slow waits until
    released."""
    received: list[tuple[str, bytes, dict[str, str]]] = []
    release = asyncio.Event()

    async def handle(request: web.Request) -> web.StreamResponse:
        received.append((request.path, await request.read(), dict(request.headers)))
        if request.path == "/fail":
            return web.Response(status=500)
        if request.path == "/moved":
            raise web.HTTPFound("/ok")
        if request.path == "/slow":
            await release.wait()
        if request.path == "/huge":
            resp = web.StreamResponse()
            await resp.prepare(request)
            chunk = b"x" * 65536
            try:
                for _ in range(320):  # 20 MB, unless the poster hangs up first (it should)
                    await resp.write(chunk)
                    received.append(("/huge-chunk", b"", {}))
            except (ConnectionError, RuntimeError):
                pass
            return resp
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", received, release
    finally:
        release.set()
        await runner.cleanup()


def _gone(pid: int, within_s: float = 10.0) -> bool:
    deadline = time.time() + within_s
    while time.time() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True  # dead, not yet reaped by its parent
        time.sleep(0.05)
    return False


async def test_posts_come_back_as_status_and_reason_without_following_redirects(server) -> None:  # type: ignore[no-untyped-def]
    url, received, _release = server
    poster = Poster(limit=8, timeout_s=5, nice=10)
    try:
        answers = list(await asyncio.gather(poster.post(f"{url}/ok", b'{"a":1}', {"X-Test": "yes"}),
                                       poster.post(f"{url}/fail", b"{}", {}), poster.post(f"{url}/moved", b"{}", {})))
        assert answers == [(200, "OK"), (500, "Internal Server Error"), (302, "Found")]
        assert ("/ok", b'{"a":1}') in [(path, body) for path, body, _h in received]
        assert [h.get("X-Test") for path, _b, h in received if path == "/ok"] == ["yes"]
        assert len([p for p, _b, _h in received if p == "/ok"]) == 1  # the redirect was not followed
        pid = poster.pid
        assert pid is not None and pid != os.getpid()
        nice = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])
        assert nice == os.nice(0) + 10  # below the worker's priority
        # A stop signal to the whole process group is for the worker: it stops the poster in order (close()).
        os.kill(pid, signal.SIGTERM)
        assert await poster.post(f"{url}/ok", b"{}", {}) == (200, "OK") and poster.pid == pid
    finally:
        await poster.close()
    assert _gone(pid)


async def test_a_huge_answer_is_not_read_whole_and_the_poster_goes_on(server) -> None:  # type: ignore[no-untyped-def]
    url, received, _release = server
    poster = Poster(limit=8, timeout_s=20, nice=0)
    try:
        assert await poster.post(f"{url}/huge", b"{}", {}) == (200, "OK")
        pid = poster.pid
        assert pid is not None
        assert await poster.post(f"{url}/ok", b"{}", {}) == (200, "OK") and poster.pid == pid
        await asyncio.sleep(0.5)  # the server notices the closed connection
        written = sum(1 for path, _b, _h in received if path == "/huge-chunk")
        assert written < 320  # the poster hung up after its 64 KiB: the 20 MB were never all sent
    finally:
        await poster.close()


async def test_no_answer_is_a_connection_error() -> None:
    poster = Poster(limit=8, timeout_s=5, nice=0)
    try:
        with pytest.raises(ConnectionError):
            await poster.post("http://127.0.0.1:9/refused", b"{}", {})  # port 9 (discard): nothing listens
    finally:
        await poster.close()


async def test_a_killed_poster_fails_its_requests_and_the_next_post_starts_a_new_one(server) -> None:  # type: ignore[no-untyped-def]
    url, received, release = server
    poster = Poster(limit=8, timeout_s=30, nice=0)
    try:
        slow = asyncio.create_task(poster.post(f"{url}/slow", b"{}", {}))
        for _ in range(200):
            if any(path == "/slow" for path, _b, _h in received):
                break
            await asyncio.sleep(0.05)
        first = poster.pid
        assert first is not None
        starts = ALERT_POSTER_STARTS._value.get()
        os.kill(first, signal.SIGKILL)
        with pytest.raises(ConnectionError, match="exited"):
            await asyncio.wait_for(slow, 10)
        release.set()
        assert await poster.post(f"{url}/ok", b"{}", {}) == (200, "OK")
        assert poster.pid not in (None, first)
        assert ALERT_POSTER_STARTS._value.get() == starts + 1  # counted: an operator sees a poster died
    finally:
        await poster.close()


def test_the_poster_dies_with_its_owner(tmp_path: Path) -> None:
    """kill -9 of the worker leaves no poster behind (PR_SET_PDEATHSIG)."""
    script = tmp_path / "owner.py"
    script.write_text(
        "import asyncio, sys, time\n"
        "from pipeline.alerts.poster import Poster\n"
        "async def main():\n"
        "    poster = Poster(limit=1, timeout_s=1, nice=0)\n"
        "    try:\n"
        "        await poster.post('http://127.0.0.1:9/x', b'', {})\n"
        "    except Exception:\n"
        "        pass\n"
        "    print('PID', poster.pid, flush=True)\n"
        "    time.sleep(60)\n"
        "asyncio.run(main())\n")
    owner = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                             cwd=Path(__file__).resolve().parents[3])
    try:
        assert owner.stdout is not None
        child = next(int(line.split()[1]) for line in owner.stdout if line.startswith("PID "))
        assert not _gone(child, within_s=0.2)
        owner.kill()
        owner.wait()
        assert _gone(child)
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()


async def test_many_posts_are_handed_over_at_once_and_answered_in_order(server) -> None:  # type: ignore[no-untyped-def]
    url, received, release = server
    poster = Poster(limit=8, timeout_s=1, nice=0)
    try:
        requests = [(f"{url}/ok", f'{{"n":{n}}}'.encode(), {}) for n in range(200)]
        requests += [(f"{url}/fail", b"{}", {}), ("http://127.0.0.1:9/refused", b"{}", {}), (f"{url}/slow", b"{}", {})]
        answers = await poster.post_many(requests, timeout_s=3)
        assert answers[:201] == [(200, "OK")] * 200 + [(500, "Internal Server Error")]
        assert isinstance(answers[201], ConnectionError)  # nothing listens on port 9
        assert isinstance(answers[202], (TimeoutError, ConnectionError))  # /slow: no answer within the timeout
        assert sorted(body for path, body, _h in received if path == "/ok") == sorted(r[1] for r in requests[:200])
        assert not poster._pending  # nothing left behind for answers that never came
        assert await poster.post_many([], timeout_s=1) == []
    finally:
        release.set()
        await poster.close()
