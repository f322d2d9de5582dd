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

from bisect import bisect_left
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["FIELDS", "FRAGMENT_CHARS", "Offsets", "fragments", "offsets_from_vectors"]

FIELDS = ("title", "summary", "body")
FRAGMENT_CHARS = 180  # as the search highlighter's fragment_size (pipeline.search.build_search)


class Offsets:
    """An article's term offsets in each highlighted field, read from its term vectors when a term is looked up.

    A rule marks a few of an article's terms; converting every token of a long body up front cost two thirds of
    highlighting under a broad rule set (py-spy), for spans no rule asked for.
    """

    def __init__(self, terms: Mapping[str, Mapping[str, Any]]) -> None:
        self._terms = terms  # field -> term -> {"tokens": [{"start_offset": s, "end_offset": e}, ...], ...}
        self._spans: dict[tuple[str, str], list[tuple[int, int]]] = {}
        self._keys: dict[str, frozenset[str]] = {}
        self._sorted: dict[str, list[str]] = {}

    @classmethod
    def from_spans(cls, spans: Mapping[str, Mapping[str, Sequence[tuple[int, int]]]]) -> Offsets:
        """From field -> term -> [(start, end)] (hand-made offsets)."""
        return cls({field: {term: {"tokens": [{"start_offset": s, "end_offset": e} for s, e in found]}
                            for term, found in terms.items()} for field, terms in spans.items()})

    def spans(self, field: str, term: str) -> list[tuple[int, int]]:
        """Where ``term`` occurs in ``field``'s text, as (start, end) character offsets."""
        key = (field, term)
        found = self._spans.get(key)
        if found is None:
            info = self._terms.get(field, {}).get(term)
            found = self._spans[key] = [(t["start_offset"], t["end_offset"]) for t in info.get("tokens", ())] \
                if info else []
        return found

    def terms(self, field: str) -> frozenset[str]:
        """The field's terms (made once per field: every alert of the article asks)."""
        keys = self._keys.get(field)
        if keys is None:
            keys = self._keys[field] = frozenset(self._terms.get(field, {}))
        return keys

    def starting_with(self, field: str, prefix: str) -> list[str]:
        """The field's terms that start with ``prefix`` (a binary search in the terms, sorted once per field)."""
        ordered = self._sorted.get(field)
        if ordered is None:
            ordered = self._sorted[field] = sorted(self.terms(field))
        out = []
        for term in ordered[bisect_left(ordered, prefix):]:
            if not term.startswith(prefix):
                break
            out.append(term)
        return out


def offsets_from_vectors(vectors: dict[str, Any]) -> Offsets:
    """An article's :class:`Offsets`, from its ``term_vectors`` (as ``_mtermvectors`` gives them with ``offsets``)."""
    return Offsets({field: vectors[field].get("terms", {}) for field in FIELDS if field in vectors})


def fragments(texts: dict[str, str], offsets: Offsets, terms: frozenset[str], prefixes: tuple[str, ...],
              tags: tuple[str, str] = ("<em>", "</em>")) -> dict[str, list[str]]:
    """field -> [fragment] for the fields where ``terms`` (or a term starting with one of ``prefixes``) occur."""
    out: dict[str, list[str]] = {}
    for field in FIELDS:
        text = texts.get(field) or ""
        if not text:
            continue
        present = terms & offsets.terms(field)  # in C: a rule has a few terms, a body hundreds
        if prefixes:
            present |= {term for prefix in prefixes for term in offsets.starting_with(field, prefix)}
        spans = [span for term in present for span in offsets.spans(field, term)]
        if not spans:
            continue
        spans.sort()
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
