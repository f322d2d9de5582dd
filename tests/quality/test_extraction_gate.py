"""The extraction quality gate: CI fails when a measured quality drops below the floor pinned in bench/floors/.

The gate is testkit/quality/extraction.py (its command line: bench/eval_extraction.py).
"""

from __future__ import annotations

from pathlib import Path

from testkit.quality import extraction as gate


def test_extraction_gate() -> None:
    # Floors, and never below trafilatura alone on the corpus or on any language group (issue 11).
    scores, pages, problems, table = gate.run_gate()
    assert len(pages) >= 80
    languages = set(table) - {"all"}
    assert {"en", "ja", "zh", "ko", "ru", "ar", "hi", "es", "pt", "de", "fr"} <= languages
    assert all(gate.TRAFILATURA in systems for systems in table.values())  # every group is compared
    worst = sorted(pages, key=lambda page: page.f1)[:3]
    assert not problems, f"{problems}; scores={scores}; worst pages={[(p.name, round(p.f1, 3)) for p in worst]}"


def test_extraction_gate_fails_below_trafilatura_alone() -> None:
    ours = {"precision": 0.99, "recall": 0.9, "f1": 0.943, "min_page_f1": 0.5, "pages": 3}
    ref = {"precision": 0.95, "recall": 0.99, "f1": 0.9696, "min_page_f1": 0.9}
    table = {"all": {gate.NEWSFLOW: ours, gate.TRAFILATURA: ref}, "ja": {gate.NEWSFLOW: ref, gate.TRAFILATURA: ref},
             "undeclared": {gate.NEWSFLOW: ours}}
    problems = gate.check_against_baseline(table)
    assert problems[0] == "all: newsflow F1 0.9430 < trafilatura alone 0.9696"
    assert problems[1].startswith("3 page(s) declare no <html lang>")
    assert len(problems) == 2  # equal is not worse


def test_extraction_gate_refuses_to_lower_a_floor(tmp_path: Path) -> None:
    floors = tmp_path / "extraction.json"
    perfect = {"precision": 1.0, "recall": 1.0, "f1": 1.0, "min_page_f1": 1.0}
    assert gate.update(perfect, "digest", allow_regression=False, path=floors) == []
    worse = {"precision": 0.5, "recall": 1.0, "f1": 0.6, "min_page_f1": 0.1}
    refused = gate.update(worse, "digest", allow_regression=False, path=floors)
    assert refused and "refusing to lower" in refused[0]
    assert gate.load_floors(floors)["floors"]["precision"] == 0.995  # untouched
    assert gate.check(worse, gate.load_floors(floors), "digest")  # and the gate fails on the worse scores
    assert gate.update(worse, "digest", allow_regression=True, path=floors) == []
    assert gate.load_floors(floors)["floors"]["precision"] == 0.495
    assert gate.check(worse, gate.load_floors(floors), "other-digest") == [
        "the corpus changed since the floors were pinned: re-pin with --update"
    ]
