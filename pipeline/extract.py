"""Main-text extraction for the clean stage: a fallback chain that prefers discarding a page to indexing its chrome.

For a full page (measured on bench/corpus/extraction, see docs/extraction.md):

0. empty spacer and ad-slot elements (``<div class="spacer"></div>``) become line breaks in the tree, their
   tail text kept: trafilatura, in either mode, loses the text that follows an empty ``div`` inside a body;
1. trafilatura in full mode (``fast=False``: its comparison with its own readability/jusText ports rescues
   bodies that fast mode loses: text between empty spacer ``div``s, ``<br>``-separated portal bodies),
   ``favor_precision``, tables included (standings and results tables are the article), kept when its text
   passes ``looks_like_article`` (full mode's own fallbacks return the widgets of a page without an article);
2. else trafilatura with ``favor_recall`` (which may fall back to its whole-page baseline), under the same check;
3. then readability-lxml's article candidate, under the same check;
4. else nothing: the clean stage discards the page (``no_text``) rather than index menus, widgets and footers.

``looks_like_article`` is a density test on the text: most of it must be in prose paragraphs (sentence
punctuation, several words by ``pipeline.wordcount``) or table rows, where page chrome is short labels,
headlines, numbers and addresses. All markup is removed on parsed trees, never by a pattern over text, so a
work title written as ``&lt;The Palace&gt;`` in the page stays in the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import lxml.etree
import lxml.html
import trafilatura
from trafilatura.settings import Document

from pipeline.logs import get_logger
from pipeline.wordcount import count_words

__all__ = ["ENDS_LIKE_PROSE", "Extraction", "block_paragraphs", "extract_page", "looks_like_article",
           "trafilatura_text"]

log = get_logger(__name__)

# A line ending like prose: sentence- or clause-final punctuation (":" and ";" count: a paragraph may lead into
# a quote or a list), then closing quotes, in Latin/Cyrillic, CJK full-width, Arabic and Devanagari text.
ENDS_LIKE_PROSE = re.compile(r"[.!?…:;。！？؟।॥][\'\"”’»)）」』]*$")
_DATE_PARAMS = {"extensive_search": False, "original_date": True, "outputformat": "%Y-%m-%dT%H:%M:%S%z"}
# looks_like_article: a prose paragraph has this many words and ends a sentence; an article has this share of
# its words in prose and at least this many prose words. Widgets, menus and headline lists fail both.
_PROSE_MIN_WORDS = 8
_PROSE_SHARE = 0.6
_PROSE_MIN_TOTAL = 20
_BLOCK_TAGS = (
    "p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "tr", "dd", "dt",
    "section", "article", "figcaption", "header", "footer", "ul", "ol", "table", "br", "hr",
)
_CELL_TAGS = ("td", "th")
# Block elements only: an empty inline <span> (an icon, a footnote anchor) sits inside a sentence.
_SPACER_TAGS = ("div", "p", "section")
_DROP_TAGS = ("script", "style", "noscript", "template", "svg", "iframe", "object", "embed", "form", "button",
              "select", "nav", "head", "title", "meta", "link", "aside", "footer")
# trafilatura writes a table row as "| cell | cell |": a data table is content, not chrome.
_TABLE_ROW = re.compile(r"^\|.*\S.*\|$")
_SPACE = re.compile(r"[ \t\u00a0\u2000-\u200b\u202f\u205f\u3000]+")


@dataclass(frozen=True, slots=True)
class Extraction:
    paragraphs: list[str]
    doc: Document | None  # trafilatura's document of step 1 (metadata), when it ran
    method: str  # "precision", "recall", "readability" or "none": which step gave the text


def _line(value: str) -> str:
    return _SPACE.sub(" ", value.replace("\r", " ").replace("\n", " ")).strip()


def _lines(text: str | None) -> list[str]:
    # trafilatura's text output has one paragraph (or list item, heading, table row) per line.
    return [line for line in (_line(raw) for raw in (text or "").split("\n")) if line]


def trafilatura_text(
    source: Any, *, url: str | None, with_metadata: bool, favor_precision: bool = False, favor_recall: bool = False
) -> Document | None:
    """One trafilatura run in full mode, no comments, tables and no images or links; None when it finds nothing."""
    extracted = trafilatura.bare_extraction(
        source,
        url=url,
        fast=False,
        include_comments=False,
        include_tables=True,
        include_images=False,
        include_links=False,
        with_metadata=with_metadata,
        date_extraction_params=_DATE_PARAMS,
        favor_precision=favor_precision,
        favor_recall=favor_recall,
    )
    return extracted if isinstance(extracted, Document) else None  # a dict only with as_dict=True


def looks_like_article(paragraphs: list[str]) -> bool:
    """True when most of the text is prose: what a fallback's output must be before it may be indexed."""
    total = prose = rows = 0
    for paragraph in paragraphs:
        words = count_words(paragraph)
        total += words
        if words >= _PROSE_MIN_WORDS and ENDS_LIKE_PROSE.search(paragraph):
            prose += words
        elif _TABLE_ROW.match(paragraph):
            rows += words
    # Table rows count as content but cannot make an article alone (a currency widget may be a table).
    return prose >= _PROSE_MIN_TOTAL and prose + rows >= _PROSE_SHARE * total


def block_paragraphs(root: lxml.html.HtmlElement) -> list[str]:
    """Block-level text of a parsed tree without scripts, styles, forms and navigation (modifies ``root``)."""
    # Comments need no removal: text_content() reads text nodes only.
    for element in list(root.iter(*_DROP_TAGS)):
        element.drop_tree()
    for element in root.iter(*_CELL_TAGS):
        element.tail = " " + (element.tail or "")
    for element in root.iter(*_BLOCK_TAGS):
        # Block boundaries become blank lines so text_content() keeps paragraphs apart.
        element.tail = "\n\n" + (element.tail or "")
        if element.tag != "br":
            element.text = "\n\n" + (element.text or "")
    return [block for block in (_line(raw) for raw in re.split(r"\n\s*\n", root.text_content())) if block]


def _readability(source_html: str) -> list[str]:
    from readability import Document as ReadabilityDocument

    summary = ReadabilityDocument(source_html).summary(html_partial=True)
    try:
        root = lxml.html.fragment_fromstring(summary, create_parent="div")
    except (lxml.etree.LxmlError, ValueError):
        return []
    return block_paragraphs(root)


def drop_empty_spacers(tree: lxml.html.HtmlElement) -> None:
    """Replace empty block elements followed by text with a line break that keeps the text after it."""
    for element in list(tree.iter(*_SPACER_TAGS)):
        parent = element.getparent()
        if (
            parent is not None and len(element) == 0 and element.tail and element.tail.strip()
            and not (element.text or "").strip()
        ):
            # A <br>, not nothing: the spacer also separated two paragraphs, which must not run together.
            line_break = lxml.html.Element("br")
            line_break.tail = element.tail
            parent.replace(element, line_break)


def extract_page(tree: lxml.html.HtmlElement, source_html: str, *, url: str | None) -> Extraction:
    """The article text of a full page by the fallback chain above (see the module docstring); edits ``tree``."""
    drop_empty_spacers(tree)
    doc: Document | None = None
    try:
        doc = trafilatura_text(tree, url=url, with_metadata=True, favor_precision=True)
    except Exception as exc:  # a trafilatura bug on odd markup must not lose the article: the chain goes on
        log.info("trafilatura failed, trying the fallbacks", stage="clean", kind=type(exc).__name__, url=url)
    paragraphs = _lines(doc.text) if doc is not None else []
    if looks_like_article(paragraphs):
        return Extraction(paragraphs, doc, "precision")
    try:
        recall = trafilatura_text(tree, url=url, with_metadata=False, favor_recall=True)
        paragraphs = _lines(recall.text) if recall is not None else []
    except Exception as exc:
        log.info("trafilatura recall failed", stage="clean", kind=type(exc).__name__, url=url)
        paragraphs = []
    if looks_like_article(paragraphs):
        return Extraction(paragraphs, doc, "recall")
    try:
        paragraphs = _readability(source_html)
    except Exception as exc:  # readability raises its own Unparseable and lxml errors on hostile markup
        log.info("readability failed", stage="clean", kind=type(exc).__name__, url=url)
        paragraphs = []
    if looks_like_article(paragraphs):
        return Extraction(paragraphs, doc, "readability")
    return Extraction([], doc, "none")
