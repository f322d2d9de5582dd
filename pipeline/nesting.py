"""The nesting guard: HTML nested deeper than the clean stage's parsers can take is flattened before parsing.

libxml2 (lxml, and through it trafilatura and readability-lxml) stops reading a document when 256 elements are
open at once (2,048 with ``huge_tree``) and keeps only what came before: an article inside 10,000 nested
``div``s came out empty and was discarded as ``no_text``, and an article followed by deep markup lost its end.
No installed parser or option reads such a page into a tree the extractors can use (docs/extraction.md), so
:func:`flatten_nesting` removes the start and end tags of the elements nested below :data:`NESTING_LIMIT`
levels. All text is kept, and so are the elements down to the limit, with their attributes.

It reads the tags once, opening and closing elements as libxml2 does: void elements, ``<x/>``, raw-text
elements (script, style), the end tags HTML lets a writer leave out (``<p>``, ``<li>``, ``<td>``), misnested
end tags. Where its rules are not libxml2's they only count deeper (tests/pipeline/test_nesting.py compares
the two).

Ordinary pages are returned as they are and cost one regex pass over their tags: a page is read tag by tag
only when its counts of start and end tags show that some stretch of it could open more than the limit.
"""

from __future__ import annotations

import re
import sys
from array import array
from collections import defaultdict
from dataclasses import dataclass

__all__ = ["NESTING_LIMIT", "Flattened", "flatten_nesting"]

# Far below libxml2's 256, which also counts the html and body it adds around a fragment and the wrapper
# elements the extractors add (trafilatura's <div> around a fragment), and far above real pages (a few dozen
# levels). Markup of the tested engines is unchanged up to here (tests/pipeline/test_nesting.py).
NESTING_LIMIT = 200


@dataclass(frozen=True, slots=True)
class Flattened:
    """A page rewritten by :func:`flatten_nesting`."""

    html: str
    depth: int  # the deepest nesting found, in open elements
    dropped_tags: int  # start and end tags removed


# Elements libxml2 never opens (it has no end tag for them); wbr, source, track and embed are void in HTML5
# but libxml2 2.14 still nests what follows them, so they count as open here, as it counts them.
_VOID = frozenset(("area", "base", "basefont", "br", "col", "frame", "hr", "img", "input", "isindex", "link",
                   "meta", "param"))
# Raw text: no tag inside is read as a tag. They are never removed (their text is script, style or markup).
_RAW = frozenset(("script", "style", "xmp", "iframe", "noembed", "noframes", "textarea", "title", "plaintext"))
_RAW_END = {name: re.compile(rf"</{name}(?=[\s/>])", re.IGNORECASE) for name in _RAW - {"plaintext"}}
# Start tags that close the current element first (libxml2's implied end tags for old-style HTML such as
# unclosed <p>, <li> and <td>). A subset of libxml2's rules: one missing here can only make the count deeper.
_CLOSED_BY: dict[str, frozenset[str]] = {
    "p": frozenset(("p", "div", "ul", "ol", "dl", "dd", "dt", "li", "table", "h1", "h2", "h3", "h4", "h5", "h6",
                    "pre", "blockquote", "hr", "form", "address", "center", "fieldset", "menu")),
    "li": frozenset(("li",)),
    "dt": frozenset(("dd",)),
    "dd": frozenset(("dt",)),
    "option": frozenset(("option", "optgroup")),
    "tr": frozenset(("tr", "tbody", "tfoot")),
    "td": frozenset(("td", "th", "tr", "tbody", "tfoot")),
    "th": frozenset(("td", "th", "tr", "tbody", "tfoot")),
    "thead": frozenset(("tbody", "tfoot")),
    "tbody": frozenset(("tbody", "tfoot")),
    "tfoot": frozenset(("tbody",)),
    "a": frozenset(("a", "table", "td", "th", "fieldset")),
    "b": frozenset(("p", "td", "th", "center")),
    "i": frozenset(("p", "td", "th", "center")),
    "u": frozenset(("p", "td", "th")),
    "s": frozenset(("p",)),
    "small": frozenset(("p",)),
    "big": frozenset(("p",)),
    "strike": frozenset(("p",)),
    "tt": frozenset(("p",)),
    "span": frozenset(("td", "th")),
    "head": frozenset(("body",)),
}
# A misnested end tag closes the elements above its own only when none of them ranks higher (libxml2's end-tag
# priorities): "</span>" inside an open <div> is ignored, "</td>" closes a <div> left open in the cell.
_PRIORITY = {"div": 150, "td": 160, "th": 160, "tr": 170, "thead": 180, "tbody": 180, "tfoot": 180, "table": 190,
             "head": 200, "body": 200, "html": 220}
_DEFAULT_PRIORITY = 100
_RANKS = sorted({_DEFAULT_PRIORITY, *_PRIORITY.values()})
# The end-tag priorities each ranking element blocks while it is open.
_OUTRANKS = {name: tuple(rank for rank in _RANKS if rank < own) for name, own in _PRIORITY.items()}
# html, head and body are opened once (a repeated tag only adds attributes), and </body> and </html> close
# nothing (text after them still goes into the body).
_ONCE = frozenset(("html", "head", "body"))
_NEVER_CLOSED = frozenset(("html", "body"))
# Removed inline tags leave nothing, so "<b>W</b>ord" stays one word; any other removed tag becomes a line
# break, so paragraphs do not run together (one <br> for a run of removed tags).
_INLINE = frozenset(("a", "abbr", "b", "bdi", "bdo", "big", "cite", "code", "data", "del", "dfn", "em", "embed",
                     "font", "i", "ins", "kbd", "label", "mark", "nobr", "q", "s", "samp", "small", "source",
                     "span", "strike", "strong", "sub", "sup", "time", "track", "tt", "u", "var", "wbr"))

_NAME = re.compile(r"[a-zA-Z][^\s/>]*")
# The rest of a start tag after its name, to its ">": a quoted attribute value may hold ">", and one left
# unterminated runs to the end of the document (no match: libxml2 reads no further tag either).
_TAG_REST = re.compile(r"""(?:[^>=]++|=\s*+(?:"[^"]*+"|'[^']*+'|(?!["'])))*+>""")
# The quick test: "" for a start tag (not one of the common void ones), "/" for an end tag, read in blocks of
# this many tags. It costs about 8 µs per 100 tags, the tag-by-tag read about 110 µs (a 113 kB page, CPU time).
_TAG_FLAG = re.compile(r"<(/?)(?!(?:br|img|meta|link|input|hr)[\s/>])[a-zA-Z]")
_GATE_BLOCK = 32


def flatten_nesting(html: str, *, limit: int = NESTING_LIMIT) -> Flattened | None:
    """Remove the tags of elements nested more than ``limit`` deep; None when there are none (``html`` is fine).

    Text, comments, void and raw-text elements (scripts, styles) are all kept, wherever they are; so are the
    elements ``limit`` levels deep or less, with their attributes. A removed tag becomes nothing when it is an
    inline one and a line break otherwise.

        >>> flatten_nesting("<div>" * 3 + "text" + "</div>" * 3, limit=2).html
        '<div><div><br>text<br></div></div>'
    """
    if not _may_nest_deeper(html, limit):
        return None
    return _flatten(html, limit)


def _may_nest_deeper(html: str, limit: int) -> bool:
    """False when no stretch of ``html`` can open more than ``limit`` elements: a bound from one regex pass.

    Every start tag but the common void ones may open an element and every end tag may close one. In blocks of
    tags, a stretch starting in block a and ending in block b opens at most the start tags of a, plus what the
    blocks between leave open (start tags minus end tags), plus the start tags of b. End tags that close nothing
    (stray, or inside a script or comment) make the bound too low: a page built that way to hide its depth is
    read by libxml2 as before this guard (the text after its limit is lost, nothing breaks).
    """
    flags = _TAG_FLAG.findall(html)
    if len(flags) <= limit:
        return False
    best = 0  # the most a stretch that started in an earlier block can have open when it enters this one
    for start in range(0, len(flags), _GATE_BLOCK):
        block = flags[start:start + _GATE_BLOCK]
        closing = block.count("/")
        opening = len(block) - closing
        if best + opening > limit:
            return True
        best = max(best + opening - closing, opening)
    return False


class _Output:
    """The page without the removed tags, built as they are found: a list of them took 370 MB for 5 MB of ``<b>``
    (the most the stage takes), this under 60 MB."""

    def __init__(self, html: str) -> None:
        self.html = html
        self.parts: list[str] = []
        self.kept_from = 0
        self.break_at = -1  # where the last line break put in for removed tags ended
        self.dropped = 0

    def drop(self, start: int, end: int, name: str) -> None:
        if start > self.kept_from:
            self.parts.append(self.html[self.kept_from:start])
        if self.break_at >= 0 and not self.html[self.break_at:start].strip():
            self.break_at = end  # only blanks and removed tags since that break: the run goes on
        elif name not in _INLINE:
            self.parts.append("<br>")
            self.break_at = end
        self.kept_from = end
        self.dropped += 1

    def text(self) -> str:
        return "".join([*self.parts, self.html[self.kept_from:]])


def _flatten(html: str, limit: int) -> Flattened | None:
    """Read the tags as libxml2 does and remove those of elements nested past ``limit``; None if there are none."""
    stack: list[str] = []
    # Where each open name is on the stack, and where the open elements that outrank each priority are: an end
    # tag is matched, or found misnested, without walking the stack (10,000 stray end tags stay linear).
    positions: defaultdict[str, array[int]] = defaultdict(lambda: array("l"))
    outranking: defaultdict[int, array[int]] = defaultdict(lambda: array("l"))
    opened_once: set[str] = set()
    out = _Output(html)
    depth = 0

    def pop() -> None:
        name = stack.pop()
        positions[name].pop()
        for level in _OUTRANKS.get(name, ()):
            outranking[level].pop()

    find = html.find
    pos = 0
    while (lt := find("<", pos)) >= 0:
        following = html[lt + 1:lt + 2]
        if following in ("!", "?"):
            # Comment (to "-->"; "<!-->" is an empty one), doctype, CDATA or processing instruction.
            comment = html.startswith("<!--", lt)
            close = find("-->", lt + 2) if comment else find(">", lt + 2)
            if close < 0:
                break
            pos = close + (3 if comment else 1)
            continue
        if following == "/":
            name_match = _NAME.match(html, lt + 2)
            close = find(">", lt + 2)
            if close < 0:
                break
            pos = close + 1
            if name_match is None:
                continue
            name = name_match.group().lower()
            open_at = positions.get(name)
            if name in _NEVER_CLOSED or not open_at:
                continue  # closes nothing: libxml2 ignores it, and so is it kept as it is
            at = open_at[-1]
            higher = outranking.get(_PRIORITY.get(name, _DEFAULT_PRIORITY))
            if higher and higher[-1] > at:
                continue  # misnested across a higher-ranking element: ignored
            while len(stack) > at:
                pop()
            if at >= limit:
                out.drop(lt, pos, name)
            continue
        name_match = _NAME.match(html, lt + 1)
        if name_match is None:
            pos = lt + 1  # "<" in text ("a < b")
            continue
        rest = _TAG_REST.match(html, name_match.end())
        if rest is None:
            break  # no end to this tag: the rest of the document is inside it
        pos = rest.end()
        name = sys.intern(name_match.group().lower())  # one copy of each name on the stack
        if name in _VOID or html[pos - 2] == "/":  # libxml2 honours <div/> as an empty element
            continue
        if name in _RAW:
            raw_end = _RAW_END[name].search(html, pos) if name != "plaintext" else None
            if raw_end is None:
                break
            pos = raw_end.start()  # its end tag is then read like any other, closing nothing (never pushed)
            continue
        if name in _ONCE:
            if name in opened_once:
                continue
            opened_once.add(name)
        while stack and name in _CLOSED_BY.get(stack[-1], ()):
            pop()
        at = len(stack)
        stack.append(name)
        positions[name].append(at)
        for level in _OUTRANKS.get(name, ()):
            outranking[level].append(at)
        depth = max(depth, at + 1)
        if at >= limit:
            out.drop(lt, pos, name)
    if not out.dropped:
        return None
    return Flattened(out.text(), depth, out.dropped)
