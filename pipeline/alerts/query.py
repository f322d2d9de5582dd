"""Rule queries: validation at ``add`` and the presearcher's conservative reading of a query.

Meaning stays Elasticsearch's own: a match is always decided by Elasticsearch running the very request
``newsflow search`` builds (:func:`pipeline.search.build_search`). This module only answers "could this rule
possibly match a document with these terms?", so that Elasticsearch verifies few rules per batch. The answer
must never be "no" for a rule that matches; when in doubt (wildcards, fuzzy, ranges, keyword fields, a query
luqum cannot read) it is "maybe".

Boolean structure follows Lucene's classic query parser (which ``query_string`` uses), not operator
precedence: within one parenthesis level, each clause is required unless it follows or precedes ``OR``
(``default_operator`` AND), prohibited after ``NOT``/``-``; a level with required clauses needs all of them,
one without needs one of its optional clauses. ``a AND b OR c`` thus requires ``a`` only.

Some queries the presearcher can decide alone, exactly (:func:`exact_form`): combinations with explicit ``AND``,
``OR`` and ``NOT`` (groups, boosts) of plain words that the index's analyzer turns into one term each, in
the default search fields or a named text field, and of exact values of keyword fields, with the ``source``,
``language`` and ``tags`` filters of a rule. For those, "the document's terms in those fields contain the word's
term" is what Elasticsearch's ``query_string`` checks too, so a match is decided without a request. Everything else
(phrases, wildcards, fuzzy, ranges, words analysed to several terms or none, the ``entity`` filter) stays with
Elasticsearch. The agreement test (``tests/integration/test_alerts_es.py``) holds both paths to ``newsflow search``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from luqum import tree
from luqum.exceptions import ParseError
from luqum.parser import parser

__all__ = ["ALWAYS", "DEFAULT_FIELDS", "KEYWORD_TERMS", "Cond", "Exact", "anchors", "cond_terms", "evaluate",
           "exact_form", "exact_terms", "highlight_texts", "keyword_term", "prefix_term", "presearch_condition",
           "syntax_error"]

# The default search fields and the text sub-fields, all analysed with newsflow_text.
TEXT_FIELDS = frozenset({"title", "summary", "body", "subtitle", "entity_names.text"})
# Keyword fields whose exact values the presearcher knows from the article (see keyword_term).
KEYWORD_FIELDS = frozenset({"source", "source_domain", "language", "tags", "entity_names", "categories", "authors",
                            "keywords"})
# The fields ``newsflow search`` reads a word without a field name from (pipeline.search.SEARCH_FIELDS, boosts
# aside); keys of the per-field terms an exact form is evaluated on, with KEYWORD_TERMS for the keyword values.
DEFAULT_FIELDS = ("title", "summary", "body", "entity_names.text")
KEYWORD_TERMS = "\x00keywords"
# The shortest ignore_above of KEYWORD_FIELDS: a longer value is not indexed, so a term query cannot find it.
_KEYWORD_MAX = 256
# A word Elasticsearch's query_string and luqum read the same way: letters, digits, underscores only.
_PLAIN = re.compile(r"\w+")
# A wildcard term is filed under its literal prefix (at least this long, else it is checked for every document);
# a document lists every prefix of this length or more of each of its terms.
PREFIX_LEN = 3
_WILDCARD = frozenset("*?")


def keyword_term(field: str, value: str) -> str:
    """How a keyword field's exact value appears among a document's presearch terms (never a real text term)."""
    return f"\x00{field}={value}"


def prefix_term(prefix: str) -> str:
    return f"\x00prefix={prefix}"


@dataclass(frozen=True, slots=True)
class Cond:
    """``op`` "all" or "any" of ``parts`` (Conds or texts to analyse); ``ALWAYS`` is "maybe" for any document."""

    op: str
    parts: tuple[Cond | str, ...] = ()


ALWAYS = Cond("always")


@functools.lru_cache(maxsize=65_536)
def _parse(text: str) -> Any:
    """luqum's tree of ``text``, parsed once for the presearch condition, the exact form and the highlighted texts
    (the trees are only read). Raises what luqum raises."""
    return parser.parse(text)


def syntax_error(query: str) -> str | None:
    """luqum's parse error for ``query`` (with the position), or None. Used when Elasticsearch is unreachable."""
    try:
        parser.parse(query)
    except (ParseError, Exception) as exc:  # luqum raises plain Exceptions from ply on some inputs
        return str(exc)
    return None


def _all(parts: list[Cond]) -> Cond:
    useful = [p for p in parts if p is not ALWAYS]
    if not useful:
        return ALWAYS
    return useful[0] if len(useful) == 1 else Cond("all", tuple(useful))


def _any(parts: list[Cond]) -> Cond:
    if not parts or any(p is ALWAYS for p in parts):
        return ALWAYS
    return parts[0] if len(parts) == 1 else Cond("any", tuple(parts))


def _text(value: str) -> Cond:
    # A word or phrase is possible only if all its analysed terms occur in the document (positions ignored).
    return Cond("text", (value,))


def _clauses(node: Any, conj: str, out: list[tuple[str, Any]]) -> None:
    """Flatten one parenthesis level into (conjunction before, clause) in source order."""
    if isinstance(node, (tree.AndOperation, tree.OrOperation, tree.UnknownOperation)):
        op = "AND" if isinstance(node, tree.AndOperation) else "OR" if isinstance(node, tree.OrOperation) else ""
        for n, child in enumerate(node.children):
            _clauses(child, conj if n == 0 else op, out)
    else:
        out.append((conj, node))


def _occurs(clauses: list[tuple[str, Any]]) -> list[str]:
    """Each clause's occurrence in its level, "must", "should" or "not", as Lucene's classic parser gives it."""
    occurs: list[str] = []
    for n, (conj, clause) in enumerate(clauses):
        if n > 0 and conj == "AND" and occurs[-1] != "not":
            occurs[-1] = "must"
        if n > 0 and conj == "OR" and occurs[-1] != "not":
            occurs[-1] = "should"
        prohibited = isinstance(clause, (tree.Not, tree.Prohibit))
        occurs.append("not" if prohibited else "must" if conj != "OR" else "should")
    return occurs


def _level(node: Any, field: str | None) -> Cond:
    clauses: list[tuple[str, Any]] = []
    _clauses(node, "", clauses)
    occurs = _occurs(clauses)
    must = [_node(c, field) for (_, c), o in zip(clauses, occurs, strict=True) if o == "must"]
    should = [_node(c, field) for (_, c), o in zip(clauses, occurs, strict=True) if o == "should"]
    if must:
        return _all(must)
    if should:
        return _any(should)
    return ALWAYS  # only prohibited clauses: Elasticsearch matches everything else


def _node(node: Any, field: str | None) -> Cond:
    if isinstance(node, (tree.AndOperation, tree.OrOperation, tree.UnknownOperation)):
        return _level(node, field)
    if isinstance(node, (tree.Group, tree.FieldGroup)):
        return _level(node.expr, field)
    if isinstance(node, tree.Plus):
        return _node(node.a, field)
    if isinstance(node, tree.Boost):
        return _node(node.expr, field)
    if isinstance(node, tree.SearchField):
        name = node.name
        if name in KEYWORD_FIELDS and isinstance(node.expr, (tree.Word, tree.Phrase)):
            value = node.expr.value[1:-1] if isinstance(node.expr, tree.Phrase) else node.expr.value
            if not any(ch in value for ch in "*?\\"):
                return Cond("keyword", (keyword_term(name, value),))  # exact, case-sensitive: a term query
        if name not in TEXT_FIELDS:
            return ALWAYS  # other keyword, date and number fields: Elasticsearch decides
        return _node(node.expr, name)
    if isinstance(node, tree.Proximity):
        return _node(node.term, field)
    if isinstance(node, tree.Phrase):
        return _text(node.value[1:-1])
    if isinstance(node, tree.Word):
        value = node.value
        if "\\" in value or value in ("*", "_exists_"):
            return ALWAYS
        if any(ch in value for ch in _WILDCARD):
            # Wildcards are not analysed, only lower-cased, and run against the indexed terms.
            literal = value.lower()[:min(i for i, ch in enumerate(value) if ch in _WILDCARD)]
            return Cond("prefix", (literal,)) if len(literal) >= PREFIX_LEN and literal.isalnum() else ALWAYS
        return _text(value)
    return ALWAYS  # Fuzzy, Regex, Range, Not/Prohibit alone, anything new


def presearch_condition(query: str) -> Cond:
    """What a document must contain for ``query`` possibly to match it (``ALWAYS`` when unsure)."""
    text = query.strip()
    if not text or text == "*":
        return ALWAYS
    try:
        parsed = _parse(text)
    except Exception:
        return ALWAYS  # Elasticsearch may still accept it: then every batch checks the rule
    return _node(parsed, None)


def cond_terms(cond: Cond) -> set[str]:
    """The texts a condition needs analysed."""
    if cond.op == "text":
        return {str(cond.parts[0])}
    out: set[str] = set()
    for part in cond.parts:
        if isinstance(part, Cond):
            out |= cond_terms(part)
    return out


def evaluate(cond: Cond, analysed: dict[str, frozenset[str]], terms: frozenset[str] | set[str]) -> bool:
    """Could a document with ``terms`` match? ``analysed`` maps each text to its analysed terms."""
    if cond.op == "always":
        return True
    if cond.op == "text":
        needed = analysed.get(str(cond.parts[0]))
        # Unknown or analysed to nothing (a stop word): no constraint.
        return needed is None or needed <= terms
    if cond.op == "keyword":
        return str(cond.parts[0]) in terms
    if cond.op == "prefix":
        return prefix_term(str(cond.parts[0])) in terms
    if cond.op == "all":
        return all(evaluate(p, analysed, terms) for p in cond.parts if isinstance(p, Cond))
    return any(evaluate(p, analysed, terms) for p in cond.parts if isinstance(p, Cond))


def anchors(cond: Cond, analysed: dict[str, frozenset[str]]) -> frozenset[str] | None:
    """Terms of which a document must contain at least one for ``cond`` to hold; None when there are none.

    The presearcher's inverted index files a rule under these terms only. From an "all", the child with the
    fewest anchors (longer terms first: they tend to be rarer); from an "any", the union of its children's.
    """
    if cond.op == "always":
        return None
    if cond.op == "text":
        needed = analysed.get(str(cond.parts[0]))
        return frozenset({max(sorted(needed), key=len)}) if needed else None
    if cond.op == "keyword":
        return frozenset({str(cond.parts[0])})
    if cond.op == "prefix":
        return frozenset({prefix_term(str(cond.parts[0]))})
    children = [anchors(p, analysed) for p in cond.parts if isinstance(p, Cond)]
    if cond.op == "all":
        known = [c for c in children if c is not None]
        if not known:
            return None
        return min(known, key=lambda c: (len(c), -sum(map(len, c))))
    if any(c is None for c in children):
        return None
    return frozenset().union(*[c for c in children if c is not None])


@dataclass(frozen=True, slots=True)
class Exact:
    """A query the presearcher decides alone. A leaf "word" (``value`` in ``field``, or in the DEFAULT_FIELDS when
    ``field`` is None) or "keyword" (``value`` is a :func:`keyword_term`); "and" / "or" of ``parts``, with the
    ``negated`` clauses none of which may hold; "none" (only ``negated``: a top-level ``NOT x``)."""

    op: str
    parts: tuple[Exact, ...] = ()
    negated: tuple[Exact, ...] = ()
    field: str | None = None
    value: str = ""


def exact_form(query: str, *, source: str | None = None, language: str | None = None,
               tags: tuple[str, ...] | list[str] = (), entity: str | None = None) -> Exact | None:
    """``query`` with a rule's filters as an :class:`Exact`, or None when Elasticsearch must decide."""
    if entity is not None:
        return None  # a phrase match on entity_names.text: positions
    text = query.strip()
    if not text or text == "*":
        return None
    try:
        parsed = _parse(text)
    except Exception:
        return None
    form = _exact_node(parsed, None, top=True)
    if form is None:
        return None
    filters: list[Exact] = []
    for name, values in (("source", [source] if source else []), ("language", [language.lower()] if language else []),
                         ("tags", list(tags))):
        if not values:
            continue
        if any(len(v) > _KEYWORD_MAX for v in values):
            return None
        leaves = [Exact("keyword", value=keyword_term(name, v)) for v in values]
        if name == "source":
            leaves.append(Exact("keyword", value=keyword_term("source_domain", values[0].lower())))
        filters.append(leaves[0] if len(leaves) == 1 else Exact("or", tuple(leaves)))
    return Exact("and", (form, *filters)) if filters else form


def _exact_node(node: Any, field: str | None, *, top: bool = False) -> Exact | None:
    if isinstance(node, (tree.AndOperation, tree.OrOperation, tree.UnknownOperation)):
        return _exact_level(node, field, top=top)
    if isinstance(node, (tree.Not, tree.Prohibit)):
        return _exact_level(node, field, top=top)  # a lone NOT x: a level with only a prohibited clause
    if isinstance(node, (tree.Group, tree.FieldGroup)):
        return _exact_level(node.expr, field)
    if isinstance(node, tree.Plus):
        return _exact_node(node.a, field)
    if isinstance(node, tree.Boost):
        return _exact_node(node.expr, field)  # a boost changes scores, not matches
    if isinstance(node, tree.SearchField):
        if field is not None:
            return None
        name = node.name
        if name in KEYWORD_FIELDS and isinstance(node.expr, (tree.Word, tree.Phrase)):
            value = node.expr.value[1:-1] if isinstance(node.expr, tree.Phrase) else node.expr.value
            if value and len(value) <= _KEYWORD_MAX and not any(ch in value for ch in '*?\\"'):
                return Exact("keyword", value=keyword_term(name, value))
            return None
        return _exact_node(node.expr, name) if name in TEXT_FIELDS else None
    if isinstance(node, tree.Word) and _PLAIN.fullmatch(node.value) and node.value not in ("AND", "OR", "NOT"):
        return Exact("word", field=field, value=node.value)
    return None  # phrases, wildcards, fuzzy, proximity, ranges, regexes, escapes


def _exact_level(node: Any, field: str | None, *, top: bool = False) -> Exact | None:
    clauses: list[tuple[str, Any]] = []
    _clauses(node, "", clauses)
    if any(conj == "" for conj, _ in clauses[1:]):
        # Whitespace is not an operator for query_string: "a b" is analysed as one text per field, so both words
        # must be in the same field; only explicit AND / OR / NOT make one clause per word across the fields.
        return None
    occurs = _occurs(clauses)
    forms: dict[str, list[Exact]] = {"must": [], "should": [], "not": []}
    for (_, clause), occur in zip(clauses, occurs, strict=True):
        form = _exact_node(clause.a if occur == "not" else clause, field)
        if form is None:
            return None
        forms[occur].append(form)
    negated = tuple(forms["not"])
    if forms["must"]:
        return Exact("and", tuple(forms["must"]), negated)
    if forms["should"]:
        return Exact("or", tuple(forms["should"]), negated)
    # Only prohibited clauses: Elasticsearch turns a top-level one into "everything else"; nested, it matches
    # nothing (Lucene's pure negative boolean query). Only the first is decided here.
    return Exact("none", (), negated) if top else None


def exact_terms(form: Exact) -> set[str]:
    """The words of an exact form, to analyse."""
    if form.op == "word":
        return {form.value}
    out: set[str] = set()
    for part in (*form.parts, *form.negated):
        out |= exact_terms(part)
    return out


def highlight_texts(query: str) -> tuple[frozenset[str], tuple[str, ...]]:
    """What an alert of ``query`` highlights: the texts of its words and phrases in text fields that it does not
    negate (to analyse), and its wildcards' literal prefixes (lower-cased)."""
    texts: set[str] = set()
    prefixes: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, (tree.Not, tree.Prohibit)):
            return
        if isinstance(node, tree.SearchField):
            if node.name in TEXT_FIELDS:
                walk(node.expr)
            return
        if isinstance(node, tree.Phrase):
            texts.add(node.value[1:-1])
        elif isinstance(node, tree.Word):
            value = node.value
            if any(ch in value for ch in _WILDCARD):
                literal = value.lower()[:min(i for i, ch in enumerate(value) if ch in _WILDCARD)]
                if literal:
                    prefixes.add(literal)
            elif "\\" not in value:
                texts.add(value)
        for child in getattr(node, "children", ()):
            walk(child)

    try:
        walk(_parse(query.strip()))
    except Exception:
        return frozenset(), ()
    return frozenset(texts), tuple(sorted(prefixes))
