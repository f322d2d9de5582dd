"""A strict lxml reader for ordinary RSS 2.0 feeds that gives exactly feedparser's result, or steps aside.

feedparser is the reference parser. This reader is an optimisation, so it is built to be right by
construction rather than by testing alone:

* **Encoding**: the bytes are decoded by feedparser's own ``convert_to_utf8`` with the same headers the
  feedparser path sends, so BOM, XML declaration and HTTP charset are decided exactly as feedparser decides
  them. Any encoding conflict or guess (``CharacterEncodingOverride`` / ``CharacterEncodingUnknown``)
  steps aside.
* **Whitelist**: every element, attribute and namespace the reader meets must be in :data:`_ITEM` /
  :data:`_CHANNEL` (with its allowed attributes); anything else (an unknown namespace, an extension
  element, markup or a comment inside a text element, a repeated singular element, a DOCTYPE, Atom,
  RSS 1.0 / 0.9x) returns None and the document goes to feedparser.
* **Values**: each whitelisted element is mapped as feedparser's handlers map it (text stripped, URIs
  joined as feedparser's ``_urljoin`` joins them, feedparser's utf-8/latin-1 repair and cp1252 mapping - those
  two copied below - dates by feedparser's ``_parse_date``, authors reduced by the same rule as
  ``_sync_author_detail``).

``tests/connectors/test_fastxml.py`` checks the claim on thousands of generated documents.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urljoin

# The one private import left: feedparser has no public date parser, and its nine format handlers (RFC 822,
# W3DTF, ISO 8601, asctime, regional ones) are far more than a small copy; feedparser is pinned <7 and
# tests/connectors/test_fastxml.py compares every date with feedparser's own result.
from feedparser.datetimes import _parse_date
from feedparser.encodings import convert_to_utf8
from feedparser.exceptions import CharacterEncodingOverride, CharacterEncodingUnknown
from feedparser.urls import make_safe_absolute_uri
from lxml import etree

__all__ = ["FastFeed", "decode_like_feedparser", "feedparser_headers", "read_decoded", "read_fast"]

# feedparser's small private helpers, copied (feedparser 6.0, BSD-2-Clause, (c) Mark Pilgrim, Kurt McKee) so
# this module imports no other private name than _parse_date above (too large to copy, see there);
# tests/connectors/test_fastxml.py checks the copies still agree with feedparser.
# urls._urljoin: drop extra slashes after the scheme, then join; a join Python refuses yields "".
_URI_FIXER = re.compile("^([A-Za-z][A-Za-z0-9+-.]*://)(/*)(.*?)")


def _urljoin(base: str, uri: str) -> str:
    uri = _URI_FIXER.sub(r"\1\3", uri)
    try:
        return urljoin(base, uri)
    except ValueError:
        return ""


# html._cp1252: the C1 controls that are printable characters in windows-1252 (five code points are unused).
_CP1252 = {b: bytes([b]).decode("cp1252") for b in range(0x80, 0xA0) if b not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)}

CONTENT = "{http://purl.org/rss/1.0/modules/content/}"
DC = "{http://purl.org/dc/elements/1.1/}"
SY = "{http://purl.org/rss/1.0/modules/syndication/}"
ATOM = "{http://www.w3.org/2005/Atom}"
WFW = "{http://wellformedweb.org/CommentAPI/}"  # WordPress; feedparser stores these under keys we do not read
SLASH = "{http://purl.org/rss/1.0/modules/slash/}"
CONTENT_ENCODED, DC_DATE, DC_CREATOR = f"{CONTENT}encoded", f"{DC}date", f"{DC}creator"
_AUTHORS = frozenset({"author", DC_CREATOR})
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
ATOM_FEED, ATOM_ENTRY, ATOM_LINK = f"{ATOM}feed", f"{ATOM}entry", f"{ATOM}link"
# Declaring these on the root changes feedparser's version (rss10 / rss090): step aside. Other declarations
# only name prefixes; elements in them still meet the whitelist (which compares exact namespace URIs,
# while feedparser lower-cases them: a differently cased URI steps aside too).
_VERSION_NAMESPACES = frozenset({"http://purl.org/rss/1.0/", "http://my.netscape.com/rdf/simple/0.9/"})

# element -> allowed attributes. Elements of an item that feedparser maps to a field we use, or that it
# stores without side effects on those fields; each was checked against feedparser 6.0's handlers.
_ITEM: dict[str, frozenset[str]] = {
    "title": frozenset(), "link": frozenset(), "description": frozenset(), "guid": frozenset({"isPermaLink"}),
    "pubDate": frozenset(), "author": frozenset(), "category": frozenset(), "comments": frozenset(),
    "enclosure": frozenset({"url", "length", "type"}), f"{CONTENT}encoded": frozenset(),
    f"{DC}creator": frozenset(), f"{DC}date": frozenset(),
    f"{WFW}commentRss": frozenset(), f"{WFW}comment": frozenset(), f"{SLASH}comments": frozenset(),
}
# Repeatable item elements; every other one may appear once (feedparser's rules for repeats vary).
_ITEM_REPEATABLE = frozenset({"category", "enclosure", f"{DC}creator"})
_CHANNEL: dict[str, frozenset[str]] = {
    "title": frozenset(), "link": frozenset(), "description": frozenset(), "language": frozenset(),
    "ttl": frozenset(), "lastBuildDate": frozenset(), "pubDate": frozenset(), "generator": frozenset(),
    "copyright": frozenset(), "docs": frozenset(), f"{ATOM}link": frozenset({"href", "rel", "type"}),
    f"{SY}updatePeriod": frozenset(), f"{SY}updateFrequency": frozenset(), f"{SY}updateBase": frozenset(),
}
_IMAGE = frozenset({"url", "title", "link", "width", "height", "description"})

# No entities, no DTD, no network, no recovery: anything unusual is feedparser's job. Comments and
# processing instructions are kept so that one inside a text element is seen (and steps aside).
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                          recover=False, remove_comments=False, remove_pis=False)
_C1 = re.compile("[\x80-\x9f]")
# feedparser's _sync_author_detail: an e-mail address inside an author string.
_EMAIL = re.compile(r"""(([a-zA-Z0-9\_\-\.\+]+)@((\[[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.)|(([a-zA-Z0-9\-]+\.)+))"""
                    r"""([a-zA-Z]{2,4}|[0-9]{1,3})(\]?))(\?subject=\S+)?""")
_LINK_REF = re.compile("&([A-Za-z0-9_]+);")

FastFeed = tuple[str, dict[str, Any], list[dict[str, Any]]]  # (version, feed meta, entries)


class _StepAside(Exception):
    """The document holds something outside the whitelist: feedparser reads it."""


def feedparser_headers(base_url: str, content_type: str | None) -> dict[str, str]:
    """The response headers both paths give feedparser (they decide its encoding and base URI)."""
    headers = {"content-location": base_url}
    if content_type:
        headers["content-type"] = content_type
    return headers


def decode_like_feedparser(body: bytes, headers: dict[str, str]) -> tuple[bytes, bool]:
    """(UTF-8 bytes as feedparser's parser sees them, whether the encoding was decided without conflict)."""
    result: dict[str, Any] = {}
    data = convert_to_utf8(headers, body, result)
    conflict = isinstance(result.get("bozo_exception"), CharacterEncodingOverride | CharacterEncodingUnknown)
    return data, bool(result.get("encoding")) and not conflict


def read_fast(body: bytes, base_url: str, content_type: str | None = None) -> FastFeed | None:
    """(version, feed, entries) exactly as feedparser gives them, or None when feedparser should read the document."""
    data, decided = decode_like_feedparser(body, feedparser_headers(base_url, content_type))
    return read_decoded(data, base_url) if decided else None


def read_decoded(data: bytes, base_url: str) -> FastFeed | None:
    """:func:`read_fast` on the output of :func:`decode_like_feedparser` (when it decided the encoding)."""
    try:
        root = etree.fromstring(data, _PARSER)
        if root.getroottree().docinfo.doctype:  # feedparser rewrites DOCTYPEs (entities, RSS 0.91)
            return None
        if any(uri.lower() in _VERSION_NAMESPACES for uri in root.nsmap.values()):
            return None
        base = make_safe_absolute_uri("", base_url) or make_safe_absolute_uri(base_url) or ""
        if root.tag == "rss" and root.get("version") == "2.0" and set(root.attrib) == {"version"}:
            return _rss2(root, base)
        if root.tag == ATOM_FEED and set(root.attrib) <= {XML_LANG}:
            return _atom(root, base)
        return None
    except (etree.LxmlError, ValueError, _StepAside):
        return None


def _finish(text: str | None, base: str | None = None) -> str:
    """feedparser's pop() for a text element: strip, join URIs, repair utf-8 read as latin-1, map cp1252."""
    out = text.strip() if text else ""
    if base is not None and out:
        out = _urljoin(base, out)
    if out.isascii():  # nothing to repair or map: the common case, kept cheap
        return out
    try:
        repaired = out.encode("iso-8859-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        repaired = out
    out = repaired
    if _C1.search(out):
        out = out.translate(_CP1252)
    return out


def _leaf(el: etree._Element, allowed: frozenset[str]) -> str | None:
    """The text of an element that must hold text only, with only the allowed attributes."""
    if len(el) or (el.attrib and not allowed.issuperset(el.attrib)):
        raise _StepAside
    return el.text


def _children(parent: etree._Element) -> Iterator[tuple[str, etree._Element]]:
    # Text between the children of a container would land in whatever feedparser has open: step aside.
    if parent.text and not parent.text.isspace():
        raise _StepAside
    for child in parent:
        if child.tail and not child.tail.isspace():
            raise _StepAside
        tag = child.tag
        if not isinstance(tag, str):  # comments and PIs between elements: feedparser ignores them
            continue
        yield tag, child


def _rss2(root: etree._Element, base: str) -> FastFeed:
    children = list(_children(root))
    if len(children) != 1 or children[0][0] != "channel" or children[0][1].attrib:
        raise _StepAside
    channel = children[0][1]
    meta: dict[str, Any] = {}
    seen: set[str] = set()
    entries = []
    for tag, child in _children(channel):
        if tag == "item":
            if child.attrib:
                raise _StepAside
            entries.append(_item(child, base))
            continue
        if tag in seen:
            raise _StepAside
        seen.add(tag)
        if tag == "image":
            _image(child)
            continue
        allowed = _CHANNEL.get(tag)
        if allowed is None:
            raise _StepAside
        text = _leaf(child, allowed)
        if tag == "title":
            meta["title"] = _finish(text)
        elif tag == "language":
            meta["language"] = _finish(text)
        elif tag == "ttl":
            meta["ttl"] = _finish(text)
        elif tag == f"{SY}updatePeriod":
            meta["sy_updateperiod"] = _finish(text)
        elif tag == f"{SY}updateFrequency":
            meta["sy_updatefrequency"] = _finish(text)
    return "rss20", meta, entries


def _image(image: etree._Element) -> None:
    # Read for its shape only: feedparser keeps the image's children in feed.image, a field we do not use.
    if image.attrib:
        raise _StepAside
    seen: set[str] = set()
    for tag, child in _children(image):
        if tag not in _IMAGE or tag in seen:
            raise _StepAside
        seen.add(tag)
        _leaf(child, frozenset())


def _item(item: etree._Element, base: str) -> dict[str, Any]:
    e: dict[str, Any] = {}
    seen: set[str] = set()
    authors: list[dict[str, str]] = []
    terms: list[str] = []
    links: list[dict[str, str]] = []
    guid_is_link = False
    description = content = None
    # _children() and _leaf() inlined: this loop is most of the fast path's time.
    if item.text and not item.text.isspace():
        raise _StepAside
    for child in item:
        tail = child.tail
        if tail and not tail.isspace():
            raise _StepAside
        tag = child.tag
        if not isinstance(tag, str):
            continue
        allowed = _ITEM.get(tag)
        if allowed is None:
            raise _StepAside
        if tag not in _ITEM_REPEATABLE:
            if tag in seen:
                raise _StepAside
            seen.add(tag)
        if tag == "enclosure":
            if len(child):
                raise _StepAside
            if child.attrib and not allowed.issuperset(child.attrib):
                raise _StepAside
            # _start_enclosure: url becomes href, not joined with the base.
            enc = {"rel": "enclosure"}
            if (url := child.get("url")) is not None:
                enc["href"] = url
            links.append(enc)
            continue
        if len(child) or (child.attrib and not allowed.issuperset(child.attrib)):
            raise _StepAside
        text = child.text
        if tag == "title":
            e["title"] = _finish(text)
        elif tag == "link":
            value = _finish(text, base)
            e["link"] = _LINK_REF.sub(r"&\g<1>", value.replace("&amp;", "&")) if "&" in value else value
        elif tag == "guid":
            # _start_guid compares the raw attribute value; a permalink guid is joined like a URI.
            guid_is_link = child.get("isPermaLink", "true") == "true"
            e["id"] = _finish(text, base if guid_is_link else None)
        elif tag == "description":
            description = _finish(text)
        elif tag == CONTENT_ENCODED:
            content = _finish(text)
            e["content"] = [{"type": "text/html", "value": content}]
        elif tag == "pubDate":
            e["published"] = value = _finish(text)
            e["published_parsed"] = _parse_date(value)
        elif tag == DC_DATE:
            e["updated"] = value = _finish(text)
            e["updated_parsed"] = _parse_date(value)
        elif tag in _AUTHORS:
            e["author"] = value = _finish(text)
            authors.append(_author_detail(value))
        elif tag == "category":
            term = _finish(text)
            if term and term not in terms:  # _add_tag drops repeats
                terms.append(term)
    if guid_is_link and "link" not in e:
        e["link"] = e["id"]
    # The description wins as summary; content:encoded is copied when there is none.
    return _complete(e, description, content, authors, terms, links)


def _complete(e: dict[str, Any], summary: str | None, content: str | None, authors: list[dict[str, str]],
              terms: Sequence[str | None], links: list[dict[str, str]]) -> dict[str, Any]:
    """The parts of an entry both formats finish alike."""
    if summary is not None:
        e["summary"] = summary
    elif content is not None:  # _end_content copies text/html content into a missing summary
        e["summary"] = content
    # FeedParserDict falls back from updated to published.
    if "updated" not in e and "published" in e:
        e["updated"], e["updated_parsed"] = e["published"], e["published_parsed"]
    e["authors"] = authors
    e["tags"] = [{"term": t} for t in terms]
    e["links"] = links
    return e


def _author_detail(author: str) -> dict[str, str]:
    """feedparser's _sync_author_detail for a plain author string: the name without an e-mail address."""
    detail: dict[str, str] = {}
    if not author:
        return detail
    if match := _EMAIL.search(author):
        email = match.group(0)
        author = author.replace(email, "").replace("()", "").replace("<>", "").replace("&lt;&gt;", "").strip()
        if author and author[0] == "(":
            author = author[1:]
        if author and author[-1] == ")":
            author = author[:-1]
        author = author.strip()
        detail["email"] = email
    if author:
        detail["name"] = author
    return detail


# Atom 1.0. Text constructs of type text or html only (xhtml, base64, src= and other types step aside).
_A = {name: f"{ATOM}{name}" for name in ("id", "title", "link", "summary", "content", "published", "updated",
                                           "author", "category", "name", "email", "uri", "subtitle", "generator",
                                           "icon", "logo", "rights")}
_TEXT_TYPES = {None: "text/plain", "text": "text/plain", "html": "text/html"}
_CONTENT_TYPES = {"text": "text/plain", "html": "text/html", "xhtml": "application/xhtml+xml"}  # map_content_type
_LINK_ATTRS = frozenset({"href", "rel", "type", "length", "title", "hreflang"})
_ATOM_FEED_LEAVES: dict[str, frozenset[str]] = {
    _A["title"]: frozenset({"type"}), _A["id"]: frozenset(), _A["updated"]: frozenset(),
    _A["subtitle"]: frozenset({"type"}), _A["generator"]: frozenset({"uri", "version"}), _A["icon"]: frozenset(),
    _A["logo"]: frozenset(), _A["rights"]: frozenset({"type"}),
}
_ATOM_ENTRY_LEAVES: dict[str, frozenset[str]] = {
    _A["id"]: frozenset(), _A["title"]: frozenset({"type"}), _A["summary"]: frozenset({"type"}),
    _A["content"]: frozenset({"type"}), _A["published"]: frozenset(), _A["updated"]: frozenset(),
}
_AUTHOR_PARTS = frozenset({_A["name"], _A["email"], _A["uri"]})
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})


def _text_type(el: etree._Element) -> str:
    """feedparser's content type for an Atom text construct (type values are lower-cased, as feedparser does)."""
    kind = el.get("type")
    mapped = _TEXT_TYPES.get(kind.lower() if kind is not None else None)
    if mapped is None:
        raise _StepAside
    return mapped


def _atom_link(el: etree._Element, base: str) -> tuple[str, str, str]:
    """(rel, type, joined href) as _start_link sees them; a link without href steps aside (it would read text)."""
    href = el.get("href")
    if len(el) or not _LINK_ATTRS.issuperset(el.attrib) or href is None:
        raise _StepAside
    rel = (el.get("rel") or "alternate").lower()
    kind = (el.get("type") or ("application/atom+xml" if rel == "self" else "text/html")).lower()
    return rel, _CONTENT_TYPES.get(kind, kind), _urljoin(base, href)


def _atom_author(el: etree._Element) -> str:
    """The author's name, raw as _end_name keeps it; anything but one non-empty name (+ email, uri) steps aside."""
    if el.attrib:
        raise _StepAside
    names = []
    for tag, child in _children(el):
        if tag not in _AUTHOR_PARTS or len(child) or child.attrib:
            raise _StepAside
        if tag == _A["name"]:
            names.append((child.text or "").strip())
    if len(names) != 1 or not names[0]:
        raise _StepAside
    return names[0]


def _atom(root: etree._Element, base: str) -> FastFeed:
    meta: dict[str, Any] = {}
    if lang := root.get(XML_LANG):
        meta["language"] = lang.replace("_", "-")
    seen: set[str] = set()
    entries = []
    for tag, child in _children(root):
        if tag == ATOM_ENTRY:
            entries.append(_atom_entry(child, base))
        elif tag == ATOM_LINK:
            _atom_link(child, base)
        elif tag == _A["author"]:
            _atom_author(child)
        elif tag == _A["category"]:
            if len(child) or (child.text and child.text.strip()) or not {"term", "scheme", "label"}.issuperset(
                    child.attrib):
                raise _StepAside
        else:
            allowed = _ATOM_FEED_LEAVES.get(tag)
            if allowed is None or tag in seen or len(child) or not allowed.issuperset(child.attrib):
                raise _StepAside
            seen.add(tag)
            if "type" in allowed:
                _text_type(child)
            if tag == _A["title"]:
                meta["title"] = _finish(child.text)
    return "atom10", meta, entries


def _atom_entry(entry: etree._Element, base: str) -> dict[str, Any]:
    if entry.attrib:
        raise _StepAside
    e: dict[str, Any] = {}
    seen: set[str] = set()
    names: list[str] = []
    tags: list[tuple[str | None, str | None, str | None]] = []
    links: list[dict[str, str]] = []
    link = summary = content = None
    for tag, child in _children(entry):
        if tag == ATOM_LINK:
            rel, kind, href = _atom_link(child, base)
            if rel == "enclosure":
                links.append({"rel": rel, "href": href})
            if rel == "alternate" and kind in _HTML_TYPES:
                link = href  # _start_link overwrites: the last one wins
        elif tag == _A["author"]:
            names.append(_atom_author(child))
        elif tag == _A["category"]:
            if len(child) or (child.text and child.text.strip()) or not {"term", "scheme", "label"}.issuperset(
                    child.attrib):
                raise _StepAside
            tag_key = (child.get("term"), child.get("scheme"), child.get("label"))
            if any(tag_key) and tag_key not in tags:  # _add_tag skips empty and repeated tags
                tags.append(tag_key)
        else:
            allowed = _ATOM_ENTRY_LEAVES.get(tag)
            if allowed is None or tag in seen or len(child) or not allowed.issuperset(child.attrib):
                raise _StepAside
            seen.add(tag)
            if tag == _A["id"]:
                e["id"] = _finish(child.text, base)  # an id is joined like a permalink guid
            elif tag == _A["title"]:
                _text_type(child)
                e["title"] = _finish(child.text)
            elif tag == _A["summary"]:
                _text_type(child)
                summary = _finish(child.text)
            elif tag == _A["content"]:
                kind = _text_type(child)
                content = _finish(child.text)
                e["content"] = [{"type": kind, "value": content}]
            elif tag == _A["published"]:
                e["published"] = value = _finish(child.text)
                e["published_parsed"] = _parse_date(value)
            elif tag == _A["updated"]:
                e["updated"] = value = _finish(child.text)
                e["updated_parsed"] = _parse_date(value)
    # The id stands in for a missing link (_end_guid); a summary element wins over the content.
    if link is not None:
        e["link"] = link
    elif "id" in e:
        e["link"] = e["id"]
    return _complete(e, summary, content, [{"name": n} for n in names], [t[0] for t in tags], links)
