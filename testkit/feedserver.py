"""A local HTTP feed server on real sockets for tests and benchmarks (127.0.0.1, ephemeral port).

It serves generated feeds (RSS 2.0, Atom 1.0, JSON Feed 1.1) and raw documents, honours or ignores
conditional GETs, and can misbehave on purpose: any status code (301/302/410/429/500 ...), slow
answers, gzip, oversized bodies, gzip bombs. It counts what it was asked::

    with FeedServer() as server:
        server.set_feed("/a.xml", make_items(5))            # RSS 2.0 with ETag + Last-Modified
        url = server.url("/a.xml")
        ...                                                   # poll it
        server.append_items("/a.xml", make_items(2, start=5))
        assert server.stats("/a.xml").not_modified == 1      # 304s sent
        server.set_status("/gone.xml", 410)
        server.redirect("/old.xml", "/a.xml", status=301)
        server.set_options("/a.xml", delay_s=3, gzip=True, ignore_conditional=True)
"""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FeedServer", "Route", "RouteStats", "make_items", "render_feed"]

_BASE_TIME = datetime(2026, 2, 4, 12, 0, tzinfo=UTC)


def make_items(n: int, *, start: int = 0, prefix: str = "story", host: str = "https://news.example.com",
               content: bool = True, words: int = 60) -> list[dict[str, Any]]:
    """``n`` distinct items (newest last by number): guid, link, title, summary, content, published."""
    items = []
    for i in range(start, start + n):
        body = " ".join(f"word{(i * 7 + k) % 97}" for k in range(words))
        items.append({
            "guid": f"{host}/{prefix}/{i}",
            "link": f"{host}/{prefix}/{i}?utm_source=rss",
            "title": f"{prefix.title()} number {i}",
            "summary": f"Summary of {prefix} {i}.",
            "content": f"<p>Full text of {prefix} {i}. {body}</p>" if content else None,
            "published": _BASE_TIME + timedelta(minutes=30 * i),
            "author": "Staff Reporter",
            "category": "World",
        })
    return items


def render_feed(items: list[dict[str, Any]], fmt: str = "rss", *, title: str = "Test Feed",
                link: str = "https://news.example.com/", ttl: int | None = None, extra: str = "") -> bytes:
    """A feed document for ``items`` in ``fmt`` = rss (2.0 + content:encoded), atom (1.0) or json (JSON Feed 1.1)."""
    ordered = sorted(items, key=lambda it: it["published"], reverse=True)  # feeds list newest first
    if fmt == "json":
        return json.dumps({
            "version": "https://jsonfeed.org/version/1.1", "title": title, "home_page_url": link,
            "items": [{
                "id": it["guid"], "url": it["link"], "title": it["title"], "summary": it.get("summary"),
                **({"content_html": it["content"]} if it.get("content") else {"content_text": it.get("summary") or ""}),
                "date_published": it["published"].isoformat(), "authors": [{"name": it.get("author", "")}],
                "tags": [it.get("category", "")],
            } for it in ordered],
        }).encode()
    if fmt == "atom":
        entries = "".join(
            f"<entry><id>{escape(it['guid'])}</id><title>{escape(it['title'])}</title>"
            f"<link rel=\"alternate\" href=\"{escape(it['link'])}\"/>"
            f"<updated>{it['published'].isoformat()}</updated><published>{it['published'].isoformat()}</published>"
            f"<author><name>{escape(it.get('author', ''))}</name></author>"
            f"<summary>{escape(it.get('summary') or '')}</summary>"
            + (f"<content type=\"html\">{escape(it['content'])}</content>" if it.get("content") else "")
            + "</entry>" for it in ordered)
        return (f"<?xml version=\"1.0\" encoding=\"utf-8\"?><feed xmlns=\"http://www.w3.org/2005/Atom\">"
                f"<title>{escape(title)}</title><id>{escape(link)}</id><updated>{_BASE_TIME.isoformat()}</updated>"
                f"<link href=\"{escape(link)}\"/>{extra}{entries}</feed>").encode()
    entries = "".join(
        f"<item><guid isPermaLink=\"false\">{escape(it['guid'])}</guid><title>{escape(it['title'])}</title>"
        f"<link>{escape(it['link'])}</link><description>{escape(it.get('summary') or '')}</description>"
        + (f"<content:encoded><![CDATA[{it['content']}]]></content:encoded>" if it.get("content") else "")
        + f"<pubDate>{email.utils.format_datetime(it['published'])}</pubDate>"
        f"<author>{escape(it.get('author', ''))}</author><category>{escape(it.get('category', ''))}</category></item>"
        for it in ordered)
    return (f"<?xml version=\"1.0\" encoding=\"utf-8\"?><rss version=\"2.0\" "
            f"xmlns:content=\"http://purl.org/rss/1.0/modules/content/\"><channel><title>{escape(title)}</title>"
            f"<link>{escape(link)}</link><description>test</description>"
            + (f"<ttl>{ttl}</ttl>" if ttl else "") + f"{extra}{entries}</channel></rss>").encode()


@dataclass
class Route:
    """What one path answers. Build with the FeedServer setters rather than by hand."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/rss+xml; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    delay_s: float = 0.0
    gzip: bool = False  # compress when the client accepts gzip
    pre_gzipped: bool = False  # body is already gzip (bombs): sent with Content-Encoding: gzip as is
    ignore_conditional: bool = False  # always 200, like servers that ignore If-None-Match
    items: list[dict[str, Any]] = field(default_factory=list)
    fmt: str = "rss"
    title: str = "Test Feed"
    ttl: int | None = None
    extra: str = ""


@dataclass
class RouteStats:
    """Requests seen on one path."""

    hits: int = 0
    conditional: int = 0  # requests carrying If-None-Match or If-Modified-Since
    not_modified: int = 0  # 304s sent
    user_agents: set[str] = field(default_factory=set)
    last_headers: dict[str, str] = field(default_factory=dict)


class FeedServer:
    """A threaded HTTP/1.1 server on 127.0.0.1:<ephemeral>. Thread-safe setters; ``start``/``stop`` or ``with``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._routes: dict[str, Route] = {}
        self._stats: dict[str, RouteStats] = {}
        self._lock = threading.Lock()
        self._server = _QuietServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> FeedServer:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="feedserver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> FeedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    # -- routes -----------------------------------------------------------------------------------
    def set_feed(self, path: str, items: list[dict[str, Any]], *, fmt: str = "rss", title: str = "Test Feed",
                 ttl: int | None = None, extra: str = "", **options: Any) -> None:
        """Serve ``items`` as a feed at ``path`` with a content-derived ETag and a Last-Modified."""
        route = Route(items=list(items), fmt=fmt, title=title, ttl=ttl, extra=extra,
                      content_type={"rss": "application/rss+xml; charset=utf-8",
                                    "atom": "application/atom+xml; charset=utf-8",
                                    "json": "application/feed+json"}[fmt])
        old = self._routes.get(path)
        for key, value in options.items():
            setattr(route, key, value)
        self._render(route, previous=old)
        with self._lock:
            self._routes[path] = route

    def append_items(self, path: str, items: list[dict[str, Any]]) -> None:
        """Add items to a feed set with :meth:`set_feed` (new body, new ETag and Last-Modified)."""
        with self._lock:
            route = self._routes[path]
            route.items.extend(items)
            self._render(route, previous=route)

    def set_raw(self, path: str, body: bytes, *, content_type: str = "application/xml", status: int = 200,
                headers: dict[str, str] | None = None, etag: str | None = None, **options: Any) -> None:
        """Serve exactly ``body`` (hostile XML, HTML pages, odd encodings)."""
        route = Route(status=status, body=body, content_type=content_type, headers=dict(headers or {}), etag=etag)
        for key, value in options.items():
            setattr(route, key, value)
        with self._lock:
            self._routes[path] = route

    def set_status(self, path: str, status: int, *, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        """Answer ``status`` (410, 429 with {"Retry-After": "120"}, 500 ...)."""
        self.set_raw(path, body or f"status {status}".encode(), content_type="text/plain", status=status,
                     headers=headers)

    def redirect(self, path: str, to: str, *, status: int = 301) -> None:
        """Redirect ``path`` to ``to`` (a path on this server or a full URL)."""
        self.set_raw(path, b"", status=status, headers={"Location": to})

    def set_bomb(self, path: str, inflated_bytes: int) -> None:
        """A small gzip body that inflates to ``inflated_bytes`` (decompression-bomb guard tests)."""
        blob = gzip.compress(b"<" + b"\x20" * inflated_bytes, compresslevel=9)
        self.set_raw(path, blob, content_type="application/rss+xml", pre_gzipped=True)

    def set_options(self, path: str, **options: Any) -> None:
        """Change delay_s, gzip, ignore_conditional, headers ... of an existing route."""
        with self._lock:
            route = self._routes[path]
            for key, value in options.items():
                setattr(route, key, value)

    def stats(self, path: str) -> RouteStats:
        with self._lock:
            return self._stats.setdefault(path, RouteStats())

    def total_hits(self) -> int:
        with self._lock:
            return sum(s.hits for s in self._stats.values())

    @staticmethod
    def _render(route: Route, previous: Route | None) -> None:
        route.body = render_feed(route.items, route.fmt, title=route.title, ttl=route.ttl, extra=route.extra)
        route.etag = '"' + hashlib.sha1(route.body).hexdigest()[:16] + '"'
        # Last-Modified must move forward even within one second, or If-Modified-Since would hide the change.
        stamp = time.time()
        if previous is not None and previous.last_modified:
            prev = email.utils.parsedate_to_datetime(previous.last_modified).timestamp()
            stamp = max(stamp, prev + 1)
        route.last_modified = email.utils.formatdate(stamp, usegmt=True)

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?", 1)[0]
        with self._lock:
            route = self._routes.get(path)
            stats = self._stats.setdefault(path, RouteStats())
            stats.hits += 1
            stats.last_headers = {k.lower(): v for k, v in handler.headers.items()}
            stats.user_agents.add(handler.headers.get("User-Agent", ""))
            inm, ims = handler.headers.get("If-None-Match"), handler.headers.get("If-Modified-Since")
            if inm or ims:
                stats.conditional += 1
        if route is None:
            _send(handler, 404, b"not found", {"Content-Type": "text/plain"})
            return
        if route.delay_s:
            time.sleep(route.delay_s)
        headers = {"Content-Type": route.content_type, **route.headers}
        if route.etag:
            headers["ETag"] = route.etag
        if route.last_modified:
            headers["Last-Modified"] = route.last_modified
        if route.status == 200 and not route.ignore_conditional:
            # RFC 9110 13.1.3: when If-None-Match is present, If-Modified-Since is ignored.
            fresh = (inm == route.etag) if inm and route.etag else (ims is not None and ims == route.last_modified)
            if fresh:
                with self._lock:
                    stats.not_modified += 1
                _send(handler, 304, b"", headers)
                return
        body = route.body
        if route.pre_gzipped:
            headers["Content-Encoding"] = "gzip"
        elif route.gzip and "gzip" in handler.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body, compresslevel=5)
            headers["Content-Encoding"] = "gzip"
        _send(handler, route.status, body, headers)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # benchmarks open hundreds of connections at once

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up (timeouts, size caps) are part of the tests, not server errors


def _send(handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str]) -> None:
    try:
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        if status != 304:
            handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if status != 304 and body:
            handler.wfile.write(body)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client gave up (timeouts, size caps): expected in these tests


def _handler_for(server: FeedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real feed servers do
        # Headers and body in one buffered write, Nagle off: otherwise keep-alive clients wait out the
        # 40 ms delayed-ACK timer on every response.
        wbufsize = 1 << 16
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            server._answer(self)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


if __name__ == "__main__":  # a manual server: python -m testkit.feedserver
    with FeedServer() as demo:
        demo.set_feed("/feed.xml", make_items(5))
        print(f"serving {demo.url('/feed.xml')} (Ctrl-C to stop)")
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
