"""Local highlighting of alerts (pipeline.alerts.highlight), on hand-made term offsets."""

from __future__ import annotations

import re

from pipeline.alerts.highlight import FRAGMENT_CHARS, Offsets, fragments
from pipeline.alerts.query import highlight_texts


def _offsets(texts: dict[str, str]) -> Offsets:
    """What _mtermvectors gives for a lower-casing word analyzer: term -> [(start, end)] per field."""
    out: dict[str, dict[str, list[tuple[int, int]]]] = {}
    for field, text in texts.items():
        for m in re.finditer(r"\w+", text):
            out.setdefault(field, {}).setdefault(m.group().lower(), []).append((m.start(), m.end()))
    return Offsets.from_spans(out)


def test_the_rule_terms_are_marked_in_the_title_whole_and_in_one_body_fragment() -> None:
    filler = "The council met again to discuss the budget for the coming year and little else happened. " * 6
    texts = {"title": "NATO chief visits Kiev", "summary": "",
             "body": filler + "In Kiev, the NATO secretary general met officials. NATO said more. " + filler}
    out = fragments(texts, _offsets(texts), frozenset({"nato", "kiev"}), ())
    assert out["title"] == ["<em>NATO</em> chief visits <em>Kiev</em>"]
    [body] = out["body"]
    assert body.count("<em>") == 3 and "<em>Kiev</em>" in body and "<em>NATO</em> said" in body
    assert len(re.sub("</?em>", "", body)) <= FRAGMENT_CHARS
    assert body.startswith("In <em>Kiev</em>")  # the sentence holding the occurrences, not mid-word
    assert "summary" not in out


def test_prefixes_mark_the_terms_they_start_and_nothing_else_is_marked() -> None:
    texts = {"title": "Ukrainian and Ukraine talks", "summary": "Energy truce holds", "body": "Nothing here."}
    out = fragments(texts, _offsets(texts), frozenset(), ("ukr",))
    assert out == {"title": ["<em>Ukrainian</em> and <em>Ukraine</em> talks"]}


def test_highlight_texts_leave_negated_words_and_keyword_values_out() -> None:
    words, prefixes = highlight_texts('("energy truce" OR ukr*) AND NOT russia AND source:Reuters AND title:kiev')
    assert words == frozenset({"energy truce", "kiev"}) and prefixes == ("ukr",)


def test_offsets_are_read_from_elasticsearch_term_vectors_only_for_the_terms_asked() -> None:
    from pipeline.alerts.highlight import offsets_from_vectors

    vectors = {"title": {"terms": {"nato": {"term_freq": 1, "tokens": [{"start_offset": 0, "end_offset": 4}]},
                                   "kiev": {"term_freq": 1, "tokens": [{"start_offset": 18, "end_offset": 22}]}}},
               "entity_names.text": {"terms": {"nato": {"term_freq": 1}}}}  # not highlighted: ignored
    offsets = offsets_from_vectors(vectors)
    assert offsets.spans("title", "kiev") == [(18, 22)]
    assert offsets.spans("title", "nato") == [(0, 4)] and offsets.spans("body", "nato") == []
    assert set(offsets.terms("title")) == {"nato", "kiev"} and list(offsets.terms("body")) == []
    texts = {"title": "NATO chief visits Kiev", "body": "No term vectors for this body."}
    assert fragments(texts, offsets, frozenset({"kiev"}), ()) == {"title": ["NATO chief visits <em>Kiev</em>"]}


def test_prefix_lookups_find_every_term_starting_with_the_prefix_and_no_other() -> None:
    words = ["uk", "ukr", "ukraine", "ukrainian", "ukrz", "ula", "tukr", "aukr", "ukq", "ukrainians"]
    offsets = Offsets.from_spans({"body": {w: [(n, n + 1)] for n, w in enumerate(words)}})
    assert offsets.starting_with("body", "ukr") == ["ukr", "ukraine", "ukrainian", "ukrainians", "ukrz"]
    assert offsets.starting_with("body", "zz") == [] and offsets.starting_with("title", "ukr") == []
    assert offsets.starting_with("body", "") == sorted(words)
