"""Optional full-article fetch: for summary-only items, GET the linked page under the same fetcher and guard."""

from __future__ import annotations

import re

from connectors.fetcher import PAGE_ACCEPT, Fetcher
from pipeline.errors import FetchError
from pipeline.logs import get_logger
from pipeline.metrics import FEED_ARTICLE_FETCHES
from pipeline.schemas import RawItem

__all__ = ["decode_html", "fetch_article", "needs_article"]

log = get_logger(__name__)

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_\-:]+)""", re.IGNORECASE)
_CT_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9_\-:]+)", re.IGNORECASE)


def needs_article(item: RawItem) -> bool:
    """True when the item has a web link but no full content of its own."""
    return not item.content and bool(item.link) and (item.link or "").startswith(("http://", "https://"))


def decode_html(body: bytes, content_type: str | None) -> str:
    """Bytes to text: the header's charset, else a <meta charset>, else UTF-8; bad bytes are replaced."""
    for match in (_CT_CHARSET.search(content_type or ""), _META_CHARSET.search(body[:4096])):
        if match:
            name = match.group(1)
            charset = name.decode("ascii", "ignore") if isinstance(name, bytes) else name
            try:
                return body.decode(charset, errors="replace")
            except LookupError:
                continue
    return body.decode("utf-8", errors="replace")


async def fetch_article(fetcher: Fetcher, item: RawItem) -> tuple[RawItem, bool]:
    """Fill ``content`` with the linked page's HTML.

    Returns:
        (item, ok): the item with ``content`` and ``content_fetched=True`` on success; the item
        unchanged and ``False`` when the page could not be fetched (it is still published, with its summary).
    """
    if not needs_article(item):
        return item, True
    assert item.link is not None
    try:
        result = await fetcher.fetch(item.link, accept=PAGE_ACCEPT, feed_url=item.feed_url)
    except FetchError as exc:
        FEED_ARTICLE_FETCHES.labels(status="error").inc()
        log.warning("article fetch failed", feed_url=item.feed_url, link=item.link, kind=exc.kind, error=str(exc))
        return item, False
    ctype = (result.content_type or "text/html").lower()
    if result.status != 200 or not result.body or not ("html" in ctype or "xml" in ctype or "text" in ctype):
        FEED_ARTICLE_FETCHES.labels(status="error").inc()
        log.warning("article fetch gave no page", feed_url=item.feed_url, link=item.link,
                    status=result.status, content_type=ctype)
        return item, False
    FEED_ARTICLE_FETCHES.labels(status="ok").inc()
    return item.model_copy(update={"content": decode_html(result.body, result.content_type),
                                   "content_fetched": True}), True
