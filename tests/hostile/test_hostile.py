"""The hostile-input corpus, driven by cases.yaml: each case fed through the connector's parser and the clean
stage (the code the worker runs on news.raw), checked against its expected outcome.

Cases with ``covered_by`` are proved by the named existing test; ``status: todo`` cases have no test yet and
are reported as skipped; ``status: defect`` cases run as strict xfail until the code meets them.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.parser import parse_feed
from pipeline.clean import clean_article
from pipeline.errors import ArticleDiscarded
from pipeline.settings import PipelineSettings

FEED_URL = "https://hostile.example.com/feed"
_BODY = " ".join(f"hostile{i % 40} text{i}" for i in range(60))
MIN_WORDS = PipelineSettings().min_words  # the clean stage as configured by default
_CASES: list[dict[str, Any]] = yaml.safe_load((Path(__file__).parent / "cases.yaml").read_text())["cases"]


def _item_xml(spec: dict[str, Any], n: int = 0) -> str:
    title = spec.get("title", f"Hostile item {n}")
    if "title_repeat" in spec:
        text, times = spec["title_repeat"]
        title = text * times
    link = spec.get("link", f"https://hostile.example.com/item/{n}")
    guid = spec.get("guid", link)
    content = spec.get("content", "<p>{body}</p>").replace("{body}", _BODY)
    if "content_nested" in spec:
        tag, depth = spec["content_nested"]
        content = f"<{tag}>" * depth + f"<p>{_BODY}</p>" + f"</{tag}>" * depth
    parts = [f"<title>{escape(title)}</title>"]
    parts += [f"<link>{escape(link)}</link>"] if link else []
    parts += [f"<guid>{escape(guid)}</guid>"] if guid else []
    parts += [f"<pubDate>{escape(spec['pubDate'])}</pubDate>"] if "pubDate" in spec else []
    parts.append(f"<description>{escape(content)}</description>")
    return "<item>" + "".join(parts) + "</item>"


def _feed(spec: dict[str, Any]) -> bytes:
    items = "".join(_item_xml(spec, n) for n in range(spec.get("items", 1)))
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Hostile</title>'
            f"<link>https://hostile.example.com/</link>{items}</channel></rss>").encode("utf-8", "surrogatepass")


def _params() -> list[Any]:
    out = []
    for case in _CASES:
        marks = []
        if "covered_by" in case:
            marks.append(pytest.mark.skip(reason=f"proved by {case['covered_by']}"))
        elif case.get("status") == "todo":
            marks.append(pytest.mark.skip(reason="TODO: no test for this case yet (issue #10 item 2)"))
        elif case.get("status") == "defect":
            marks.append(pytest.mark.xfail(reason="known defect, see cases.yaml", strict=True))
        out.append(pytest.param(case, id=case["name"], marks=marks))
    return out


@pytest.mark.parametrize("case", _params())
def test_hostile_case(case: dict[str, Any]) -> None:
    expect = case["expect"]
    parsed = parse_feed(_feed(case["feed"]), feed_url=FEED_URL)
    if case["stage"] == "parse":
        assert len(parsed.items) == expect["items"]
        return
    [item] = parsed.items
    if "key" in expect:
        assert item.key == expect["key"]
    item.model_dump_json()  # what the connector publishes on news.raw must serialise
    if expect["outcome"] == "discarded":
        with pytest.raises(ArticleDiscarded):
            clean_article(item, min_words=MIN_WORDS)
        return
    article = clean_article(item, min_words=MIN_WORDS)
    indexed_text = "\n".join(str(v) for v in (article.title, article.subtitle, article.summary, article.body))
    for needle in expect.get("never_in_text", []):
        assert needle not in indexed_text, needle
    assert _BODY.split()[0] in article.body
    if "published_year" in expect:
        assert article.published_at is not None and article.published_at.year == expect["published_year"]
    if "published_at" in expect:
        assert article.published_at == expect["published_at"]
    if "title_chars" in expect:
        assert len(article.title) == expect["title_chars"]
    article.model_dump_json()


def test_manifest_names_are_unique_and_every_case_has_an_outcome_or_a_test() -> None:
    names = [c["name"] for c in _CASES]
    assert len(names) == len(set(names))
    for case in _CASES:
        assert "expect" in case or "covered_by" in case, case["name"]


def test_every_covered_by_names_a_test_that_exists() -> None:
    root = Path(__file__).resolve().parents[2]
    for case in _CASES:
        if "covered_by" in case:
            path, _, name = case["covered_by"].partition("::")
            source = root / path
            assert source.is_file(), case["name"]
            assert f"def {name}(" in source.read_text(encoding="utf-8"), case["name"]
