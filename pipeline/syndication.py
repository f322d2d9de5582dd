"""Find the outlet a syndicated article came from, in notices like "first published by Kommersant"."""

from __future__ import annotations

import re

__all__ = ["syndicated_from"]

# An outlet name: capitalised words, with "of/the/and/&/de" allowed only between two of them, so
# "Kommersant, and was translated" stops at "Kommersant" and "The New York Times" stays whole.
# A word may hold inner dots ("Yahoo.com", "U.S.") but a sentence-ending dot ends the name.
_CAP = r"(?:(?:[A-Z]\.){2,}|[A-Z0-9][\w&'’\-]*(?:\.[\w&'’\-]+)*)"
_NAME = rf"(?P<name>{_CAP}(?:\s+(?:(?:of|the|de|for|and|&|on)\s+)?{_CAP}){{0,6}})"
_NOTICES = [
    re.compile(rf"\b(?:first|originally)\s+(?:published|appeared|ran)\s+(?:by|in|on|at|with)\s+(?:the\s+)?{_NAME}"),
    re.compile(rf"\b(?:was|is)\s+(?:re)?published\s+(?:here\s+)?(?:with\s+permission\s+)?from\s+(?:the\s+)?{_NAME}"),
    re.compile(rf"\b(?:[Rr]epublished|[Rr]eprinted|[Rr]eproduced)\s+(?:here\s+)?(?:with\s+(?:kind\s+)?permission\s+)?"
               rf"(?:from|by|of)\s+(?:the\s+)?{_NAME}"),
    re.compile(rf"\b(?:[Tt]his|[Tt]he)\s+(?:article|story|piece|report)\s+(?:was\s+)?(?:produced|written)\s+by\s+"
               rf"(?:the\s+)?{_NAME}"),
]
# Notices sit at the end (usually) or the start of an article; scanning only there keeps a quote in the
# middle of the text ("...first published in the journal Nature...") from being taken for a notice.
_TAIL_CHARS = 1500
_HEAD_CHARS = 400


def syndicated_from(body: str, *, source: str | None = None) -> str | None:
    """The outlet named in a syndication notice in ``body``, or None. The article's own ``source`` is not one.

    >>> syndicated_from("... This article was first published by Kommersant, and was translated by the RT team.")
    'Kommersant'
    """
    regions = [body[-_TAIL_CHARS:], body[:_HEAD_CHARS]] if len(body) > _TAIL_CHARS else [body]
    for region in regions:
        for pattern in _NOTICES:
            for match in pattern.finditer(region):
                name = match.group("name").rstrip(".’'-").strip()
                if name and (not source or name.casefold() != source.casefold()):
                    return name
    return None
