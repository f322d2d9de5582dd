"""Quality-gate floors (and the F1 score) shared by the extraction and entity gates (in the spirit of trafilatura's
eval_gate).

Floors are pinned in a JSON file together with a digest of the corpus they were measured on. A run fails when a
score drops below its floor or the corpus changed since pinning; ``--update`` raises floors freely but lowers one
only with ``--allow-regression``, so noise never erodes them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["check_floors", "f1", "load_floors", "pin_floors"]


def f1(precision: float, recall: float) -> float:
    """The harmonic mean of precision and recall; 0 when both are 0."""
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def load_floors(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def check_floors(scores: dict[str, float], floors: dict[str, Any], digest: str, metrics: Sequence[str], *,
                 changed: str = "the corpus changed since the floors were pinned") -> list[str]:
    """Reasons the gate fails: no floors, floors pinned for another corpus, or a score below its floor."""
    if not floors:
        return ["no floors pinned: run with --update"]
    problems = []
    if floors.get("corpus_sha256") != digest:
        problems.append(f"{changed}: re-pin with --update")
    pinned = floors.get("floors", {})
    for metric in metrics:
        floor = pinned.get(metric)
        if floor is not None and scores[metric] < float(floor):
            problems.append(f"{metric} {scores[metric]:.4f} < floor {float(floor):.4f}")
    return problems


def pin_floors(scores: dict[str, float], digest: str, metrics: Sequence[str], path: Path, *,
               allow_regression: bool, slack: float, extra: dict[str, Any] | None = None) -> list[str]:
    """Pin floors ``slack`` below the scores; refuse to lower one unless ``allow_regression``. Returns refusals."""
    old = load_floors(path).get("floors", {})
    proposed = {m: max(0.0, int((scores[m] - slack) * 1000) / 1000) for m in metrics}
    lowered = [f"{m} {old[m]} -> {proposed[m]}" for m in metrics if m in old and proposed[m] < float(old[m])]
    if lowered and not allow_regression:
        return [f"refusing to lower floors ({'; '.join(lowered)}): pass --allow-regression"]
    if not allow_regression:
        proposed = {m: max(proposed[m], float(old.get(m, 0.0))) for m in metrics}
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"corpus_sha256": digest, "floors": proposed,
               "measured": {m: round(scores[m], 4) for m in metrics}, **(extra or {})}
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return []
