"""Extraction quality gate: token precision/recall/F1 of clean_article's body against hand-marked article text.

The corpus is ``bench/corpus/extraction/NAME.html`` + ``NAME.expected.txt`` (the article text a reader
would mark: paragraphs, subheadings and list items; no title, standfirst, captions, teasers, promos or
comments). Scores are bag-of-words: tokens are case-folded ``\\w+`` runs, and a token counts as correct
as many times as it occurs in both texts. Micro averages sum over all pages; the per-page minimum
catches one layout breaking while the others hide it.

Floors live in ``bench/floors/extraction.json`` with a sha256 digest of the corpus:

    python bench/eval_extraction.py                       # gate: exit 1 below a floor (or corpus changed)
    python bench/eval_extraction.py --update              # pin the current scores as floors
    python bench/eval_extraction.py --update --allow-regression   # ... even if a floor goes down

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench import gate  # noqa: E402

CORPUS = ROOT / "bench" / "corpus" / "extraction"
FLOORS = ROOT / "bench" / "floors" / "extraction.json"
METRICS = ("precision", "recall", "f1", "min_page_f1")
# Floors are pinned this far below the measurement, rounded down: extraction is deterministic, but a
# trafilatura/lxml patch release may move a token or two, which is not a regression worth a red build.
SLACK = 0.005

_TOKEN = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class PageScore:
    name: str
    precision: float
    recall: float
    f1: float
    correct: int
    predicted: int
    expected: int
    error: str | None = None


def tokens(text: str) -> Counter[str]:
    return Counter(_TOKEN.findall(text.casefold()))


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def corpus_pages(corpus: Path = CORPUS) -> list[str]:
    return sorted(p.name.removesuffix(".html") for p in corpus.glob("*.html"))


def corpus_digest(corpus: Path = CORPUS) -> str:
    """sha256 over every page and its expected text, in name order: floors belong to one corpus."""
    digest = hashlib.sha256()
    for name in corpus_pages(corpus):
        for suffix in (".html", ".expected.txt"):
            path = corpus / f"{name}{suffix}"
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def extract_body(page_html: str, name: str) -> str:
    from pipeline.clean import clean_article
    from pipeline.schemas import RawItem

    item = RawItem(feed_url="https://corpus.invalid/feed", link=f"https://corpus.invalid/{name}", content=page_html)
    return clean_article(item, min_words=1).body


def score_page(name: str, corpus: Path = CORPUS) -> PageScore:
    from pipeline.errors import StageError

    html = (corpus / f"{name}.html").read_text(encoding="utf-8")
    expected = tokens((corpus / f"{name}.expected.txt").read_text(encoding="utf-8"))
    error = None
    try:
        got = tokens(extract_body(html, name))
    except StageError as exc:  # a discarded page scores zero recall, it does not stop the gate
        got, error = Counter(), f"{exc.kind}: {exc}"
    correct = sum((got & expected).values())
    predicted, wanted = sum(got.values()), sum(expected.values())
    precision = correct / predicted if predicted else 0.0
    recall = correct / wanted if wanted else 0.0
    return PageScore(name, precision, recall, _f1(precision, recall), correct, predicted, wanted, error)


def evaluate(corpus: Path = CORPUS) -> tuple[dict[str, float], list[PageScore]]:
    pages = [score_page(name, corpus) for name in corpus_pages(corpus)]
    correct = sum(p.correct for p in pages)
    predicted = sum(p.predicted for p in pages)
    expected = sum(p.expected for p in pages)
    precision = correct / predicted if predicted else 0.0
    recall = correct / expected if expected else 0.0
    scores = {
        "precision": precision,
        "recall": recall,
        "f1": _f1(precision, recall),
        "min_page_f1": min((p.f1 for p in pages), default=0.0),
    }
    return scores, pages


def load_floors(path: Path = FLOORS) -> dict[str, object]:
    return gate.load_floors(path)


def check(scores: dict[str, float], floors: dict[str, object], digest: str) -> list[str]:
    """Reasons the gate fails: a score below its floor, or floors pinned for another corpus."""
    return gate.check_floors(scores, floors, digest, METRICS)


def update(scores: dict[str, float], digest: str, *, allow_regression: bool, path: Path = FLOORS) -> list[str]:
    """Pin new floors; refuse to lower any floor unless ``allow_regression``. Returns the refusals."""
    return gate.pin_floors(scores, digest, METRICS, path, allow_regression=allow_regression, slack=SLACK, extra={
        "pages": len(corpus_pages()),
        "note": "token precision/recall of pipeline.clean bodies vs hand-marked text; see bench/eval_extraction.py",
    })


def run_gate(corpus: Path = CORPUS, floors_path: Path = FLOORS) -> tuple[dict[str, float], list[PageScore], list[str]]:
    """Score the corpus and check it against the pinned floors (what the test suite calls)."""
    scores, pages = evaluate(corpus)
    return scores, pages, check(scores, load_floors(floors_path), corpus_digest(corpus))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help="pin the current scores as floors")
    parser.add_argument("--allow-regression", action="store_true", help="with --update: allow lowering a floor")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    scores, pages = evaluate()
    digest = corpus_digest()
    for page in pages:
        flag = f"  [{page.error}]" if page.error else ""
        print(f"{page.name:<22} P={page.precision:.3f} R={page.recall:.3f} F1={page.f1:.3f}{flag}")
    problems = update(scores, digest, allow_regression=args.allow_regression) if args.update else []
    problems += check(scores, load_floors(), digest)
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    result = {
        "bench": "eval_extraction",
        "pages": len(pages),
        **{m: round(v, 4) for m, v in scores.items()},
        "floors": load_floors().get("floors"),
        "passed": not problems,
        "problems": problems,
        "corpus_sha256": digest,
        "took_s": round(time.perf_counter() - started, 3),
    }
    print(json.dumps(result))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
