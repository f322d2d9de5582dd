"""Remove the boilerplate paragraphs an HTML extractor lets through: teasers, promos, widgets, datelines.

trafilatura removes most page furniture by its markup (nav, aside, class names). What survives is
furniture dressed as text: a "Read more" box inside the article body with its caption and headline,
a game promo, a weather widget, a byline-date line, the breadcrumb trail. Each rule below looks at
one paragraph (and, for teasers, the few after it) and is deliberately narrow: a rule only fires on
SHORT paragraphs, so real article sentences are never dropped because they mention "newsletter".
"""

from __future__ import annotations

import re

from pipeline.canonical import normalise_text
from pipeline.wordcount import count_words

__all__ = ["filter_paragraphs"]

# A line ending a sentence (no ":" or ";": a teaser or byline never ends with a full stop), in
# Latin/Cyrillic, CJK full-width, Arabic and Devanagari text.
_ENDS_WITH_FULL_STOP = re.compile(r"[.!?…。！？؟।॥]['\"”’»)）」』]*$")

# Promos and page furniture; matched only on paragraphs of at most _PROMO_MAX_WORDS words.
_PROMO_MAX_WORDS = 14
_PROMO = re.compile(
    r"(?ix)"
    r"word\s+jumble|play\s+the\s+.*game|test\s+your\s+(?:skills|knowledge)|unscrambl|daily\s+(?:crossword|sudoku)|take\s+(?:our|the)\s+quiz"
    r"|most\s+(?:popular|read|viewed|shared|commented)|trending\s+(?:now|stories|articles)|popular\s+(?:now|articles)"
    r"|editor'?s?\s+picks?|you\s+(?:may|might)\s+also\s+like|recommended\s+(?:for\s+you|stories|articles|reading)"
    r"|related\s+(?:articles|stories|posts|coverage|content|links|topics)|more\s+(?:stories|articles)\s+from"
    r"|sign\s+up\s+(?:for|to|now|here)|subscribe\s+(?:to|now|for|today|here)|(?:our|free|daily|weekly)\s+(?:\w+\s+)?newsletters?"
    r"|^\W*newsletters?\W*$|daily\s+briefing|get\s+the\s+.*briefing"
    r"|share\s+(?:this|on)\b|^\W*share\W*$|follow\s+us\b|join\s+us\s+on|click\s+here|tap\s+here|download\s+(?:our|the)\s+app"
    r"|we\s+use\s+cookies|cookie\s+(?:policy|settings|consent|preferences)|accept\s+(?:all\s+)?cookies"
    r"|^\W*advertisement\W*$|advertise\s+with\s+us|sponsored\s+content|all\s+rights\s+reserved|^\s*©|copyright\s+©?\s*\d{4}"
    r"|^comments?\s*(?:\(\d+\)|\d+)?\s*$|leave\s+a\s+(?:comment|reply)|log\s*in\s+to\s+comment|^\s*(?:tags|topics)\s*:"
    r"|^\s*(?:continue\s+reading|keep\s+reading|show\s+more|load\s+more|back\s+to\s+top)\b"
    r"|already\s+a\s+subscriber|subscribers?\s+only|to\s+continue\s+reading"
)
# Furniture recognisable at any length: WordPress feed footers name the whole post title.
_ALWAYS = re.compile(r"(?i)^the\s+post\s+.+\s+appeared\s+first\s+on\s|^\s*continue\s+reading\s*(?:→|»|\.\.\.|…)?\s*$")
# "Read more" / "See also" teaser markers: alone on a line, or followed by the teaser headline.
_TEASER_MARKER = re.compile(
    r"(?i)^\s*(?:read\s+more|read\s+also|also\s+read|see\s+also|more\s+on\s+this(?:\s+story)?|related|recommended"
    r"|more\s+from\s+\w+|watch|listen|read\s+next|up\s+next|don't\s+miss|further\s+reading)\s*(?::|»|>|\||\s[-–—]|\.{0,3}\s*$)"
)
_TEASER_MAX_WORDS = 20  # a teaser headline or caption is short
_TEASER_MAX_FOLLOWERS = 3  # marker + caption + headline (+ a credit line)
# Weather widgets: "21.1 C", "-3°C", "72 °F Cloudy".
_WEATHER = re.compile(r"(?i)^\s*-?\d{1,3}(?:[.,]\d+)?\s*°?\s*[CF]\b")
# Image captions and credits: "RT composite.", "Photo: Reuters", "© Getty Images / AFP".
_CAPTION = re.compile(
    r"(?i)\b(?:photo|image|picture|credit|illustration|composite|getty|reuters|afp|ap\s+photo|epa|sputnik|"
    r"shutterstock|file\s+photo|pictured|pic)\b"
)
_DATE_WORD = re.compile(
    r"(?ix)^(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|jun(?:e)?|jul(?:y)?|aug(?:ust)?|sep(?:t(?:ember)?)?"
    r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?|mon(?:day)?|tue(?:s(?:day)?)?|wed(?:nesday)?|thu(?:rs(?:day)?)?"
    r"|fri(?:day)?|sat(?:urday)?|sun(?:day)?|at|on|am|pm|gmt|utc|bst|cet|cest|est|edt|pst|pdt|msk|ist"
    r"|updated|published|posted|last|modified|by|today|yesterday|ago|hours?|mins?|minutes?|st|nd|rd|th"
    r"|\d+(?:[:./\-]\d+)*(?:am|pm|h|st|nd|rd|th)?)$"
)
_MONTH_OR_DAY = re.compile(
    r"(?i)\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec|mon|tue|wed|thu|fri|sat|sun)[a-z]*\b|\d{4}[-./]\d{2}[-./]\d{2}"
    r"|\b\d{1,2}[./]\d{1,2}[./]\d{2,4}\b"
)
# Bylines and credit lines: "By Tom Gallagher", "Von Katrin Vogel · 12.03.2026", "Interview: Paul Schneider",
# "Last updated: 12 March 2026 · Reviewed by...". Only when short and not a sentence ("By Friday, talks had
# collapsed." ends with a full stop and stays).
_BYLINE = re.compile(
    r"(?i)^\s*(?:(?:by|von|par|por|door)\s+\S"
    r"|(?:text|words|interview|photos?|pictures|video|reporting|writing|editing)\s*(?::|by\b)"
    r"|(?:last\s+)?(?:updated|published|posted|modified)\b)"
)
_BYLINE_MAX_WORDS = 12
_TOKEN = re.compile(r"[\w:./\-]+")
# "Input/updated" stamps of non-English templates ("입력 2026.02.04 18:40 수정 ...", "Aktualisiert am 04.02.2026
# um 19:05 Uhr"): a line of dates with these words is a dateline in any of the corpus' languages.
_STAMP_WORD = re.compile(
    r"(?i)^(?:입력|수정|승인|기사입력|最終更新|更新|公開|配信|发布时间|发布|更新时间|来源|опубликовано|обновлено|publicado|"
    r"actualizado|atualizado|publié|mis|à|jour|le|am|um|uhr|aktualisiert|veröffentlicht|el|en|a|las|em|às|"
    r"نشر|في|آخر|تحديث|प्रकाशित|अपडेटेड|updated|published)$"
)
# Rights lines of news sites ("All rights reserved" and its equivalents), dropped when short.
_RIGHTS_MAX_WORDS = 40
_RIGHTS = re.compile(
    r"(?i)copyright\s*(?:©|\(c\))|無断転載|無断複製|版权所有|版權所有|禁止转载|무단\s*전재|재배포\s*금지|"
    r"все\s+права\s+защищены|todos\s+los\s+derechos\s+reservados|todos\s+os\s+direitos\s+reservados|"
    r"alle\s+rechte\s+vorbehalten|tous\s+droits\s+réservés|جميع\s+الحقوق\s+محفوظة|सर्वाधिकार\s+सुरक्षित"
)
# A reporter's sign-off with an e-mail address ("박지훈 기자 jhpark@example.com"): short and not a sentence.
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")


def _words(text: str) -> int:
    # Script-aware: a Japanese or Chinese paragraph is not a one-word stub (CJK/Thai count by characters).
    return count_words(text)


def _is_dateline(text: str) -> bool:
    """True for a paragraph that is only a date/time stamp, possibly with one name ("February 04, 2026 at 04:33PM")."""
    if _words(text) > 10 or not _MONTH_OR_DAY.search(text):
        return False
    rest = [
        tok for tok in _TOKEN.findall(text)
        if not _DATE_WORD.match(tok.strip(".,:/-")) and not _STAMP_WORD.match(tok.strip(".,:/-"))
    ]
    return len(rest) <= 1


def _is_teaser_follower(text: str) -> bool:
    """A caption or headline of a teaser box: short, and not a sentence (or a tiny one like "RT composite.")."""
    words = _words(text)
    return words <= _TEASER_MAX_WORDS and (not _ENDS_WITH_FULL_STOP.search(text) or words <= 4)


def _is_caption(text: str) -> bool:
    words = _words(text)
    if words > 10 or not _CAPTION.search(text):
        return False
    return words <= 3 or any(mark in text for mark in (":", "/", "©", "|"))


def _is_breadcrumb(text: str, title_key: str) -> bool:
    """ "HomeUpdatesNATO signals ..." or "Home > World > NATO signals ...": a short path ending in the title."""
    if not title_key:
        return False
    key = normalise_text(text)
    return key != title_key and key.endswith(title_key) and _words(text) <= _words(title_key) + 6


def filter_paragraphs(
    paragraphs: list[str], *, title: str | None = None, subtitle: str | None = None, names: tuple[str, ...] = ()
) -> list[str]:
    """Return ``paragraphs`` without boilerplate, in order.

    ``title`` and ``subtitle`` are removed where they repeat as paragraphs (they have their own fields);
    ``names`` are the outlet's names ("RT", "RT International"): a paragraph that is only a name is a
    logo or byline, not text.
    """
    title_key = normalise_text(title or "")
    drop_keys = {key for key in (title_key, normalise_text(subtitle or "")) if key}
    name_keys = {normalise_text(name) for name in names if name}
    kept: list[str] = []
    skip_followers = 0
    for para in paragraphs:
        text = para.strip()
        if not text:
            continue
        key = normalise_text(text)
        words = _words(text)
        if skip_followers:
            if _is_teaser_follower(text):
                skip_followers -= 1
                continue
            skip_followers = 0
        marker = _TEASER_MARKER.match(text)
        if marker and words <= _TEASER_MAX_WORDS:
            # A bare marker hides its caption and headline in the next paragraphs; "Read more: Headline" is whole.
            if not text[marker.end():].strip():
                skip_followers = _TEASER_MAX_FOLLOWERS
            continue
        if key in name_keys or _is_caption(text):
            # A logo/credit line ("RT", "RT composite.") inside the text heads a teaser box whose "Read more"
            # marker the extractor may already have dropped (trafilatura removes repeated short lines):
            # its headline follows.
            skip_followers = 1 if kept else 0
            continue
        if (
            key in drop_keys
            or not key  # punctuation or symbols only
            or (words <= _PROMO_MAX_WORDS and _PROMO.search(text))
            or _ALWAYS.search(text)
            or (words <= _RIGHTS_MAX_WORDS and _RIGHTS.search(text))
            or (words <= _BYLINE_MAX_WORDS and _EMAIL.search(text) and not _ENDS_WITH_FULL_STOP.search(text))
            or (words <= 6 and _WEATHER.match(text))
            or _is_dateline(text)
            or (words <= _BYLINE_MAX_WORDS and _BYLINE.match(text) and not _ENDS_WITH_FULL_STOP.search(text))
            or _is_breadcrumb(text, title_key)
        ):
            continue
        kept.append(text)
    return _trim_edges(kept)


def _is_stub(text: str) -> bool:
    """A few words that are not a sentence: a city name of a widget, a logo, a section label."""
    return _words(text) <= 3 and not _ENDS_WITH_FULL_STOP.search(text)


def _trim_edges(paragraphs: list[str]) -> list[str]:
    # Widgets and labels cluster before the first and after the last real paragraph; inside the text
    # a short line is more likely a subheading, which is kept.
    start, end = 0, len(paragraphs)
    while start < end and _is_stub(paragraphs[start]):
        start += 1
    while end > start and _is_stub(paragraphs[end - 1]):
        end -= 1
    return paragraphs[start:end]
