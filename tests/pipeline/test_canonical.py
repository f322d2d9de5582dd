"""pipeline.canonical: one canonical URL per article; text fingerprints that ignore spacing, case, punctuation."""

from __future__ import annotations

import pytest

from pipeline.canonical import canonical_url, normalise_text, stable_id, text_fingerprint


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        # mobile host, AMP path, tracking parameter and fragment go; the other parameters stay
        ("https://M.Example.com/news/story/amp/?utm_source=x&id=7#top", "https://example.com/news/story?id=7"),
        # http is https, default port, doubled slashes, trailing slash; parameters sorted, click ids dropped
        ("http://www.example.com:80/a//b/?b=2&a=1&fbclid=z", "https://example.com/a/b?a=1&b=2"),
        # a port that is not the default stays; ".amp" before the extension goes
        ("https://example.com:8443/x.amp.html", "https://example.com:8443/x.html"),
        ("https://amp.bbc.co.uk/news/amp/123", "https://bbc.co.uk/news/123"),
        ("https://www.example.com", "https://example.com/"),
    ],
)
def test_copies_of_one_url_have_one_canonical_form(url: str, canonical: str) -> None:
    assert canonical_url(url) == canonical


@pytest.mark.parametrize("url", [None, "", "not a url", "ftp://example.com/x", "https://example.com:99999/"])
def test_what_is_not_an_http_url_has_no_canonical_form(url: str | None) -> None:
    assert canonical_url(url) is None


def test_text_fingerprint_ignores_spacing_case_punctuation_and_width() -> None:
    assert normalise_text("  Ｈｅｌｌｏ,   WORLD!  Straße ") == "hello world strasse"
    assert text_fingerprint("Hello, world!") == text_fingerprint("hello   WORLD")
    assert text_fingerprint("Hello, world!") != text_fingerprint("Hello, word!")
    assert len(text_fingerprint("x")) == 32


def test_stable_id_is_short_and_deterministic() -> None:
    assert stable_id("https://example.com/a") == stable_id("https://example.com/a")
    assert stable_id("https://example.com/a") != stable_id("https://example.com/b")
    assert len(stable_id("x")) == 24
