"""The nesting guard (pipeline.nesting): pathological nesting is flattened with its text kept; other pages untouched."""

from __future__ import annotations

import time
from pathlib import Path

import lxml.html
import pytest

import pipeline.nesting
from pipeline.nesting import NESTING_LIMIT, flatten_nesting

ROOT = Path(__file__).resolve().parents[2]
WORDS = " ".join(f"word{i}" for i in range(40))


def _text(html: str) -> str:
    """The text libxml2 reads from ``html`` (what every extractor of the clean stage starts from)."""
    return " ".join(lxml.html.document_fromstring(f"<html><body>{html}</body></html>").text_content().split())


def _libxml2_depth(html: str) -> int:
    """Open elements when libxml2 read the deepest content of ``html`` (an element holding text or elements)."""
    root = lxml.html.document_fromstring(html)
    return max(
        sum(1 for _ in element.iterancestors()) + 1
        for element in root.iter()
        if isinstance(element.tag, str) and element.tag not in ("script", "style", "title", "textarea")
        and (len(element) or (element.text or "").strip())
    )


def test_ten_thousand_nested_divs_keep_their_text() -> None:
    page = "<div>" * 10_000 + f"<p>{WORDS}</p>" + "</div>" * 10_000
    assert "word0" not in _text(page)  # the defect: libxml2 stops at 256 open elements and drops the rest

    flat = flatten_nesting(page)

    assert flat is not None
    assert flat.depth == 10_001
    assert flat.dropped_tags == 2 * (10_001 - NESTING_LIMIT)
    assert _text(flat.html) == WORDS
    # The levels down to the limit stay; the removed run of block tags becomes one line break on each side.
    assert flat.html == "<div>" * NESTING_LIMIT + f"<br>{WORDS}<br>" + "</div>" * NESTING_LIMIT


def test_text_after_deep_markup_is_kept_too() -> None:
    # libxml2 keeps what came before the deep part only: the article's end was lost silently.
    page = f"<p>first {WORDS}</p>" + "<div>" * 300 + "deep" + "</div>" * 300 + "<p>last paragraph</p>"
    assert "last paragraph" not in _text(page)
    flat = flatten_nesting(page)
    assert flat is not None
    assert _text(flat.html).startswith(f"first {WORDS}")
    assert _text(flat.html).endswith("deeplast paragraph")  # text_content() puts nothing between blocks


@pytest.mark.parametrize("depth", [NESTING_LIMIT - 1, NESTING_LIMIT])
def test_nesting_down_to_the_limit_is_untouched(depth: int) -> None:
    page = "<div class='x'>" * depth + WORDS + "</div>" * depth
    assert flatten_nesting(page) is None


def test_one_level_past_the_limit_loses_only_that_level() -> None:
    page = "<section>" * (NESTING_LIMIT + 1) + WORDS + "</section>" * (NESTING_LIMIT + 1)
    flat = flatten_nesting(page)
    assert flat is not None
    assert flat.dropped_tags == 2
    assert flat.html == "<section>" * NESTING_LIMIT + f"<br>{WORDS}<br>" + "</section>" * NESTING_LIMIT


def test_the_pages_of_the_corpus_are_untouched_and_not_read_tag_by_tag(monkeypatch: pytest.MonkeyPatch) -> None:
    def read_tags(html: str, limit: int) -> None:
        raise AssertionError("an ordinary page was read tag by tag")

    monkeypatch.setattr(pipeline.nesting, "_flatten", read_tags)
    pages = sorted((ROOT / "bench" / "corpus" / "extraction").glob("*.html"))
    pages += sorted((ROOT / "tests" / "fixtures" / "pages").glob("*.html"))
    assert len(pages) > 100
    for path in pages:
        assert flatten_nesting(path.read_text(encoding="utf-8")) is None, path.name


@pytest.mark.parametrize(
    "page",
    [
        pytest.param("<p>" + "<p>".join([WORDS] * 1000), id="unclosed_p"),
        pytest.param("<ul>" + "<li>item" * 1000 + "</ul>", id="unclosed_li"),
        pytest.param("<select>" + "<option>country" * 1000 + "</select>", id="unclosed_option"),
        pytest.param("<table>" + "<tr><td>a<td>b" * 1000 + "</table>", id="unclosed_tr_td"),
        pytest.param("<dl>" + "<dt>term<dd>definition" * 1000 + "</dl>", id="unclosed_dt_dd"),
        pytest.param("<a href=/1>one" * 1000, id="unclosed_a"),
        pytest.param("<div/>" * 1000 + WORDS, id="self_closed"),
        pytest.param("</div>" * 10_000 + WORDS, id="stray_end_tags"),
        pytest.param("<br>" * 1000 + "<img src=x>" * 1000 + WORDS, id="void"),
        pytest.param("<script>" + "'<div>'" * 1000 + "</script>" + WORDS, id="tags_in_a_script"),
        pytest.param("<!--" + "<div>" * 1000 + "-->" + WORDS, id="tags_in_a_comment"),
        pytest.param("<a title='" + "<div>" * 1000 + "'>link</a>", id="tags_in_an_attribute"),
    ],
)
def test_markup_that_libxml2_does_not_nest_is_untouched(page: str) -> None:
    # HTML lets a writer leave these end tags out; old pages do it all the time, and the parser closes them.
    assert _libxml2_depth(f"<html><body>{page}</body></html>") <= 5  # html, body, table, tr, td at most
    assert flatten_nesting(page) is None


def test_unclosed_deep_tags_keep_their_text() -> None:
    page = "".join(f"<div>level {i} " for i in range(5000))  # never closed
    flat = flatten_nesting(page)
    assert flat is not None
    assert _text(flat.html) == " ".join(f"level {i}" for i in range(5000))


def test_misnested_end_tags_are_read_as_libxml2_reads_them() -> None:
    # "</span>" cannot close the <div> opened inside the span: libxml2 ignores it, so each round nests two levels.
    page = "<span><div>x</span>" * 2000 + WORDS
    flat = flatten_nesting(page)
    assert flat is not None
    assert flat.depth == 4000
    assert _text(flat.html) == "x" * 2000 + WORDS
    # Closed properly the same markup is shallow, and untouched.
    assert flatten_nesting("<span><div>x</div></span>" * 2000 + WORDS) is None


def test_mismatched_end_tags_close_what_they_can() -> None:
    # "</b>" closes the <i> left open inside it (as libxml2 does), so this page is 2 levels deep, not 4,000.
    assert flatten_nesting("<b><i>x</b>" * 2000) is None
    # An end tag that matches nothing closes nothing; the page stays deep and is flattened.
    flat = flatten_nesting("<div><em>x</strong>" * 2000 + WORDS)
    assert flat is not None
    assert _text(flat.html) == "x" * 2000 + WORDS


def test_deep_inline_tags_keep_words_whole() -> None:
    page = "<b><i>" * 5000 + "Ne<span>w</span>s " + WORDS + "</i></b>" * 5000
    flat = flatten_nesting(page)
    assert flat is not None
    assert _text(flat.html) == f"News {WORDS}"
    assert "<br>" not in flat.html  # removed inline tags leave nothing: the words are not split


def test_scripts_comments_and_void_elements_past_the_limit_are_kept() -> None:
    deep = "<div>" * 300
    page = deep + "<script>var s = '<div>hidden</div>';</script><!-- <div> --><img src='a.jpg' alt='x'>" + WORDS
    flat = flatten_nesting(page + "</div>" * 300)
    assert flat is not None
    assert "<script>var s = '<div>hidden</div>';</script><!-- <div> --><img src='a.jpg' alt='x'>" in flat.html
    tree = lxml.html.document_fromstring(f"<html><body>{flat.html}</body></html>")
    [script] = tree.iter("script")
    assert script.text == "var s = '<div>hidden</div>';"
    assert "hidden" not in (script.tail or "")


def test_the_flattened_page_is_within_what_libxml2_reads() -> None:
    shapes = ["<div>", "<b><i>", "<span><div>x</span>", "<table><tr><td>", "<ul><li>", "<div><p>para</p>"]
    for shape in shapes:
        flat = flatten_nesting(shape * 3000 + WORDS)
        assert flat is not None, shape
        assert _libxml2_depth(f"<html><body>{flat.html}</body></html>") <= NESTING_LIMIT + 2, shape


@pytest.mark.parametrize(
    "shape",
    [
        "<div>", "<div>x", "<p>x", "<li>x", "<ul><li>x", "<option>x", "<select><option>x", "<table><tr><td>x",
        "<table><tr><td>x<tr>", "<tr><td>x", "<a>x", "<a><b>x<a>", "<b><i>x", "<b>x<p>", "<p><b>x", "<p><span>x",
        "<span><p>x", "<span><div>x</span>", "<b><div>x</b>", "<div><span>x</div>", "<dd>x", "<dl><dd>x<dd>",
        "<dl><dt>x<dt>", "<dl><dt>x<dd>y", "<p>x<h1>", "<p>x<section>", "<p>x<blockquote>", "<u>x<center>",
        "<b>x<center>", "<em>x<p>", "<form>", "<noscript><div>", "<div/>", "<br><wbr>x", "<picture><source>",
        "<table><tbody><tr><td>x<tbody>", "<table><thead><tr><th>x<tbody>", "<table><tr><td><a>x<td>",
        "<table><tr><td><div>x</td>", "<li><p>x", "<p><li>x", "<a>x<table>", "<div>x</p>", "<p>x</div>",
        "<div>x</body>", "<div>x</html>", "<section>x</div>", "<my-el>x", "<o:p>x", "<DIV>x", "<Div>x</dIV>",
        "<div><!-- </div> -->x", "<div><script>'</div>'</script>", "<div title='</div>'>x",
    ],
)
def test_the_depth_read_is_never_less_than_libxml2s(shape: str) -> None:
    # 60 rounds stay under libxml2's limit, so its tree shows the depth it reached.
    page = "<html><body>" + shape * 60 + "</body></html>"
    flat = flatten_nesting(page, limit=1)
    depth = flat.depth if flat is not None else 1
    assert depth >= _libxml2_depth(page)


@pytest.mark.parametrize(
    "page",
    [
        pytest.param("<div>" * 300 + "<a title='x>y' href=\"a>b\">link</a>" + WORDS, id="quoted_gt"),
        pytest.param("<div>" * 300 + WORDS + "<a title='never closed>" + WORDS, id="unterminated_quote"),
        pytest.param("<div>" * 300 + WORDS + "<div class=x", id="unterminated_tag"),
        pytest.param("<div>" * 300 + WORDS + "<!-- never closed <div>", id="unterminated_comment"),
        pytest.param("<div>" * 300 + WORDS + "<script>never closed <div>", id="unterminated_script"),
        pytest.param("<div>" * 300 + WORDS + "</div", id="unterminated_end_tag"),
        pytest.param("<div>" * 300 + WORDS + " a < b <3 <", id="lone_lt"),
    ],
)
def test_broken_markup_after_deep_nesting_keeps_the_text(page: str) -> None:
    flat = flatten_nesting(page)
    assert flat is not None
    assert WORDS in _text(flat.html)


def test_hostile_shapes_are_read_in_linear_time() -> None:
    shapes = [
        "<b>" + "<div>" + "<span>" * 10_000 + "</b>" * 100_000,  # end tags blocked by a div, each looked up
        "<div>" * 100_000 + "</x>" * 100_000,  # stray end tags on a deep stack
        "<div>" * 200_000,  # 1 MB of unclosed tags
    ]
    for page in shapes:
        start = time.process_time()
        assert flatten_nesting(page) is not None
        assert time.process_time() - start < 5  # 0.2-0.5 s each here; a quadratic read takes minutes
