"""Feed bytes -> list[RawItem]: RSS 0.9x/1.0/2.0 and Atom via feedparser, JSON Feed 1.0/1.1 by hand.

"Not a feed" (an HTML page, garbage) and hostile XML (see connectors/xmlguard.py) become typed errors
here, before feedparser ever sees the document.
"""

from __future__ import annotations

import calendar
import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import feedparser

from connectors.fastxml import decode_like_feedparser, feedparser_headers, read_decoded
from connectors.state import identity
from connectors.xmlguard import refuse_hostile_xml
from pipeline.canonical import canonical_url
from pipeline.errors import FeedParseError, NotAFeed
from pipeline.schemas import RawItem, utcnow

__all__ = ["ParsedFeed", "parse_feed", "refuse_hostile_xml"]

# Seconds per sy:updatePeriod unit (RSS 1.0 syndication module).
_SY_PERIOD = {"hourly": 3600, "daily": 86400, "weekly": 7 * 86400, "monthly": 30 * 86400, "yearly": 365 * 86400}
_HTML_START = re.compile(rb"<\s*(?:!doctype\s+html|html[\s>]|head[\s>]|body[\s>])", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedFeed:
    """One parsed document: the feed's metadata, its items and its own refresh hints."""

    title: str | None
    version: str  # feedparser's name (rss20, atom10, rss10, ...) or json11 / json10
    items: list[RawItem] = field(default_factory=list)
    ttl_s: int | None = None  # RSS <ttl> (minutes in the feed), in seconds
    update_period_s: int | None = None  # sy:updatePeriod / sy:updateFrequency, in seconds
    language: str | None = None
    item_count: int = 0  # items in the document, including those skipped as already seen
    published: list[datetime] = field(default_factory=list)  # every item's date, for the publishing cadence


@dataclass(frozen=True, slots=True)
class _Feed:
    """What every item of one document carries: the feed (URL and title), its feed list entry and the fetch time."""

    url: str
    title: str | None
    name: str | None
    tags: list[str]
    fetched_at: datetime

    def item(self, *, guid: str | None, link: str | None, canonical_link: str | None, title: str | None,
             summary: str | None, content: str | None, authors: list[str], categories: list[str],
             published_at: datetime | None, published_raw: str | None, updated_at: datetime | None,
             updated_raw: str | None, language: str | None, enclosures: list[str]) -> RawItem:
        """The RawItem of one entry (every format's entries are read into these fields, then built here)."""
        return RawItem(
            feed_url=self.url, feed_title=self.title, feed_name=self.name, tags=self.tags, fetched_at=self.fetched_at,
            guid=guid, link=link, canonical_link=canonical_link, title=title, summary=summary, content=content,
            authors=authors, categories=categories, published_at=published_at, published_raw=published_raw,
            updated_at=updated_at, updated_raw=updated_raw, language=language, enclosures=enclosures,
        )


def _utc(parsed: time.struct_time | None) -> datetime | None:
    # feedparser normalises every date it understands to a UTC struct_time.
    if not parsed:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(parsed), UTC)
    except (OverflowError, ValueError):
        return None


def _iso(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def parse_feed(
    body: bytes,
    *,
    feed_url: str,
    base_url: str | None = None,
    content_type: str | None = None,
    feed_name: str | None = None,
    tags: list[str] | None = None,
    language: str | None = None,
    fetched_at: datetime | None = None,
    skip_ids: frozenset[str] = frozenset(),
    fast_path: bool = True,
) -> ParsedFeed:
    """Parse one feed document into RawItems (CPU-bound: run it off the event loop).

    Args:
        body: the raw bytes as fetched (any declared or undeclared encoding).
        feed_url: the feed list URL, stamped on every item.
        base_url: where the bytes came from after redirects (resolves relative links).
        content_type: the response Content-Type (helps encoding detection).
        feed_name, tags, language: from the feed list entry; ``language`` wins over the feed's own.
        skip_ids: identities (:func:`connectors.state.identity`) already published: those entries are
            counted but not turned into RawItems, which is most of the work on a busy feed.
        fast_path: False always uses feedparser (the reference, for parity tests and benchmarks).

    Raises:
        HostileXML: the prolog declares what connectors/xmlguard.py refuses (billion laughs, XXE).
        NotAFeed: an HTML page or anything that is not RSS, Atom or JSON Feed.
    """
    fetched_at = fetched_at or utcnow()
    stripped = body.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped[:1] in (b"{", b"["):
        return _parse_json_feed(stripped, feed_url, feed_name, tags or [], language, fetched_at, skip_ids)
    # One decoding, feedparser's, for the guard and the fast path: both see the text feedparser would.
    decoded, decided = decode_like_feedparser(body, feedparser_headers(base_url or feed_url, content_type))
    refuse_hostile_xml(body, feed_url=feed_url, decoded=decoded)
    fast = read_decoded(decoded, base_url or feed_url) if decided and fast_path else None
    if fast is not None:
        version, meta, entries = fast
    else:
        version, meta, entries = _feedparser(body, feed_url, base_url, content_type)
    feed_lang = language or meta.get("language") or None
    feed = _Feed(feed_url, meta.get("title"), feed_name, tags or [], fetched_at)
    items = []
    published = []
    for e in entries:
        when = _utc(e.get("published_parsed") or e.get("updated_parsed"))
        if when:
            published.append(when)
        if skip_ids:
            guid, link = e.get("id") or None, e.get("link")
            if identity(guid, None if guid else canonical_url(link), link, e.get("title"),
                        e.get("summary") or None) in skip_ids:
                continue
        items.append(_entry_item(e, feed, feed_lang))
    ttl = _int(meta.get("ttl"))
    period = _SY_PERIOD.get(str(meta.get("sy_updateperiod", "")).strip().lower())
    freq = _int(meta.get("sy_updatefrequency")) or 1
    return ParsedFeed(
        title=meta.get("title"),
        version=version,
        items=items,
        ttl_s=ttl * 60 if ttl and ttl > 0 else None,
        update_period_s=period // max(freq, 1) if period else None,
        language=feed_lang,
        item_count=len(entries),
        published=published,
    )


def _feedparser(
    body: bytes, feed_url: str, base_url: str | None, content_type: str | None
) -> tuple[str, Any, list[Any]]:
    """The reference parser, for everything the strict fast path declines."""
    headers = feedparser_headers(base_url or feed_url, content_type)
    try:
        # No sanitising: news.raw carries the feed's HTML as given; the clean stage treats it as untrusted.
        doc = feedparser.parse(body, response_headers=headers, sanitize_html=False, resolve_relative_uris=False)
    except Exception as exc:  # feedparser is lenient; anything escaping it is a broken document
        raise FeedParseError(f"feed could not be parsed: {type(exc).__name__}: {exc}", feed_url=feed_url) from exc
    if not doc.get("version") and not doc.entries:
        if _HTML_START.search(body[:4096]) or (content_type or "").startswith("text/html"):
            raise NotAFeed("this is an HTML page, not a feed (RSS, Atom or JSON Feed); "
                           "use the feed URL the page links to (<link rel=alternate>)", feed_url=feed_url)
        reason = doc.get("bozo_exception")
        raise NotAFeed(f"not an RSS, Atom or JSON feed{f': {reason}' if reason else ''}", feed_url=feed_url)
    return doc.get("version") or "unknown", doc.feed, list(doc.entries)


def _entry_item(e: Any, feed: _Feed, language: str | None) -> RawItem:
    link = e.get("link")
    contents = e.get("content") or []
    # content:encoded / atom:content; prefer HTML and the longest when several are given.
    html = [c for c in contents if "html" in (c.get("type") or "")] or list(contents)
    content = max((c.get("value") or "" for c in html), key=len, default="") or None
    authors = [a.get("name") for a in e.get("authors", []) if a.get("name")]
    if not authors and e.get("author"):
        authors = [e["author"]]
    enclosures = [lk.get("href") for lk in e.get("links", []) if lk.get("rel") == "enclosure" and lk.get("href")]
    enclosures += [m.get("url") for m in e.get("media_content", []) if m.get("url") and m.get("url") not in enclosures]
    return feed.item(
        guid=e.get("id") or None,
        link=link,
        canonical_link=canonical_url(link),
        title=e.get("title"),
        summary=e.get("summary") or None,
        content=content,
        authors=authors,
        categories=[t.get("term") for t in e.get("tags", []) if t.get("term")],
        # RSS 1.0's dc:date reaches feedparser as "updated"; for an item without a separate
        # publication date it is the publication date.
        published_at=_utc(e.get("published_parsed") or e.get("updated_parsed")),
        published_raw=e.get("published") or e.get("updated"),
        updated_at=_utc(e.get("updated_parsed")),
        updated_raw=e.get("updated"),
        language=language or e.get("language") or None,
        enclosures=enclosures,
    )


def _parse_json_feed(
    body: bytes, feed_url: str, feed_name: str | None, tags: list[str], language: str | None, fetched_at: datetime,
    skip_ids: frozenset[str] = frozenset(),
) -> ParsedFeed:
    """JSON Feed 1.0 / 1.1 (https://jsonfeed.org/version/1.1), which feedparser 6.0 does not read."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotAFeed(f"JSON document is not valid JSON: {exc}", feed_url=feed_url) from exc
    version = doc.get("version", "") if isinstance(doc, dict) else ""
    if not isinstance(version, str) or not version.startswith("https://jsonfeed.org/version/1"):
        raise NotAFeed("a JSON document but not a JSON Feed (no jsonfeed.org version)", feed_url=feed_url)
    title_of_feed = doc.get("title") if isinstance(doc.get("title"), str) else None
    feed_lang = language or doc.get("language") or None
    feed = _Feed(feed_url, title_of_feed, feed_name, tags, fetched_at)
    feed_authors = _json_authors(doc)
    items = []
    published = []
    raws = [raw for raw in doc.get("items") or [] if isinstance(raw, dict)]
    for raw in raws:
        link = raw.get("url") or raw.get("external_url")
        link = link if isinstance(link, str) else None
        guid = str(raw["id"]) if raw.get("id") is not None else None
        title = raw.get("title") if isinstance(raw.get("title"), str) else None
        summary = raw.get("summary") or (None if raw.get("content_html") else raw.get("content_text")) or None
        when = _iso(raw.get("date_published"))
        if when:
            published.append(when)
        canonical = canonical_url(link)
        if skip_ids and identity(guid, canonical, link, title, summary) in skip_ids:
            continue
        items.append(feed.item(
            guid=guid,
            link=link,
            canonical_link=canonical,
            title=title,
            summary=summary,
            content=raw.get("content_html") or raw.get("content_text") or None,
            authors=_json_authors(raw) or feed_authors,
            categories=[t for t in raw.get("tags") or [] if isinstance(t, str)],
            published_at=when,
            published_raw=raw.get("date_published"),
            updated_at=_iso(raw.get("date_modified")),
            updated_raw=raw.get("date_modified"),
            language=language or raw.get("language") or feed_lang,
            enclosures=[a["url"] for a in raw.get("attachments") or [] if isinstance(a, dict) and a.get("url")],
        ))
    return ParsedFeed(title=title_of_feed, version="json11" if version.endswith("1.1") else "json10", items=items,
                      language=feed_lang, item_count=len(raws), published=published)


def _json_authors(obj: dict[str, Any]) -> list[str]:
    found = obj.get("authors") or ([obj["author"]] if isinstance(obj.get("author"), dict) else [])
    return [a["name"] for a in found if isinstance(a, dict) and isinstance(a.get("name"), str)]
