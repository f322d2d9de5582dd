"""Extraction quality gate: token precision/recall/F1 of clean_article's body against hand-marked article text.

The command line of testkit/quality/extraction.py (corpus, scores and the comparison with trafilatura alone are
described there; tests/quality/test_extraction_gate.py runs the same gate). It prints one line per page and the
newsflow / trafilatura-alone table per language. Floors live in ``bench/floors/extraction.json`` with a sha256
digest of the corpus:

    python bench/eval_extraction.py                       # gate: exit 1 below a floor (or corpus changed)
    python bench/eval_extraction.py --update              # pin the current scores as floors
    python bench/eval_extraction.py --update --allow-regression   # ... even if a floor goes down

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from testkit.quality.extraction import (  # noqa: E402
    NEWSFLOW,
    TRAFILATURA,
    check,
    check_against_baseline,
    compare,
    corpus_digest,
    evaluate,
    load_floors,
    update,
)


def _rounded(table: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, dict[str, float]]]:
    return {g: {s: {m: round(v, 4) for m, v in ms.items()} for s, ms in sy.items()} for g, sy in table.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help="pin the current scores as floors")
    parser.add_argument("--allow-regression", action="store_true", help="with --update: allow lowering a floor")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    scores, pages = evaluate()
    table = compare(pages)
    digest = corpus_digest()
    for page in pages:
        flag = f"  [{page.error}]" if page.error else ""
        alone = f"  trafilatura F1={page.baseline.f1:.3f}" if page.baseline else ""
        print(f"{page.name:<22} {page.language or '?':<3} P={page.precision:.3f} R={page.recall:.3f} "
              f"F1={page.f1:.3f}{alone}{flag}")
    print(f"{'group':<6} {'pages':>5}  {'newsflow P/R/F1':<22} trafilatura alone P/R/F1")
    for group, systems in table.items():
        ours, ref = systems[NEWSFLOW], systems.get(TRAFILATURA, {})
        print(f"{group:<6} {int(ours['pages']):>5}  {ours['precision']:.3f}/{ours['recall']:.3f}/{ours['f1']:.3f}"
              f"      {ref.get('precision', 0):.3f}/{ref.get('recall', 0):.3f}/{ref.get('f1', 0):.3f}")
    problems = update(scores, digest, allow_regression=args.allow_regression) if args.update else []
    problems += check(scores, load_floors(), digest) + check_against_baseline(table)
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    result = {
        "bench": "eval_extraction",
        "pages": len(pages),
        **{m: round(v, 4) for m, v in scores.items()},
        "floors": load_floors().get("floors"),
        "by_language": _rounded(table),
        "passed": not problems,
        "problems": problems,
        "corpus_sha256": digest,
        "took_s": round(time.perf_counter() - started, 3),
    }
    print(json.dumps(result, ensure_ascii=False))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
