"""Quality gates from bench/: CI fails when a measured quality drops below the floor pinned in bench/floors/."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _bench_module(name: str) -> ModuleType:
    # bench/ holds runnable scripts, not a package: load the gate by path.
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_extraction_gate() -> None:
    gate = _bench_module("eval_extraction")
    scores, pages, problems = gate.run_gate()
    assert len(pages) >= 20
    worst = sorted(pages, key=lambda page: page.f1)[:3]
    assert not problems, f"{problems}; scores={scores}; worst pages={[(p.name, round(p.f1, 3)) for p in worst]}"


def test_extraction_gate_refuses_to_lower_a_floor(tmp_path: Path) -> None:
    gate = _bench_module("eval_extraction")
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
