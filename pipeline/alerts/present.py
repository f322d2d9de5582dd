"""What an alert says: the AlertEvent (payload) of a match, and its renderings for each channel.

An instant alert is one AlertEvent; a digest is the list of a rule's AlertEvents over its interval. Webhook
bodies are JSON (``{"kind": "alert", "alert": {...}}`` or ``{"kind": "digest", "rule": ..., "alerts": [...]}``);
Slack gets ``{"text": ...}`` in Slack's mrkdwn; email a plain-text and an HTML part.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Sequence
from datetime import datetime

from pipeline.alerts.matcher import Match
from pipeline.alerts.rules import Rule
from pipeline.schemas import AlertEvent

__all__ = ["alert_event", "alert_id", "email_bodies", "slack_body", "subject", "webhook_body"]

_EM = re.compile(r"</?em>")


def alert_id(rule: str, story_id: str) -> str:
    """Stable across workers, restarts and copies of the story: sha256 of (rule, story id), 32 hex digits."""
    return hashlib.sha256(f"{rule}\x1f{story_id}".encode()).hexdigest()[:32]


def _fragments(highlight: dict[str, list[str]]) -> list[str]:
    out: list[str] = []
    for name in ("title", "summary", "body", "entity_names.text"):
        out += [" ".join(f.split()) for f in highlight.get(name, [])]
    return out[:3]


def alert_event(match: Match, *, copies: int, indexed_at: datetime | None, top_entities: int) -> AlertEvent:
    a = match.article
    entities = [e.name for e in sorted(a.entities, key=lambda e: -e.count)][:top_entities]
    return AlertEvent(alert_id=alert_id(match.rule.name, a.story_id), rule=match.rule.name, query=match.rule.query,
                      article_id=a.id, story_id=a.story_id, title=a.title, url=a.url or a.canonical_url,
                      source=a.source or a.source_domain, published_at=a.published_at, indexed_at=indexed_at,
                      fragments=_fragments(match.highlight), entities=entities, copies=max(1, copies))


def subject(rule: Rule, alerts: Sequence[AlertEvent]) -> str:
    if len(alerts) == 1 and rule.mode == "instant":
        return f"[newsflow] {rule.name}: {alerts[0].title}"
    return f"[newsflow] {rule.name}: {len(alerts)} new stories"


def webhook_body(rule: Rule, alerts: Sequence[AlertEvent]) -> bytes:
    """Compact UTF-8 JSON, each alert serialised by pydantic's own encoder (a broad rule set posts thousands a
    batch: ``model_dump`` then ``json.dumps`` cost the worker three times as much)."""
    if rule.mode == "instant" and len(alerts) == 1:
        return b'{"kind":"alert","alert":' + alerts[0].model_dump_json().encode("utf-8") + b"}"
    head = json.dumps({"kind": "digest", "rule": rule.name, "query": rule.query}, ensure_ascii=False,
                      separators=(",", ":"))
    items = b",".join(a.model_dump_json().encode("utf-8") for a in alerts)
    return head[:-1].encode("utf-8") + b',"alerts":[' + items + b"]}"


def _line(a: AlertEvent) -> str:
    when = a.published_at.isoformat() if a.published_at else "?"
    copies = f" · {a.copies} copies" if a.copies > 1 else ""
    return f"{a.title}\n{a.source or '?'} · {when}{copies}\n{a.url or ''}"


def slack_body(rule: Rule, alerts: Sequence[AlertEvent]) -> bytes:
    parts = [f"*{subject(rule, alerts)}*"]
    for a in alerts:
        title = f"<{a.url}|{a.title}>" if a.url else a.title
        fragment = _EM.sub("*", a.fragments[0]) if a.fragments else ""
        parts.append(f"• {title} ({a.source or '?'}){' — ' + fragment if fragment else ''}")
    return json.dumps({"text": "\n".join(parts)}, ensure_ascii=False).encode("utf-8")


def email_bodies(rule: Rule, alerts: Sequence[AlertEvent]) -> tuple[str, str]:
    """(plain text, HTML)."""
    plain = [f"Rule {rule.name}: {rule.query}", ""]
    rows = []
    for a in alerts:
        fragment = _EM.sub("", a.fragments[0]) if a.fragments else ""
        plain += [_line(a), fragment, f"alert {a.alert_id}", ""]
        # Fragments carry <em> from the highlighter around escaped text: escape, then restore the tags.
        frag_html = html.escape(a.fragments[0]).replace("&lt;em&gt;", "<em>").replace("&lt;/em&gt;", "</em>") \
            if a.fragments else ""
        link = f'<a href="{html.escape(a.url)}">{html.escape(a.title)}</a>' if a.url else html.escape(a.title)
        rows.append(f"<li><p>{link}<br><small>{html.escape(a.source or '?')}"
                    f"{' · ' + str(a.copies) + ' copies' if a.copies > 1 else ''}</small></p>"
                    f"<p>{frag_html}</p></li>")
    body_html = (f"<html><body><p>Rule <b>{html.escape(rule.name)}</b>: <code>{html.escape(rule.query)}</code></p>"
                 f"<ul>{''.join(rows)}</ul></body></html>")
    return "\n".join(plain), body_html
