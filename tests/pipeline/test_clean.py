"""The clean stage: main text without boilerplate, metadata fields, and typed errors on hostile input."""

from __future__ import annotations

import html
import pickle
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

import pipeline.clean
from pipeline.boilerplate import filter_paragraphs
from pipeline.canonical import text_fingerprint
from pipeline.clean import clean_and_sign, clean_article, source_domain
from pipeline.errors import ArticleDiscarded, CleanFailed
from pipeline.language import detect_language
from pipeline.nesting import NESTING_LIMIT
from pipeline.schemas import CleanArticle, RawItem
from pipeline.settings import PipelineSettings

PAGES = Path(__file__).resolve().parents[1] / "fixtures" / "pages"
SEED_TEXT = PAGES / "seed-article.txt"  # the seed as text, with its boilerplate (copied from shared fixtures)
SEED_URL = "https://www.rt.com/news/632101-nato-compromise-ukraine-fatigue/?utm_source=rss"

BOILERPLATE = [
    "Article Word Jumble",
    "Play The Word Game",
    "Most Popular Articles",
    "21.1 C",
    "Test your skills",
    "Russia and Ukraine holding new Abu Dhabi talks: What you need to know",
    "War-torn Ukraine is being sold as an ‘investment bonanza’",
    "Read more",
    "RT composite.",
    "Delhi",
    "04:33PM",
    "Finally some realism",  # a reader comment
    "TV-Novosti",  # the footer
    "dataLayer",  # a script
]
ARTICLE_SENTENCES = [
    "On Tuesday, NATO Secretary-General Mark Rutte arrived in Kiev and addressed the Ukrainian parliament",
    "The previous day, Kremlin spokesman Dmitry Peskov noted that the “energy truce”",
    "Mykolaiv Governor Vitaly Kim admitted what many in Kiev now acknowledge privately",
    "“Territories are important, but people are more important,” Kim said.",
    "“Once a peace agreement is reached, there will be forces on the ground, aircraft in the air, and support at sea,”",
    "Rutte’s arrival came as US President Donald Trump again weighed in on the conflict",
    "But the plan’s credibility is unclear.",
    "preparing the world for the reality that any settlement will reflect power, not principle.",
]


def _item(content: str | None = None, **fields: object) -> RawItem:
    defaults: dict[str, object] = {
        "feed_url": "https://www.rt.com/rss/news/",
        "link": SEED_URL,
        "guid": "rt-632101",
        "title": "NATO signals compromise as Ukraine fatigue grows",
        "feed_name": "RT",
        "fetched_at": datetime(2026, 2, 4, 17, 0, tzinfo=UTC),
        "content": content,
    }
    defaults.update(fields)
    return RawItem(**defaults)  # type: ignore[arg-type]


def _clean(item: RawItem) -> CleanArticle:
    """The clean stage as the worker runs it with the default settings."""
    return clean_article(item, min_words=PipelineSettings().min_words)


@pytest.fixture(scope="module")
def seed_page() -> str:
    return (PAGES / "seed-rt.html").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def seed(seed_page: str) -> CleanArticle:
    return _clean(_item(seed_page, language="en"))


def _assert_clean_seed(article: CleanArticle) -> None:
    for junk in BOILERPLATE:
        assert junk not in article.body, junk
    for sentence in ARTICLE_SENTENCES:
        assert sentence in article.body, sentence
    assert article.syndicated_from == "Kommersant"
    assert article.language == "en"


def test_seed_page_keeps_the_article_and_drops_boilerplate(seed: CleanArticle) -> None:
    _assert_clean_seed(seed)
    paragraphs = seed.body.split("\n\n")
    assert len(paragraphs) == 21  # every article paragraph, each kept apart
    assert paragraphs[0].startswith("On Tuesday, NATO Secretary-General")
    assert paragraphs[-1].startswith("This article was first published by Kommersant, and was translated")
    assert 800 <= seed.word_count <= 860


def test_seed_page_fields(seed: CleanArticle) -> None:
    assert seed.title == "NATO signals compromise as Ukraine fatigue grows"
    assert seed.subtitle == (
        "Mark Rutte’s Kiev visit highlights the gap between the military bloc’s plans and Russian red lines"
    )
    assert seed.subtitle not in seed.body and seed.title not in seed.body
    assert seed.source == "RT"
    assert seed.source_domain == "rt.com"
    assert seed.url == SEED_URL
    assert seed.canonical_url == "https://rt.com/news/632101-nato-compromise-ukraine-fatigue"
    assert seed.published_at == datetime(2026, 2, 4, 16, 33, tzinfo=UTC)  # from the page: the feed gave none
    assert seed.ingested_at == datetime(2026, 2, 4, 17, 0, tzinfo=UTC)
    assert seed.text_fingerprint == text_fingerprint(seed.body)
    assert seed.guid == "rt-632101" and seed.feed_url == "https://www.rt.com/rss/news/"


def test_no_markup_or_script_in_any_text_field(seed: CleanArticle) -> None:
    for name, value in seed.model_dump().items():
        if isinstance(value, str):
            assert not re.search(r"<[a-zA-Z/!][^>]*>", value), name
            assert "gtag(" not in value and "console.log" not in value, name
            assert not re.search(r"&(?:#\d+|[a-z]+);", value), name


def test_feed_fragment_and_plain_text_versions_clean_to_the_same_text(seed: CleanArticle) -> None:
    # The same page as a feed's content:encoded (one <p> per block) and as plain text in the summary.
    raw = SEED_TEXT.read_text(encoding="utf-8")
    fragment = "".join(f"<p>{html.escape(block).replace(chr(10), '<br>')}</p>\n" for block in raw.split("\n\n"))
    from_fragment = _clean(_item(fragment))
    from_summary = _clean(_item(None, summary=raw))
    for article in (from_fragment, from_summary):
        _assert_clean_seed(article)
        assert article.text_fingerprint == seed.text_fingerprint
        assert article.subtitle == seed.subtitle


def test_syndicated_copy_and_unrelated_article() -> None:
    copy = _clean(
        _item(
            (PAGES / "seed-syndicated.html").read_text(encoding="utf-8"),
            link="https://eurasiawire.example.net/europe/2026/02/05/nato-compromise-ukraine-fatigue",
            title=None,
            feed_name=None,
            feed_title="Eurasia Wire — Europe",
        )
    )
    assert copy.title == "NATO signals readiness to compromise as fatigue grows in Ukraine"
    assert copy.authors == ["Eurasia Wire staff"]
    assert copy.source == "Eurasia Wire — Europe"
    assert copy.syndicated_from == "Kommersant"
    assert "We use cookies" not in copy.body and "Eurasia Briefing" not in copy.body and "Trending" not in copy.body
    assert "travelled to Kiev on Tuesday" in copy.body

    other = _clean(
        _item(
            (PAGES / "unrelated-same-topic.html").read_text(encoding="utf-8"),
            link="https://www.northernledger.example.org/world/abu-dhabi-talks-second-day",
            title=None,
            feed_name="Northern Ledger",
        )
    )
    assert other.authors == ["Anna Lindqvist"]
    assert other.syndicated_from is None
    assert other.subtitle and other.subtitle.startswith("Negotiators narrow their focus")
    assert "Photo: Reuters" not in other.body and "NATO weighs new air defence fund" not in other.body
    assert other.body.startswith("Delegations from Russia and Ukraine met for a second day in Abu Dhabi")


def test_feed_metadata_wins_over_page_metadata(seed_page: str) -> None:
    article = _clean(
        _item(
            seed_page,
            title="Feed &amp; title <b>bold</b>",
            authors=["By Jane Roe", "jane roe"],
            published_at=datetime(2026, 2, 4, 15, 0, tzinfo=UTC),
            published_raw="Wed, 04 Feb 2026 15:00:00 +0000",
            summary="<p>Rutte&#8217;s visit <script>alert(1)</script>in <em>short</em>.</p>",
            categories=["World &amp; Politics"],
            tags=["nato"],
        )
    )
    assert article.title == "Feed & title bold"
    assert article.authors == ["Jane Roe"]
    assert article.published_at == datetime(2026, 2, 4, 15, 0, tzinfo=UTC)
    assert article.published_raw == "Wed, 04 Feb 2026 15:00:00 +0000"
    assert article.summary == "Rutte’s visit in short."
    assert article.categories == ["World & Politics"] and article.tags == ["nato"]


def test_double_escaped_feed_html_leaves_no_markup() -> None:
    body = " ".join(f"Sentence {n} of the article says the talks in Abu Dhabi went on." for n in range(5))
    summary = f"&lt;p&gt;{body} &lt;script&gt;track()&lt;/script&gt;&lt;b&gt;Bold&lt;/b&gt; end.&lt;/p&gt;"
    footer = "The post NATO signals compromise as Ukraine fatigue grows after a long day appeared first on Example."
    article = _clean(_item(f"<p>{body}</p><p>{footer}</p>", summary=summary))
    assert article.summary == f"{body} Bold end."
    assert article.body == body  # the WordPress footer is gone, whatever the title's length


def test_summary_loses_feed_furniture() -> None:
    lede = "NATO Secretary-General Mark Rutte arrived in Kiev on Tuesday and addressed the Ukrainian parliament."
    summary = f"<p>{lede}</p><p>The post NATO signals compromise appeared first on Example News.</p>"
    article = _clean(_item(f"<article><p>{lede} " * 3 + "</p></article>", summary=summary))
    assert article.summary == lede


def test_summary_loses_the_feed_footer_flattened_into_its_last_sentence() -> None:
    # Feeds that strip the markup leave WordPress's footer in the summary's last sentence: clean removes it (enrich
    # relies on that), and only the footer: "the post office" in the text stays.
    lede = "NATO Secretary-General Mark Rutte arrived in Kiev on Tuesday and visited the post office there."
    body = f"<article><p>{lede} " * 3 + "</p></article>"
    for footer in ("The post NATO signals compromise appeared first on Example News.",
                   "The post U.S. talks: what comes next? appeared first on Example.com."):
        article = _clean(_item(body, summary=f"{lede} [&#8230;] {footer}"))
        assert article.summary == f"{lede} […]"
        assert _clean(_item(body, summary=footer)).summary is None
    kept = "Officials said the post office appeared first on the list of buildings to reopen after the storm."
    assert _clean(_item(body, summary=kept)).summary == kept


def test_language_is_detected_not_assumed() -> None:
    german = (
        "<p>Die Verhandlungen zwischen den beiden Delegationen wurden am Donnerstag in Abu Dhabi fortgesetzt. "
        "Nach Angaben von Diplomaten ging es vor allem um den Austausch von Gefangenen und um den Schutz der "
        "Häfen. Eine gemeinsame Erklärung wurde für den späten Abend erwartet, lag aber bis Mitternacht nicht vor.</p>"
    )
    article = _clean(_item(german, language="en"))  # the feed claims English
    assert article.language == "de"
    assert detect_language("", hint="en-GB") == "en"  # nothing to judge by: the hint is all there is
    assert detect_language("12345 67 89") is None
    assert detect_language("Hola amigo", hint="es") == "es"  # too short to judge: the hint decides
    assert detect_language("Regjeringen vil styrke forsvaret og bruke mer penger på sykehus neste år.") == "no"


def test_unicode_is_nfc_and_entities_unescaped() -> None:
    decomposed = "Cafe\u0301 owners in Zu\u0308rich &amp; Gene\u0300ve said the talks went well. " * 6
    article = _clean(_item(f"<div><p>{decomposed}</p></div>", title="Caf&eacute; talk"))
    assert "Café owners in Zürich & Genève" in article.body
    assert article.title == "Café talk"


@pytest.mark.parametrize(
    ("content", "summary", "reason"),
    [
        (None, None, "no_content"),
        ("", "   ", "no_content"),
        ("<html><body><script>var a = 'Most Popular Articles';</script></body></html>", None, "no_text"),
        ("<p>Too short to be an article.</p>", None, "too_short"),
        ("<style>p{}</style><!-- only a comment -->", None, "no_text"),
        ("x" * 6_000_000, None, "html_too_large"),
    ],
)
def test_unusable_input_is_discarded_with_a_reason(content: str | None, summary: str | None, reason: str) -> None:
    with pytest.raises(ArticleDiscarded) as info:
        _clean(_item(content, summary=summary))
    assert info.value.reason == reason
    assert info.value.stage == "clean"


@pytest.mark.parametrize(
    "content",
    [
        "<html><body><div><p>Unclosed <b>tags <i>everywhere " + "and words " * 40 + "</div></span></table>",
        "\x00\x01\x02 garbage \udcff\udcfe bytes \x1b[31m" * 50 + "<p>" + "ÿþ\ufffd" * 300,
        "<" * 5000 + ">" * 5000,
        "<div>" * 3000 + "deep " * 50 + "</div>" * 3000,
        "<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'aaaa'>]><x>&a;&a;&a;</x>",
        "<html><head><meta charset='shift_jis'></head><body><p>" + "\u00e9\u00e8 word " * 80 + "</p></body></html>",
        # 100,000 attributes on one tag: libxml2 would take minutes (pairwise duplicate check).
        "<p " + " ".join(f'a{i}="{i}"' for i in range(100_000)) + ">" + "text here " * 30 + "</p>",
        bytes(range(256)).decode("latin-1") * 400,  # binary read as text
    ],
    ids=["broken", "control-chars", "angle-brackets", "deep-nesting", "xml-entities", "wrong-charset",
         "attribute-bomb", "binary"],
)
def test_hostile_input_gives_a_typed_error_or_an_article(content: str) -> None:
    try:
        article = _clean(_item(content))
    except (ArticleDiscarded, CleanFailed) as exc:
        assert exc.stage == "clean"
    else:
        assert article.word_count >= 20
        assert "\x00" not in article.body and "<div>" not in article.body


def test_a_trafilatura_failure_falls_back_to_readability(seed_page: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.clean

    def broken(*args: object, **kwargs: object) -> None:
        raise IndexError("internal trafilatura bug")

    monkeypatch.setattr(pipeline.clean.trafilatura, "bare_extraction", broken)
    article = _clean(_item(seed_page))
    for sentence in ARTICLE_SENTENCES:
        assert sentence in article.body
    for junk in ("21.1 C", "Article Word Jumble", "Most Popular Articles", "Read more", "dataLayer"):
        assert junk not in article.body


def test_huge_page_is_cleaned() -> None:
    # Distinct paragraphs: trafilatura collapses repeated identical ones.
    paragraphs = "".join(
        "<p>" + f"Round {n} of the talks: the delegations met again on day {n} to discuss prisoners. " * 8 + "</p>"
        for n in range(400)
    )
    page = f"<html><body><nav>Home World</nav><article>{paragraphs}</article></body></html>"
    article = _clean(_item(page))
    assert article.word_count > 10_000


class _Log:
    """Records what the clean stage logs (structlog's capture_logs misses a logger cached by an earlier test)."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, object]]] = []

    def info(self, event: str, **keys: object) -> None:
        self.lines.append((event, keys))


@pytest.mark.parametrize("page", [False, True], ids=["feed_fragment", "full_page"])
def test_html_nested_ten_thousand_levels_deep_keeps_its_text(page: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    # libxml2 stops at 256 open elements: before pipeline.nesting this was discarded as no_text.
    sentences = [f"Delegates met on day {n} of the talks and agreed to meet again in Geneva soon." for n in range(6)]
    content = "<div>" * 10_000 + "".join(f"<p>{s}</p>" for s in sentences) + "</div>" * 10_000
    if page:
        content = f"<html><head><title>Talks</title></head><body><article>{content}</article></body></html>"
    log = _Log()
    monkeypatch.setattr(pipeline.clean, "log", log)
    signed = clean_and_sign(_item(content), min_words=PipelineSettings().min_words, num_perm=64, shingle_size=5)
    article = CleanArticle.model_validate_json(signed.value)
    for sentence in sentences:
        assert sentence in article.body
    assert signed.html_flattened
    [(event, keys)] = log.lines  # once per article
    assert event == "deep html nesting flattened"
    assert keys["depth"] == 10_001 + (3 if page else 0) and keys["limit"] == NESTING_LIMIT  # html, body, article
    assert keys["url"] == SEED_URL


def test_an_ordinary_page_is_not_flattened(seed_page: str, monkeypatch: pytest.MonkeyPatch) -> None:
    log = _Log()
    monkeypatch.setattr(pipeline.clean, "log", log)
    signed = clean_and_sign(_item(seed_page), min_words=PipelineSettings().min_words, num_perm=64, shingle_size=5)
    assert not signed.html_flattened
    assert not log.lines


def test_summary_only_item_uses_the_summary() -> None:
    summary = (
        "NATO Secretary-General Mark Rutte arrived in Kiev on Tuesday and urged the swift conclusion of a peace "
        "agreement with Russia, while promising the future deployment of foreign troops in Ukraine."
    )
    article = _clean(_item(None, summary=f"<p>{summary}</p>"))
    assert article.body == summary
    assert article.summary == summary


def test_errors_and_articles_survive_pickling(seed: CleanArticle) -> None:
    # The stage runs in a process pool: results and errors cross the process boundary.
    assert pickle.loads(pickle.dumps(seed)) == seed
    error = pickle.loads(pickle.dumps(ArticleDiscarded("too_short", stage="clean")))
    assert isinstance(error, ArticleDiscarded)


def test_teaser_filter_keeps_subheadings_and_sentences() -> None:
    paragraphs = [
        "First real paragraph of the story, long enough to be a sentence.",
        "What happens next",
        "Officials will meet again next week, the ministry said.",
        "Read more",
        "Photo: Reuters",
        "Ministers clash over budget",
        "The newsletter sent to staff on Monday did not mention the talks, three people said.",
    ]
    assert filter_paragraphs(paragraphs) == [paragraphs[0], paragraphs[1], paragraphs[2], paragraphs[6]]


def test_bylines_and_credit_lines_go_but_lookalike_subheadings_stay() -> None:
    first, last = "A long first paragraph that is clearly a sentence.", "The end of the story, with a full stop."
    kept = ["Text messages reveal the plan", "By Friday, talks had collapsed."]
    dropped = [
        "By Tom Gallagher",
        "Interview: Paul Schneider",
        "Reporting by Ana Ruiz; Editing by Mark Potter",
        "Last updated: 12 March 2026 · Reviewed by our energy editor",
        "Von Katrin Vogel · 12.03.2026, 18:40 Uhr",
        "Wednesday, February 4, 2026",
        "-3°C",
        "Advertisement",
    ]
    assert filter_paragraphs([first, *kept, *dropped, last]) == [first, *kept, last]


@pytest.mark.parametrize(
    ("url", "domain"),
    [
        ("https://www.rt.com/news/1", "rt.com"),
        ("https://news.bbc.co.uk/a", "bbc.co.uk"),
        ("http://localhost:8000/x", "localhost"),
        (None, None),
        ("not a url", None),
    ],
)
def test_source_domain(url: str | None, domain: str | None) -> None:
    assert source_domain(url) == domain


def test_oversized_fields_are_cut_to_their_bounds_and_the_article_kept() -> None:
    """A feed's mistake or an attack (a 1 MB title, a 300,000-character body) still yields an article that fits a
    Kafka message: the title cut at a word, the body at a paragraph, both reported for the agent to count."""
    words = " ".join(f"word{n}" for n in range(300))  # ~2,700 characters
    paragraph = "The council met again on Tuesday and voted on the harbour budget. " * 30  # ~2,000 characters
    item = RawItem(feed_url="https://example.com/rss", link="https://example.com/a", title=words,
                   content="".join(f"<p>{n} {paragraph}</p>" for n in range(150)))
    signed = clean_and_sign(item, min_words=10, num_perm=16, shingle_size=5)
    article = CleanArticle.model_validate_json(signed.value)
    assert signed.truncated == ("title", "body")
    kept = article.title.removesuffix("…")
    assert len(article.title) <= pipeline.clean.MAX_TITLE_CHARS and kept != article.title
    assert words.startswith(kept) and words[len(kept)] == " "  # cut between two words
    assert len(article.body) <= pipeline.clean.MAX_BODY_CHARS
    assert article.body.endswith(paragraph.strip())  # whole paragraphs only
    assert article.word_count == len(article.body.split()) and article.text_fingerprint == text_fingerprint(
        article.body)
    assert len(signed.value.encode()) < 1_000_000

    short = clean_and_sign(RawItem(feed_url="https://example.com/rss", link="https://example.com/b", title="Short",
                                   content=f"<p>{paragraph}</p>"), min_words=10, num_perm=16, shingle_size=5)
    assert short.truncated == ()
    assert CleanArticle.model_validate_json(short.value).title == "Short"
