"""A strict lxml reader for well-formed RSS 2.0, Atom 1.0 and RSS 1.0: feedparser's output shape, ~10x faster.

feedparser stays the reference parser: anything this reader does not recognise or cannot parse
strictly (malformed XML, wrong encodings, RSS 0.9x quirks, Atom 0.3, xhtml content) returns None and
goes to feedparser. Entries are returned as feedparser-like dicts so one function turns both into
RawItems. Measured on a 50-item RSS 2.0 feed: ~65 ms with feedparser, a few ms here (bench/connector_throughput.py).
"""

from __future__ import annotations

import calendar
import email.utils
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

from feedparser.datetimes import _parse_date
from lxml import etree

__all__ = ["FastFeed", "read_fast"]

ATOM = "{http://www.w3.org/2005/Atom}"
RSS1 = "{http://purl.org/rss/1.0/}"
RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
DC = "{http://purl.org/dc/elements/1.1/}"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}"
SY = "{http://purl.org/rss/1.0/modules/syndication/}"
MEDIA = "{http://search.yahoo.com/mrss/}"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
XML_BASE = "{http://www.w3.org/XML/1998/namespace}base"

# No entities, no DTD, no network, no recovery: anything unusual is feedparser's job.
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                          recover=False, remove_comments=True, remove_pis=True)

FastFeed = tuple[str, dict[str, Any], list[dict[str, Any]]]  # (version, feed meta, entries)


def read_fast(body: bytes, base_url: str) -> FastFeed | None:
    """(version, feed, entries) like feedparser's, or None when feedparser should handle the document."""
    try:
        root = etree.fromstring(body, _PARSER)
        if root.tag == "rss" and root.get("version", "2.0") in ("2.0", "2.0.1"):
            return _rss2(root, base_url)
        if root.tag == f"{ATOM}feed":
            return _atom(root, base_url)
        if root.tag == f"{RDF}RDF" and root.find(f"{RSS1}channel") is not None:
            return _rss1(root, base_url)
    except (etree.LxmlError, ValueError, TypeError):
        return None
    return None


def _text(el: Any) -> str | None:
    if el is None:
        return None
    text = el.text
    return text.strip() if text and text.strip() else None


def _date(value: str | None) -> time.struct_time | None:
    """UTC struct_time like feedparser's ``*_parsed``: RFC 822 and ISO 8601 fast, the rest via feedparser."""
    if not value:
        return None
    try:
        # ISO 8601 (Atom, dc:date) starts with the year; RFC 822 (RSS pubDate) with a weekday or day.
        if not value[:4].isdigit():
            parts = email.utils.parsedate_tz(value)
            if parts is None:
                return _parse_date(value)
            return time.gmtime(email.utils.mktime_tz(parts))
        when = datetime.fromisoformat(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return time.gmtime(calendar.timegm(when.utctimetuple()))
    except (TypeError, ValueError, IndexError, OverflowError):
        return _parse_date(value)


def _dated(entry: dict[str, Any], key: str, value: str | None) -> None:
    if value:
        entry[key] = value
        entry[f"{key}_parsed"] = _date(value)


def _sy(channel: Any, meta: dict[str, Any]) -> None:
    period, freq = _text(channel.find(f"{SY}updatePeriod")), _text(channel.find(f"{SY}updateFrequency"))
    if period:
        meta["sy_updateperiod"] = period
    if freq:
        meta["sy_updatefrequency"] = freq


def _rss2(root: Any, base: str) -> FastFeed | None:
    channel = root.find("channel")
    if channel is None:
        return None
    meta: dict[str, Any] = {"title": _text(channel.find("title")), "language": _text(channel.find("language"))}
    if (ttl := _text(channel.find("ttl"))) is not None:
        meta["ttl"] = ttl
    _sy(channel, meta)
    entries = []
    for item in channel.iterfind("item"):
        # One pass over the children: several find() calls per item cost more than the parse itself.
        e: dict[str, Any] = {"title": None}
        link = guid = pub = author = None
        permalink = True
        creators: list[str] = []
        terms: list[str] = []
        enclosures: list[dict[str, Any]] = []
        media: list[dict[str, Any]] = []
        for child in item:
            tag, text = child.tag, child.text
            value = text.strip() if text else None
            if tag == "title":
                e["title"] = value or None
            elif tag == "link":
                link = value
            elif tag == "guid":
                guid = value
                permalink = child.get("isPermaLink", "true").lower() == "true"
            elif tag == "description":
                if value:
                    e["summary"] = value
            elif tag == f"{CONTENT}encoded":
                if value:
                    e["content"] = [{"type": "text/html", "value": value}]
            elif tag == "pubDate" or (tag == f"{DC}date" and pub is None):
                pub = value
            elif tag == f"{DC}creator":
                if value:
                    creators.append(value)
            elif tag == "author":
                author = value
            elif tag == "category":
                if value:
                    terms.append(value)
            elif tag == "enclosure":
                if child.get("url"):
                    enclosures.append({"rel": "enclosure", "href": child.get("url")})
            elif tag == f"{MEDIA}content" and child.get("url"):
                media.append({"url": child.get("url")})
        if guid:
            e["id"] = guid
        if link:
            e["link"] = urljoin(base, link)
        elif guid and permalink and guid.startswith(("http:", "https:")):
            e["link"] = guid
        if pub:
            # feedparser mirrors pubDate into "updated"; so do we, so both paths give identical items.
            e["published"] = e["updated"] = pub
            e["published_parsed"] = e["updated_parsed"] = _date(pub)
        if not creators and author:
            creators = [author]
        e["authors"] = [{"name": a} for a in creators]
        e["tags"] = [{"term": t} for t in terms]
        e["links"] = enclosures
        e["media_content"] = media
        entries.append(e)
    return "rss20", meta, entries


def _atom_text(el: Any) -> str | None:
    if el is None:
        return None
    if el.get("type") == "xhtml":
        raise ValueError("xhtml content: feedparser handles it")
    return _text(el)


def _atom(root: Any, base: str) -> FastFeed:
    base = urljoin(base, root.get(XML_BASE) or "")
    meta: dict[str, Any] = {"title": _atom_text(root.find(f"{ATOM}title")), "language": root.get(XML_LANG)}
    entries = []
    for entry in root.iterfind(f"{ATOM}entry"):
        e_base = urljoin(base, entry.get(XML_BASE) or "")
        e: dict[str, Any] = {"title": _atom_text(entry.find(f"{ATOM}title"))}
        if (eid := _text(entry.find(f"{ATOM}id"))) is not None:
            e["id"] = eid
        links = entry.findall(f"{ATOM}link")
        alternate = [lk for lk in links if lk.get("rel", "alternate") == "alternate" and lk.get("href")]
        if alternate:
            e["link"] = urljoin(e_base, alternate[0].get("href"))
        e["links"] = [{"rel": "enclosure", "href": urljoin(e_base, lk.get("href"))} for lk in links
                      if lk.get("rel") == "enclosure" and lk.get("href")]
        summary = _atom_text(entry.find(f"{ATOM}summary"))
        content = _atom_text(entry.find(f"{ATOM}content"))
        if summary:
            e["summary"] = summary
        if content:
            e["content"] = [{"type": "text/html", "value": content}]
            e.setdefault("summary", content)  # as feedparser does for content-only entries
        _dated(e, "published", _text(entry.find(f"{ATOM}published")))
        _dated(e, "updated", _text(entry.find(f"{ATOM}updated")))
        e["authors"] = [{"name": n} for n in (_text(a.find(f"{ATOM}name")) for a in entry.iterfind(f"{ATOM}author"))
                        if n]
        e["tags"] = [{"term": c.get("term")} for c in entry.iterfind(f"{ATOM}category") if c.get("term")]
        if lang := entry.get(XML_LANG):
            e["language"] = lang
        entries.append(e)
    return "atom10", meta, entries


def _rss1(root: Any, base: str) -> FastFeed:
    channel = root.find(f"{RSS1}channel")
    meta: dict[str, Any] = {"title": _text(channel.find(f"{RSS1}title")),
                            "language": _text(channel.find(f"{DC}language"))}
    _sy(channel, meta)
    entries = []
    for item in root.iterfind(f"{RSS1}item"):
        e: dict[str, Any] = {"title": _text(item.find(f"{RSS1}title"))}
        if about := item.get(f"{RDF}about"):
            e["id"] = about
        if link := _text(item.find(f"{RSS1}link")):
            e["link"] = urljoin(base, link)
        if (desc := item.findtext(f"{RSS1}description")) is not None and desc.strip():
            e["summary"] = desc.strip()
        if (html := item.findtext(f"{CONTENT}encoded")) is not None and html.strip():
            e["content"] = [{"type": "text/html", "value": html.strip()}]
        _dated(e, "updated", _text(item.find(f"{DC}date")))
        e["authors"] = [{"name": a} for a in (_text(x) for x in item.iterfind(f"{DC}creator")) if a]
        e["tags"] = [{"term": t} for t in (_text(x) for x in item.iterfind(f"{DC}subject")) if t]
        entries.append(e)
    return "rss10", meta, entries
