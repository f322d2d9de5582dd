"""One conditional GET of one URL (http(s) or file), returning a FetchResult or raising a FetchError."""

from __future__ import annotations

import asyncio
import email.utils
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from connectors.netguard import check_address, read_capped
from pipeline.errors import (
    BodyTooLarge,
    FeedHTTPStatus,
    FeedTimeout,
    FeedUnreachable,
    FetchError,
    TooManyRedirects,
)
from pipeline.settings import PollSettings

__all__ = ["FEED_ACCEPT", "FetchResult", "Fetcher", "parse_retry_after"]

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml, application/feed+json, "
    "application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.5"
)
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
_REDIRECTS = {301, 302, 303, 307, 308}
_PERMANENT = {301, 308}


@dataclass(frozen=True)
class FetchResult:
    """What one fetch returned. ``status`` is 200 (a body) or 304 (not modified, empty body)."""

    url: str
    effective_url: str
    status: int
    body: bytes = b""
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None
    # Set when every redirect hop was permanent (301/308): the feed list URL should move there.
    permanent_url: str | None = None
    took_ms: float = 0.0

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP-date (RFC 9110 section 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


async def _drain(resp: httpx.Response, limit: int = 64 * 1024) -> None:
    size = 0
    async for chunk in resp.aiter_raw():
        size += len(chunk)
        if size > limit:
            return  # a big error page: let the connection close instead


class Fetcher:
    """Polite HTTP for feeds and article pages: one client, a global bound and a per-host limit.

    Args:
        poll: the ``poll`` settings (timeouts, caps, concurrency, user agent, address policy).

    Use ``async with Fetcher(poll) as f: result = await f.fetch(url, etag=...)``.
    """

    def __init__(self, poll: PollSettings) -> None:
        self.poll = poll
        # One small connection pool per host: httpcore scans every pooled connection on every request,
        # so one big shared pool gets slower as it grows; per-host pools also enforce poll.per_host.
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._global = asyncio.Semaphore(poll.concurrency)
        self._hosts: dict[str, asyncio.Semaphore] = {}

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    def _client(self, host: str) -> httpx.AsyncClient:
        client = self._clients.get(host)
        if client is None:
            client = self._clients[host] = httpx.AsyncClient(
                follow_redirects=False,  # followed by hand so every hop passes the address guard
                timeout=httpx.Timeout(self.poll.timeout_s),
                limits=httpx.Limits(max_connections=self.poll.per_host, max_keepalive_connections=self.poll.per_host),
                headers={"User-Agent": self.poll.user_agent, "Accept-Encoding": "gzip, deflate"},
            )
        return client

    def _host_limit(self, host: str) -> asyncio.Semaphore:
        sem = self._hosts.get(host)
        if sem is None:
            sem = self._hosts[host] = asyncio.Semaphore(self.poll.per_host)
        return sem

    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: str = FEED_ACCEPT,
        feed_url: str | None = None,
    ) -> FetchResult:
        """GET ``url`` with conditional headers; follow redirects; read the body under the size cap.

        Raises:
            FeedTimeout, FeedUnreachable, AddressRefused, FeedHTTPStatus (with ``retry_after_s`` on
            429/503), BodyTooLarge, TooManyRedirects.
        """
        feed_url = feed_url or url
        started = time.perf_counter()
        if url.startswith("file:"):
            result = await asyncio.to_thread(self._read_file, url, last_modified, feed_url)
        else:
            result = await self._fetch_http(url, etag, last_modified, accept, feed_url)
        return FetchResult(**{**result.__dict__, "took_ms": (time.perf_counter() - started) * 1000})

    async def _fetch_http(
        self, url: str, etag: str | None, last_modified: str | None, accept: str, feed_url: str
    ) -> FetchResult:
        headers = {"Accept": accept}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        current = url
        all_permanent = True
        for _hop in range(self.poll.max_redirects + 1):
            parts = urlsplit(current)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise FeedUnreachable(f"refusing to fetch {current!r}: only http(s) URLs", feed_url=feed_url)
            await check_address(current, allow_private=self.poll.allow_private_hosts, feed_url=feed_url)
            # The host slot first: a task queued behind a busy host must not hold one of the global slots.
            async with self._host_limit(parts.netloc), self._global:
                try:
                    # A total deadline as well as httpx's per-operation timeouts: a server dripping one
                    # byte per second never trips a read timeout but must not hold a worker forever.
                    async with asyncio.timeout(self.poll.timeout_s * 2), \
                            self._client(parts.netloc).stream("GET", current, headers=headers) as resp:
                        if resp.status_code != 200:
                            # Drain the (small) body so the connection goes back to the pool: httpcore closes
                            # a connection whose response was not read to the end.
                            await _drain(resp)
                        if resp.status_code in _REDIRECTS and "location" in resp.headers:
                            all_permanent = all_permanent and resp.status_code in _PERMANENT
                            current = urljoin(current, resp.headers["location"])
                            continue
                        return await self._finish(url, current, resp, feed_url,
                                                  current if all_permanent and current != url else None)
                except (httpx.TimeoutException, TimeoutError) as exc:
                    raise FeedTimeout(f"timed out after {self.poll.timeout_s}s: {exc!r}", feed_url=feed_url) from exc
                except httpx.HTTPError as exc:
                    raise FeedUnreachable(f"{type(exc).__name__}: {exc}", feed_url=feed_url) from exc
        raise TooManyRedirects(f"more than {self.poll.max_redirects} redirects (last {current})", feed_url=feed_url)

    async def _finish(
        self, url: str, current: str, resp: httpx.Response, feed_url: str, permanent: str | None
    ) -> FetchResult:
        common = {
            "url": url,
            "effective_url": current,
            "etag": resp.headers.get("etag"),
            "last_modified": resp.headers.get("last-modified"),
            "content_type": resp.headers.get("content-type"),
            "permanent_url": permanent,
        }
        if resp.status_code == 304:
            return FetchResult(status=304, **common)
        if resp.status_code != 200:
            retry = parse_retry_after(resp.headers.get("retry-after"))
            raise FeedHTTPStatus(
                f"HTTP {resp.status_code} {resp.reason_phrase} from {current}",
                feed_url=feed_url, status=resp.status_code, retry_after_s=retry,
            )
        length = resp.headers.get("content-length")
        if length and length.isdigit() and int(length) > self.poll.max_body_bytes:
            raise BodyTooLarge(f"Content-Length {length} is over the {self.poll.max_body_bytes} byte cap",
                               feed_url=feed_url)
        body = await read_capped(resp.aiter_bytes(), self.poll.max_body_bytes, feed_url=feed_url)
        return FetchResult(status=200, body=body, **common)

    def _read_file(self, url: str, last_modified: str | None, feed_url: str) -> FetchResult:
        path = Path(unquote(urlsplit(url).path))
        try:
            stat = path.stat()
            # The file's mtime plays Last-Modified, so an unchanged demo feed takes the 304 path too.
            stamp = email.utils.format_datetime(datetime.fromtimestamp(int(stat.st_mtime), UTC), usegmt=True)
            if last_modified == stamp:
                return FetchResult(url=url, effective_url=url, status=304, last_modified=stamp)
            if stat.st_size > self.poll.max_body_bytes:
                raise BodyTooLarge(f"{path} is over the {self.poll.max_body_bytes} byte cap", feed_url=feed_url)
            body = path.read_bytes()
        except FetchError:
            raise
        except OSError as exc:
            raise FeedUnreachable(f"cannot read {path}: {exc.strerror or exc}", feed_url=feed_url) from exc
        return FetchResult(url=url, effective_url=url, status=200, body=body, last_modified=stamp)
