"""Fetcher against the local feed server (real sockets): conditional GET, redirects, statuses, caps, timeouts."""

from __future__ import annotations

import os
import time

import pytest

from connectors.fetcher import Fetcher, parse_retry_after
from pipeline.errors import AddressRefused, BodyTooLarge, FeedHTTPStatus, FeedTimeout, FeedUnreachable, TooManyRedirects
from pipeline.settings import PollSettings
from testkit.feedserver import FeedServer, make_items


async def test_conditional_get_gives_304_and_sends_validators(feed_server: FeedServer, poll: PollSettings) -> None:
    feed_server.set_feed("/f.xml", make_items(3))
    async with Fetcher(poll) as fetcher:
        first = await fetcher.fetch(feed_server.url("/f.xml"))
        assert first.status == 200 and first.etag and first.last_modified and b"<rss" in first.body
        second = await fetcher.fetch(feed_server.url("/f.xml"), etag=first.etag, last_modified=first.last_modified)
    assert second.not_modified and second.body == b""
    stats = feed_server.stats("/f.xml")
    assert stats.hits == 2 and stats.conditional == 1 and stats.not_modified == 1
    assert stats.last_headers["if-none-match"] == first.etag
    assert stats.user_agents == {poll.user_agent}


async def test_if_modified_since_alone_works(feed_server: FeedServer, poll: PollSettings) -> None:
    feed_server.set_feed("/f.xml", make_items(1))
    async with Fetcher(poll) as fetcher:
        first = await fetcher.fetch(feed_server.url("/f.xml"))
        again = await fetcher.fetch(feed_server.url("/f.xml"), last_modified=first.last_modified)
    assert again.not_modified


async def test_gzip_is_decoded(feed_server: FeedServer, poll: PollSettings) -> None:
    feed_server.set_feed("/g.xml", make_items(20), gzip=True)
    async with Fetcher(poll) as fetcher:
        result = await fetcher.fetch(feed_server.url("/g.xml"))
    assert result.body.startswith(b"<?xml") and result.body.count(b"<item>") == 20


@pytest.mark.parametrize(("status", "permanent"), [(301, True), (308, True), (302, False), (307, False)])
async def test_redirects_followed_and_permanent_ones_reported(
    feed_server: FeedServer, poll: PollSettings, status: int, permanent: bool
) -> None:
    feed_server.set_feed("/new.xml", make_items(1))
    feed_server.redirect("/old.xml", "/new.xml", status=status)
    async with Fetcher(poll) as fetcher:
        result = await fetcher.fetch(feed_server.url("/old.xml"))
    assert result.status == 200 and result.effective_url == feed_server.url("/new.xml")
    assert result.permanent_url == (feed_server.url("/new.xml") if permanent else None)


async def test_redirect_loop_stops(feed_server: FeedServer, poll: PollSettings) -> None:
    feed_server.redirect("/a", "/b", status=302)
    feed_server.redirect("/b", "/a", status=302)
    async with Fetcher(poll) as fetcher:
        with pytest.raises(TooManyRedirects):
            await fetcher.fetch(feed_server.url("/a"))


@pytest.mark.parametrize("status", [404, 410, 500, 503])
async def test_error_statuses(feed_server: FeedServer, poll: PollSettings, status: int) -> None:
    feed_server.set_status("/x", status)
    async with Fetcher(poll) as fetcher:
        with pytest.raises(FeedHTTPStatus) as err:
            await fetcher.fetch(feed_server.url("/x"))
    assert err.value.status == status and err.value.feed_url == feed_server.url("/x")


async def test_429_carries_retry_after(feed_server: FeedServer, poll: PollSettings) -> None:
    feed_server.set_status("/busy", 429, headers={"Retry-After": "120"})
    async with Fetcher(poll) as fetcher:
        with pytest.raises(FeedHTTPStatus) as err:
            await fetcher.fetch(feed_server.url("/busy"))
    assert err.value.status == 429 and err.value.retry_after_s == 120


async def test_slow_server_times_out(feed_server: FeedServer) -> None:
    feed_server.set_feed("/slow.xml", make_items(1), delay_s=1.5)
    async with Fetcher(PollSettings(allow_private_hosts=True, timeout_s=0.3)) as fetcher:
        with pytest.raises(FeedTimeout):
            await fetcher.fetch(feed_server.url("/slow.xml"))


async def test_oversized_body_is_refused(feed_server: FeedServer, poll: PollSettings) -> None:
    feed_server.set_raw("/big.xml", b"<rss>" + b"x" * (poll.max_body_bytes + 10) + b"</rss>")
    async with Fetcher(poll) as fetcher:
        with pytest.raises(BodyTooLarge):
            await fetcher.fetch(feed_server.url("/big.xml"))


async def test_gzip_bomb_is_stopped_at_the_decompressed_cap(feed_server: FeedServer, poll: PollSettings) -> None:
    feed_server.set_bomb("/bomb.xml", inflated_bytes=50 * poll.max_body_bytes)  # ~10 MB inflated, ~10 kB sent
    async with Fetcher(poll) as fetcher:
        with pytest.raises(BodyTooLarge, match="after decompression"):
            await fetcher.fetch(feed_server.url("/bomb.xml"))


async def test_loopback_refused_unless_allowed(feed_server: FeedServer) -> None:
    feed_server.set_feed("/f.xml", make_items(1))
    async with Fetcher(PollSettings(allow_private_hosts=False)) as fetcher:
        with pytest.raises(AddressRefused, match="allow_private_hosts"):
            await fetcher.fetch(feed_server.url("/f.xml"))
    assert feed_server.stats("/f.xml").hits == 0


async def test_connection_refused_is_unreachable(poll: PollSettings) -> None:
    async with Fetcher(poll) as fetcher:
        with pytest.raises(FeedUnreachable):
            await fetcher.fetch("http://127.0.0.1:9/feed")  # discard port: nothing listens


async def test_file_url_uses_mtime_as_last_modified(tmp_path, poll: PollSettings) -> None:
    path = tmp_path / "f.xml"
    path.write_bytes(b"<rss/>")
    async with Fetcher(poll) as fetcher:
        first = await fetcher.fetch(path.as_uri())
        assert first.status == 200 and first.body == b"<rss/>"
        assert (await fetcher.fetch(path.as_uri(), last_modified=first.last_modified)).not_modified
        os.utime(path, (time.time() + 5, time.time() + 5))
        assert (await fetcher.fetch(path.as_uri(), last_modified=first.last_modified)).status == 200
        with pytest.raises(FeedUnreachable):
            await fetcher.fetch((tmp_path / "missing.xml").as_uri())


@pytest.mark.parametrize(("value", "expected"), [
    ("120", 120.0), (None, None), ("soon", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
])
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_future_date() -> None:
    assert parse_retry_after("Thu, 01 Jan 2026 00:01:00 GMT", now=1767225600.0) == 60.0
