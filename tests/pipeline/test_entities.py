"""Entity normalisation (pipeline.entities) without a model: mentions in, entities out."""

from __future__ import annotations

import re

import pytest

from pipeline.entities import (
    Mention,
    Variants,
    _occurrences,
    clean_name,
    entity_names,
    load_variants,
    normalise_entities,
)
from pipeline.errors import SettingsError


@pytest.fixture(scope="module")
def variants() -> Variants:
    return load_variants()


@pytest.mark.parametrize(
    ("text", "label", "expected"),
    [
        ("Rutte’s", "PERSON", "Rutte"),
        ("the Verkhovna Rada", "ORG", "Verkhovna Rada"),
        ("The Russian Defense Ministry", "ORG", "Russian Defense Ministry"),
        ("President Donald Trump", "PERSON", "Donald Trump"),
        ("Mark Rutte's Kiev", "PERSON", "Mark Rutte"),
        ("Mykolaiv Governor", "PERSON", None),
        ("Mykolaiv Governor Vitaly Kim", "PERSON", "Vitaly Kim"),
        ("“NATO”", "ORG", "NATO"),
        ("U.S.", "GPE", "U.S."),
        ("Ukraine.", "GPE", "Ukraine"),
        ("X", "ORG", None),
        ("2026", "ORG", None),
        ("yesterday's", "ORG", None),
        ("Tuesday", "PERSON", None),
        ("Ukrainians’", "NORP", "Ukrainians"),
    ],
    ids=lambda v: str(v),
)
def test_clean_name(text, label, expected):
    assert clean_name(text, label) == expected


def test_short_mentions_resolve_to_the_full_name(variants):
    mentions = [Mention("Mark Rutte", "PERSON"), Mention("Rutte", "PERSON"), Mention("Rutte’s", "PERSON"),
                Mention("Kremlin spokesman Dmitry Peskov", "PERSON"), Mention("Peskov", "PERSON"),
                Mention("Vitaly Kim", "PERSON"), Mention("Kim", "ORG")]
    got = {e.name: (e.label, e.count) for e in normalise_entities(mentions, variants=variants)}
    assert got["Mark Rutte"] == ("PERSON", 3)
    assert "Rutte" not in got and "Kim" not in got and "Peskov" not in got
    assert got["Vitaly Kim"] == ("PERSON", 2)
    assert got["Dmitry Peskov"] == ("PERSON", 2)


def test_ambiguous_short_mention_stays(variants):
    mentions = [Mention("Kim Jong Un", "PERSON"), Mention("Vitaly Kim", "PERSON"), Mention("Andrei Kim", "PERSON"),
                Mention("Kim", "PERSON")]
    names = {e.name for e in normalise_entities(mentions, variants=variants)}
    assert "Kim" in names


def test_variants_merge_and_majority_label(variants):
    mentions = [Mention("Kiev", "PERSON"), Mention("Kyiv", "GPE"), Mention("Kiev", "PERSON"), Mention("Kiev", "ORG"),
                Mention("Ukrainian", "GPE"), Mention("Ukrainian", "NORP"), Mention("Ukrainian", "NORP")]
    got = {e.name: (e.label, e.count) for e in normalise_entities(mentions, variants=variants)}
    assert got["Kiev"] == ("GPE", 4)  # gazetteer beats the PERSON majority
    assert got["Ukrainian"] == ("NORP", 3)  # majority vote
    assert "Kyiv" not in got


def test_entity_names_list_every_variant(variants):
    entities = normalise_entities([Mention("Kyiv", "GPE"), Mention("U.S.", "GPE")], variants=variants)
    names = entity_names(entities, variants)
    assert {"Kiev", "Kyiv", "United States", "US", "U.S."} <= set(names)
    assert [e.name for e in entities] == ["Kiev", "United States"]


def test_uninteresting_labels_are_dropped(variants):
    mentions = [Mention("Tuesday", "DATE"), Mention("90%", "PERCENT"), Mention("24 hours", "TIME"),
                Mention("$5 billion", "MONEY"), Mention("first", "ORDINAL"), Mention("NATO", "ORG")]
    assert [e.name for e in normalise_entities(mentions, variants=variants)] == ["NATO"]


def test_counts_include_untagged_repeats(variants):
    text = "Donald Trump spoke. Later Trump said more. Trump's aides agreed."
    entities = normalise_entities([Mention("Donald Trump", "PERSON")], variants=variants, text=text)
    assert entities[0].count == 3


def test_operator_can_reorder_a_group(tmp_path):
    path = tmp_path / "variants.yaml"
    path.write_text("groups:\n  - [Kyiv, Kiev]\nlabels:\n  Kiev: GPE\n", encoding="utf-8")
    variants = load_variants(path)
    got = normalise_entities([Mention("Kiev", "PERSON")], variants=variants)
    assert [(e.name, e.label) for e in got] == [("Kyiv", "GPE")]


@pytest.mark.parametrize(
    "content", ["groups: [[]]\n", "labels:\n  Kiev: CITY\n", "- just a list\n", "groups: [[Kiev, 3]]\n"],
)
def test_bad_variants_file_names_the_problem(tmp_path, content):
    path = tmp_path / "bad.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SettingsError, match=r"bad\.yaml"):
        load_variants(path)


def test_missing_named_variants_file(tmp_path):
    with pytest.raises(SettingsError, match="not found"):
        load_variants(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("text", "forms", "expected"),
    [
        ("Mark Rutte met Rutte's aides; Rutte left.", {"Mark Rutte", "Rutte"}, 3),
        ("xMark Rutte spoke", {"Mark Rutte", "Rutte"}, 1),  # refused at "x", found again at "Rutte"
        ("éRutte, Rutte_, Rutte2, 2Rutte, Rutte", {"Rutte"}, 1),
        ("New York Times and New York", {"New York", "New York Times"}, 2),
        ("NATONATO NATO-led NATO.", {"NATO"}, 2),
        ("U.S. and U.S.A. and US", {"U.S.", "U.S.A.", "US"}, 3),
        ("nothing here", {"Rutte"}, 0),
        ("Rutte", set(), 0),
    ],
    ids=["long-form-first", "lookbehind-resumes", "word-characters", "overlapping-entities", "hyphen-and-stop",
         "dotted", "absent", "no-forms"],
)
def test_occurrences_match_the_lookbehind_regex(text, forms, expected):
    reference = sorted(forms, key=len, reverse=True)
    pattern = r"(?<!\w)(?:" + "|".join(re.escape(f) for f in reference) + r")(?!\w)"
    assert _occurrences(text, forms) == expected
    assert expected == (len(re.findall(pattern, text)) if forms else 0)
