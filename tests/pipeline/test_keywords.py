"""Keyphrases from plain text (no tagger): phrase boundaries, plural folding, exclusions and ranking."""

from __future__ import annotations

from pipeline.keywords import extract_keywords

TEXT = (
    "Ministers discussed security guarantees for Ukraine on Monday. The security guarantee would cover "
    "air defence systems and ammunition supplies. Officials said air defence systems were the priority, "
    "and ammunition supplies must grow quickly. NATO said the security guarantees need approval."
)


def test_multiword_phrases_rank_first_and_plurals_fold():
    got = extract_keywords(TEXT, limit=3)
    # Three mentions, singular and plural counted together, shown in the most frequent form.
    assert got == ["security guarantees", "air defence systems", "ammunition supplies"]
    assert all(k == k.lower() for k in got)


def test_names_numbers_stop_words_and_reporting_verbs_are_boundaries():
    got = extract_keywords(TEXT, limit=20)
    boundaries = ("ukraine", "nato", "said", "the", "monday", "quickly", "discussed", "grow", "cover")
    assert not any(w in k.split() for k in got for w in boundaries)
    assert extract_keywords("Oil prices rose 12 percent in 2025, officials said.", limit=5) == ["prices"]


def test_excluded_names_and_limit():
    assert "security guarantees" not in extract_keywords(TEXT, exclude=["Security Guarantees"])
    assert len(extract_keywords(TEXT, limit=2)) == 2
    assert extract_keywords("", limit=5) == []
    # A lone word already inside a chosen phrase is not repeated.
    got = extract_keywords(TEXT, limit=20)
    assert "supplies" not in got and "defence" not in got


def test_generic_words_and_participles_are_trimmed():
    got = extract_keywords("The new funding rules. Funding rules approved. The number of people grew.", limit=5)
    # "new" (generic) is trimmed, "Funding" (capitalised) and "approved" ("-ed") are boundaries.
    assert got == ["funding rules"]
    assert extract_keywords("A speed limit and a need for speed limits.", limit=2) == ["speed limit"]
