"""pipeline.syndication: the outlet named in a syndication notice, never the article's own source."""

from __future__ import annotations

import pytest

from pipeline.syndication import syndicated_from


@pytest.mark.parametrize(
    ("text", "source", "expected"),
    [
        ("… This article was first published by Kommersant, and was translated and edited by the RT team.", "RT",
         "Kommersant"),
        ("This article was originally published on The Conversation. Read the original article.", None,
         "The Conversation"),
        ("Republished with permission from The New York Times.", None, "The New York Times"),
        ("This story was first published by the U.S. Naval Institute News.", None, "U.S. Naval Institute News"),
        ("The post NATO talks appeared first on Example News.", None, None),
        ("This article was first published by RT.", "RT", None),
    ],
)
def test_syndication_notice(text: str, source: str | None, expected: str | None) -> None:
    assert syndicated_from(text, source=source) == expected


FILLER = "The minister spoke for an hour about the budget and the harbour. " * 40


def test_notices_are_found_at_the_end_or_the_start_of_a_long_article_not_in_the_middle() -> None:
    assert syndicated_from(FILLER + "This article was first published by Kommersant.") == "Kommersant"
    assert syndicated_from("Reprinted with permission from the Financial Times. " + FILLER) == "Financial Times"
    quoted = FILLER + "The study was first published in Nature last year, she said. " + FILLER
    assert syndicated_from(quoted) is None
