"""The clean stage: one RawItem in, one CleanArticle out (main text, metadata, language, syndication).

``clean_article`` is pure and synchronous so it can run in a process pool. The cascade:

1. pick the HTML: ``item.content`` (a full page or a feed's content:encoded fragment), else ``item.summary``;
   HTML nested deeper than the parsers read is flattened first (``pipeline.nesting``), its text kept;
2. extract the main text: a page by ``pipeline.extract``'s fallback chain (trafilatura full mode, tables kept;
   then recall mode or readability-lxml only when their text passes a prose-density check; else discard),
   a feed fragment by trafilatura with a plain block-text baseline when trafilatura finds it too small;
3. drop the boilerplate trafilatura lets through (``pipeline.boilerplate``: teasers, promos, widgets);
4. fill the fields, feed metadata first and page metadata second, all as NFC plain text.

Markup is removed on parsed trees only: text that merely looks like a tag ("<The Palace: Tale of Jang Noksu>",
written escaped in the page) is text. Every length decision counts words with ``pipeline.wordcount.count_words``
(CJK and Thai by characters).

Every reason to drop an article raises ``ArticleDiscarded``; anything unexpected is ``CleanFailed``.
"""

from __future__ import annotations

import html
import logging
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple
from urllib.parse import urlsplit

import lxml.etree
import lxml.html
import trafilatura
from tld import get_fld
from trafilatura.settings import Document

from pipeline.boilerplate import filter_paragraphs
from pipeline.canonical import canonical_url, text_fingerprint
from pipeline.dedupe import minhash_signature
from pipeline.errors import ArticleDiscarded, CleanFailed
from pipeline.extract import ENDS_LIKE_PROSE, block_paragraphs, extract_page, trafilatura_text
from pipeline.language import detect_language
from pipeline.logs import get_logger
from pipeline.nesting import NESTING_LIMIT, flatten_nesting
from pipeline.schemas import CleanArticle, RawItem, encode_signature
from pipeline.syndication import syndicated_from
from pipeline.wordcount import count_words, first_words

__all__ = ["MAX_HTML_CHARS", "SignedArticle", "clean_and_sign", "clean_article", "html_to_text", "source_domain"]

log = get_logger(__name__)
STAGE = "clean"

# trafilatura logs ordinary outcomes ("empty HTML tree", "discarding data") at ERROR and WARNING, once per
# short or odd page; this stage reports those outcomes itself as typed errors with a metric, so the
# library's own records would only be noise in the worker's log.
logging.getLogger("trafilatura").setLevel(logging.CRITICAL)

# A news page is rarely over 1 MB of HTML; past this it is a feed mistake or an attack, and lxml would
# spend seconds and hundreds of MB on it.
MAX_HTML_CHARS = 5_000_000

# Bounds on what clean emits, so that an article always fits a Kafka message (1 MB by default) with room left for
# enrich's fields, even in a 3-byte script: a longer title, standfirst, summary or body is a feed's mistake or an
# attack, not news. The text is cut at a word (or, for the body, a paragraph) boundary, logged and counted; the
# article is kept, never dead-lettered for its size.
MAX_TITLE_CHARS = 1_000
MAX_SUMMARY_CHARS = 5_000  # summary and subtitle
MAX_BODY_CHARS = 200_000  # ~35,000 English words
# A page whose text is below this many words under trafilatura is retried with the baseline extractor
# when the input is a fragment (feeds' content:encoded): trafilatura drops short fragments as "too small".
_FRAGMENT_RETRY_WORDS = 40

# XML 1.0 forbids C0 controls other than tab/newline/CR; lxml refuses them, and they have no place in text.
# Lone surrogates come from JSON "\udcxx" escapes and cannot be encoded for lxml either.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
# libxml2 checks attributes for duplicates pairwise: a tag with 100,000 attributes takes minutes to parse.
# No real tag is this long, so an overlong one keeps its name and loses its attributes.
_OVERLONG_TAG = re.compile(r"<([a-zA-Z][\w:-]{0,30})\b[^<>]{8000,}>")
_SPACE = re.compile(r"[ \t\u00a0\u2000-\u200b\u202f\u205f\u3000]+")
_FULL_PAGE = re.compile(r"<\s*(?:html|body|head|article|main)\b", re.IGNORECASE)
# Markup is recognised by HTML's own tag names (and comments, doctypes): "<The Palace: Tale of Jang Noksu>" in a
# feed's text is a title, not a tag. This only decides whether to parse; removal happens on the parsed tree.
_HTML_NAMES = (
    r"a|abbr|address|article|aside|audio|b|big|blockquote|body|br|button|canvas|caption|center|cite|code|dd|del|"
    r"details|div|dl|dt|em|embed|figcaption|figure|font|footer|form|h[1-6]|head|header|hr|html|i|iframe|img|input|"
    r"ins|label|li|link|main|mark|meta|nav|noscript|object|ol|option|p|picture|pre|q|s|script|section|select|small|"
    r"source|span|strike|strong|style|sub|summary|sup|svg|table|tbody|td|template|textarea|tfoot|th|thead|time|"
    r"title|tr|u|ul|video|wbr"
)
_HTML_MARKUP = re.compile(rf"<(?:/?(?:{_HTML_NAMES})(?=[\s/>])[^<>]*>|!--|!doctype|\?xml)", re.IGNORECASE)
_ESCAPED_MARKUP = re.compile(rf"&lt;/?(?:{_HTML_NAMES})(?:\s|/|&gt;)", re.IGNORECASE)
_ENTITY = re.compile(r"&(?:#\d+|#x[0-9a-fA-F]+|[a-zA-Z]{2,8});")
# WordPress's feed footer, "The post <title> appeared first on <site>.", flattened into a summary's last sentence
# (a footer paragraph of its own is boilerplate.filter_paragraphs'). Only after a sentence end or a line start:
# "... said the post office ..." is text.
_FEED_FOOTER = re.compile(r"(?:^|(?<=[.!?…\]»\"”’)]\s)|(?<=\n))the\s+post\s.+\sappeared\s+first\s+on\s.*$",
                          re.IGNORECASE)
_PUBLISHED_XPATH = (
    '//meta[@property="article:published_time" or @name="article:published_time" or '
    '@property="og:published_time" or @name="pubdate" or @name="publish-date" or @itemprop="datePublished"]/@content'
    ' | //time[@itemprop="datePublished"]/@datetime'
)
# Standfirst / dek / lede containers of common news templates (first match wins).
_STANDFIRST_XPATH = (
    "//*[self::p or self::div or self::h2 or self::h3]"
    "[contains(concat(' ', normalize-space(@class), ' '), ' standfirst ') or "
    "contains(concat(' ', normalize-space(@class), ' '), ' dek ') or "
    "contains(concat(' ', normalize-space(@class), ' '), ' lede ') or "
    "contains(concat(' ', normalize-space(@class), ' '), ' subtitle ') or "
    "contains(concat(' ', normalize-space(@class), ' '), ' article__summary ') or "
    "contains(concat(' ', normalize-space(@class), ' '), ' article-summary ') or "
    "contains(concat(' ', normalize-space(@class), ' '), ' subheadline ') or @itemprop='alternativeHeadline']"
)


@dataclass(frozen=True, slots=True)
class _Extracted:
    paragraphs: list[str]
    title: str | None = None
    subtitle: str | None = None
    authors: tuple[str, ...] = ()
    published_raw: str | None = None
    sitename: str | None = None


def clean_article(item: RawItem, *, min_words: int, max_html_chars: int = MAX_HTML_CHARS) -> CleanArticle:
    """Extract the article in ``item`` as plain text with its metadata.

    Raises ``ArticleDiscarded`` when there is no usable text or fewer than ``min_words`` (``pipeline.min_words``)
    words, and ``CleanFailed`` for anything else that goes wrong (never a foreign exception).
    """
    return _clean_article(item, min_words=min_words, max_html_chars=max_html_chars)[0]


class SignedArticle(NamedTuple):
    """A clean article as the clean agent sends it on news.clean: nothing left for the agent to parse."""

    key: str  # CleanArticle.key
    value: str  # the CleanArticle JSON
    signature: bytes  # the SIGNATURE_HEADER value: the MinHash of the body
    # Its HTML was flattened (pipeline.nesting) / the fields cut to their bounds. The agent counts them: a pool
    # process's metrics are not served.
    html_flattened: bool = False
    truncated: tuple[str, ...] = ()


def clean_and_sign(item: RawItem, *, min_words: int, num_perm: int, shingle_size: int) -> SignedArticle:
    """Pool-side: clean one item and sign its body (the clean agent's work, off the event loop)."""
    article, flattened, truncated = _clean_article(item, min_words=min_words, max_html_chars=MAX_HTML_CHARS)
    signature = minhash_signature(article.body, num_perm=num_perm, shingle_size=shingle_size)
    return SignedArticle(article.key, article.model_dump_json(), encode_signature(signature, num_perm, shingle_size),
                         flattened, truncated)


def _clean_article(item: RawItem, *, min_words: int,
                   max_html_chars: int) -> tuple[CleanArticle, bool, tuple[str, ...]]:
    """``clean_article``, whether the HTML was flattened, and the fields cut to their bounds."""
    try:
        return _clean(item, min_words=min_words, max_html_chars=max_html_chars)
    except (ArticleDiscarded, CleanFailed):
        raise
    except Exception as exc:  # the stage boundary: whatever a parser throws becomes one typed error
        raise CleanFailed(f"{type(exc).__name__}: {exc}"[:500], stage=STAGE) from exc


def _clean(item: RawItem, *, min_words: int, max_html_chars: int) -> tuple[CleanArticle, bool, tuple[str, ...]]:
    source_html = item.content if item.content and item.content.strip() else item.summary
    if not source_html or not source_html.strip():
        raise ArticleDiscarded("no_content", stage=STAGE)
    if len(source_html) > max_html_chars:
        raise ArticleDiscarded("html_too_large", stage=STAGE)
    source_html = _unescape_escaped_markup(_OVERLONG_TAG.sub(r"<\1>", _CONTROL.sub("", source_html)))
    # Before any parser sees it: libxml2 stops reading at 256 open elements and every extractor here uses it.
    flat = flatten_nesting(source_html)
    if flat is not None:
        log.info("deep html nesting flattened", stage=STAGE, feed_url=item.feed_url, url=item.link, depth=flat.depth,
                 limit=NESTING_LIMIT, dropped_tags=flat.dropped_tags)
        source_html = flat.html

    extracted = _extract(source_html, url=item.link)
    feed_title = html_to_text(item.title) if item.title else None
    title = feed_title or extracted.title
    source = item.feed_name or (html_to_text(item.feed_title) if item.feed_title else None) or extracted.sitename
    names = tuple(n for n in (source, extracted.sitename, item.feed_name, item.feed_title) if n)
    paragraphs = filter_paragraphs(extracted.paragraphs, title=title, subtitle=extracted.subtitle, names=names)
    subtitle = extracted.subtitle
    if subtitle is None and len(paragraphs) >= 2 and _looks_like_standfirst(paragraphs[0], paragraphs[1]):
        subtitle = paragraphs.pop(0)
    summary = _summary(item.summary, title=title, names=names)
    body = "\n\n".join(paragraphs)
    title = title or first_words(body, 12)
    bounded = {name: _bounded(value, limit, paragraphs=name == "body") for name, value, limit in (
        ("title", title, MAX_TITLE_CHARS), ("subtitle", subtitle, MAX_SUMMARY_CHARS),
        ("summary", summary, MAX_SUMMARY_CHARS), ("body", body, MAX_BODY_CHARS))}
    truncated = tuple(name for name, (_, cut) in bounded.items() if cut)
    if truncated:
        log.warning("article fields cut to their bounds", stage=STAGE, feed_url=item.feed_url, url=item.link,
                    fields=list(truncated))
    subtitle, summary = bounded["subtitle"][0], bounded["summary"][0]
    title, body = bounded["title"][0] or "", bounded["body"][0] or ""
    word_count = count_words(body)
    if word_count == 0:
        raise ArticleDiscarded("no_text", stage=STAGE)
    if word_count < min_words:
        raise ArticleDiscarded("too_short", stage=STAGE)

    published_at, published_raw = item.published_at, item.published_raw
    if published_at is None and extracted.published_raw:
        published_at = _parse_datetime(extracted.published_raw)
        published_raw = published_raw or extracted.published_raw
    article = CleanArticle(
        url=item.link,
        canonical_url=item.canonical_link or canonical_url(item.link),
        feed_url=item.feed_url,
        guid=item.guid,
        title=title,
        subtitle=subtitle,
        summary=summary or None,
        body=body,
        authors=_authors(item.authors) or list(extracted.authors),
        categories=[c for c in (html_to_text(c) for c in item.categories) if c],
        tags=list(item.tags),
        published_at=published_at,
        published_raw=published_raw,
        ingested_at=item.fetched_at,
        source=source,
        source_domain=source_domain(item.link),
        syndicated_from=syndicated_from(body, source=source),
        language=detect_language(body, hint=item.language),
        word_count=word_count,
        text_fingerprint=text_fingerprint(body),
    )
    return article, flat is not None, truncated


def _bounded(text: str | None, limit: int, *, paragraphs: bool = False) -> tuple[str | None, bool]:
    """``text`` cut to at most ``limit`` characters at a paragraph (when ``paragraphs``) or word boundary, with an
    ellipsis when a sentence is cut; and whether it was cut."""
    if text is None or len(text) <= limit:
        return text, False
    head = text[: limit - 1]
    if paragraphs and (end := head.rfind("\n\n")) > limit // 2:
        return head[:end], True
    end = head.rfind(" ")
    return (head[:end] if end > limit // 2 else head).rstrip() + "…", True


def _extract(source_html: str, *, url: str | None) -> _Extracted:
    """Step 2 of the cascade: the fallback chain on pages, trafilatura and the baseline on fragments."""
    is_page = bool(_FULL_PAGE.search(source_html[:20_000]))
    if not _HTML_MARKUP.search(source_html):
        # Plain text (a summary without markup): paragraphs are its blank-line separated blocks.
        return _Extracted(paragraphs=_split_text_lines(html.unescape(source_html)))
    # Parse once: the page's own meta tags are read from the tree the chain then extracts from.
    tree = trafilatura.load_html(source_html) if is_page else None
    if tree is None:
        return _Extracted(paragraphs=_fragment_paragraphs(source_html, url=url))
    published_raw, standfirst = _page_meta(tree)
    extraction = extract_page(tree, source_html, url=url)
    paragraphs = [_clean_line(p) for p in extraction.paragraphs]
    paragraphs = [p for p in paragraphs if p]
    doc = extraction.doc
    if doc is None:
        return _Extracted(paragraphs=paragraphs, published_raw=published_raw)
    title = _clean_line(doc.title) if doc.title else None
    description = standfirst or (_clean_line(doc.description) if doc.description else None)
    subtitle = _subtitle(description, title, paragraphs)
    return _Extracted(
        paragraphs=paragraphs,
        title=title or None,
        subtitle=subtitle,
        authors=tuple(_authors((doc.author or "").split(";"))),
        published_raw=published_raw or doc.date,
        sitename=_clean_line(doc.sitename) if doc.sitename else None,
    )


def _fragment_paragraphs(source_html: str, *, url: str | None) -> list[str]:
    """A feed's content:encoded is the article itself: trafilatura, else its plain block text."""
    doc: Document | None = None
    try:
        # trafilatura takes a lone block ("<p>...</p>") for not-quite-HTML: a fragment gets a parent.
        doc = trafilatura_text(f"<div>{source_html}</div>", url=url, with_metadata=False, favor_precision=True)
    except Exception as exc:  # any failure inside trafilatura leaves the baseline to try
        log.info("trafilatura failed, using the baseline", stage=STAGE, kind=type(exc).__name__, url=url)
    paragraphs = _split_lines(doc.text) if doc is not None and doc.text else []
    if sum(count_words(p) for p in paragraphs) < _FRAGMENT_RETRY_WORDS:
        # trafilatura drops short fragments as "too small"; the fragment has no page chrome to fear.
        baseline = _baseline_paragraphs(source_html)
        if sum(count_words(p) for p in baseline) > sum(count_words(p) for p in paragraphs):
            paragraphs = baseline
    return paragraphs


def _unescape_escaped_markup(source: str) -> str:
    """A feed that escaped its HTML twice ("&lt;p&gt;...") gets one level decoded, so a parser then sees markup."""
    if not _HTML_MARKUP.search(source) and _ESCAPED_MARKUP.search(source):
        return html.unescape(source)
    return source


def _summary(value: str | None, *, title: str | None, names: tuple[str, ...]) -> str | None:
    """The feed summary as plain text, without the furniture feeds append ("The post ... appeared first on")."""
    text = _FEED_FOOTER.sub("", html_to_text(value)).rstrip()
    if not text:
        return None
    paragraphs = text.split("\n\n")
    # A summary that is all "furniture" to the filter (a short phrase) is kept as it is.
    return "\n\n".join(filter_paragraphs(paragraphs, title=title, names=names)) or text


def _subtitle(description: str | None, title: str | None, paragraphs: list[str]) -> str | None:
    """The standfirst, when the page's description is one: not the title, not the lede cut short."""
    if not description or len(description) > 400:
        return None
    if title and description.casefold() == title.casefold():
        return None
    if paragraphs:
        first = paragraphs[0].casefold()
        if first == description.casefold():
            # The standfirst printed above the text (kept by the extractor) is a subtitle; a lede copied into
            # the description is a full sentence and stays the body's first paragraph.
            return None if ENDS_LIKE_PROSE.search(description) and count_words(description) > 25 else description
        if first.startswith(description.rstrip(".…").casefold()[:120]):
            return None  # the description is the lede cut short
    return description


def _looks_like_standfirst(first: str, second: str) -> bool:
    """An opening line that is a standfirst: a phrase without a full stop, before a longer paragraph."""
    words = count_words(first)
    return 6 <= words <= 40 and not ENDS_LIKE_PROSE.search(first) and count_words(second) > words


def _page_meta(tree: lxml.html.HtmlElement) -> tuple[str | None, str | None]:
    """(publication timestamp, standfirst) read from the page's own markup.

    trafilatura keeps only the date when htmldate misses the time, and reads a standfirst only from the
    meta description; news templates mark both plainly (article:published_time, class="standfirst").
    """
    published = next(
        (v.strip() for v in tree.xpath(_PUBLISHED_XPATH) if isinstance(v, str) and _parse_datetime(v.strip())), None
    )
    standfirst = None
    for element in tree.xpath(_STANDFIRST_XPATH)[:1]:
        text = _clean_line(element.text_content())
        if 3 <= count_words(text) <= 60:
            standfirst = text
    return published, standfirst


def _parse_datetime(value: str) -> datetime | None:
    text = value.strip().replace("Z", "+00:00")
    for candidate in (text, text[:25], text[:19], text[:10]):
        try:
            parsed = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        # A date without a zone is taken as UTC: the schema needs aware datetimes, and pages that omit
        # the zone are mostly UTC-stamped CMS output.
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _baseline_paragraphs(source_html: str) -> list[str]:
    """Block-level text of ``source_html`` without scripts, styles, forms and navigation."""
    try:
        root = lxml.html.fragment_fromstring(source_html, create_parent="div")
    except (lxml.etree.LxmlError, ValueError):
        return []
    return [line for line in (_clean_line(block) for block in block_paragraphs(root)) if line]


def html_to_text(value: str | None) -> str:
    """Plain NFC text of a short HTML string (titles, summaries): tags and scripts gone, entities decoded."""
    if not value:
        return ""
    value = _unescape_escaped_markup(_CONTROL.sub("", value))
    if _HTML_MARKUP.search(value):
        return "\n\n".join(_baseline_paragraphs(value))
    return _clean_line(html.unescape(value))


def _split_lines(text: str) -> list[str]:
    # trafilatura's text output has one paragraph (or list item, or heading) per line.
    return [line for line in (_clean_line(raw) for raw in text.split("\n")) if line]


def _split_text_lines(text: str) -> list[str]:
    # Plain-text summaries put one paragraph (or one widget label) per line; wrapped lines are rare in feeds.
    return [line for line in (_clean_line(raw) for raw in text.splitlines()) if line]


def _clean_line(value: str) -> str:
    # Feeds that escape entities twice ("&amp;amp;") leave entities in text that was already parsed once:
    # decode them. Markup is never stripped here: text is text, whatever it looks like (issue 11, cause 4).
    if "&" in value and _ENTITY.search(value):
        value = html.unescape(value)
    value = unicodedata.normalize("NFC", _CONTROL.sub("", value))
    return _SPACE.sub(" ", value.replace("\r", " ").replace("\n", " ")).strip()


def _authors(values: list[str] | tuple[str, ...]) -> list[str]:
    seen: dict[str, str] = {}
    for raw in values:
        name = html_to_text(raw).removeprefix("By ").removeprefix("by ").strip(" ,;")
        if name and name.casefold() not in seen:
            seen[name.casefold()] = name
    return list(seen.values())


def source_domain(url: str | None) -> str | None:
    """The registered domain of ``url`` ("bbc.co.uk" for news.bbc.co.uk), else its host without "www."."""
    if not url:
        return None
    try:
        domain = get_fld(url, fail_silently=True)
        host = urlsplit(url).hostname
    except ValueError:
        return None
    if domain:
        return str(domain).lower()
    return host.lower().removeprefix("www.") if host else None
