"""An alert's highlighted fragments, made locally from the article's terms and their offsets.

Elasticsearch analyses the article (the ``_mtermvectors`` request the matcher makes anyway, with offsets, on the
just-indexed text: the index's own analyzer), and each rule names the terms it looks for
(:func:`pipeline.alerts.query.highlight_texts`: the words and phrases it does not negate, and its wildcards'
prefixes, analysed the same way). The fragments mark every
occurrence of those terms: the whole title, and one fragment of about ``FRAGMENT_CHARS`` characters of the summary
and of the body, the window with the most occurrences. This is what ``newsflow search`` shows for the same query
(its highlighter marks each matching term, not phrases as a whole), without one highlighting search per rule:
with broad rules a batch brings thousands of alerts, and highlighting them in Elasticsearch cost several times
more than matching them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FIELDS", "FRAGMENT_CHARS", "Offsets", "fragments", "offsets_from_vectors"]

FIELDS = ("title", "summary", "body")
FRAGMENT_CHARS = 180  # as the search highlighter's fragment_size (pipeline.search.build_search)

Offsets = dict[str, dict[str, list[tuple[int, int]]]]  # field -> term -> [(start, end)] in the field's text


def offsets_from_vectors(vectors: dict[str, Any]) -> Offsets:
    """An article's terms with their character offsets per highlighted field, from its ``term_vectors`` (as
    ``_mtermvectors`` gives them with ``offsets``)."""
    return {field: {term: [(t["start_offset"], t["end_offset"]) for t in info.get("tokens", ())]
                    for term, info in vectors[field].get("terms", {}).items()}
            for field in FIELDS if field in vectors}


def fragments(texts: dict[str, str], offsets: Offsets, terms: frozenset[str], prefixes: tuple[str, ...],
              tags: tuple[str, str] = ("<em>", "</em>")) -> dict[str, list[str]]:
    """field -> [fragment] for the fields where ``terms`` (or a term starting with one of ``prefixes``) occur."""
    out: dict[str, list[str]] = {}
    for field in FIELDS:
        text = texts.get(field) or ""
        known = offsets.get(field, {})
        spans = [span for term in terms for span in known.get(term, ())]
        if prefixes:
            spans += [span for term, found in known.items() if term.startswith(prefixes) and term not in terms
                      for span in found]
        spans.sort()
        if not text or not spans:
            continue
        if field == "title":
            out[field] = [_mark(text, spans, 0, len(text), tags)]
            continue
        start, end = _window(text, spans)
        out[field] = [_mark(text, spans, start, end, tags)]
    return out


def _window(text: str, spans: list[tuple[int, int]]) -> tuple[int, int]:
    """The fragment around the most occurrences within FRAGMENT_CHARS, on word boundaries."""
    best, best_count, last = 0, 0, 0
    for first in range(len(spans)):  # two pointers: spans[first:last] fit in FRAGMENT_CHARS from spans[first]
        last = max(last, first)
        while last < len(spans) and spans[last][1] <= spans[first][0] + FRAGMENT_CHARS:
            last += 1
        if last - first > best_count:
            best, best_count = first, last - first
    begin, finish = spans[best][0], spans[best][1]
    # Start a little before the first occurrence (at a sentence start when one is near), end at a word boundary.
    start = max(0, begin - FRAGMENT_CHARS // 4)
    sentence = text.rfind(". ", start, begin)
    start = sentence + 2 if sentence != -1 else (text.rfind(" ", 0, start) + 1 if start else 0)
    end = min(len(text), start + FRAGMENT_CHARS)
    if end < len(text):
        end = max(text.rfind(" ", start, end), finish)
    return start, end


def _mark(text: str, spans: list[tuple[int, int]], start: int, end: int, tags: tuple[str, str]) -> str:
    parts: list[str] = []
    at = start
    for s, e in spans:
        if s < at or e > end:
            continue  # outside the fragment (or overlapping one already marked)
        parts += [text[at:s], tags[0], text[s:e], tags[1]]
        at = e
    parts.append(text[at:end])
    return "".join(parts).strip()
