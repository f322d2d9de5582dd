"""Entity quality gate: precision/recall/F1 of the enrich stage's entities against hand-annotated articles.

The command line of testkit/quality/entities.py (corpus, metrics and the raw spaCy baseline are described there;
tests/quality/test_entity_gate.py runs the same gate). It prints one line per article. Floors live in
``bench/floors/entities.json`` with a sha256 digest of the corpus and variants file:

    python bench/eval_entities.py                       # gate: exit 1 below a floor (or corpus changed)
    python bench/eval_entities.py --update              # pin the current scores as floors
    python bench/eval_entities.py --update --allow-regression   # ... even if a floor goes down
    python bench/eval_entities.py --ner-max-words 0     # another budget (0: full text): only gated against raw spaCy

The stage runs with the worker's default ``pipeline.ner_max_words`` (the settings model's); the floors belong to
that default configuration.

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from testkit.quality.entities import (  # noqa: E402
    check,
    corpus_digest,
    default_ner_max_words,
    load_floors,
    run,
    update,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help="pin the current scores as floors")
    parser.add_argument("--allow-regression", action="store_true", help="with --update: allow lowering a floor")
    default_budget = default_ner_max_words()
    parser.add_argument("--ner-max-words", type=int, default=default_budget,
                        help=f"NER budget (default {default_budget}, the worker's; another one is gated against raw "
                             "spaCy only, 0: full text)")
    parser.add_argument("--verbose", "-v", action="store_true", help="list missed and extra entities per article")
    args = parser.parse_args(argv)

    result = run(ner_max_words=args.ner_max_words)
    scores, baseline = result["scores"], result["baseline_raw_spacy"]
    for doc in result["docs"]:
        print(f"{doc.name:24s} P={doc.precision:.3f} R={doc.recall:.3f} F1={doc.f1:.3f}")
        if args.verbose:
            print(f"    missed: {doc.missed}\n    extra:  {doc.extra}")
    digest = corpus_digest()
    problems: list[str] = []
    if args.ner_max_words != default_budget:
        # Not the worker's configuration: no floors (they are pinned for the default), only the raw spaCy comparison.
        if args.update:
            parser.error("--update pins floors for the default --ner-max-words only")
        problems = check(scores, baseline, {}, digest)[:-1]
    elif args.update:
        problems = update(scores, digest, allow_regression=args.allow_regression)
    else:
        problems = check(scores, baseline, load_floors(), digest)
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    print(json.dumps({
        "gate": "entities", "ok": not problems, "docs": len(result["docs"]), "ner_max_words": args.ner_max_words,
        "scores": {k: round(v, 4) for k, v in scores.items()},
        "raw_spacy_small_full_text": {k: round(v, 4) for k, v in baseline.items()},
        "floors": load_floors().get("floors"), "problems": problems, "took_s": round(result["took_s"], 2),
    }))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
