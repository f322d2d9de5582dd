"""Extraction quality gate: token precision/recall/F1 of clean_article's body against hand-marked article text.

The corpus is ``bench/corpus/extraction/NAME.html`` + ``NAME.expected.txt`` (the article text a reader
would mark: paragraphs, subheadings and list items; no title, standfirst, captions, teasers, promos or
comments). Scores are bag-of-words over ``pipeline.wordcount.tokens``, and a token counts as correct
as many times as it occurs in both texts. Micro averages sum over all pages; the per-page minimum
catches one layout breaking while the others hide it.

Floors live in ``bench/floors/extraction.json`` with a sha256 digest of the corpus (pinned with
``python bench/eval_extraction.py --update``, the command line of this gate).

Side by side, the same pages go through trafilatura alone (the version newsflow pins, ``favor_precision``, full
mode, no comments, its defaults otherwise) from the same input string, and both outputs are scored with the same
tokens (``pipeline.wordcount.tokens``: NFC, case-folded, one token per CJK/Thai character). Pages are grouped by
the language their ``<html lang>`` declares; the gate also fails when newsflow's F1 is below trafilatura's on the
whole corpus or on any language group: the clean stage must never be worse than the extractor it wraps.

:func:`run_gate` is what tests/quality/test_extraction_gate.py calls.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from testkit.quality import gate

ROOT = Path(__file__).resolve().parents[2]

CORPUS = ROOT / "bench" / "corpus" / "extraction"
FLOORS = ROOT / "bench" / "floors" / "extraction.json"
METRICS = ("precision", "recall", "f1", "min_page_f1")
# Floors are pinned this far below the measurement, rounded down: extraction is deterministic, but a
# trafilatura/lxml patch release may move a token or two, which is not a regression worth a red build.
SLACK = 0.005

_LANG = re.compile(r"<html\b[^>]*?\blang=[\"']?([A-Za-z]{2,3})", re.IGNORECASE)
NEWSFLOW, TRAFILATURA = "newsflow", "trafilatura"


def tokens(text: str) -> Counter[str]:
    from pipeline.wordcount import tokens as units

    return Counter(units(text))


def page_language(page_html: str) -> str | None:
    """The primary language subtag the page declares on ``<html lang>`` ("pt" for "pt-BR")."""
    found = _LANG.search(page_html[:4000])
    return found.group(1).lower() if found else None


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
    language: str | None = None
    # The same page through trafilatura alone (None when not scored).
    baseline: PageScore | None = None


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


def trafilatura_alone(page_html: str, name: str) -> str:
    """What calling the extractor directly gives: the reference newsflow must not fall below."""
    import trafilatura

    text = trafilatura.extract(
        page_html, url=f"https://corpus.invalid/{name}", fast=False, favor_precision=True, include_comments=False
    )
    return text or ""


def _score(name: str, got: Counter[str], expected: Counter[str], error: str | None, language: str | None) -> PageScore:
    correct = sum((got & expected).values())
    predicted, wanted = sum(got.values()), sum(expected.values())
    if not wanted:
        # A page without an article (a section front): right only when nothing is taken from it.
        precision = recall = 0.0 if predicted else 1.0
    else:
        precision = correct / predicted if predicted else 0.0
        recall = correct / wanted
    return PageScore(name, precision, recall, gate.f1(precision, recall), correct, predicted, wanted, error, language)


def score_page(name: str, corpus: Path = CORPUS, *, baseline: bool = True) -> PageScore:
    from dataclasses import replace

    from pipeline.errors import StageError

    html = (corpus / f"{name}.html").read_text(encoding="utf-8")
    expected = tokens((corpus / f"{name}.expected.txt").read_text(encoding="utf-8"))
    language = page_language(html)
    error = None
    try:
        got = tokens(extract_body(html, name))
    except StageError as exc:  # a discarded page scores zero recall, it does not stop the gate
        got, error = Counter(), f"{exc.kind}: {exc}"
    score = _score(name, got, expected, error, language)
    if baseline:
        reference = _score(name, tokens(trafilatura_alone(html, name)), expected, None, language)
        score = replace(score, baseline=reference)
    return score


def _micro(pages: list[PageScore]) -> dict[str, float]:
    correct = sum(p.correct for p in pages)
    predicted = sum(p.predicted for p in pages)
    expected = sum(p.expected for p in pages)
    precision = correct / predicted if predicted else 0.0
    recall = correct / expected if expected else 0.0
    # Micro precision counts every token taken from an article-less page as wrong; such a page adds no recall.
    return {
        "precision": precision,
        "recall": recall,
        "f1": gate.f1(precision, recall),
        "min_page_f1": min((p.f1 for p in pages), default=0.0),
    }


def compare(pages: list[PageScore]) -> dict[str, dict[str, dict[str, float]]]:
    """Micro scores of newsflow and of trafilatura alone, for the whole corpus ("all") and each language."""
    groups: dict[str, list[PageScore]] = {"all": pages}
    for page in pages:
        groups.setdefault(page.language or "undeclared", []).append(page)
    table = {}
    for group, members in groups.items():
        refs = [p.baseline for p in members if p.baseline is not None]
        table[group] = {NEWSFLOW: _micro(members), **({TRAFILATURA: _micro(refs)} if refs else {})}
        table[group][NEWSFLOW]["pages"] = len(members)
    return table


def check_against_baseline(table: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """Reasons the gate fails: newsflow's F1 below trafilatura alone's, on the corpus or on a language group."""
    problems = []
    for group, systems in table.items():
        if group == "undeclared":
            problems.append(f"{int(systems[NEWSFLOW]['pages'])} page(s) declare no <html lang>: no language group")
        ours, ref = systems[NEWSFLOW]["f1"], systems.get(TRAFILATURA, {}).get("f1")
        if ref is not None and ours < ref:
            problems.append(f"{group}: newsflow F1 {ours:.4f} < trafilatura alone {ref:.4f}")
    return problems


def evaluate(corpus: Path = CORPUS, *, baseline: bool = True) -> tuple[dict[str, float], list[PageScore]]:
    pages = [score_page(name, corpus, baseline=baseline) for name in corpus_pages(corpus)]
    return _micro(pages), pages


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


def run_gate(
    corpus: Path = CORPUS, floors_path: Path = FLOORS
) -> tuple[dict[str, float], list[PageScore], list[str], dict[str, dict[str, dict[str, float]]]]:
    """Score the corpus and check it against the pinned floors and trafilatura alone (what the test suite calls)."""
    scores, pages = evaluate(corpus)
    table = compare(pages)
    problems = check(scores, load_floors(floors_path), corpus_digest(corpus)) + check_against_baseline(table)
    return scores, pages, problems, table
